r"""Input standardisation as a layer: ``Y = (X - mean) / scale`` per feature, with ``mean`` and
``scale`` as saved state (no parameters), learned from the training rows by
:meth:`Standardize.learn_state` (``fit`` calls it; ``fit(..., preprocess=False)`` keeps the state
as it is). ``scale`` is the population standard deviation (ddof 0), 1 for a constant feature, as
scikit-learn's ``StandardScaler``. Backward: ``dX = dY / scale``.

.. math::

    Y = \frac{X - \text{mean}}{\text{scale}}, \qquad
    \text{scale} = \sqrt{\tfrac{1}{m} \textstyle\sum_i (X_i - \text{mean})^2} \;(1 \text{ if } 0), \qquad
    dX = \frac{dY}{\text{scale}}
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
    fixed = True  # no parameters; the same map, row by row, in training and inference

    def __init__(self, n: int) -> None:
        self.n_in = self.n_out = check_size(n, "n")

    def config(self) -> dict[str, Any]:
        """``{"n"}``: the keyword arguments that rebuild this layer."""
        return {"n": self.n_in}

    def init_state(self) -> dict[str, Any]:
        """``mean`` zeros and ``scale`` ones of shape ``(n,)``: the identity until learned."""
        return {"mean": [0.0] * self.n_in, "scale": [1.0] * self.n_in}

    def learn_state(self, xp: Any, x: Any) -> dict[str, Any]:
        """``{"mean", "scale"}`` of the rows ``x (m, n)``: column means and population standard
        deviations (1 where a column is constant), computed in float64 (in float32 the squares of
        features near 1e30 overflow and those near 1e-30 underflow) and given in ``x``'s dtype."""
        wide = xp.astype(x, xp.float64)
        mean = xp.mean(wide, axis=0)
        std = xp.astype(xp.sqrt(xp.mean((wide - mean) ** 2, axis=0)), x.dtype)
        return {"mean": xp.astype(mean, x.dtype), "scale": xp.where(std > 0, std, xp.ones_like(std))}

    def forward(self, ctx: Pass, params: dict[str, Any], state: dict[str, Any], x: Any) -> tuple[Any, StandardizeCache]:
        """``Y = (X - mean) / scale`` with the saved state."""
        return (x - state["mean"]) / state["scale"], StandardizeCache(state["scale"])

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: StandardizeCache, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """No parameter gradients; ``dX = dY / scale``."""
        return {}, (dy / cache.scale if need_dx else None)
