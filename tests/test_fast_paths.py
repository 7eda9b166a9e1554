"""Every fast path in a backend's ``kernels`` table against the portable formula it replaces, on
every backend available here (NumPy's buffer-reusing paths everywhere; CuPy's fused kernels where
a GPU is present). The fast path gets copies, since it may write into the arrays it consumes."""

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import _cupy_kernels, _numpy_kernels, activations, layers, losses, optim, training

M, N = 7, 5


def _inputs(rng, backend, key):
    """Arguments for the portable formula ``key`` (the first is always xp)."""
    arr = lambda *shape: ab.asarray(rng.standard_normal(shape), backend.dtype)
    z = arr(M, N)
    if isinstance(key, tuple):  # (affine, forward): the fused bias + activation
        return [arr(M, 3), arr(3, N), arr(N)]
    if key is layers.affine:
        return [arr(M, 3), arr(3, N), arr(N)]
    if key is layers.bias_grad:
        return [z]
    if key in (losses.paired_delta,):
        return [activations.softmax(backend.xp, z), ab.asarray(np.eye(N)[rng.integers(0, N, M)], backend.dtype)]
    if key is losses.cross_entropy:
        return [z, None, ab.asarray(np.eye(N)[rng.integers(0, N, M)], backend.dtype)]
    if key is optim.sgd_update:
        return [arr(M, N), arr(M, N), 0.05]
    if key is training.gather_rows:
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
        z = layers.affine(xp, *args)
        return z, key[1](xp, z)
    return key(xp, *args)


def _copies(backend, args):
    return [backend.xp.asarray(a, copy=True) if backend.owns(a) else a for a in args]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_fast_path_matches_its_portable_formula(backend, dtype, rng):
    backend = ab.backend.create_backend(backend.name, dtype=dtype)
    if not backend.kernels:
        assert backend.name in ("array_api_strict", "torch")  # these run the portable formulas
        return
    rtol = 1e-6 if dtype == "float32" else 1e-13
    exact = backend.name == "numpy"  # NumPy's fast paths do the same operations in the same order
    for key, fast in backend.kernels.items():
        args = _inputs(rng, backend, key)
        expected = _portable(backend, key, args)
        got = fast(backend.xp, *_copies(backend, args))
        pairs = zip(got, expected) if isinstance(key, tuple) else [(got, expected)]
        for g, e in pairs:
            g, e = ab.to_numpy(g), ab.to_numpy(e)
            assert g.dtype == e.dtype and g.shape == e.shape, key
            if exact and key is not losses.cross_entropy:
                np.testing.assert_array_equal(g, e, err_msg=str(key))
            else:
                np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol, err_msg=str(key))


def test_sgd_fast_path_updates_in_place_where_present(backend, rng):
    fast = backend.kernels.get(optim.sgd_update)
    p, g = ab.asarray(rng.standard_normal((3, 4)), "float32"), ab.asarray(rng.standard_normal((3, 4)), "float32")
    expected = ab.to_numpy(optim.sgd_update(backend.xp, p, g, 0.1))
    if fast is None:
        assert backend.name != "cupy"
        return
    fast(backend.xp, p, g, 0.1)
    np.testing.assert_allclose(ab.to_numpy(p), expected, rtol=1e-6)


@pytest.mark.parametrize("table", [_numpy_kernels.KERNELS, _cupy_kernels.kernels()], ids=["numpy", "cupy"])
def test_every_fast_path_has_a_test_recipe(table, rng):
    """Runs without a GPU too: each CuPy kernel is keyed by a formula the recipe table knows."""
    with ab.use_backend("numpy", dtype="float64") as backend:
        for key in table:
            _inputs(rng, backend, key)


def test_numpy_training_with_and_without_fast_paths_is_bitwise_equal(rng):
    import dataclasses

    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    results = []
    for kernels in (None, {}):
        backend = ab.backend.create_backend("numpy")
        if kernels is not None:
            backend = dataclasses.replace(backend, kernels=kernels)
        model = ab.MLP([4, 8, 6, 3], activation=["relu", "tanh"], seed=1, backend=backend)
        model.fit(X, y, epochs=3, batch_size=8, verbose=False)
        results.append({k: ab.to_numpy(v) for k, v in model.params.items()})
    assert _numpy_kernels.KERNELS  # the first run did use them
    for key in results[0]:
        np.testing.assert_array_equal(results[0][key], results[1][key])
