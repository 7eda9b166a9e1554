"""Piecewise-linear encoding of each feature (Gorishniy, Rubachev, Babenko, "On Embeddings for
Numerical Features in Tabular Deep Learning", NeurIPS 2022; our own form): each of the ``n``
features becomes ``bins`` features, one per bin between its training quantiles, each saying how
far the value has passed through that bin. With the bins' lower edges ``L (n, T)`` and widths
``D (n, T)`` as saved state (learned from the training rows by :meth:`PiecewiseLinear.learn_state`)::

    U[i, j, t] = (X[i, j] - L[j, t]) / D[j, t]        Y[i, j*T + t] = clip(U[i, j, t], 0, 1)

so a value below its feature's first bin gives zeros, one above its last gives ones, and the
encoding is monotone and continuous in the value. The edges are the ``t / T`` quantiles of the
feature; a bin of zero width (repeated values, a 0/1 column) has ``D = 1``, which makes its
output a step at the repeated value. Shapes ``X (m, n)``, ``Y (m, n T)``.

Backward: ``dX[i, j] = sum_t dY[i, j*T + t] * [0 < U[i, j, t] < 1] / D[j, t]``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .base import LayerBase, Pass, check_positive_state, check_size


class PiecewiseLinearCache(NamedTuple):
    """``[0 < U < 1] / D`` per row, feature and bin, ``(m, n, T)``: the slope backward multiplies by."""

    slope: Any


class PiecewiseLinear(LayerBase):
    """Encodes ``n`` features into ``n * bins`` (initially bins of width 1 from 0, 1, 2, ...)."""

    kind = "piecewise_linear"

    def __init__(self, n: int, bins: int = 8) -> None:
        self.n_in = check_size(n, "n")
        self.bins = check_size(bins, "bins")
        self.n_out = self.n_in * self.bins

    def config(self) -> dict[str, Any]:
        return {"n": self.n_in, "bins": self.bins}

    def init_state(self) -> dict[str, Any]:
        return {"lower": [[float(t) for t in range(self.bins)]] * self.n_in, "width": [[1.0] * self.bins] * self.n_in}

    def learn_state(self, xp: Any, x: Any) -> dict[str, Any]:
        """``{"lower", "width"}`` ``(n, T)`` from the quantiles of the rows ``x (m, n)``."""
        s = xp.sort(x, axis=0)
        last = x.shape[0] - 1
        edges = xp.stack([s[round(last * t / self.bins), :] for t in range(self.bins + 1)], axis=1)
        width = edges[:, 1:] - edges[:, :-1]
        return {"lower": edges[:, :-1], "width": xp.where(width > 0, width, xp.ones_like(width))}

    def check_state(self, xp: Any, state: dict[str, Any]) -> None:
        """Refuse a ``width`` that is not positive (see :meth:`anybackprop.Sequential.set_state`)."""
        check_positive_state(xp, state, "width", type(self).__name__)

    def forward(
        self, ctx: Pass, params: dict[str, Any], state: dict[str, Any], x: Any
    ) -> tuple[Any, PiecewiseLinearCache]:
        """``Y[i, j*T + t] = clip((X[i, j] - L[j, t]) / D[j, t], 0, 1)``; the cache keeps ``[0 < U < 1] / D``."""
        xp = ctx.xp
        u = (x[:, :, None] - state["lower"][None, :, :]) / state["width"][None, :, :]
        y = xp.minimum(xp.maximum(u, 0.0), 1.0)
        inside = xp.astype((u > 0.0) & (u < 1.0), x.dtype)
        return xp.reshape(y, (x.shape[0], self.n_out)), PiecewiseLinearCache(inside / state["width"][None, :, :])

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: PiecewiseLinearCache, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """No parameters; ``dX[i, j] = sum_t dY[i, j*T + t] [0 < U[i, j, t] < 1] / D[j, t]``."""
        if not need_dx:
            return {}, None
        xp = ctx.xp
        return {}, xp.sum(xp.reshape(dy, cache.slope.shape) * cache.slope, axis=2)
