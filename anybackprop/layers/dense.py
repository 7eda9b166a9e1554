r"""The dense layer: ``Z = A_prev @ W + b``, ``A = g(Z)`` on row-major batches.

Shapes: ``A_prev (m, n_in)``, ``W (n_in, n_out)``, ``b (n_out,)``, ``Z, A (m, n_out)``.
Backward (note 004, Theorem 5.4 in row-major form), from ``dA = dJ/dA``:

    dZ = g'(Z) * dA           dW = A_prev.T @ dZ        db = sum(dZ, axis=0)        dA_prev = dZ @ W.T

.. math::

    Z = A_{\text{prev}} W + \mathbf{1} b^\top, \qquad A = g(Z)

    dZ = g'(Z) \odot dA, \qquad dW = A_{\text{prev}}^\top dZ, \qquad
    db = \sum_{i=1}^{m} dZ_{i,:}, \qquad dA_{\text{prev}} = dZ\, W^\top
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ..activations import Activation, get_activation
from .base import LayerBase, Pass, check_size

INIT_SCHEMES = ("auto", "he", "glorot")


def affine(xp: Any, a_prev: Any, w: Any, b: Any) -> Any:
    """Z = A_prev @ W + b: ``(m, n_in) @ (n_in, n_out) + (n_out,)``."""
    return a_prev @ w + b


def bias_grad(xp: Any, dz: Any) -> Any:
    """db = sum(dZ, axis=0): ``(m, n_out) -> (n_out,)``."""
    return xp.sum(dz, axis=0)


class DenseCache(NamedTuple):
    """What :meth:`Dense.backward` needs: the input ``a_prev``, the pre-activation ``z`` and the
    output ``a``. Where a fast path computed the activation in Z's buffer (relu, tanh on NumPy),
    ``z`` holds ``g(Z)``: derivatives read only ``a`` or the sign of ``z``, which it keeps."""

    a_prev: Any
    z: Any
    a: Any


class Dense(LayerBase):
    """A fully-connected layer ``n_in -> n_out`` with its activation (default: the identity, as
    for the logits of a model's last layer). ``init`` is "auto" (He for the relu family, Glorot
    otherwise), "he" or "glorot"."""

    kind = "dense"
    decay = ("W",)

    def __init__(self, n_in: int, n_out: int, activation: Any = "identity", init: str = "auto") -> None:
        self.n_in, self.n_out = check_size(n_in, "n_in"), check_size(n_out, "n_out")
        self.activation: Activation = get_activation(activation)
        if init not in INIT_SCHEMES:
            raise ValueError(f"unknown init {init!r}; accepted values: {', '.join(INIT_SCHEMES)}")
        self.init = init
        self._bound: tuple[Any, tuple[Any, ...]] = (None, ())

    def _paths(self, fast: Any) -> tuple[Any, ...]:
        """This layer's formulas as ``fast`` resolves them (fused affine + activation or None,
        affine, activation, its derivative, bias gradient), looked up once per table."""
        bound = self._bound  # read once: a copy of the model on another backend may share this layer
        if bound[0] is not fast:
            forward, backward = self.activation.forward, self.activation.backward
            bound = self._bound = (
                fast,
                (
                    fast.fused(affine, forward),
                    fast.get(affine),
                    fast.get(forward, may_overwrite=True),
                    fast.get(backward, may_overwrite=True),
                    fast.get(bias_grad),
                ),
            )
        return bound[1]

    def config(self) -> dict[str, Any]:
        """``{"n_in", "n_out", "activation", "init"}``: the keyword arguments that rebuild this layer."""
        return {"n_in": self.n_in, "n_out": self.n_out, "activation": self.activation.spec, "init": self.init}

    def init_params(self, rng: Any) -> dict[str, Any]:
        """``W`` drawn from ``rng``: He ``N(0, 2/n_in)`` or Glorot ``U(-r, r)`` with
        ``r = sqrt(6/(n_in + n_out))``; ``b`` zeros."""
        scheme = self.activation.init if self.init == "auto" else self.init
        shape = (self.n_in, self.n_out)
        if scheme == "he":
            w = rng.standard_normal(shape) * math.sqrt(2.0 / self.n_in)
        else:
            limit = math.sqrt(6.0 / (self.n_in + self.n_out))
            w = rng.uniform(-limit, limit, shape)
        return {"W": w, "b": [0.0] * self.n_out}

    def forward(self, ctx: Pass, params: dict[str, Any], state: dict[str, Any], x: Any) -> tuple[Any, DenseCache]:
        """``A = g(A_prev @ W + b)``; the activation may reuse Z's fresh buffer (a fast path)."""
        fused, affine_path, forward, _, _ = self._paths(ctx.fast)
        xp, w, b = ctx.xp, params["W"], params["b"]
        if fused is not None:
            z, a = fused(xp, x, w, b)
        else:
            z = affine_path(xp, x, w, b)
            a = forward(xp, z)
        return a, DenseCache(x, z, a)

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: DenseCache, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """``dZ = g'(Z) * dA`` (in dA's buffer where a fast path allows), then ``dW``, ``db``, ``dA_prev``."""
        _, _, _, backward, bias = self._paths(ctx.fast)
        xp = ctx.xp
        dz = backward(xp, cache.z, cache.a, dy)
        grads = {"W": cache.a_prev.T @ dz, "b": bias(xp, dz)}
        return grads, (dz @ params["W"].T if need_dx else None)
