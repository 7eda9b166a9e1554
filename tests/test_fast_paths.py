"""Every fast path in a backend's registry against the portable formula it replaces, on every
backend available here (NumPy's buffer-reusing paths everywhere; CuPy's fused kernels where a GPU
is present). The fast path gets copies, since it may write into the argument it declares."""

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import activations, backend as backend_module, fastpaths, losses, updates
from anybackprop.fastpaths import cupy_kernels, numpy_paths
from anybackprop.layers import dense

M, N = 7, 5


def _inputs(rng, backend, key):
    """Arguments for the portable formula ``key`` (the first is always xp)."""
    arr = lambda *shape: ab.asarray(rng.standard_normal(shape), backend.dtype)
    z = arr(M, N)
    onehot = lambda: ab.asarray(np.eye(N)[rng.integers(0, N, M)], backend.dtype)
    if isinstance(key, tuple) or key is dense.affine:  # (affine, forward) fuses bias + activation
        return [arr(M, 3), arr(3, N), arr(N)]
    if key is dense.bias_grad:
        return [z]
    if key is losses.paired_delta:
        return [activations.softmax(backend.xp, z), onehot()]
    if key is losses.cross_entropy:
        return [z, None, onehot()]
    if key is updates.sgd_update:
        return [arr(M, N), arr(M, N), 0.05]
    if key is backend_module.gather_rows:
        return [z, ab.asarray(rng.permutation(M)), arr(M, N)]
    backward = {a.backward: a for a in activations.ACTIVATIONS.values()}
    if key in backward:
        z = z if backward[key].name != "relu" else ab.asarray(np.where(rng.random((M, N)) < 0.3, 0.0, rng.standard_normal((M, N))), backend.dtype)
        return [z, backward[key].forward(backend.xp, z), arr(M, N)]
    if key in {a.forward for a in activations.ACTIVATIONS.values()}:
        return [z]
    raise AssertionError(f"no test recipe for fast path {key!r}: add one")


def _portable(backend, key, args):
    xp = backend.xp
    if isinstance(key, tuple):
        z = dense.affine(xp, *args)
        return z, key[1](xp, z)
    return key(xp, *args)


def _copies(backend, args):
    return [backend.xp.asarray(a, copy=True) if backend.owns(a) else a for a in args]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_fast_path_matches_its_portable_formula(backend, dtype, rng):
    backend = ab.backend.create_backend(backend.name, dtype=dtype)
    paths = fastpaths.for_backend(backend)
    if not len(paths):
        assert backend.name in ("array_api_strict", "torch")  # these run the portable formulas
        return
    rtol = 1e-6 if dtype == "float32" else 1e-13
    exact = backend.name == "numpy"  # NumPy's fast paths do the same operations in the same order
    for path in paths:
        key = path.formula
        args = _inputs(rng, backend, key)
        expected = _portable(backend, key, args)
        copies = _copies(backend, args)
        before = [ab.to_numpy(a).copy() if backend.owns(a) else None for a in copies]
        got = path.function(backend.xp, *copies)
        for i, (arg, old) in enumerate(zip(copies, before)):  # only the declared argument may change
            if old is not None and i != path.overwrites and not (key is backend_module.gather_rows and i == 2):
                np.testing.assert_array_equal(ab.to_numpy(arg), old, err_msg=f"{key} wrote into argument {i}")
        pairs = zip(got, expected) if isinstance(key, tuple) else [(got, expected)]
        for g, e in pairs:
            g, e = ab.to_numpy(g), ab.to_numpy(e)
            assert g.dtype == e.dtype and g.shape == e.shape, key
            if exact and key is not losses.cross_entropy:
                np.testing.assert_array_equal(g, e, err_msg=str(key))
            else:
                np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol, err_msg=str(key))


@pytest.mark.parametrize("table", [numpy_paths.PATHS, cupy_kernels.paths()], ids=["numpy", "cupy"])
def test_every_fast_path_has_a_test_recipe(table, rng):
    """Runs without a GPU too: each CuPy kernel is keyed by a formula the recipe table knows."""
    with ab.use_backend("numpy", dtype="float64") as backend:
        for path in table:
            _inputs(rng, backend, path.formula)


def test_a_path_that_overwrites_is_given_only_to_an_owner():
    paths = numpy_paths.PATHS
    assert paths.get(activations.relu) is activations.relu
    assert paths.get(activations.relu, may_overwrite=True) is numpy_paths.relu_inplace
    assert paths.get(dense.affine) is numpy_paths.affine_inplace  # writes only its own result
    assert fastpaths.NONE.get(activations.relu, may_overwrite=True) is activations.relu


def test_numpy_training_with_and_without_fast_paths_is_bitwise_equal(rng):
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    results = []
    for paths in (None, fastpaths.NONE):
        model = ab.MLP([4, 8, 6, 3], activation=["relu", "tanh"], seed=1, backend="numpy")
        if paths is not None:
            model.fast = paths
        else:
            assert model.fast is numpy_paths.PATHS
        model.fit(X, y, epochs=3, batch_size=8, optimizer="sgd", verbose=False)
        results.append({k: ab.to_numpy(v) for k, v in model.params.items()})
    for key in results[0]:
        np.testing.assert_array_equal(results[0][key], results[1][key])
