"""NumPy fast paths for the hot formulas of a training step: the same results, bit for bit, with
fewer temporaries (in-place bias add, ``out=`` activations and derivatives).

Each :class:`~anybackprop.fastpaths.FastPath` maps a portable formula to a NumPy function with
the same signature; one that writes into an argument declares it (``overwrites``) and is used
only where the caller owns that array (the fresh ``Z`` of a forward step, the fresh ``dA`` of a
backward step). ``tests/test_fast_paths.py`` checks each against
its formula.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .. import activations as act
from .. import losses, updates
from ..backend import gather_rows
from ..divergence import flat_copy, largest_magnitude
from ..layers.dense import affine, bias_grad
from .registry import FastPath, FastPaths


def affine_inplace(xp: Any, a_prev: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Z = A_prev @ W, then Z += b in place. Row-major operands go through ``ndarray.dot``: the
    same BLAS call and bits as ``@`` for them, without the ufunc machinery that costs more than a
    one-row product (a prediction); one row adds ``b`` as a row of the same shape (NumPy's quick
    loop, not its broadcasting one)."""
    z = a_prev.dot(w) if a_prev.flags.c_contiguous and w.flags.c_contiguous else a_prev @ w
    z += b[None] if z.shape[0] == 1 else b
    return z


_FEW_ENTRIES = 1 << 16
"""Parameters of at most this many entries in all are reduced as one concatenation (a copy of
256 KiB in float32 at most, against two reductions' calls per array)."""


def largest_magnitude_reduce(xp: Any, arrays: list) -> Any:
    """The portable largest magnitude with the ufunc reductions called directly (``np.max`` and
    ``np.min`` wrap them in a Python layer that costs more than a small parameter's reduction);
    few entries in all are reduced as one array (max and min do not depend on the order)."""
    if not arrays:
        return np.maximum.reduce(np.zeros(1))
    if len(arrays) > 1 and sum(a.size for a in arrays) <= _FEW_ENTRIES:
        flat = np.concatenate(arrays, axis=None)  # our own copy: its magnitudes in place
        return np.maximum.reduce(np.abs(flat, out=flat), axis=None)
    if len(arrays) == 1:  # NaN propagates through np.maximum as through the reductions
        return np.maximum(
            np.abs(np.maximum.reduce(arrays[0], axis=None)), np.abs(np.minimum.reduce(arrays[0], axis=None))
        )
    ends = np.array([f(a, axis=None) for a in arrays for f in (np.maximum.reduce, np.minimum.reduce)])
    return np.maximum.reduce(np.abs(ends))


def flat_copy_into(xp: Any, arrays: list, out: np.ndarray | None = None) -> np.ndarray:
    """The flat copy as one concatenation, into ``out`` when it fits (the divergence guard's kept
    parameters, refilled each epoch without a fresh allocation)."""
    if out is None or out.size != sum(a.size for a in arrays) or out.dtype != arrays[0].dtype:
        return np.concatenate(arrays, axis=None)
    return np.concatenate(arrays, axis=None, out=out)


def batch_mean_reduce(xp: Any, rows: np.ndarray, w: Any = None) -> Any:
    """The unweighted batch mean as ``np.mean`` computes it (the sum's own dtype divided by the
    count), with the ufunc reduction called directly; weighted rows take the formula."""
    if w is not None:
        return losses.batch_mean(xp, rows, w)
    total = np.add.reduce(rows, axis=None)
    return total.dtype.type(total / rows.shape[0])


def row_argmax_method(xp: Any, z: np.ndarray) -> np.ndarray:
    """argmax(Z, axis=1) through the array's method (``np.argmax`` wraps it in a Python layer)."""
    return z.argmax(axis=1)


def bias_grad_reduce(xp: Any, dz: np.ndarray) -> np.ndarray:
    """sum(dZ, axis=0) straight through the ufunc (no wrapper dispatch)."""
    return np.add.reduce(dz, axis=0)


def _row_max(z: np.ndarray) -> np.ndarray:
    """max(Z, axis=1, keepdims=True), exactly; NumPy reduces a short last axis slowly, so for
    few columns it reduces the contiguous transpose instead (a max is order-independent)."""
    if z.shape[1] > 32:
        return np.maximum.reduce(z, axis=1, keepdims=True)
    return np.maximum.reduce(np.ascontiguousarray(z.T), axis=0)[:, None]


def softmax_rowmax(xp: Any, z: np.ndarray) -> np.ndarray:
    """The portable max-shifted softmax with the fast row max (ufunc reductions called
    directly: ``np.sum``/``np.max`` wrap the same reductions in a Python layer)."""
    e = np.exp(z - _row_max(z))
    e /= np.add.reduce(e, axis=1, keepdims=True)
    return e


def cross_entropy_rowmax(xp: Any, z: np.ndarray, a: Any, y: np.ndarray) -> np.ndarray:
    """The portable per-row cross-entropy from logits with the fast row max."""
    zmax = _row_max(z)
    lse = np.log(np.add.reduce(np.exp(z - zmax), axis=1)) + zmax[:, 0]
    return lse - np.add.reduce(y * z, axis=1)


def cross_entropy_accuracy(xp: Any, z: np.ndarray, y: np.ndarray, w: Any = None) -> np.ndarray:
    """The softmax head's ``[cost, accuracy]`` (its portable ``score_terms``: the means of the
    per-row cross-entropy and of the argmax hits, weighted by normalised ``w`` or None) as one
    array, without ``stack`` or the head's layers of lookups. Both rows of terms fill one
    ``(2, m)`` buffer that one reduction sums; few columns are worked on as contiguous rows of
    the transposes (NumPy reduces a short last axis slowly), so the loss sums its few terms in
    another order than the portable formula (as :func:`cross_entropy_rowmax` does)."""
    m = z.shape[0]
    terms = np.empty((2, m), dtype=z.dtype)
    if z.shape[1] > 32:
        terms[0] = cross_entropy_rowmax(xp, z, None, y)
    else:
        zt = np.ascontiguousarray(z.T)
        zmax = np.maximum.reduce(zt, axis=0)
        e = zt - zmax
        lse = np.log(np.add.reduce(np.exp(e, out=e), axis=0))
        lse += zmax
        np.subtract(lse, np.add.reduce(np.ascontiguousarray(y.T) * zt, axis=0), out=terms[0])
    terms[1] = z.argmax(axis=1) == y.argmax(axis=1)
    if w is None:
        return np.add.reduce(terms, axis=1) / m
    return np.array([losses.batch_mean(xp, terms[0], w), losses.batch_mean(xp, terms[1], w)])


def label_range_reduce(xp: Any, labels: np.ndarray) -> tuple[float, float]:
    """The portable label range with the ufunc reductions called directly (``np.min`` and
    ``np.max`` wrap them in a Python layer that costs more than 64 labels' reduction)."""
    return float(np.minimum.reduce(labels)), float(np.maximum.reduce(labels))


IDENTITY_CLASSES = 256
"""The most classes whose identity :func:`one_hot_take` keeps (256 x 256 float64: 512 KiB, at most
16 of them); more classes get their one-hot rows written directly, with nothing kept."""


@functools.lru_cache(maxsize=16)
def _identity(n: int, dtype: np.dtype) -> np.ndarray:
    """A read-only identity matrix, made once per size and dtype (the one-hot rows' source)."""
    eye = np.eye(n, dtype=dtype)
    eye.flags.writeable = False
    return eye


def one_hot_take(xp: Any, labels: np.ndarray, n_classes: int, dtype: Any, device: Any) -> np.ndarray:
    """The portable one-hot rows through the array's ``take`` method (no wrapper dispatch), from
    an identity made once per size and dtype (``take`` returns a fresh, writable array); above
    :data:`IDENTITY_CLASSES` classes a ``1`` written into each row of zeros."""
    index = labels.astype(np.int64, copy=False)
    if n_classes > IDENTITY_CLASSES:
        out = np.zeros((index.shape[0], n_classes), dtype=dtype)
        out[np.arange(index.shape[0]), index] = 1
        return out
    return _identity(n_classes, np.dtype(dtype)).take(index, axis=0)


def gather_rows_into(xp: Any, x: np.ndarray, order: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """x[order] into ``out`` when it fits (no fresh multi-MB allocation and its page faults every
    epoch); ``mode="clip"`` keeps NumPy from buffering the output (a permutation is in range)."""
    if out is None or out.shape != x.shape or out.dtype != x.dtype:
        return np.take(x, order, axis=0)
    return np.take(x, order, axis=0, out=out, mode="clip")


def adam_step_inplace(
    xp: Any,
    g: np.ndarray,
    m: np.ndarray,
    s: np.ndarray,
    step_size: float,
    beta1: float,
    beta2: float,
    s_scale: float,
    eps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adam's ``(U, M', S')`` with the moments written into M's and S's buffers (the optimizer's
    own slots) and two temporaries in place of the formula's eleven; the same operations in the
    same order."""
    tmp = np.multiply(g, 1.0 - beta1)
    np.add(np.multiply(m, beta1, out=m), tmp, out=m)
    np.multiply(np.multiply(g, g, out=tmp), 1.0 - beta2, out=tmp)
    np.add(np.multiply(s, beta2, out=s), tmp, out=s)
    np.add(np.sqrt(np.multiply(s, s_scale, out=tmp), out=tmp), eps, out=tmp)
    u = np.multiply(m, step_size)
    return np.divide(u, tmp, out=u), m, s


def relu_inplace(xp: Any, z: np.ndarray) -> np.ndarray:
    """max(Z, 0) into Z's buffer (relu's backward needs only where Z > 0, which A keeps)."""
    return np.maximum(z, 0.0, out=z)


def relu_backward_inplace(xp: Any, z: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
    """dA * [Z > 0] into dA's buffer."""
    return np.multiply(da, z > 0, out=da)


def tanh_inplace(xp: Any, z: np.ndarray) -> np.ndarray:
    """tanh(Z) into Z's buffer (tanh's backward uses A only)."""
    return np.tanh(z, out=z)


def tanh_backward_inplace(xp: Any, z: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
    """dA * (1 - A^2) into dA's buffer."""
    t = a * a
    np.subtract(1.0, t, out=t)
    return np.multiply(da, t, out=da)


def sigmoid_backward_inplace(xp: Any, z: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
    """(dA * A) * (1 - A) into dA's buffer."""
    np.multiply(da, a, out=da)
    return np.multiply(da, 1.0 - a, out=da)


PATHS = FastPaths(
    "numpy",
    [
        FastPath(affine, affine_inplace),
        FastPath(bias_grad, bias_grad_reduce),
        FastPath(gather_rows, gather_rows_into),
        FastPath(act.softmax, softmax_rowmax),
        FastPath(act.row_argmax, row_argmax_method),
        FastPath(losses.batch_mean, batch_mean_reduce),
        FastPath(largest_magnitude, largest_magnitude_reduce),
        FastPath(flat_copy, flat_copy_into, overwrites=1),
        FastPath(losses.cross_entropy, cross_entropy_rowmax),
        FastPath((losses.cross_entropy, act.row_argmax), cross_entropy_accuracy),
        FastPath(losses.label_range, label_range_reduce),
        FastPath(losses.one_hot, one_hot_take),
        FastPath(updates.adam_step, adam_step_inplace, overwrites=(1, 2)),
        FastPath(act.relu, relu_inplace, overwrites=0),
        FastPath(act.relu_backward, relu_backward_inplace, overwrites=2),
        FastPath(act.tanh, tanh_inplace, overwrites=0),
        FastPath(act.tanh_backward, tanh_backward_inplace, overwrites=2),
        FastPath(act.sigmoid_backward, sigmoid_backward_inplace, overwrites=2),
    ],
)
