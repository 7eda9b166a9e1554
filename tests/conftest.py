"""One ``backend`` fixture over every backend usable on this machine (numpy, numpy_readonly, numpy_device and
array_api_strict everywhere, cupy with a GPU, torch where installed).
``ANYBACKPROP_TEST_BACKENDS=numpy,cupy`` selects a subset; a backend named there that is not
usable here stops the run with the reason, so a GPU run cannot pass by running nothing."""

import os

# before anything imports SciPy: lets scikit-learn's check_array_api_input run instead of skipping
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import backend as backend_module
from anybackprop.backend import ADAPTERS, unavailable_reason
from anybackprop.heads import DEFAULT_LOSS

TEST_ONLY = ("numpy_readonly", "numpy_device")  # not offered to users, run by the suite


def _selected_backends() -> list[str]:
    selected = os.environ.get("ANYBACKPROP_TEST_BACKENDS")
    if not selected:
        return [*ab.available_backends(), *TEST_ONLY]
    names = [name.strip() for name in selected.split(",") if name.strip()]
    for name in names:
        if name not in ADAPTERS:
            pytest.exit(
                f"ANYBACKPROP_TEST_BACKENDS names {name!r}, not a backend; accepted values: {', '.join(ADAPTERS)}",
                returncode=4,
            )
        reason = unavailable_reason(name)
        if reason is not None:
            pytest.exit(
                f"ANYBACKPROP_TEST_BACKENDS asks for {name!r}, which is not usable here: {reason}", returncode=4
            )
    return names


BACKENDS = _selected_backends()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Runs the test with this backend in force (and restores the previous one after)."""
    with ab.use_backend(request.param) as b:
        yield b


@pytest.fixture(autouse=True)
def _restore_backend():
    """No test leaves another backend in force for the tests after it (``set_backend`` included)."""
    default, current = backend_module._process_default, backend_module._current.get()
    yield
    backend_module._current.set(current)
    backend_module._process_default = default


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def assert_close(actual, expected, rtol=1e-12, atol=0.0):
    np.testing.assert_allclose(ab.to_numpy(actual), ab.to_numpy(expected), rtol=rtol, atol=atol)


def grad_criterion(analytic, numeric):
    """|analytic - numeric| <= 1e-7 + 1e-5 |numeric|, elementwise (reliability goal G1)."""
    a, n = ab.to_numpy(analytic), ab.to_numpy(numeric)
    bad = np.abs(a - n) > 1e-7 + 1e-5 * np.abs(n)
    return not bad.any(), float(np.max(np.abs(a - n)))


def assert_gradients_match(model, X, Y, sample_weight=None):
    """The model's gradients (every parameter, its shape) against central differences (eps 1e-6)
    under :func:`grad_criterion`."""
    _, analytic = model.loss_and_grads(X, Y, sample_weight)
    numeric = ab.numerical_grads(model, X, Y, eps=1e-6, sample_weight=sample_weight)
    assert set(analytic) == set(model.params)
    for key in model.params:
        assert tuple(analytic[key].shape) == tuple(model.params[key].shape), key
        ok, worst = grad_criterion(analytic[key], numeric[key])
        assert ok, f"{key}: worst abs error {worst:.3e}"


def assert_equals_torch_autograd(model, X, Y, forward):
    """The model's gradients of its MSE loss ``0.5 sum (out - Y)^2 / m`` equal PyTorch autograd's
    through ``forward(torch, params, state, X)``, the same network written in torch (float64)."""
    torch = pytest.importorskip("torch")
    _, grads = model.loss_and_grads(X, Y)
    p = {k: torch.tensor(ab.to_numpy(v), requires_grad=True) for k, v in model.params.items()}
    s = {k: torch.tensor(ab.to_numpy(v)) for k, v in model.state.items()}
    loss = 0.5 * ((forward(torch, p, s, torch.tensor(X)) - torch.tensor(Y)) ** 2).sum() / X.shape[0]
    loss.backward()
    for key, tensor in p.items():
        np.testing.assert_allclose(ab.to_numpy(grads[key]), tensor.grad.numpy(), rtol=1e-9, atol=1e-12)


def targets(output, n_out, m, rng):
    """Random targets of ``m`` rows for a head: class labels (softmax), 0/1 (sigmoid), values."""
    if output == "softmax":
        return rng.integers(0, n_out, m)
    if output == "sigmoid":
        return rng.integers(0, 2, m).astype(float)
    return rng.standard_normal((m, n_out))


# every head: each output with its paired loss, then with every loss that works by the chain rule
HEAD_PAIRS = [(o, DEFAULT_LOSS[o]) for o in ab.HEADS] + [
    (o, name) for o in ab.HEADS for name, loss in ab.LOSSES.items() if loss.grad_output is not None and loss.pair != o
]
HEAD_IDS = [f"{o}-{loss}" for o, loss in HEAD_PAIRS]
N_OUT = {"softmax": 3, "sigmoid": 1, "identity": 2}
