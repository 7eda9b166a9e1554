"""The generated and bundled datasets and the helpers."""

import numpy as np
import pytest

from anybackprop import datasets


@pytest.mark.parametrize("name", ["flower", "xor", "spirals", "moons"])
def test_generated_datasets_are_seeded_two_class_planes(name):
    X, y = datasets.load(name, seed=3)
    X2, _y2 = datasets.load(name, seed=3)
    np.testing.assert_array_equal(X, X2)
    assert X.shape == (len(y), 2) and set(np.unique(y)) == {0, 1}
    assert not np.array_equal(datasets.load(name, seed=4)[0], X)


def test_xor_labels_follow_the_corners():
    X, y = datasets.xor(100, noise=0.0, seed=0)
    np.testing.assert_array_equal(y, np.round(X[:, 0]).astype(int) ^ np.round(X[:, 1]).astype(int))


def test_digits():
    X, y = datasets.digits()
    assert X.shape == (1797, 64) and y.shape == (1797,) and X.max() == 16 and set(np.unique(y)) == set(range(10))


def test_stratified_split_keeps_class_shares():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    X = np.arange(100)[:, None].astype(float)
    X_train, X_test, _y_train, y_test = datasets.train_test_split(X, y, 0.2, seed=0)
    assert np.bincount(y_test).tolist() == [10, 6, 4]
    assert sorted(np.r_[X_train[:, 0], X_test[:, 0]].tolist()) == list(range(100))
    np.testing.assert_array_equal(y[X_test[:, 0].astype(int)], y_test)


def test_standardize_uses_train_statistics():
    train, test = np.array([[1.0, 5.0], [3.0, 5.0]]), np.array([[5.0, 6.0]])
    s_train, s_test = datasets.standardize(train, test)
    np.testing.assert_allclose(s_train, [[-1, 0], [1, 0]])
    np.testing.assert_allclose(s_test, [[3, 1]])


def test_one_hot_and_errors():
    np.testing.assert_array_equal(datasets.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"labels in \[0, 3\]; expected integers in \[0, 2\]"):
        datasets.one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; accepted values: digits, flower"):
        datasets.load("mnist")
    with pytest.raises(ValueError, match="test_size must be in"):
        datasets.train_test_split(np.zeros((4, 1)), np.zeros(4), 1.5)
