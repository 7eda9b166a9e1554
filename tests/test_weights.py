"""Sample and class weights (issue 8): the weighted mean J = sum w_i l_i / sum w_i, checked against
repeated rows, scikit-learn's "balanced" weights and its weighted metrics, on every backend."""

import numpy as np
import pytest
from conftest import HEAD_IDS, HEAD_PAIRS, N_OUT, targets

import anybackprop as ab


def model_for(output, loss, **kwargs):
    return ab.MLP(
        [3, 5, 4, N_OUT[output]], activation="tanh", output=output, loss=loss, seed=6, dtype="float64", **kwargs
    )


def assert_same(loss_a, grads_a, loss_b, grads_b):
    assert loss_a == pytest.approx(loss_b, rel=1e-12, abs=1e-14)
    assert set(grads_a) == set(grads_b)
    for key in grads_a:
        np.testing.assert_allclose(
            ab.to_numpy(grads_a[key]), ab.to_numpy(grads_b[key]), rtol=1e-10, atol=1e-13, err_msg=key
        )


@pytest.mark.parametrize("norm", [None, "layer"])
@pytest.mark.parametrize("output,loss", HEAD_PAIRS, ids=HEAD_IDS)
def test_integer_weights_equal_repeated_rows(backend, output, loss, norm, rng):
    model = model_for(output, loss, norm=norm)
    X, Y = rng.standard_normal((7, 3)), targets(output, N_OUT[output], 7, rng)
    w = np.array([1, 3, 0, 2, 1, 4, 2])
    repeated = np.repeat(np.arange(7), w)
    assert_same(*model.loss_and_grads(X, Y, sample_weight=w), *model.loss_and_grads(X[repeated], Y[repeated]))
    assert model.loss(X, Y, w) == pytest.approx(model.loss(X[repeated], Y[repeated]), rel=1e-12)
    # only the ratios matter
    assert_same(*model.loss_and_grads(X, Y, sample_weight=2.5 * w), *model.loss_and_grads(X, Y, sample_weight=w))


@pytest.mark.parametrize("output,loss", HEAD_PAIRS, ids=HEAD_IDS)
def test_zero_weight_removes_the_row_and_unit_weights_change_nothing(backend, output, loss, rng):
    model = model_for(output, loss)
    X, Y = rng.standard_normal((6, 3)), targets(output, N_OUT[output], 6, rng)
    w = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    keep = w > 0
    assert_same(*model.loss_and_grads(X, Y, sample_weight=w), *model.loss_and_grads(X[keep], Y[keep]))
    assert_same(*model.loss_and_grads(X, Y, sample_weight=np.ones(6)), *model.loss_and_grads(X, Y))


def test_weighted_loss_is_the_weighted_mean_of_row_losses(backend, rng):
    """Cross-entropy by hand in NumPy: J = sum w_i (-log softmax(z_i)[y_i]) / sum w_i."""
    model = ab.MLP([3, 4, 3], activation="tanh", seed=1, dtype="float64")
    X, y = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    w = np.array([0.5, 2.0, 1.0, 0.0, 3.0])
    p = {k: ab.to_numpy(v) for k, v in model.params.items()}
    z = np.tanh(X @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    logp = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    expected = np.sum(w * -logp[np.arange(5), y]) / w.sum()
    assert model.loss(X, y, w) == pytest.approx(expected, rel=1e-12)


def test_balanced_class_weight_equals_scikit_learn(backend, rng):
    cw = pytest.importorskip("sklearn.utils.class_weight")
    X = rng.standard_normal((11, 3))
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2])
    model = ab.MLP([3, 4, 3], seed=0, dtype="float64")
    with model.backend.activate():  # the trainer's interface runs on the model's device
        per_class = cw.compute_class_weight("balanced", classes=np.unique(y), y=y)
        np.testing.assert_allclose(
            ab.to_numpy(model.check_data(X, y, class_weight="balanced")[2]), per_class[y], rtol=1e-12
        )
        # times sample_weight
        sw = rng.uniform(0.5, 2.0, 11)
        np.testing.assert_allclose(
            ab.to_numpy(model.check_data(X, y, sw, class_weight="balanced")[2]), per_class[y] * sw, rtol=1e-12
        )
        # binary: one sigmoid output
        yb = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
        binary = ab.MLP([3, 4, 1], output="sigmoid", seed=0, dtype="float64")
        per_class = cw.compute_class_weight("balanced", classes=np.array([0, 1]), y=yb)
        np.testing.assert_allclose(
            ab.to_numpy(binary.check_data(X, yb, class_weight="balanced")[2]), per_class[yb], rtol=1e-12
        )


def test_class_weight_dict_maps_to_rows_and_equals_sample_weight(backend, rng):
    X, y = rng.standard_normal((8, 3)), np.array([0, 1, 2, 2, 1, 0, 0, 2])
    model = ab.MLP([3, 4, 3], activation="tanh", seed=2, dtype="float64")
    weights = {0: 2.0, 2: 0.5}
    expected = np.array([weights.get(int(c), 1.0) for c in y])
    with model.backend.activate():  # the trainer's interface runs on the model's device
        np.testing.assert_array_equal(ab.to_numpy(model.check_data(X, y, class_weight=weights)[2]), expected)
    # fitting with the dict is fitting with those sample weights
    a, b = model.copy(), model.copy()
    a.fit(X, y, epochs=2, batch_size=4, class_weight=weights, verbose=False)
    b.fit(X, y, epochs=2, batch_size=4, sample_weight=expected, verbose=False)
    for key in a.params:
        np.testing.assert_allclose(ab.to_numpy(a.params[key]), ab.to_numpy(b.params[key]), rtol=1e-12, atol=1e-15)
    for bad, pattern in (
        ({3: 1.0}, "class_weight has key 3"),
        ({0: -1.0}, r"class_weight\[0\] must be a finite number >= 0"),
        ("equal", "class_weight must be None, a dict"),
    ):
        with pytest.raises(ValueError, match=pattern), model.backend.activate():
            model.check_data(X, y, class_weight=bad)


def test_class_weight_needs_a_classifier(backend, rng):
    model = ab.MLP([3, 4, 1], output="identity", seed=0)
    with pytest.raises(ValueError, match="class_weight needs a classifier"):
        model.fit(rng.standard_normal((6, 3)), rng.standard_normal(6), class_weight="balanced", verbose=False)


def test_full_batch_fit_with_integer_weights_equals_fit_on_repeated_rows(backend, rng):
    X, y = rng.standard_normal((9, 3)), rng.integers(0, 3, 9)
    w = np.array([2, 1, 3, 1, 0, 2, 1, 1, 2])
    rep = np.repeat(np.arange(9), w)
    a = ab.MLP([3, 6, 3], activation="tanh", seed=4, dtype="float64")
    b = a.copy()
    ha = a.fit(X, y, epochs=5, batch_size=9, optimizer="adam", lr=0.05, shuffle=False, sample_weight=w, verbose=False)
    hb = b.fit(X[rep], y[rep], epochs=5, batch_size=len(rep), optimizer="adam", lr=0.05, shuffle=False, verbose=False)
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-10)
    np.testing.assert_allclose(ha.metrics["accuracy"], hb.metrics["accuracy"], rtol=1e-12)
    for key in a.params:
        np.testing.assert_allclose(
            ab.to_numpy(a.params[key]), ab.to_numpy(b.params[key]), rtol=1e-9, atol=1e-12, err_msg=key
        )


@pytest.mark.parametrize("output,loss", HEAD_PAIRS, ids=HEAD_IDS)
def test_fit_with_sample_weight_trains(backend, output, loss, rng):
    X = rng.standard_normal((40, 3))
    Y = {
        "softmax": (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5),
        "sigmoid": (X[:, 0] > 0).astype(float),
        "identity": np.c_[X[:, 0] - X[:, 1], X[:, 2]],
    }[output]
    model = ab.MLP([3, 8, N_OUT[output]], output=output, loss=loss, seed=0)
    history = model.fit(
        X,
        Y,
        epochs=15,
        batch_size=10,
        optimizer="adam",
        lr=0.02,
        sample_weight=rng.uniform(0.2, 3.0, 40),
        verbose=False,
    )
    assert history.loss[-1] < 0.8 * history.loss[0]


@pytest.mark.parametrize(
    "make,pattern",
    [
        (lambda m: -np.ones(m), r"sample_weight has negative values"),
        (lambda m: np.r_[np.ones(m - 1), -0.5], r"sample_weight has negative values \(the smallest is -0.5\)"),
        (lambda m: np.ones(m + 1), r"sample_weight has shape \(\d+,\); expected one weight per row"),
        (lambda m: np.ones((m, 1)), r"sample_weight has shape \(\d+, 1\); expected one weight per row"),
        (lambda m: np.r_[np.ones(m - 1), np.nan], r"sample_weight contains NaN"),
        (lambda m: np.r_[np.ones(m - 1), np.inf], r"sample_weight contains infinity"),
        (lambda m: np.zeros(m), r"sample_weight sums to 0"),
    ],
    ids=["negative", "one-negative", "too-long", "2-d", "nan", "inf", "all-zero"],
)
def test_bad_sample_weights_raise_a_clear_error(backend, rng, make, pattern):
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    model = ab.MLP([3, 4, 2], seed=0)
    before = {k: ab.to_numpy(v).copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=pattern):
        model.fit(X, y, epochs=1, sample_weight=make(6), verbose=False)
    with pytest.raises(ValueError, match=pattern):
        model.loss_and_grads(X, y, sample_weight=make(6))
    with pytest.raises(ValueError, match=pattern):
        model.score(X, y, sample_weight=make(6))
    for key, value in before.items():
        np.testing.assert_array_equal(ab.to_numpy(model.params[key]), value)


def test_weighted_score_equals_scikit_learn(backend, rng):
    metrics = pytest.importorskip("sklearn.metrics")
    X = rng.standard_normal((30, 3))
    w = rng.uniform(0.0, 3.0, 30)
    clf = ab.MLP([3, 5, 3], seed=1, dtype="float64")
    y = rng.integers(0, 3, 30)
    pred = ab.to_numpy(clf.predict(X))
    assert clf.score(X, y, w) == pytest.approx(metrics.accuracy_score(y, pred, sample_weight=w), rel=1e-12)
    binary = ab.MLP([3, 5, 1], output="sigmoid", seed=1, dtype="float64")
    yb = rng.integers(0, 2, 30)
    pred = ab.to_numpy(binary.predict(X))
    assert binary.score(X, yb, w) == pytest.approx(metrics.accuracy_score(yb, pred, sample_weight=w), rel=1e-12)
    reg = ab.MLP([3, 5, 1], output="identity", seed=1, dtype="float64")
    yr = X[:, 0] + 0.1 * rng.standard_normal(30)
    pred = ab.to_numpy(reg.predict(X))
    assert reg.score(X, yr, w) == pytest.approx(metrics.r2_score(yr, pred, sample_weight=w), rel=1e-10)
    # several outputs: SS_res and SS_tot pooled over the outputs = scikit-learn's variance_weighted
    reg2 = ab.MLP([3, 5, 2], output="identity", seed=1, dtype="float64")
    Y2 = np.c_[yr, 3 * X[:, 1]]
    pred = ab.to_numpy(reg2.predict(X))
    expected = metrics.r2_score(Y2, pred, sample_weight=w, multioutput="variance_weighted")
    assert reg2.score(X, Y2, w) == pytest.approx(expected, rel=1e-10)
