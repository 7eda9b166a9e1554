r"""A dense layer with a learned scale per input: RealMLP's "scaling layer" (Holzmueller,
Grinsztajn, Steinwart, "Better by Default", NeurIPS 2024; our own form), folded into the product.
With the parameter ``p (n_in,)``, its gain ``g`` (a constant) and the scale ``s = g p``::

    W' = s[:, None] * W        Z = A_prev @ W' + b        A = act(Z)

the same function as scaling each input by ``s_j`` before a :class:`~.dense.Dense` layer, at no
per-row cost. ``p`` starts at ``1 / g`` (every scale 1); the gain makes Adam's steps on the
scales ``g`` times larger than on the weights (Adam's steps are about the learning rate whatever
a gradient's size; SGD's follow the gradient, ``g`` times larger on ``p``, so ``g**2`` on the
scale), which lets training sort the inputs that matter from those that do not (RealMLP's
learning-rate factor). Backward, with ``G = A_prev.T @ dZ`` (the dense layer's
``dW`` for the weights ``W'``)::

    dW = s[:, None] * G        db = sum(dZ, axis=0)        dp = g * sum(W * G, axis=1)
    dA_prev = dZ @ W'.T

Shapes: ``A_prev (m, n_in)``, ``W, W', G (n_in, n_out)``, ``p, s (n_in,)``, ``b (n_out,)``.

.. math::
    W' = \operatorname{diag}(g\,p)\, W, \qquad dW = \operatorname{diag}(g\,p)\, A_{\text{prev}}^\top dZ,
    \qquad dp_j = g \sum_k W_{jk} \big(A_{\text{prev}}^\top dZ\big)_{jk}
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

from .base import Pass
from .dense import Dense, DenseCache

GAINS = (1e-3, 1e3)
"""The gains a scaled layer takes: ``p = 1 / gain`` and ``gain * p`` stay far inside float32's range."""


def check_gain(value: Any, name: str = "gain") -> float:
    """``value`` as a gain in :data:`GAINS`, or a ValueError naming it (a user's or a saved file's)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if not ok or not GAINS[0] <= float(value) <= GAINS[1]:
        raise ValueError(f"{name} must be a number from {GAINS[0]:g} to {GAINS[1]:g}, got {value!r}")
    return float(value)


class ScaledDenseCache(NamedTuple):
    """What :meth:`ScaledDense.backward` needs: Dense's cache, the scales ``s`` and the scaled
    weights ``W'`` the forward pass used."""

    dense: DenseCache
    scales: Any
    scaled: Any


class ScaledDense(Dense):
    """:class:`~.dense.Dense` ``n_in -> n_out`` after a learned scale per input (parameter ``p``,
    scale ``gain * p``, initially 1); ``gain`` multiplies Adam's steps on the scales (plain
    gradient steps, whose size follows the gradient's, by ``gain ** 2``)."""

    kind = "scaled_dense"

    def __init__(
        self, n_in: int, n_out: int, activation: Any = "identity", init: str = "auto", gain: float = 10.0
    ) -> None:
        super().__init__(n_in, n_out, activation, init)
        self.gain = check_gain(gain)

    def config(self) -> dict[str, Any]:
        """Dense's keywords and ``gain``."""
        return {**super().config(), "gain": self.gain}

    def init_params(self, rng: Any) -> dict[str, Any]:
        """Dense's ``W`` and ``b``, and ``p = 1 / gain`` (every scale 1)."""
        return {**super().init_params(rng), "p": [1.0 / self.gain] * self.n_in}

    def forward(self, ctx: Pass, params: dict[str, Any], state: dict[str, Any], x: Any) -> tuple[Any, Any]:
        """Dense's forward with the weights ``W' = s[:, None] * W``, ``s = gain * p``; the cache
        keeps Dense's, ``s`` and ``W'`` (a :class:`ScaledDenseCache`: backward computes neither again)."""
        scales = self.gain * params["p"]
        scaled = scales[:, None] * params["W"]
        y, cache = super().forward(ctx, {"W": scaled, "b": params["b"]}, state, x)
        return y, ScaledDenseCache(cache, scales, scaled)

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: Any, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """From the forward's :class:`ScaledDenseCache`: Dense's backward for ``W'`` gives ``G`` and
        ``dA_prev``; then ``dW`` and ``dp`` from ``G``."""
        grads, dx = super().backward(ctx, {"W": cache.scaled, "b": params["b"]}, cache.dense, dy, need_dx)
        g = grads["W"]
        dp = self.gain * ctx.xp.sum(params["W"] * g, axis=1)
        return {"W": cache.scales[:, None] * g, "b": grads["b"], "p": dp}, dx
