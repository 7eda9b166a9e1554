"""Losses over a batch of ``m`` rows, computed from the logits ``Z`` (shape ``(m, k)``).

The cost is the batch mean:

* ``mse``: ``J = 1/(2m) sum ||a - y||^2``,
* ``binary_cross_entropy``: ``J = 1/m sum softplus(z) - y z`` (the logit form of
  ``-y log a - (1 - y) log(1 - a)``, with ``softplus(z) = max(z, 0) + log1p(e^-|z|)``),
* ``cross_entropy``: ``J = 1/m sum_rows logsumexp(z) - sum(y * z)``.

All three are finite and exact for logits of 1e4 in float32. Each loss is paired with the output
activation for which the output delta is ``dZ = (A - Y) / m`` (note 004, Theorem 6.1); any other
pairing goes through the general chain rule ``dZ = g'(Z) * dJ/dA`` (notes 002 and 003).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .activations import Activation


def softplus(xp: Any, z: Any) -> Any:
    """log(1 + e^z) = max(z, 0) + log1p(e^-|z|), without overflow."""
    return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))


def logsumexp_rows(xp: Any, z: Any) -> Any:
    """Row-wise log sum_k e^(z_k) = max + log sum e^(z - max), shape (m,)."""
    zmax = xp.max(z, axis=1, keepdims=True)
    return xp.log(xp.sum(xp.exp(z - zmax), axis=1)) + zmax[:, 0]


def mse(xp: Any, z: Any, a: Any, y: Any) -> Any:
    """J = 1/(2m) sum (a - y)^2, a 0-d array."""
    d = a - y
    return xp.sum(d * d) / (2 * a.shape[0])


def mse_grad_output(xp: Any, a: Any, y: Any) -> Any:
    """dJ/dA = (A - Y) / m."""
    return (a - y) / a.shape[0]


def binary_cross_entropy(xp: Any, z: Any, a: Any, y: Any) -> Any:
    """J = 1/m sum softplus(z) - y z, a 0-d array."""
    return xp.sum(softplus(xp, z) - y * z) / z.shape[0]


def cross_entropy(xp: Any, z: Any, a: Any, y: Any) -> Any:
    """J = 1/m sum_rows (logsumexp(z) - sum_k y_k z_k), a 0-d array."""
    return xp.sum(logsumexp_rows(xp, z) - xp.sum(y * z, axis=1)) / z.shape[0]


@dataclass(frozen=True)
class Loss:
    """A batch-mean loss ``value(xp, Z, A, Y) -> 0-d array``, the output activation ``pair``
    for which ``dZ = (A - Y) / m``, and ``grad_output(xp, A, Y) = dJ/dA`` for other outputs
    (None where that gradient is unstable and only the paired output is allowed)."""

    name: str
    value: Callable[[Any, Any, Any, Any], Any] = field(repr=False)
    pair: str
    grad_output: Callable[[Any, Any, Any], Any] | None = field(default=None, repr=False)
    uses_activation: bool = True  # False: ``value`` reads the logits Z only, A may be None


LOSSES: dict[str, Loss] = {
    "mse": Loss("mse", mse, "identity", mse_grad_output),
    "binary_cross_entropy": Loss("binary_cross_entropy", binary_cross_entropy, "sigmoid", uses_activation=False),
    "cross_entropy": Loss("cross_entropy", cross_entropy, "softmax", uses_activation=False),
}
DEFAULT_LOSS = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy", "identity": "mse"}


def get_loss(name: str | None, output: Activation) -> Loss:
    """The loss called ``name`` (default: the output's pair), checked to suit ``output``."""
    if name is None:
        name = DEFAULT_LOSS[output.name]
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; accepted values: {', '.join(LOSSES)}")
    loss = LOSSES[name]
    if loss.pair != output.name and loss.grad_output is None:
        raise ValueError(f"loss {name!r} needs output {loss.pair!r}, got output {output.name!r}")
    return loss


def paired_delta(xp: Any, a: Any, y: Any) -> Any:
    """dZ_L = (A - Y) / m (note 004, Theorem 6.1)."""
    return (a - y) / a.shape[0]


def output_delta(xp: Any, loss: Loss, output: Activation, z: Any, a: Any, y: Any, kernels: dict | None = None) -> Any:
    """dZ_L: :func:`paired_delta` for the paired output, else ``g'(Z) * dJ/dA``; ``kernels``
    maps portable formulas to a backend's fast paths."""
    kernels = kernels or {}
    if output.name == loss.pair:
        return kernels.get(paired_delta, paired_delta)(xp, a, y)
    return kernels.get(output.backward, output.backward)(xp, z, a, loss.grad_output(xp, a, y))
