"""Every fast path in a backend's registry against the portable formula it replaces, on every
backend available here (NumPy's buffer-reusing paths everywhere; CuPy's fused kernels where a GPU
is present), through the check `anybackprop selftest` runs (anybackprop/fastpaths/check.py)."""

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import activations, fastpaths, updates
from anybackprop.fastpaths import cupy_kernels, numpy_paths
from anybackprop.fastpaths.check import check_fast_paths, check_path, recipe
from anybackprop.layers import dense


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_fast_path_matches_its_portable_formula(backend, dtype):
    backend = ab.backend.create_backend(backend.name, dtype=dtype)
    checks = check_fast_paths(backend)
    if not checks:
        assert backend.name in (
            "array_api_strict",
            "torch",
            "jax",
            "numpy_readonly",
            "numpy_device",
        )  # these run the portable formulas
    for check in checks:
        assert check.ok, f"{check.path.formula}: {check.problem}"
    if backend.name == "numpy":
        assert (
            sum(check.error == 0.0 for check in checks) >= len(checks) - 2
        )  # bit for bit but the row-max cross-entropy, alone and in the softmax head's scores


def test_the_check_catches_a_wrong_path_and_an_undeclared_write():
    backend = ab.backend.create_backend("numpy", dtype="float64")

    def writes_z(xp, z):
        z += 1.0
        return z

    wrong = fastpaths.FastPath(activations.relu, lambda xp, z: xp.maximum(z, 0.0) * 1.01)
    sneaky = fastpaths.FastPath(activations.relu, writes_z)
    rng = np.random.default_rng(0)

    assert "differs from its formula" in check_path(backend, wrong, rng).problem
    assert check_path(backend, sneaky, rng).problem == "wrote into argument 0, which it does not declare"


@pytest.mark.parametrize("table", [numpy_paths.PATHS, cupy_kernels.paths()], ids=["numpy", "cupy"])
def test_every_fast_path_has_a_test_recipe(table, rng):
    """Runs without a GPU too: each CuPy kernel is keyed by a formula the recipe table knows."""
    backend = ab.backend.create_backend("numpy", dtype="float64")
    for path in table:
        recipe(backend, rng, path.formula)


def test_a_path_that_overwrites_is_given_only_to_an_owner():
    paths = numpy_paths.PATHS
    assert paths.get(activations.relu) is activations.relu
    assert paths.get(activations.relu, may_overwrite=True) is numpy_paths.relu_inplace
    assert paths.get(dense.affine) is numpy_paths.affine_inplace  # writes only its own result
    assert fastpaths.NONE.get(activations.relu, may_overwrite=True) is activations.relu


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_numpy_training_with_and_without_fast_paths_is_bitwise_equal(rng, optimizer):
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    results = []
    for paths in (None, fastpaths.NONE):
        model = ab.MLP([4, 8, 6, 3], activation=["relu", "tanh"], seed=1, backend="numpy")
        if paths is not None:
            model.fast = paths
        else:
            assert model.fast is numpy_paths.PATHS
        opt = ab.optim.get_optimizer(optimizer)
        model.fit(X, y, epochs=3, batch_size=8, optimizer=opt, verbose=False)
        if optimizer == "adam":  # the moments were updated in the slots' own buffers, or by the formula
            assert opt._adam is (updates.adam_step if paths is not None else numpy_paths.adam_step_inplace)
        results.append({k: ab.to_numpy(v) for k, v in model.params.items()})
        results.append({f"{s}[{k}]": ab.to_numpy(v) for s, slot in opt.state.items() for k, v in slot.items()})
    for got, want in ((results[0], results[2]), (results[1], results[3])):
        assert set(got) == set(want)
        for key in got:
            np.testing.assert_array_equal(got[key], want[key])


@pytest.mark.parametrize("columns", [3, 40])  # few columns: the transposes' path; many: the rows'
@pytest.mark.parametrize("weighted", [False, True])
def test_the_fused_softmax_scores_equal_the_heads_portable_terms(rng, weighted, columns):
    """NumPy's fused [cost, accuracy] is the head's portable cost and metric terms: the accuracy
    exactly (ties in the logits included), the loss to float rounding, with or without weights."""
    import array_api_compat.numpy as xp  # NumPy through the standard's namespace, as models use it

    head = ab.heads.SoftmaxCrossEntropy()
    z = np.round(rng.standard_normal((50, columns)), 1).astype(np.float32)  # rounded: tied logits
    y = np.eye(columns, dtype=np.float32)[rng.integers(0, columns, 50)]
    w = ab.losses.normalized_weights(xp, rng.random(50).astype(np.float32)) if weighted else None
    fast = numpy_paths.PATHS
    assert fast.fused(ab.losses.cross_entropy, activations.row_argmax) is numpy_paths.cross_entropy_accuracy
    got = head.score_terms(xp, z, y, w, fast)
    portable = head.score_terms(xp, z, y, w)
    assert got.dtype == portable.dtype == np.float32 and got.shape == (2,)
    assert got[1] == portable[1]
    np.testing.assert_allclose(got[0], portable[0], rtol=1e-6)
