r"""Losses over a batch of ``m`` rows, computed from the logits ``Z`` (shape ``(m, k)``).

Each loss gives one value per row, ``l_i`` (shape ``(m,)``); the cost is their mean
``J = 1/m sum_i l_i``, or with sample weights the weighted mean ``J = sum_i w_i l_i / sum_i w_i``:

* ``mse``: ``l_i = 1/2 ||a_i - y_i||^2``,
* ``binary_cross_entropy``: ``l_i = sum_k softplus(z_ik) - y_ik z_ik`` (the logit form of
  ``-y log a - (1 - y) log(1 - a)``, with ``softplus(z) = max(z, 0) + log1p(e^-|z|)``),
* ``cross_entropy``: ``l_i = logsumexp(z_i) - sum_k y_ik z_ik``,
* ``poisson``: ``l_i = sum_k e^(z_ik) - y_ik z_ik + y_ik log y_ik - y_ik``, half the Poisson
  deviance ``y log(y / a) - y + a`` of the mean ``a = e^z`` (``0 log 0 = 0``; targets ``y >= 0``).

.. math::

    J = \frac{1}{m} \sum_{i=1}^{m} l_i \quad\text{or}\quad J = \frac{\sum_i w_i l_i}{\sum_i w_i}

    l_i^{\text{mse}} = \tfrac12 \lVert a_i - y_i \rVert^2, \qquad
    l_i^{\text{bce}} = \sum_k \operatorname{softplus}(z_{ik}) - y_{ik} z_{ik}, \qquad
    l_i^{\text{ce}} = \log \sum_k e^{z_{ik}} - \sum_k y_{ik} z_{ik}

    l_i^{\text{poisson}} = \sum_k e^{z_{ik}} - y_{ik} z_{ik} + y_{ik} \log y_{ik} - y_{ik}

    \operatorname{softplus}(z) = \max(z, 0) + \log\big(1 + e^{-|z|}\big), \qquad
    dZ = \frac{A - Y}{m} \quad\text{(paired output)}

The first three are finite and exact for logits of 1e4 in float32 (the Poisson loss grows as
``e^z``, as its mean does). Each loss is paired with the output
activation for which the output delta is ``dZ = (A - Y) / m`` (note 004, Theorem 6.1), or
``dZ_i = w_i (A_i - Y_i) / sum w`` with weights; any other pairing goes through the general chain
rule ``dZ = g'(Z) * dJ/dA`` (notes 002 and 003). The heads (:mod:`anybackprop.heads`) use these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def softplus(xp: Any, z: Any) -> Any:
    """``log(1 + e^z) = max(z, 0) + log1p(e^-|z|)``, without overflow."""
    return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))


def logsumexp_rows(xp: Any, z: Any) -> Any:
    """Row-wise log sum_k e^(z_k) = max + log sum e^(z - max), shape (m,)."""
    zmax = xp.max(z, axis=1, keepdims=True)
    return xp.log(xp.sum(xp.exp(z - zmax), axis=1)) + zmax[:, 0]


def mse(xp: Any, z: Any, a: Any, y: Any) -> Any:
    """l_i = 1/2 sum_k (a_ik - y_ik)^2, shape (m,)."""
    d = a - y
    return 0.5 * xp.sum(d * d, axis=1)


def mse_grad_output(xp: Any, a: Any, y: Any) -> Any:
    """dl_i/dA_i = A_i - Y_i (the cost's dJ/dA is this times 1/m, or w_i / sum w)."""
    return a - y


def binary_cross_entropy(xp: Any, z: Any, a: Any, y: Any) -> Any:
    """l_i = sum_k softplus(z_ik) - y_ik z_ik, shape (m,)."""
    return xp.sum(softplus(xp, z) - y * z, axis=1)


def cross_entropy(xp: Any, z: Any, a: Any, y: Any) -> Any:
    """l_i = logsumexp(z_i) - sum_k y_ik z_ik, shape (m,). Exact for a logit of 1e4:

    >>> import numpy as np
    >>> cross_entropy(np, np.array([[1e4, 0.0]]), None, np.array([[0.0, 1.0]]))
    array([10000.])
    """
    return logsumexp_rows(xp, z) - xp.sum(y * z, axis=1)


def poisson(xp: Any, z: Any, a: Any, y: Any) -> Any:
    """l_i = sum_k e^(z_ik) - y_ik z_ik + y_ik log y_ik - y_ik, shape (m,); paired with the exp
    output its delta is dl_i/dz_i = e^(z_i) - y_i = a_i - y_i."""
    ylogy = xp.where(y > 0, y * xp.log(xp.where(y > 0, y, 1.0)), 0.0)
    return xp.sum(xp.exp(z) - y * z + ylogy - y, axis=1)


def batch_mean(xp: Any, rows: Any, w: Any = None) -> Any:
    """J = 1/m sum_i l_i, or sum_i w_i l_i with row weights ``w (m, 1)`` already divided by
    their sum (:func:`normalized_weights`); a 0-d array."""
    if w is None:  # mean, not sum / m: on NumPy < 2 a float32 sum is a scalar that m promotes to float64
        return xp.mean(rows)
    return xp.sum(rows * w[:, 0])


def label_range(xp: Any, labels: Any) -> tuple[float, float]:
    """The smallest and largest of ``labels`` (shape ``(m,)``, m >= 1) as Python floats, read
    before any cast to int64, which a label like 1e300 would overflow."""
    return float(xp.min(labels)), float(xp.max(labels))


def one_hot(xp: Any, labels: Any, n_classes: int, dtype: Any, device: Any) -> Any:
    """One-hot rows ``Y[i, c] = [labels[i] == c]``, shape ``(m, n_classes)``, for integer-valued
    labels already checked to lie in ``[0, n_classes)`` (NumPy's fast path gathers the rows of the
    identity instead)."""
    classes = xp.arange(n_classes, dtype=xp.int64, device=device)
    return xp.astype(xp.expand_dims(xp.astype(labels, xp.int64, copy=False), axis=1) == classes, dtype)


def normalized_weights(xp: Any, w: Any, total: Any = None) -> Any:
    """Sample weights ``(m,)`` as a column ``w / sum w`` of shape ``(m, 1)``; ``total`` replaces
    ``sum w`` (data-parallel training: the weight of the whole global batch)."""
    return xp.reshape(w / (xp.sum(w) if total is None else total), (w.shape[0], 1))


def paired_delta(xp: Any, a: Any, y: Any) -> Any:
    """dZ_L = (A - Y) / m (note 004, Theorem 6.1)."""
    return (a - y) / a.shape[0]


def weighted_paired_delta(xp: Any, a: Any, y: Any, w: Any) -> Any:
    """dZ_i = w_i (A_i - Y_i) / sum w, with ``w`` from :func:`normalized_weights`."""
    return (a - y) * w


@dataclass(frozen=True)
class Loss:
    """A per-row loss ``rows(xp, Z, A, Y) -> (m,)``, the output activation ``pair`` for which
    ``dZ = (A - Y) / m``, and ``grad_output(xp, A, Y) = dl_i/dA_i`` for other outputs (None where
    that gradient is unstable and only the paired output is allowed)."""

    name: str
    rows: Callable[[Any, Any, Any, Any], Any] = field(repr=False)
    pair: str
    grad_output: Callable[[Any, Any, Any], Any] | None = field(default=None, repr=False)
    uses_activation: bool = True  # False: ``rows`` reads the logits Z only, A may be None


LOSSES: dict[str, Loss] = {
    "mse": Loss("mse", mse, "identity", mse_grad_output),
    "binary_cross_entropy": Loss("binary_cross_entropy", binary_cross_entropy, "sigmoid", uses_activation=False),
    "cross_entropy": Loss("cross_entropy", cross_entropy, "softmax", uses_activation=False),
    "poisson": Loss("poisson", poisson, "exp", uses_activation=False),
}


def get_loss(name: Any) -> Loss:
    """The loss called ``name``: one of :data:`LOSSES`."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; accepted values: {', '.join(LOSSES)}")
    return LOSSES[name]
