"""Every fast path of a backend against the portable formula it replaces, on random inputs: the
check behind ``tests/test_fast_paths.py`` and ``anybackprop selftest``.

A fast path gets copies of its arguments (it may write into the one it declares) and must
leave every other argument as it was, and return the formula's dtype and shape, NaN where the
formula has NaN (the fused activations get a NaN input row), and values:
bit for bit on NumPy (its paths do the same operations in the same order; the row-max
cross-entropy, alone or in the softmax head's scores, sums in another order), to a tolerance elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import activations, heads, losses, updates
from ..backend import Backend, gather_rows, to_numpy
from ..divergence import flat_copy, largest_magnitude
from ..layers import dense
from . import for_backend
from .registry import FastPath

M, N = 7, 5
SCORES = (losses.cross_entropy, activations.row_argmax)
"""The key of a fused path for the softmax head's ``score_terms`` (its loss and accuracy)."""
TOLERANCE = {"float32": 1e-6, "float64": 1e-13}


@dataclass(frozen=True)
class PathCheck:
    """One fast path checked: ``error`` is ``max |fast - portable| / (1 + |portable|)``;
    ``problem`` says what failed, None when it passed."""

    path: FastPath
    error: float
    problem: str | None

    @property
    def ok(self) -> bool:
        """True when the fast path agreed with its formula."""
        return self.problem is None


def recipe(backend: Backend, rng: np.random.Generator, key: Any) -> list[Any]:
    """Arguments (after xp) for the portable formula ``key`` on ``backend``."""

    def arr(*shape: int) -> Any:
        return backend.asarray(rng.standard_normal(shape), backend.dtype)

    z = arr(M, N)

    def onehot() -> Any:
        return backend.asarray(np.eye(N)[rng.integers(0, N, M)], backend.dtype)

    if key == SCORES:  # the softmax head's [cost, accuracy] of logits and one-hot targets
        return [z, onehot(), None]
    if isinstance(key, tuple) or key is dense.affine:  # (affine, forward) fuses bias + activation
        a_prev = rng.standard_normal((M, 3))
        a_prev[0, 0] = np.nan  # a NaN row: every activation must keep NaN as its formula does
        return [backend.asarray(a_prev, backend.dtype), arr(3, N), arr(N)]
    if key is dense.bias_grad or key is activations.row_argmax:
        return [z]
    if key is losses.batch_mean:
        return [arr(M)]
    if key is largest_magnitude:
        return [[z, arr(N), arr(2, 3, 4)]]
    if key is flat_copy:  # refilled in place: the caller's last copy, of the same size
        return [[z, arr(N), arr(2, 3, 4)], arr(M * N + N + 24)]
    if key is losses.paired_delta:
        return [activations.softmax(backend.xp, z), onehot()]
    if key is losses.cross_entropy:
        return [z, None, onehot()]
    if key is losses.label_range or key is losses.one_hot:  # int64 labels, every class drawn
        labels = backend.asarray(rng.permutation(np.arange(M) % N))
        return (
            [labels] if key is losses.label_range else [labels, N, getattr(backend.xp, backend.dtype), backend.device]
        )
    if key is updates.sgd_update:
        return [arr(M, N), arr(M, N), 0.05]
    if key is updates.adam_step:  # g, M, S (S is never negative), step size, beta1, beta2, S's scale, eps
        return [arr(M, N), arr(M, N), backend.asarray(rng.random((M, N)), backend.dtype), 0.01, 0.9, 0.999, 1.5, 1e-8]
    if key is gather_rows:
        return [z, backend.asarray(rng.permutation(M)), arr(M, N)]
    backward = {a.backward: a for a in activations.ACTIVATIONS.values()}
    if key in backward:
        if backward[key].name == "relu":  # exact zeros: where relu's derivative is decided
            z = backend.asarray(np.where(rng.random((M, N)) < 0.3, 0.0, rng.standard_normal((M, N))), backend.dtype)
        return [z, backward[key].forward(backend.xp, z), arr(M, N)]
    if key in {a.forward for a in activations.ACTIVATIONS.values()}:
        return [z]
    raise ValueError(f"no check recipe for fast path {key!r}: add one to anybackprop/fastpaths/check.py")


def _portable(backend: Backend, key: Any, args: list[Any]) -> Any:
    if key == SCORES:
        return heads.SoftmaxCrossEntropy().score_terms(backend.xp, *args)
    if isinstance(key, tuple):
        z = dense.affine(backend.xp, *args)
        return z, key[1](backend.xp, z)
    return key(backend.xp, *args)


def check_path(backend: Backend, path: FastPath, rng: np.random.Generator) -> PathCheck:
    """Run ``path`` and its formula on the same random inputs and compare."""
    key = path.formula
    with backend.activate():  # the inputs too are computed on the backend's device
        args = recipe(backend, rng, key)
        expected = _portable(backend, key, args)
        copies = [backend.xp.asarray(a, copy=True) if backend.owns(a) else a for a in args]
        before = [to_numpy(a).copy() if backend.owns(a) else None for a in copies]
        got = path.function(backend.xp, *copies)
    declared = path.overwrites if isinstance(path.overwrites, tuple) else (path.overwrites,)
    scratch = {*declared, 2 if key is gather_rows else None}  # gather_rows may fill ``out``
    for i, (arg, old) in enumerate(zip(copies, before, strict=True)):
        if old is not None and i not in scratch and not np.array_equal(to_numpy(arg), old, equal_nan=True):
            return PathCheck(path, float("nan"), f"wrote into argument {i}, which it does not declare")
    error = 0.0
    several = isinstance(expected, tuple)  # a fused (Z, A), or Adam's (U, M', S')
    for g, e in zip(got, expected, strict=True) if several else [(got, expected)]:
        g, e = to_numpy(g), to_numpy(e)
        if g.dtype != e.dtype or g.shape != e.shape:
            return PathCheck(path, float("nan"), f"returned {g.dtype} {g.shape}, the formula {e.dtype} {e.shape}")
        if not np.array_equal(np.isnan(g), np.isnan(e)):
            return PathCheck(
                path, float("nan"), f"NaN at {np.isnan(g).sum()} places, the formula at {np.isnan(e).sum()}"
            )
        g, e = np.nan_to_num(g), np.nan_to_num(e)
        error = max(error, float(np.max(np.abs(g - e) / (1 + np.abs(e)), initial=0.0)))
    exact = backend.name == "numpy" and key not in (losses.cross_entropy, SCORES)
    limit = 0.0 if exact else TOLERANCE[backend.dtype]
    return PathCheck(
        path, error, None if error <= limit else f"differs from its formula by {error:.2e} (allowed {limit:g})"
    )


def check_fast_paths(backend: Backend, seed: int = 0) -> list[PathCheck]:
    """Every fast path of ``backend`` against its formula, in ``backend``'s dtype."""
    rng = np.random.default_rng(seed)
    return [check_path(backend, path, rng) for path in for_backend(backend)]
