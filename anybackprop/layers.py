"""The dense layer: ``Z = A_prev @ W + b``, ``A = g(Z)`` on row-major batches.

Shapes: ``A_prev (m, n_in)``, ``W (n_in, n_out)``, ``b (n_out,)``, ``Z, A (m, n_out)``.
Backward (note 004, Theorem 5.4 in row-major form), from ``dZ = dJ/dZ``:

    dW = A_prev.T @ dZ        db = sum(dZ, axis=0)        dA_prev = dZ @ W.T
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .activations import Activation

INIT_SCHEMES = ("auto", "he", "glorot")
NO_KERNELS: dict = {}


def affine(xp: Any, a_prev: Any, w: Any, b: Any) -> Any:
    """Z = A_prev @ W + b: ``(m, n_in) @ (n_in, n_out) + (n_out,)``."""
    return a_prev @ w + b


def bias_grad(xp: Any, dz: Any) -> Any:
    """db = sum(dZ, axis=0): ``(m, n_out) -> (n_out,)``."""
    return xp.sum(dz, axis=0)


@dataclass(frozen=True)
class Dense:
    """Layer ``index`` (1-based) of an MLP; its parameters live in the model's ``params`` dict
    under the keys ``W`` = "W{index}" and ``b`` = "b{index}"."""

    index: int
    n_in: int
    n_out: int
    activation: Activation
    W: str = field(init=False, repr=False)
    b: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "W", f"W{self.index}")
        object.__setattr__(self, "b", f"b{self.index}")

    def initial_weights(self, rng: Any, scheme: str = "auto") -> Any:
        """Host draw of ``W`` from a ``numpy.random.Generator``: He ``N(0, 2/n_in)`` or Glorot
        ``U(-r, r)`` with ``r = sqrt(6/(n_in + n_out))``; "auto" follows the activation."""
        if scheme == "auto":
            scheme = self.activation.init
        if scheme == "he":
            return rng.standard_normal((self.n_in, self.n_out)) * math.sqrt(2.0 / self.n_in)
        if scheme == "glorot":
            limit = math.sqrt(6.0 / (self.n_in + self.n_out))
            return rng.uniform(-limit, limit, (self.n_in, self.n_out))
        raise ValueError(f"unknown init {scheme!r}; accepted values: {', '.join(INIT_SCHEMES)}")

    def forward(self, xp: Any, params: dict, a_prev: Any, kernels: dict = NO_KERNELS) -> tuple[Any, Any]:
        """``(Z, A)`` with ``Z = A_prev @ W + b`` and ``A = g(Z)``; ``kernels`` maps a portable
        formula to a backend's fast path for it (see :mod:`anybackprop.backend`)."""
        forward = self.activation.forward
        fused = kernels.get((affine, forward))
        if fused is not None:
            return fused(xp, a_prev, params[self.W], params[self.b])
        z = kernels.get(affine, affine)(xp, a_prev, params[self.W], params[self.b])
        return z, kernels.get(forward, forward)(xp, z)

    def backward(
        self, xp: Any, params: dict, a_prev: Any, dz: Any, need_input_grad: bool = True, kernels: dict = NO_KERNELS
    ) -> tuple[Any, Any, Any]:
        """``(dW, db, dA_prev)`` from ``dZ``; ``dA_prev`` is None when not needed (first layer)."""
        dw = a_prev.T @ dz
        db = kernels.get(bias_grad, bias_grad)(xp, dz)
        da_prev = dz @ params[self.W].T if need_input_grad else None
        return dw, db, da_prev
