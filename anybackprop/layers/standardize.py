"""Input standardisation as a layer: ``Y = (X - mean) / scale`` per feature, with ``mean`` and
``scale`` as saved state (no parameters), learned from the training rows by
:meth:`Standardize.learn_state` (``fit`` calls it; ``fit(..., preprocess=False)`` keeps the state
as it is). ``scale`` is the population standard deviation (ddof 0), 1 for a constant feature, as
scikit-learn's ``StandardScaler``. Backward: ``dX = dY / scale``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .base import LayerBase, Pass, check_size


class StandardizeCache(NamedTuple):
    """The scale the rows were divided by (backward divides ``dY`` by it)."""

    scale: Any


class Standardize(LayerBase):
    """Standardises ``n`` features with the statistics in its state (initially mean 0, scale 1:
    the identity)."""

    kind = "standardize"

    def __init__(self, n: int) -> None:
        self.n_in = self.n_out = check_size(n, "n")

    def config(self) -> dict:
        return {"n": self.n_in}

    def init_state(self) -> dict[str, Any]:
        return {"mean": [0.0] * self.n_in, "scale": [1.0] * self.n_in}

    def learn_state(self, xp: Any, x: Any) -> dict[str, Any]:
        """``{"mean", "scale"}`` of the rows ``x (m, n)``: column means and population standard
        deviations (1 where a column is constant), computed in float64 (in float32 the squares of
        features near 1e30 overflow and those near 1e-30 underflow) and given in ``x``'s dtype."""
        wide = xp.astype(x, xp.float64)
        mean = xp.mean(wide, axis=0)
        std = xp.astype(xp.sqrt(xp.mean((wide - mean) ** 2, axis=0)), x.dtype)
        return {"mean": xp.astype(mean, x.dtype), "scale": xp.where(std > 0, std, xp.ones_like(std))}

    def forward(self, ctx: Pass, params: dict, state: dict, x: Any) -> tuple[Any, StandardizeCache]:
        return (x - state["mean"]) / state["scale"], StandardizeCache(state["scale"])

    def backward(self, ctx: Pass, params: dict, cache: StandardizeCache, dy: Any, need_dx: bool) -> tuple[dict, Any]:
        return {}, (dy / cache.scale if need_dx else None)
