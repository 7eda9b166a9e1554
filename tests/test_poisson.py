"""The exp output with the Poisson loss (half the Poisson deviance): its value, its paired delta
``(e^Z - Y) / m`` against central differences in float64 and against PyTorch autograd, on every
backend; weighted; targets below 0 refused."""

import numpy as np
import pytest
from conftest import grad_criterion

import anybackprop as ab
from anybackprop.network import HIDDEN_ACTIVATIONS


def _counts(rng, m, k):
    return rng.poisson(2.0, (m, k)).astype(float)


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_poisson_gradients_match_central_differences(backend, activation, depth, rng):
    model = ab.MLP([4] + [5] * depth + [2], activation=activation, output="exp", seed=7, dtype="float64")
    assert model.head.loss.name == "poisson" and model.head.paired
    X, Y = 0.5 * rng.standard_normal((6, 4)), _counts(rng, 6, 2)
    Y[0, 0] = 0.0  # a zero count: 0 log 0 = 0
    for weights in (None, rng.uniform(0.5, 2.0, 6)):
        _, analytic = model.loss_and_grads(X, Y, weights)
        numeric = ab.numerical_grads(model, X, Y, eps=1e-6, sample_weight=weights)
        for key in model.params:
            ok, worst = grad_criterion(analytic[key], numeric[key])
            assert ok, f"{key}: worst abs error {worst:.3e}"


def test_poisson_loss_is_half_the_deviance(backend, rng):
    model = ab.MLP([3, 4, 2], activation="tanh", output="exp", seed=1, dtype="float64")
    X, Y = rng.standard_normal((7, 3)), _counts(rng, 7, 2)
    Y[1, 1] = 0.0
    mu = ab.to_numpy(model.forward(X))
    ylogy = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1.0)), 0.0)
    expected = np.mean(np.sum(ylogy - Y * np.log(mu) - Y + mu, axis=1))
    assert model.loss(X, Y) == pytest.approx(expected, rel=1e-12)


def test_poisson_gradients_equal_torch_autograd(backend, rng):
    torch = pytest.importorskip("torch")
    model = ab.MLP([4, 6, 3], activation="tanh", output="exp", seed=3, dtype="float64")
    X, Y = rng.standard_normal((9, 4)), _counts(rng, 9, 3)
    loss, grads = model.loss_and_grads(X, Y)
    p = {k: torch.tensor(ab.to_numpy(v), requires_grad=True) for k, v in model.params.items()}
    z = torch.tanh(torch.from_numpy(X) @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    y = torch.from_numpy(Y)
    # torch's poisson_nll_loss (log_input) is e^z - y z; the deviance adds y log y - y, constant in z
    t_loss = torch.nn.functional.poisson_nll_loss(z, y, log_input=True, reduction="sum") / 9
    t_loss.backward()
    constant = np.sum(np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1.0)), 0.0) - Y) / 9
    assert loss == pytest.approx(t_loss.item() + constant, rel=1e-12)
    for key, value in p.items():
        np.testing.assert_allclose(ab.to_numpy(grads[key]), value.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=key)


def test_poisson_targets_below_zero_are_refused(backend):
    model = ab.MLP([2, 3, 1], output="exp", dtype="float64")
    with pytest.raises(
        ValueError, match=r"^y has a value -1\.0; the Poisson loss \(exp output\) expects targets >= 0$"
    ):
        model.loss(np.zeros((2, 2)), np.array([1.0, -1.0]))


def _fitted_poisson_model(rng):
    model = ab.MLP([3, 5, 2], activation="relu", output="exp", seed=2, dtype="float32")
    X = rng.standard_normal((10, 3))
    model.fit(X, _counts(rng, 10, 2), epochs=3, optimizer="adam", verbose=False)
    return model, X


def test_poisson_model_saves_and_loads(tmp_path, rng):
    model, X = _fitted_poisson_model(rng)
    ab.save(model, tmp_path / "poisson.npz")
    loaded = ab.load(tmp_path / "poisson.npz")
    assert loaded.head.spec() == {"output": "exp", "loss": "poisson"}
    np.testing.assert_allclose(ab.to_numpy(loaded.predict(X)), ab.to_numpy(model.predict(X)), rtol=1e-6)


def test_poisson_model_exports_to_onnx(tmp_path, rng):
    from test_export_plot import onnx_and_runtime, run_onnx

    onnx_and_runtime()  # skips where onnx or onnxruntime is not installed
    model, X = _fitted_poisson_model(rng)
    ab.export_onnx(model, tmp_path / "poisson.onnx")
    got = run_onnx(tmp_path / "poisson.onnx", X)["prediction"]
    np.testing.assert_allclose(got, ab.to_numpy(model.forward(X)), rtol=1e-5)
