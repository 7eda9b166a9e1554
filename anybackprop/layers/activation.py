r"""An activation on its own, as a layer: ``A = g(Z)`` elementwise, ``dZ = g'(Z) * dA``.

.. math::

    A = g(Z), \qquad dZ = g'(Z) \odot dA

Used where something stands between a dense layer's affine map and its activation (a
normalisation: ``Dense(identity) -> BatchNorm -> ActivationLayer``). Shapes ``(m, n) -> (m, n)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..activations import Activation, get_activation
from .base import LayerBase, Pass, check_size


class ActivationCache(NamedTuple):
    """The input ``z`` and output ``a`` of the activation."""

    z: Any
    a: Any


class ActivationLayer(LayerBase):
    """``g`` applied to ``n`` features: any activation name or spec of :mod:`anybackprop.activations`."""

    kind = "activation"

    def __init__(self, n: int, activation: Any = "relu") -> None:
        self.n_in = self.n_out = check_size(n, "n")
        self.activation: Activation = get_activation(activation)

    def config(self) -> dict[str, Any]:
        """``{"n", "activation"}``: the keyword arguments that rebuild this layer."""
        return {"n": self.n_in, "activation": self.activation.spec}

    def forward(self, ctx: Pass, params: dict[str, Any], state: dict[str, Any], x: Any) -> tuple[Any, ActivationCache]:
        """A = g(Z); Z belongs to the previous layer's cache, so it is never overwritten."""
        a = ctx.fast.get(self.activation.forward)(ctx.xp, x)
        return a, ActivationCache(x, a)

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: ActivationCache, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """dZ = g'(Z) * dA, in dA's buffer where a fast path allows."""
        return {}, ctx.fast.get(self.activation.backward, may_overwrite=True)(ctx.xp, cache.z, cache.a, dy)
