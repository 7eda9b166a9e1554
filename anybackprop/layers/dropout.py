r"""Inverted dropout: in training each unit is kept with probability ``1 - p`` and scaled by
``1 / (1 - p)``, so that inference needs no rescaling and is deterministic (the identity).

Training, for ``X (m, n)`` and uniform draws ``U (m, n)`` in [0, 1)::

    M = [U >= p] / (1 - p)        Y = X * M        dX = dY * M

.. math::

    M = \frac{[\,U \ge p\,]}{1 - p}, \qquad Y = X \odot M, \qquad dX = dY \odot M

The draws come from the pass's host generator (``fit``'s seed), so masks are reproducible (in
data-parallel training each process keeps its rows of the global batch's draws), and
``gradcheck`` holds them fixed by drawing them again from the same seed for every evaluation.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

from .base import LayerBase, Pass, check_size


def dropout_mask(xp: Any, u: Any, p: float) -> Any:
    """M = [U >= p] / (1 - p): 0 with probability p, else 1 / (1 - p), in U's dtype."""
    return xp.astype(u >= p, u.dtype) * (1.0 / (1.0 - p))


class DropoutCache(NamedTuple):
    """The scaled mask ``M`` (None at inference, where the layer is the identity)."""

    mask: Any


def check_rate(p: Any) -> float:
    """``p`` as a dropout probability in [0, 1) (bools refused), or a ValueError naming it."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout must be a probability in [0, 1), got {p!r}")
    return float(p)


class Dropout(LayerBase):
    """Drops each of ``n`` units with probability ``p`` (0 <= p < 1) while training."""

    kind = "dropout"

    def __init__(self, n: int, p: float = 0.5) -> None:
        self.p = check_rate(p)
        self.n_in = self.n_out = check_size(n, "n")

    def config(self) -> dict[str, Any]:
        """``{"n", "p"}``: the keyword arguments that rebuild this layer."""
        return {"n": self.n_in, "p": self.p}

    def forward(self, ctx: Pass, params: dict[str, Any], state: dict[str, Any], x: Any) -> tuple[Any, DropoutCache]:
        """``Y = X * M`` with a fresh mask ``M`` while training (the identity otherwise), and the mask."""
        if not ctx.training or self.p == 0.0:
            return x, DropoutCache(None)
        if ctx.rng is None:
            raise ValueError("a training pass through Dropout needs a seeded generator (Pass.rng)")
        mask = dropout_mask(ctx.xp, ctx.uniform(x.shape, x.dtype), self.p)
        return x * mask, DropoutCache(mask)

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: DropoutCache, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """No parameter gradients; ``dX = dY * M`` with the forward's mask."""
        return {}, (dy if cache.mask is None else dy * cache.mask)
