"""One ``backend`` fixture over every backend usable on this machine (numpy and array_api_strict
everywhere, cupy with a GPU, torch where installed). ``ANYBACKPROP_TEST_BACKENDS=numpy,cupy``
selects a subset."""

import os

# before anything imports SciPy: lets scikit-learn's check_array_api_input run instead of skipping
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import anybackprop as ab  # noqa: E402

_selected = os.environ.get("ANYBACKPROP_TEST_BACKENDS")
BACKENDS = [b for b in ab.available_backends() if not _selected or b in _selected.split(",")]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Runs the test with this backend in force (and restores the previous one after)."""
    with ab.use_backend(request.param) as b:
        yield b


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


def targets(output, n_out, m, rng):
    """Random targets of ``m`` rows for a head: class labels (softmax), 0/1 (sigmoid), values."""
    if output == "softmax":
        return rng.integers(0, n_out, m)
    if output == "sigmoid":
        return rng.integers(0, 2, m).astype(float)
    return rng.standard_normal((m, n_out))
