"""The regression target's scale as the network's last layer: ``Y = X * scale + mean`` per
output, with ``mean`` and ``scale`` as saved state (no parameters). A network trained on
standardised targets ``(t - mean) / scale`` ends with this layer, so that ``predict`` (and the
ONNX graph) give values in the target's own units. :func:`target_state` computes the state from
the training targets; :class:`~anybackprop.tables.TabularModel` trains with the layer at its
initial state (the identity) on standardised targets and sets the state after training.
Shapes ``X, Y (m, n)``. Backward: ``dX = dY * scale``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .base import LayerBase, Pass, check_positive_state, check_size


def target_state(xp: Any, t: Any) -> dict[str, Any]:
    """``{"mean", "scale"}`` of targets ``t (m, n)``: column means and population standard
    deviations (1 where a column is constant)."""
    std = xp.std(t, axis=0)
    return {"mean": xp.mean(t, axis=0), "scale": xp.where(std > 0, std, xp.ones_like(std))}


class TargetScaleCache(NamedTuple):
    """The scale the outputs were multiplied by (backward multiplies ``dY`` by it)."""

    scale: Any


class TargetScale(LayerBase):
    """Maps ``n`` standardised outputs back to the target's units (initially the identity)."""

    kind = "target_scale"

    def __init__(self, n: int) -> None:
        self.n_in = self.n_out = check_size(n, "n")

    def config(self) -> dict[str, Any]:
        return {"n": self.n_in}

    def init_state(self) -> dict[str, Any]:
        return {"mean": [0.0] * self.n_in, "scale": [1.0] * self.n_in}

    def check_state(self, xp: Any, state: dict[str, Any]) -> None:
        """Refuse a ``scale`` that is not positive (see :meth:`anybackprop.Sequential.set_state`)."""
        check_positive_state(xp, state, "scale", type(self).__name__)

    def forward(self, ctx: Pass, params: dict[str, Any], state: dict[str, Any], x: Any) -> tuple[Any, TargetScaleCache]:
        """``Y = X * scale + mean`` per output."""
        return x * state["scale"] + state["mean"], TargetScaleCache(state["scale"])

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: TargetScaleCache, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """No parameters; ``dX = dY * scale``."""
        return {}, (dy * cache.scale if need_dx else None)
