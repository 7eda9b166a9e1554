r"""Parameter update formulas, array API only: each returns new arrays and writes nothing.

For a parameter ``P`` with gradient ``G`` (weight decay already added: ``G + wd P``):

* SGD (note 004): ``P - lr G``;
* momentum: ``V' = mu V - lr G``, ``P + V'``; Nesterov: ``P + mu V' - lr G``;
* Adam (bias-corrected, step ``t``): ``M' = b1 M + (1 - b1) G``, ``S' = b2 S + (1 - b2) G^2``,
  ``P - lr_t M' / (sqrt(S' c2) + eps)`` with ``lr_t = lr / (1 - b1^t)`` and ``c2 = 1 / (1 - b2^t)``.

.. math::

    \text{SGD: } P' = P - \eta G \qquad
    \text{momentum: } V' = \mu V - \eta G,\; P' = P + V' \qquad
    \text{Nesterov: } P' = P + \mu V' - \eta G

    \text{Adam: } M' = \beta_1 M + (1 - \beta_1) G, \quad S' = \beta_2 S + (1 - \beta_2) G^2, \quad
    P' = P - \frac{\eta}{1 - \beta_1^t} \, \frac{M'}{\sqrt{S' / (1 - \beta_2^t)} + \epsilon}

The momentum and Adam formulas return the step ``U`` with ``P' = P - U`` and the new state, so
that the optimizer subtracts in place where the arrays allow it.

:mod:`anybackprop.optim` holds the optimizers (state, schedules, weight decay) that apply these;
a backend's in-place fast path may replace :func:`sgd_update` (see :mod:`anybackprop.fastpaths`).
"""

from __future__ import annotations

from typing import Any


def decayed(xp: Any, p: Any, g: Any, weight_decay: float) -> Any:
    """G + wd P, the gradient of the loss plus the L2 term wd/2 ||P||^2."""
    return g + weight_decay * p


def sgd_update(xp: Any, p: Any, g: Any, lr: float) -> Any:
    """P - lr G (note 004)."""
    return p - lr * g


def momentum_step(xp: Any, g: Any, v: Any, lr: float, mu: float, nesterov: bool) -> tuple[Any, Any]:
    """``(U, V')`` with ``V' = mu V - lr G`` and the step ``P' = P - U``: ``U = -V'``
    (Nesterov: ``U = lr G - mu V'``)."""
    v = mu * v - lr * g
    return (lr * g - mu * v if nesterov else -v), v


def adam_step(
    xp: Any, g: Any, m: Any, s: Any, step_size: float, beta1: float, beta2: float, s_scale: float, eps: float
) -> tuple[Any, Any, Any]:
    """``(U, M', S')``: the moments, then the step ``P' = P - U`` with
    ``U = step_size M' / (sqrt(S' s_scale) + eps)``, ``step_size = lr / (1 - b1^t)`` and
    ``s_scale = 1 / (1 - b2^t)``."""
    m = beta1 * m + (1.0 - beta1) * g
    s = beta2 * s + (1.0 - beta2) * (g * g)
    return step_size * m / (xp.sqrt(s * s_scale) + eps), m, s
