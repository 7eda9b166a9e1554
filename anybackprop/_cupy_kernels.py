"""CuPy fast paths: fused elementwise kernels for the hot formulas of a training step.

A small MLP step on a GPU is bound by kernel launches, not arithmetic: the portable ``(A - Y) / m``
is two launches, ``dA * (1 - A * A)`` three. Each kernel here computes one portable formula of
:mod:`~anybackprop.activations`, :mod:`~anybackprop.layers`, :mod:`~anybackprop.losses` or
:mod:`~anybackprop.optim` in one launch and stands in its place in the backend's ``kernels``
table (see :mod:`anybackprop.backend`). Like the NumPy fast paths, a kernel may write into the
array its formula consumes and the engine owns (the fresh ``Z`` or ``dA``; the parameter it
updates). ``tests/test_fast_paths.py`` checks each against its portable formula on a GPU.

TF32: with ``tf32=True`` float32 matrix products may use TF32 tensor cores (CuPy's compute type
for float32); :func:`activated` switches it for the duration of a ``fit`` and restores it.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from typing import Any

from . import activations as act
from . import losses, optim
from .layers import affine


@functools.lru_cache(maxsize=None)
def _elementwise(in_params: str, out_params: str, operation: str, name: str) -> Any:
    import cupy

    return cupy.ElementwiseKernel(in_params, out_params, operation, name)


def _bias_act(body: str, name: str) -> Any:
    return _elementwise("T b", "T z, T a", f"z = z + b; {body}", name)


_BIAS_ACT = {
    act.identity: "a = z",
    act.relu: "a = z > (T)0 ? z : (T)0",
    act.tanh: "a = tanh(z)",
    act.sigmoid: "T e = exp(-fabs(z)); a = z >= (T)0 ? (T)1 / ((T)1 + e) : e / ((T)1 + e)",
}


def _fused_affine(forward: Any) -> Any:
    body = _BIAS_ACT[forward]

    def affine_activation(xp: Any, a_prev: Any, w: Any, b: Any) -> tuple[Any, Any]:
        """Z = A_prev @ W (cuBLAS), then one kernel: Z += b and A = g(Z)."""
        z = a_prev @ w
        a = xp.empty_like(z)
        _bias_act(body, f"anybackprop_bias_{forward.__name__}")(b, z, a)
        return z, a

    return affine_activation


def relu_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """dZ = dA where Z > 0, else 0, into dA's buffer."""
    return _elementwise("T z", "T da", "da = z > (T)0 ? da : (T)0", "anybackprop_relu_backward")(z, da)


def tanh_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """dZ = dA (1 - A^2), into dA's buffer."""
    return _elementwise("T a", "T da", "da = da * ((T)1 - a * a)", "anybackprop_tanh_backward")(a, da)


def sigmoid_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """dZ = dA A (1 - A), into dA's buffer."""
    return _elementwise("T a", "T da", "da = da * a * ((T)1 - a)", "anybackprop_sigmoid_backward")(a, da)


def paired_delta(xp: Any, a: Any, y: Any) -> Any:
    """dZ_L = (A - Y) / m in one kernel."""
    kernel = _elementwise("T a, T y, T m", "T d", "d = (a - y) / m", "anybackprop_paired_delta")
    return kernel(a, y, a.dtype.type(a.shape[0]))


def sgd_update(xp: Any, p: Any, g: Any, lr: float) -> Any:
    """P -= lr G in place, one kernel."""
    return _elementwise("T g, T lr", "T p", "p = p - lr * g", "anybackprop_sgd_update")(g, p.dtype.type(lr), p)


def kernels(tf32: bool = False) -> dict:
    """The table of CuPy fast paths, keyed by the portable formula each replaces."""
    table: dict = {
        act.relu_backward: relu_backward,
        act.tanh_backward: tanh_backward,
        act.sigmoid_backward: sigmoid_backward,
        losses.paired_delta: paired_delta,
        optim.sgd_update: sgd_update,
    }
    for forward in _BIAS_ACT:
        table[(affine, forward)] = _fused_affine(forward)
    return table


@contextlib.contextmanager
def activated(backend: Any) -> Iterator[None]:
    """Make ``backend``'s device current and apply its TF32 setting, restoring both after.

    The float32 compute type is CuPy's own switch (``cupy._core._routines_linalg``, which
    ``CUPY_TF32=1`` also sets); where a CuPy version lacks it, TF32 is left as CuPy has it and a
    warning says so when TF32 was asked for.
    """
    import cupy

    try:
        from cupy._core import _routines_linalg as linalg

        before = linalg.get_compute_type(cupy.float32)
        wanted = linalg.COMPUTE_TYPE_TF32 if backend.tf32 else linalg.COMPUTE_TYPE_DEFAULT
    except (ImportError, AttributeError):
        linalg = None
        if backend.tf32:
            warnings.warn("this CuPy has no compute-type switch: TF32 stays as CuPy set it (CUPY_TF32)", stacklevel=3)
    if linalg is not None:
        linalg.set_compute_type(cupy.float32, wanted)
    try:
        with backend.device:
            yield
    finally:
        if linalg is not None:
            linalg.set_compute_type(cupy.float32, before)
