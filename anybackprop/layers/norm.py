r"""Batch and layer normalisation of a pre-activation ``Z (m, n)``, with learnable scale ``gamma``
and shift ``beta`` (``(n,)``, initialised to 1 and 0) and ``eps = 1e-5``, as PyTorch's
``BatchNorm1d`` and ``LayerNorm`` define them.

Both normalise ``Z`` over one axis (batch norm: over the ``m`` rows of each feature; layer norm:
over the ``n`` features of each row), with ``N`` values per statistic::

    mu = mean(Z)        var = mean((Z - mu)^2)  (biased)        r = 1 / sqrt(var + eps)
    Zhat = (Z - mu) r                                           Y = gamma * Zhat + beta

.. math::

    \mu = \frac{1}{N} \sum Z, \qquad \sigma^2 = \frac{1}{N} \sum (Z - \mu)^2, \qquad
    r = \frac{1}{\sqrt{\sigma^2 + \epsilon}}, \qquad \hat Z = (Z - \mu)\, r, \qquad
    Y = \gamma \odot \hat Z + \beta

Backward, by hand. ``dgamma = sum_rows(dY * Zhat)``, ``dbeta = sum_rows(dY)`` and, with
``G = dY * gamma``, through ``mu`` and ``var`` (both depend on every ``Z`` they average)::

    dZhat/dZ: dZ = G r  +  dvar * 2 (Z - mu) / N  +  dmu / N
    dvar = sum(G (Z - mu)) * (-1/2) r^3        dmu = -sum(G) r  (the dvar term of dmu is 0)
    =>  dZ = r / N * (N G - sum(G) - Zhat * sum(G * Zhat))

.. math::

    d\gamma = \sum_{\text{rows}} dY \odot \hat Z, \qquad d\beta = \sum_{\text{rows}} dY, \qquad
    dZ = \frac{r}{N} \Big( N G - \sum G - \hat Z \odot \sum (G \odot \hat Z) \Big), \quad G = dY \odot \gamma

where the sums run over the normalised axis. Batch norm in training normalises with the batch's
statistics and returns new running averages (momentum 0.1; the running variance is unbiased,
``var * m / (m - 1)``), which the trainer commits; at inference it uses the running averages,
``Y = gamma (Z - running_mean) / sqrt(running_var + eps) + beta``, whose backward is the plain
``dZ = G / sqrt(running_var + eps)``. Layer norm behaves the same in training and inference.
Batch norm takes its batch means from the pass (``ctx.batch_mean``): over the whole global batch
in data-parallel training (small all-reduces of column sums), so its statistics stay exact.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .base import LayerBase, Pass, check_size

EPS = 1e-5
MOMENTUM = 0.1


def normalize(xp: Any, z: Any, axis: int, eps: float = EPS, mean: Any = None) -> tuple[Any, Any, Any]:
    """``(Zhat, mu, var)``: Z standardised over ``axis`` with its mean and biased variance;
    ``mu`` and ``var`` keep the reduced axis (length 1). ``mean`` (default: the mean over
    ``axis``) is the averaging batch norm takes from its pass, which in data-parallel training
    averages over the rows of every process."""
    mean = mean or (lambda v: xp.mean(v, axis=axis, keepdims=True))
    mu = mean(z)
    d = z - mu
    var = mean(d * d)
    return d / xp.sqrt(var + eps), mu, var


def normalize_backward(xp: Any, g: Any, zhat: Any, var: Any, axis: int, eps: float = EPS, mean: Any = None) -> Any:
    """dZ = r (G - mean(G) - Zhat mean(G Zhat)) over ``axis`` (the formula above divided by N),
    ``G = dY * gamma``, ``r = 1 / sqrt(var + eps)``; ``mean`` as in :func:`normalize`."""
    mean = mean or (lambda v: xp.mean(v, axis=axis, keepdims=True))
    return (g - mean(g) - zhat * mean(g * zhat)) / xp.sqrt(var + eps)


def scale_shift_grads(xp: Any, dy: Any, zhat: Any) -> dict[str, Any]:
    """dgamma = sum over rows of dY * Zhat, dbeta = sum over rows of dY."""
    return {"gamma": xp.sum(dy * zhat, axis=0), "beta": xp.sum(dy, axis=0)}


class NormCache(NamedTuple):
    """``zhat`` and ``var`` (the statistics used); ``state``: batch norm's new running averages
    in training (None otherwise)."""

    zhat: Any
    var: Any
    state: dict[str, Any] | None = None


class _Norm(LayerBase):
    def __init__(self, n: int) -> None:
        self.n_in = self.n_out = check_size(n, "n")

    def config(self) -> dict[str, Any]:
        return {"n": self.n_in}

    def init_params(self, rng: Any) -> dict[str, Any]:
        return {"gamma": [1.0] * self.n_in, "beta": [0.0] * self.n_in}


class BatchNorm(_Norm):
    """Batch normalisation of ``n`` features (PyTorch's ``BatchNorm1d`` semantics)."""

    kind = "batch_norm"
    min_batch = 2  # a variance needs two rows

    def init_state(self) -> dict[str, Any]:
        """``running_mean`` zeros and ``running_var`` ones of shape ``(n,)``."""
        return {"running_mean": [0.0] * self.n_in, "running_var": [1.0] * self.n_in}

    def forward(self, ctx: Pass, params: dict[str, Any], state: dict[str, Any], x: Any) -> tuple[Any, NormCache]:
        """``Y = gamma * Zhat + beta`` normalised with the batch's statistics while training (and the new running
        averages in the cache), with the running averages otherwise."""
        xp = ctx.xp
        if not ctx.training:
            var = xp.reshape(state["running_var"], (1, self.n_in))
            zhat = (x - state["running_mean"]) / xp.sqrt(var + EPS)
            return params["gamma"] * zhat + params["beta"], NormCache(zhat, var)
        m = ctx.batch_rows(x)
        if m < 2:
            raise ValueError(f"batch norm needs at least 2 rows per training batch to estimate a variance, got {m}")
        zhat, mu, var = normalize(xp, x, 0, mean=ctx.batch_mean)
        new = {
            "running_mean": (1.0 - MOMENTUM) * state["running_mean"] + MOMENTUM * mu[0, :],
            "running_var": (1.0 - MOMENTUM) * state["running_var"] + MOMENTUM * (m / (m - 1)) * var[0, :],
        }
        return params["gamma"] * zhat + params["beta"], NormCache(zhat, var, new)

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: NormCache, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """``dgamma``, ``dbeta`` and ``dZ`` through the batch mean and variance (the module's formula); through the
        constants at inference."""
        xp = ctx.xp
        grads = scale_shift_grads(xp, dy, cache.zhat)
        if not need_dx:
            return grads, None
        g = dy * params["gamma"]
        if cache.state is None:  # inference statistics are constants
            return grads, g / xp.sqrt(cache.var + EPS)
        return grads, normalize_backward(xp, g, cache.zhat, cache.var, 0, mean=ctx.batch_mean)


class LayerNorm(_Norm):
    """Layer normalisation over the ``n`` features of each row (PyTorch's ``LayerNorm(n)``)."""

    kind = "layer_norm"

    def forward(self, ctx: Pass, params: dict[str, Any], state: dict[str, Any], x: Any) -> tuple[Any, NormCache]:
        """``Y = gamma * Zhat + beta`` with each row normalised over its features."""
        zhat, _, var = normalize(ctx.xp, x, 1)
        return params["gamma"] * zhat + params["beta"], NormCache(zhat, var)

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: NormCache, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """``dgamma``, ``dbeta`` and ``dZ`` through each row's mean and variance (the module's formula)."""
        xp = ctx.xp
        grads = scale_shift_grads(xp, dy, cache.zhat)
        dx = normalize_backward(xp, dy * params["gamma"], cache.zhat, cache.var, 1) if need_dx else None
        return grads, dx
