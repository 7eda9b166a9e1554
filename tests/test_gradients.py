"""Every hidden activation x every output/loss pairing x depths 1 and 3 against central
differences in float64, on every backend."""

import pytest
from conftest import HEAD_IDS, HEAD_PAIRS, N_OUT, assert_gradients_match, grad_criterion, targets

import anybackprop as ab
from anybackprop.network import HIDDEN_ACTIVATIONS


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("output,loss", HEAD_PAIRS, ids=HEAD_IDS)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_gradients_match_central_differences(backend, activation, output, loss, depth, rng):
    n_out = N_OUT[output]
    sizes = [4] + [5] * depth + [n_out]
    model = ab.MLP(sizes, activation=activation, output=output, loss=loss, seed=7, dtype="float64")
    X = rng.standard_normal((6, 4))
    assert_gradients_match(model, X, targets(output, n_out, 6, rng))


def test_leaky_relu_slope_is_used(backend, rng):
    model = ab.MLP([3, 4, 2], activation={"name": "leaky_relu", "slope": 0.3}, output="identity", dtype="float64")
    X = rng.standard_normal((5, 3))
    Y = rng.standard_normal((5, 2))
    _, analytic = model.loss_and_grads(X, Y)
    numeric = ab.numerical_grads(model, X, Y)
    for key in model.params:
        assert grad_criterion(analytic[key], numeric[key])[0]
    assert model.hidden_activations[0].slope == 0.3


def test_gradcheck_reports_small_error_for_float32_model(backend, rng):
    model = ab.MLP([4, 6, 3], activation="tanh", seed=1)
    X = rng.standard_normal((8, 4))
    y = rng.integers(0, 3, 8)
    error = ab.gradcheck(model, X, y)
    assert 0 <= error < 1e-4
    assert model.dtype_name == "float32"  # the model itself is untouched


def test_gradcheck_detects_a_wrong_gradient(backend, rng, monkeypatch):
    model = ab.MLP([3, 4, 2], activation="tanh", output="identity", dtype="float64")
    X = rng.standard_normal((5, 3))
    Y = rng.standard_normal((5, 2))
    good = ab.gradcheck(model, X, Y)
    wrong = ab.activations.Activation("tanh", ab.activations.tanh, lambda xp, z, a, da: da * (1.0 - a))
    model.layers[0] = ab.layers.Dense(3, 4, wrong)
    assert good < 1e-6
    assert ab.gradcheck(model, X, Y) > 1e-2


def test_gradcheck_verbose_lists_parameters_worst_first(rng, capsys):
    model = ab.MLP([3, 4, 2], activation="relu", output="identity", dtype="float64")
    ab.gradcheck(model, rng.standard_normal((5, 3)), rng.standard_normal((5, 2)), verbose=True)
    verdict, *lines = capsys.readouterr().out.strip().splitlines()[: 1 + len(model.params)]
    assert verdict.startswith("PASS: full check, worst relative error")
    assert sorted(line.split()[0] for line in lines) == sorted(model.params)
    errors = [float(line.split("max relative error")[1].split()[0]) for line in lines]
    assert errors == sorted(errors, reverse=True)


def test_directional_mode_agrees_and_detects_a_wrong_gradient(backend, rng):
    model = ab.MLP([4, 16, 8, 3], activation="tanh", seed=2)
    X, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    assert ab.gradcheck(model, X, y, mode="directional") < 1e-6
    wrong = ab.activations.Activation("tanh", ab.activations.tanh, lambda xp, z, a, da: da * (1.0 - a))
    model.layers[0] = ab.layers.Dense(4, 16, wrong)
    assert ab.gradcheck(model, X, y, mode="directional") > 1e-3
    with pytest.raises(ValueError, match="unknown mode 'fast'; accepted values: full, directional"):
        ab.gradcheck(model, X, y, mode="fast")
