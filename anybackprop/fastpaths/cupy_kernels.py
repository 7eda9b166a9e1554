"""CuPy fast paths: fused elementwise kernels for the hot formulas of a training step.

A small MLP step on a GPU is bound by kernel launches, not arithmetic: the portable ``(A - Y) / m``
is two launches, ``dA * (1 - A * A)`` three. Each kernel here computes one portable formula of
:mod:`~anybackprop.activations`, :mod:`~anybackprop.layers`, :mod:`~anybackprop.losses` or
:mod:`~anybackprop.updates` in one launch and stands in its place (see
:mod:`anybackprop.fastpaths`). A kernel that writes into an argument declares it (the ``dA`` of a
derivative, the parameter of an update) and runs only where the caller owns that array.
``tests/test_fast_paths.py`` checks each against its portable formula on a GPU.

TF32 (float32 matrix products on tensor cores) is the backend's setting, applied by
``Backend.activate()`` for the duration of a ``fit``.
"""

from __future__ import annotations

import functools
from typing import Any

from .. import activations as act
from .. import losses, updates
from ..layers.dense import affine
from .registry import FastPath, FastPaths

_BIAS_ACT = {
    act.identity: "a = z",
    act.relu: "a = z > (T)0 || z != z ? z : (T)0",  # max(z, 0) keeps NaN
    act.tanh: "a = tanh(z)",
    act.sigmoid: "T e = exp(-fabs(z)); a = z >= (T)0 ? (T)1 / ((T)1 + e) : e / ((T)1 + e)",
}

KERNELS: dict[str, tuple[str, str, str]] = {
    **{f"anybackprop_bias_{f.__name__}": ("T b", "T z, T a", f"z = z + b; {body}") for f, body in _BIAS_ACT.items()},
    "anybackprop_relu_backward": ("T z", "T da", "da = z > (T)0 ? da : (T)0"),
    "anybackprop_tanh_backward": ("T a", "T da", "da = da * ((T)1 - a * a)"),
    "anybackprop_sigmoid_backward": ("T a", "T da", "da = da * a * ((T)1 - a)"),
    "anybackprop_paired_delta": ("T a, T y, T m", "T d", "d = (a - y) / m"),
    "anybackprop_sgd_update": ("T g, T lr", "T p", "p = p - lr * g"),
}
"""Every fused kernel: name -> (input parameters, output parameters, operation), as
``cupy.ElementwiseKernel`` takes them; ``tests/test_cupy_install.py`` compiles each with NVRTC."""


@functools.cache
def kernel(name: str) -> Any:
    """The ``cupy.ElementwiseKernel`` of :data:`KERNELS` ``[name]`` (compiled at its first call)."""
    import cupy

    return cupy.ElementwiseKernel(*KERNELS[name], name)


def _fused_affine(forward: Any) -> Any:
    name = f"anybackprop_bias_{forward.__name__}"

    def affine_activation(xp: Any, a_prev: Any, w: Any, b: Any) -> tuple[Any, Any]:
        """Z = A_prev @ W (cuBLAS), then one kernel: Z += b and A = g(Z)."""
        z = a_prev @ w
        a = xp.empty_like(z)
        kernel(name)(b, z, a)
        return z, a

    return affine_activation


def relu_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """dZ = dA where Z > 0, else 0, into dA's buffer."""
    return kernel("anybackprop_relu_backward")(z, da)


def tanh_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """dZ = dA (1 - A^2), into dA's buffer."""
    return kernel("anybackprop_tanh_backward")(a, da)


def sigmoid_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """dZ = dA A (1 - A), into dA's buffer."""
    return kernel("anybackprop_sigmoid_backward")(a, da)


def paired_delta(xp: Any, a: Any, y: Any) -> Any:
    """dZ_L = (A - Y) / m in one kernel."""
    return kernel("anybackprop_paired_delta")(a, y, a.dtype.type(a.shape[0]))


def sgd_update(xp: Any, p: Any, g: Any, lr: float) -> Any:
    """P -= lr G in place, one kernel."""
    return kernel("anybackprop_sgd_update")(g, p.dtype.type(lr), p)


@functools.lru_cache(maxsize=1)
def paths() -> FastPaths:
    """The CuPy fast paths, keyed by the portable formula each replaces."""
    table = [
        FastPath(act.relu_backward, relu_backward, overwrites=2),
        FastPath(act.tanh_backward, tanh_backward, overwrites=2),
        FastPath(act.sigmoid_backward, sigmoid_backward, overwrites=2),
        FastPath(losses.paired_delta, paired_delta),
        FastPath(updates.sgd_update, sgd_update, overwrites=0),
    ]
    table += [FastPath((affine, forward), _fused_affine(forward)) for forward in _BIAS_ACT]
    return FastPaths("cupy", table)
