"""Backend selection, conversion, reproducibility across backends and the dtype rules."""

import os
import subprocess
import sys

import numpy as np
import pytest

import anybackprop as ab
from anybackprop.backend import unavailable_reason


def run_python(code, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full)


def test_numpy_and_array_api_strict_are_always_available():
    assert {"numpy", "array_api_strict"} <= set(ab.available_backends())


def test_default_backend_is_numpy_float32():
    result = run_python("import anybackprop as ab; b = ab.get_backend(); print(b.name, b.dtype)")
    assert result.stdout.split() == ["numpy", "float32"]


def test_environment_selects_backend_and_dtype():
    code = "import anybackprop as ab; m = ab.MLP([2, 3]); print(m.backend.name, m.dtype_name)"
    result = run_python(code, ANYBACKPROP_BACKEND="array_api_strict", ANYBACKPROP_DTYPE="float64")
    assert result.stdout.split() == ["array_api_strict", "float64"], result.stderr


@pytest.mark.parametrize(
    "env,pattern",
    [
        (
            {"ANYBACKPROP_BACKEND": "tensorflow"},
            "ANYBACKPROP_BACKEND='tensorflow' is not a backend; accepted values: numpy, array_api_strict, cupy, "
            "torch, jax, auto",
        ),
        (
            {"ANYBACKPROP_DTYPE": "float16"},
            "ANYBACKPROP_DTYPE='float16' is not a float dtype; accepted values: float32, float64",
        ),
        ({"ANYBACKPROP_TF32": "yes"}, "ANYBACKPROP_TF32='yes' is not valid; accepted values: 0, 1"),
        (
            {"ANYBACKPROP_DEVICE": "cuda:0"},
            "ANYBACKPROP_DEVICE='cuda:0' is not a device of the numpy backend: numpy runs on the CPU only",
        ),
    ],
)
def test_bad_environment_fails_at_first_use_naming_variable_and_values(env, pattern):
    result = run_python("import anybackprop as ab\nprint('imported')\nab.MLP([2, 3])", **env)
    assert result.stdout.strip() == "imported"  # not at import: at first use
    assert "ValueError: " + pattern in result.stderr


def test_cupy_request_says_why_it_is_unusable_or_works():
    result = run_python("import anybackprop as ab; print(ab.get_backend().name)", ANYBACKPROP_BACKEND="cupy")
    reason = unavailable_reason("cupy")
    if reason is None:
        assert result.stdout.strip() == "cupy"
    else:
        assert "ANYBACKPROP_BACKEND='cupy' is not usable here" in result.stderr
        assert ("cupy is not installed (pip install 'anybackprop[cuda12]'" in result.stderr) or (
            "no CUDA device" in result.stderr
        )


def test_auto_picks_cupy_where_usable_else_numpy():
    result = run_python("import anybackprop as ab; print(ab.get_backend().name)", ANYBACKPROP_BACKEND="auto")
    assert result.stdout.strip() == ("cupy" if "cupy" in ab.available_backends() else "numpy")
    if "cupy" not in ab.available_backends():  # saying why
        assert (
            f"ANYBACKPROP_BACKEND='auto': cupy is not usable here ({unavailable_reason('cupy')}); using numpy"
            in result.stderr
        )


def test_use_backend_restores_the_previous_backend():
    ab.set_backend("numpy")
    with ab.use_backend("array_api_strict") as inner:
        assert ab.get_backend() is inner and inner.name == "array_api_strict"
        with ab.use_backend("numpy", dtype="float64"):
            assert ab.get_backend().dtype == "float64"
        assert ab.get_backend() is inner
    assert ab.get_backend().name == "numpy"


def test_asarray_and_to_numpy_round_trip(backend, rng):
    host = rng.standard_normal((3, 2))
    arr = ab.asarray(host)
    assert backend.owns(arr)
    assert ab.to_numpy(arr).dtype == np.float64
    np.testing.assert_array_equal(ab.to_numpy(arr), host)
    arr32 = ab.asarray(host, dtype="float32")
    np.testing.assert_array_equal(ab.to_numpy(arr32), host.astype(np.float32))
    assert ab.asarray(arr32) is arr32 or backend.name == "numpy"


def test_same_seed_gives_the_same_initial_parameters_on_every_backend():
    reference = None
    for name in ab.available_backends():
        with ab.use_backend(name):
            params = {k: ab.to_numpy(v) for k, v in ab.MLP([5, 7, 3], seed=42).params.items()}
        if reference is None:
            reference = params
        for key in reference:
            np.testing.assert_array_equal(params[key], reference[key])
    with ab.use_backend("numpy"):
        other = ab.to_numpy(ab.MLP([5, 7, 3], seed=43).params["W1"])
    assert not np.array_equal(other, reference["W1"])


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_numpy_and_array_api_strict_gradients_are_bitwise_equal(output, rng):
    X = rng.standard_normal((9, 4))
    Y = {"softmax": rng.integers(0, 3, 9), "sigmoid": rng.integers(0, 2, 9), "identity": rng.standard_normal((9, 3))}[
        output
    ]
    n_out = 1 if output == "sigmoid" else 3
    results = []
    for name in ("numpy", "array_api_strict"):
        with ab.use_backend(name):
            model = ab.MLP([4, 6, 5, n_out], activation=["tanh", "relu"], output=output, seed=3)
            loss, grads = model.loss_and_grads(X, Y)
            results.append((loss, {k: ab.to_numpy(v) for k, v in grads.items()}))
    assert results[0][0] == results[1][0]
    for key in results[0][1]:
        np.testing.assert_array_equal(results[0][1][key], results[1][1][key])


def test_the_model_dtype_wins_over_the_input_dtype(backend, rng):
    model = ab.MLP([4, 5, 3], seed=0)
    assert model.dtype_name == "float32"
    for X in (rng.standard_normal((6, 4)), rng.integers(-3, 3, (6, 4)), rng.integers(0, 2, (6, 4)).astype(bool)):
        out = model.forward(X)
        _, grads = model.loss_and_grads(X, np.arange(6) % 3)
        assert out.dtype == backend.xp.float32
        assert all(g.dtype == backend.xp.float32 for g in grads.values())
    assert all(p.dtype == backend.xp.float32 for p in model.params.values())


def test_float64_model_and_repr(backend):
    model = ab.MLP([4, 8, 2], activation="tanh", output="identity", dtype="float64")
    assert model.params["W1"].dtype == backend.xp.float64
    assert (
        repr(model) == "MLP([4, 8, 2], activation='tanh', output='identity', loss='mse', dtype='float64', "
        f"backend='{backend.name}')"
    )
    assert {k: tuple(v.shape) for k, v in model.params.items()} == {"W1": (4, 8), "b1": (8,), "W2": (8, 2), "b2": (2,)}


def test_initialisation_follows_the_activation():
    relu = ab.to_numpy(ab.MLP([400, 300, 2], activation="relu", seed=0).params["W1"])
    tanh = ab.to_numpy(ab.MLP([400, 300, 2], activation="tanh", seed=0).params["W1"])
    assert abs(relu.std() - np.sqrt(2 / 400)) < 2e-3  # He: N(0, 2/n_in)
    limit = np.sqrt(6 / 700)
    assert tanh.max() <= limit and tanh.min() >= -limit and tanh.max() > 0.99 * limit  # Glorot uniform


def test_numpy_readonly_makes_read_only_arrays_and_results_for_the_tests_only():
    b = ab.backend.create_backend("numpy_readonly", dtype="float64")
    x = b.asarray(np.ones((2, 3)))
    derived = [
        x,
        x + 1,
        np.exp(x),
        x.astype("float32"),
        b.xp.astype(x, b.xp.float32),
        x[[1, 0]],
        x[:, 1:],
        b.xp.sum(x, axis=0),
        x @ x.T,
        b.xp.take(x, b.asarray([1, 0]), axis=0),
        x.copy(),
        x.T,
    ]
    for y in derived:
        assert b.owns(y) and not y.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            y += 1
        with pytest.raises(ValueError, match="read-only"):
            y[...] = 0
    owned = b.xp.zeros((2, 3))  # a fresh array is the caller's to write
    owned += x
    assert owned.flags.writeable and not b.owns(owned) and float(owned.sum()) == 6.0
    host = ab.to_numpy(x)
    host[0, 0] = 5.0  # what leaves the backend is a writable copy
    assert float(x[0, 0]) == 1.0
    assert "numpy_readonly" not in ab.available_backends() and b.asarray(x) is x


@pytest.mark.parametrize("requested", ["tensorflow", "cupy"])
def test_a_requested_backend_that_cannot_run_stops_the_suite_with_the_reason(requested):
    reason = unavailable_reason("cupy") if requested == "cupy" else "not a backend"
    if reason is None:
        pytest.skip("cupy is usable here, so requesting it runs the suite")
    tests = os.path.dirname(__file__)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            os.path.join(tests, "test_datasets.py"),
        ],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(tests),
        env={**os.environ, "ANYBACKPROP_TEST_BACKENDS": f"numpy,{requested}"},
    )
    assert result.returncode != 0
    assert "ANYBACKPROP_TEST_BACKENDS" in result.stdout + result.stderr and reason in result.stdout + result.stderr


def test_numpy_older_than_2_1_gets_the_array_api_compat_wrapper():
    """On NumPy < 2.1 (no ``unstack`` in its namespace) the backend is array_api_compat's
    wrapper, a submodule ``import array_api_compat`` does not load: it used to fail every fit
    with AttributeError (the minimum-dependency job, ``.ci/mindeps``, runs the real old NumPy)."""
    code = (
        "import sys, types\n"
        "import anybackprop.backend\n"
        "import anybackprop.backends.numpy as b\n"
        "assert 'array_api_compat.numpy' not in sys.modules\n"
        "b.np = types.SimpleNamespace()  # a NumPy namespace without isdtype and unstack\n"
        "xp = b._numpy_namespace()\n"
        "print(xp.__name__, xp.unstack(xp.asarray([[1, 2]]))[0].tolist())\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["array_api_compat.numpy", "[1,", "2]"]
