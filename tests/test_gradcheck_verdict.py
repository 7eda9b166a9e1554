"""Class table: a gradient check a user can read. The result is the worst relative error (still a
float), per parameter, with a pass/fail verdict against the documented tolerance, and the entries
whose perturbation crossed a relu or leaky relu kink, re-checked with a smaller step or one-sided
differences (or skipped) instead of straddling the kink."""

import copy
import pickle

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import datasets
from anybackprop.gradcheck import GradcheckResult


def test_the_readme_relu_model_passes_and_says_so():
    X, y = datasets.digits()
    X_train, X_test, y_train, _ = datasets.train_test_split(X, y, test_size=0.2, seed=0)
    X_train, X_test = datasets.standardize(X_train, X_test)
    model = ab.MLP([64, 128, 64, 10], activation="relu", output="softmax", seed=0)
    model.fit(X_train, y_train, epochs=30, batch_size=64, optimizer="adam", lr=3e-3, weight_decay=1e-3, verbose=False)
    result = ab.gradcheck(model, X_train[:8], y_train[:8])
    assert isinstance(result, GradcheckResult) and isinstance(result, float)
    assert result.passed and sum(result.failures.values()) == 0
    assert set(result.errors) == set(model.params) and float(result) == max(result.errors.values())
    assert str(result).startswith("PASS: full check, worst relative error")
    assert "tolerance |a - n| <= 1e-07 + 1e-05 |n|" in repr(result)


def _at_a_kink(activation, z00):
    """A float64 [2, 3, 2] net whose first unit's pre-activation on row 0 is ``z00`` (row 0 is
    all zeros, so only that unit's bias sets it)."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, 2))
    X[0] = 0.0
    y = rng.integers(0, 2, 6)
    y[:2] = [0, 1]
    model = ab.MLP([2, 3, 2], activation=activation, dtype="float64", seed=3)
    params = {k: ab.to_numpy(v).copy() for k, v in model.params.items()}
    params["b1"][0] = z00
    model.set_params(params)
    return model, X, y


# (id, activation, row 0's first pre-activation, how the crossing entry b1[0] is re-checked)
KINKS = [
    ("relu-within-eps", "relu", 3e-7, "central, step 1e-07"),
    ("relu-within-eps-negative", "relu", -3e-7, "central, step 1e-07"),
    ("relu-at-0", "relu", 0.0, "one-sided (-), step 1e-08"),
    ("leaky-within-eps", {"name": "leaky_relu", "slope": 0.2}, 3e-7, "central, step 1e-07"),
    ("leaky-at-0", {"name": "leaky_relu", "slope": 0.2}, 0.0, "one-sided (-), step 1e-08"),
    ("relu-very-close", "relu", 3e-9, "one-sided"),
]


@pytest.mark.parametrize("activation,z00,how", [pytest.param(*c[1:], id=c[0]) for c in KINKS])
def test_a_perturbation_across_a_kink_is_rechecked_not_straddled(activation, z00, how):
    model, X, y = _at_a_kink(activation, z00)
    result = ab.gradcheck(model, X, y)
    assert result.passed, str(result)
    assert result < 1e-5  # straddling the kink gave a relative error near 1/3 on b1[0]
    crossing = [r for r in result.rechecked if (r.key, r.index) == ("b1", (0,))]
    assert len(crossing) == 1 and crossing[0].how.startswith(how), result.rechecked
    assert "crossed a kink" in str(result) and "re-checked at a relu kink" in result.verdict()


def test_numerical_grads_at_a_kink_take_the_side_the_model_differentiates():
    model, X, y = _at_a_kink("relu", 0.0)
    _, analytic = model.loss_and_grads(X, y)
    numeric = ab.numerical_grads(model, X, y)
    assert np.allclose(ab.to_numpy(numeric["b1"]), ab.to_numpy(analytic["b1"]), rtol=1e-5, atol=1e-7)


def test_directional_mode_rechecks_a_kink():
    model, X, y = _at_a_kink("relu", 1e-7)
    result = ab.gradcheck(model, X, y, mode="directional", seed=1)
    assert result.passed and set(result.errors) == {"direction"} and result.mode == "directional"


def test_a_wrong_gradient_fails_and_names_the_parameters(rng):
    model = ab.MLP([3, 4, 2], activation="tanh", output="identity", dtype="float64")
    wrong = ab.activations.Activation("tanh", ab.activations.tanh, lambda xp, z, a, da: da * (1.0 - a))
    model.layers[0] = ab.layers.Dense(3, 4, wrong)
    result = ab.gradcheck(model, rng.standard_normal((5, 3)), rng.standard_normal((5, 2)))
    assert not result.passed and result > 1e-2
    assert result.failures["W1"] > 0 and result.failures["b1"] > 0 and result.failures["W2"] == 0
    assert str(result).startswith("FAIL (") and "entries outside the tolerance" in str(result)


def test_the_tolerance_is_the_callers(rng):
    model = ab.MLP([3, 4, 2], activation="sigmoid", dtype="float64", seed=1)
    X, y = rng.standard_normal((5, 3)), rng.integers(0, 2, 5)
    assert ab.gradcheck(model, X, y).passed
    assert not ab.gradcheck(model, X, y, atol=0.0, rtol=0.0).passed
    with pytest.raises(ValueError, match="atol must be a finite number >= 0, got -1"):
        ab.gradcheck(model, X, y, atol=-1)


def test_the_result_survives_copy_and_pickle(rng):
    model = ab.MLP([3, 4, 2], activation="relu", dtype="float64", seed=1)
    result = ab.gradcheck(model, rng.standard_normal((5, 3)), rng.integers(0, 2, 5))
    for clone in (copy.deepcopy(result), pickle.loads(pickle.dumps(result))):
        assert float(clone) == float(result) and clone.passed == result.passed and clone.errors == result.errors
        assert str(clone) == str(result)
