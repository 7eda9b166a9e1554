"""Robust input scaling with smooth clipping, as a layer (the preprocessing of RealMLP-TD,
Holzmüller et al. 2024, in our own form). Per feature, with ``center`` and ``scale`` as saved
state learned from the training rows by :meth:`RobustScale.learn_state`::

    C = (X - center) / scale                    Y = C / sqrt(1 + (C / k)^2)

``center`` is the median; ``scale`` the interquartile range divided by 1.349 (the standard
deviation of normal data), or the population standard deviation where the quartiles coincide (a
rare 0/1 column), or 1 for a constant feature. The second step is a smooth clip: the identity near
0, bounded by ``k`` (default 3) so that an outlier cannot dominate a unit. Shapes ``X, Y (m, n)``.

Backward: ``dY/dC = (1 + (C / k)^2)^(-3/2)``, so ``dX = dY * (1 + (C / k)^2)^(-3/2) / scale``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

from .base import LayerBase, Pass, check_positive_state, check_size

NORMAL_IQR = 1.349
"""The interquartile range of a standard normal distribution (2 * 0.6745)."""


def quantile_rows(xp: Any, x: Any, q: float) -> Any:
    """The ``q`` quantile of each column of ``x (m, n)`` (linear interpolation between the sorted
    values at positions ``q (m - 1)``), shape ``(n,)``."""
    s = xp.sort(x, axis=0)
    position = q * (x.shape[0] - 1)
    lo = math.floor(position)
    hi = min(lo + 1, x.shape[0] - 1)
    return s[lo, :] + (position - lo) * (s[hi, :] - s[lo, :])


class RobustScaleCache(NamedTuple):
    """The scale and the clip's derivative ``(1 + (C/k)^2)^(-3/2)`` (backward multiplies by them)."""

    scale: Any
    slope: Any


def check_clip(k: Any) -> float:
    """``k`` as a positive finite clip bound, or a ValueError naming it."""
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or not 0 < float(k) < math.inf:
        raise ValueError(f"clip must be a positive finite number, got {k!r}")
    return float(k)


class RobustScale(LayerBase):
    """Centres ``n`` features on their median, scales them by their spread and clips them
    smoothly to ``(-clip, clip)``; initially centre 0 and scale 1."""

    kind = "robust_scale"
    fixed = True  # no parameters; the same map, row by row, in training and inference

    def __init__(self, n: int, clip: float = 3.0) -> None:
        self.n_in = self.n_out = check_size(n, "n")
        self.clip = check_clip(clip)

    def config(self) -> dict[str, Any]:
        return {"n": self.n_in, "clip": self.clip}

    def init_state(self) -> dict[str, Any]:
        return {"center": [0.0] * self.n_in, "scale": [1.0] * self.n_in}

    def learn_state(self, xp: Any, x: Any) -> dict[str, Any]:
        """``{"center", "scale"}`` of the rows ``x (m, n)``: medians and robust spreads."""
        center = quantile_rows(xp, x, 0.5)
        iqr = (quantile_rows(xp, x, 0.75) - quantile_rows(xp, x, 0.25)) / NORMAL_IQR
        std = xp.sqrt(xp.mean((x - xp.mean(x, axis=0)) ** 2, axis=0))
        scale = xp.where(iqr > 0, iqr, xp.where(std > 0, std, xp.ones_like(std)))
        return {"center": center, "scale": scale}

    def check_state(self, xp: Any, state: dict[str, Any]) -> None:
        """Refuse a ``scale`` that is not positive (see :meth:`anybackprop.Sequential.set_state`)."""
        check_positive_state(xp, state, "scale", type(self).__name__)

    def forward(self, ctx: Pass, params: dict[str, Any], state: dict[str, Any], x: Any) -> tuple[Any, RobustScaleCache]:
        """``C = (X - center) / scale``, ``Y = C / sqrt(1 + (C / k)^2)``; the cache keeps ``(1 + (C / k)^2)^(-3/2)``."""
        xp = ctx.xp
        c = (x - state["center"]) / state["scale"]
        root = xp.sqrt(1.0 + (c / self.clip) ** 2)
        return c / root, RobustScaleCache(state["scale"], 1.0 / (root * root * root))

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: RobustScaleCache, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """No parameters; ``dX = dY (1 + (C / k)^2)^(-3/2) / scale``."""
        return {}, (dy * cache.slope / cache.scale if need_dx else None)
