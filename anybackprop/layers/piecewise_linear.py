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

With ``features`` (the indices ``S`` of the ``k`` inputs to encode, increasing; a table's numeric
columns, where its one-hot columns gain nothing from bins) only those are encoded and the other
inputs ``R`` pass through after them: ``Y = [encode(X[:, S]) (m, k T), X[:, R] (m, n - k)]``,
with ``L, D (k, T)``; backward ``dX[:, S]`` as above and ``dX[:, R] = dY[:, k T:]``.
"""

from __future__ import annotations

import itertools
import numbers
from typing import Any, NamedTuple

import array_api_compat

from .base import LayerBase, Pass, check_positive_state, check_size


class PiecewiseLinearCache(NamedTuple):
    """``[0 < U < 1] / D`` per row, feature and bin, ``(m, n, T)``: the slope backward multiplies by."""

    slope: Any


class PiecewiseLinear(LayerBase):
    """Encodes ``n`` features into ``n * bins`` (initially bins of width 1 from 0, 1, 2, ...), or
    only the inputs ``features`` (``k`` of them) into ``k * bins``, the rest passed through."""

    kind = "piecewise_linear"

    def __init__(self, n: int, bins: int = 8, features: list[int] | tuple[int, ...] | None = None) -> None:
        self.n_in = check_size(n, "n")
        self.bins = check_size(bins, "bins")
        self.features = None if features is None else _check_features(features, self.n_in)
        self.n_encoded = self.n_in if self.features is None else len(self.features)
        """``k``: the inputs encoded (all ``n`` without ``features``)."""
        self.n_out = self.n_encoded * self.bins + self.n_in - self.n_encoded
        self.rest: tuple[int, ...] = ()
        """The inputs passed through, after the encoded ones (none without ``features``)."""
        if self.features is not None:
            self.rest = tuple(j for j in range(self.n_in) if j not in set(self.features))
            order = [*self.features, *self.rest]
            self._inverse = sorted(range(self.n_in), key=order.__getitem__)  # Y's inputs back to X's order

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"n": self.n_in, "bins": self.bins}
        if self.features is not None:
            config["features"] = list(self.features)
        return config

    def init_state(self) -> dict[str, Any]:
        k = self.n_encoded
        return {"lower": [[float(t) for t in range(self.bins)]] * k, "width": [[1.0] * self.bins] * k}

    def _encoded(self, xp: Any, x: Any) -> Any:
        """The inputs the layer encodes, ``X[:, S]`` (all of ``x`` without ``features``)."""
        if self.features is None:
            return x
        return _columns(xp, x, self.features)

    def learn_state(self, xp: Any, x: Any) -> dict[str, Any]:
        """``{"lower", "width"}`` ``(k, T)`` from the quantiles of the rows ``x (m, n)``."""
        x = self._encoded(xp, x)
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
        e = self._encoded(xp, x)
        u = (e[:, :, None] - state["lower"][None, :, :]) / state["width"][None, :, :]
        y = xp.reshape(xp.minimum(xp.maximum(u, 0.0), 1.0), (x.shape[0], self.n_encoded * self.bins))
        inside = xp.astype((u > 0.0) & (u < 1.0), x.dtype)
        if self.features is not None:
            y = xp.concat([y, _columns(xp, x, self.rest)], axis=1)
        return y, PiecewiseLinearCache(inside / state["width"][None, :, :])

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: PiecewiseLinearCache, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """No parameters; ``dX[i, j] = sum_t dY[i, j*T + t] [0 < U[i, j, t] < 1] / D[j, t]``."""
        if not need_dx:
            return {}, None
        xp = ctx.xp
        k = self.n_encoded * self.bins
        de = xp.sum(xp.reshape(dy[:, :k], cache.slope.shape) * cache.slope, axis=2)
        if self.features is None:
            return {}, de
        return {}, _columns(xp, xp.concat([de, dy[:, k:]], axis=1), self._inverse)


def _columns(xp: Any, x: Any, indices: Any) -> Any:
    """The columns ``indices`` of ``x``, in that order (the index array on ``x``'s device)."""
    where = xp.asarray(list(indices), dtype=xp.int64, device=array_api_compat.device(x))
    return xp.take(x, where, axis=1)


def _check_features(features: Any, n: int) -> tuple[int, ...]:
    """``features`` as increasing input indices in ``[0, n)``, at least one (a saved file's or a
    user's), or a ValueError naming it."""
    if (
        not isinstance(features, (list, tuple))
        or not features
        or any(isinstance(j, bool) or not isinstance(j, numbers.Integral) for j in features)
        or any(not 0 <= j < n for j in features)
        or any(a >= b for a, b in itertools.pairwise(features))
    ):
        raise ValueError(f"features must list increasing input indices in [0, {n}), at least one; got {features!r}")
    return tuple(int(j) for j in features)
