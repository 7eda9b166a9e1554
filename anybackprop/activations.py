r"""Activation functions and their derivatives, written once against the array API standard.

Each activation is a pair of small functions of the namespace ``xp``:

* ``forward(xp, Z) -> A``, with ``A = g(Z)`` elementwise (row-wise for softmax), and
* ``backward(xp, Z, A, dA) -> dZ``, the chain rule ``dZ = g'(Z) * dA`` for an upstream
  gradient ``dA`` of the same shape ``(m, n)``. Where the notes express ``g'`` through the
  output (sigmoid ``a(1 - a)``, tanh ``1 - a^2``) the backward uses ``A``.

.. math::

    \sigma(z) = \frac{1}{1 + e^{-z}},\; \sigma' = a(1 - a) \qquad
    \tanh' = 1 - a^2 \qquad
    \operatorname{relu}(z) = \max(z, 0),\; \operatorname{relu}'(z) = [z > 0] \qquad
    \operatorname{leaky}(z) = \begin{cases} z & z > 0 \\ s z & z \le 0 \end{cases}

    \operatorname{softmax}(z)_i = \frac{e^{z_i - \max z}}{\sum_k e^{z_k - \max z}}, \qquad
    dZ = A \odot \Big(dA - \sum_k dA_k A_k\Big) \text{ (row-wise)}

Masks never multiply floats (mixed-kind promotion is undefined in the standard): ``where`` is
used instead, and ``relu'(0) = 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class Activation:
    """A named activation: ``forward``/``backward`` as above, the initialisation it suits
    ("he" for the relu family, "glorot" otherwise) and its parameters (leaky_relu's slope)."""

    name: str
    forward: Callable[[Any, Any], Any] = field(repr=False)
    backward: Callable[[Any, Any, Any, Any], Any] = field(repr=False)
    init: str = "glorot"
    slope: float | None = None

    @property
    def spec(self) -> str | dict[str, Any]:
        """A JSON-able description that :func:`get_activation` turns back into this activation."""
        if self.slope is None or self.slope == DEFAULT_LEAKY_SLOPE:
            return self.name
        return {"name": self.name, "slope": self.slope}


def identity(xp: Any, z: Any) -> Any:
    """g(z) = z."""
    return z


def identity_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """g'(z) = 1, so dZ = dA."""
    return da


def sigmoid(xp: Any, z: Any) -> Any:
    """g(z) = 1 / (1 + e^-z), from ``e = e^-|z|`` so that no exponential overflows:
    1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0."""
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """g'(z) = a (1 - a)."""
    return da * a * (1.0 - a)


def tanh(xp: Any, z: Any) -> Any:
    """g(z) = tanh(z)."""
    return xp.tanh(z)


def tanh_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """g'(z) = 1 - a^2."""
    return da * (1.0 - a * a)


def relu(xp: Any, z: Any) -> Any:
    """g(z) = max(z, 0)."""
    return xp.maximum(z, 0.0)


def relu_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """g'(z) = 1 for z > 0, else 0 (relu'(0) = 0):

    >>> import numpy as np
    >>> relu_backward(np, np.array([-1.0, 0.0, 2.0]), None, np.ones(3))
    array([0., 0., 1.])
    """
    return xp.where(z > 0, da, 0.0)


def _leaky_relu_pair(slope: float) -> tuple[Callable[[Any, Any], Any], Callable[[Any, Any, Any, Any], Any]]:
    def leaky_relu(xp: Any, z: Any) -> Any:
        """g(z) = z for z > 0, slope * z otherwise."""
        return xp.where(z > 0, z, slope * z)

    def leaky_relu_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
        """g'(z) = 1 for z > 0, slope otherwise."""
        return xp.where(z > 0, da, slope * da)

    return leaky_relu, leaky_relu_backward


def exp(xp: Any, z: Any) -> Any:
    """g(z) = e^z: the log link of Poisson regression (an output activation)."""
    return xp.exp(z)


def exp_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """g'(z) = e^z = a, so dZ = a * dA."""
    return a * da


def softmax(xp: Any, z: Any) -> Any:
    """Row-wise a_i = e^(z_i - max z) / sum_k e^(z_k - max z); rows sum to 1 exactly enough
    for any finite logits (the max shift keeps every exponent <= 0)."""
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def row_argmax(xp: Any, z: Any) -> Any:
    """The index of each row's largest entry, the first of equals: ``(m, k) -> (m,)`` (a softmax
    output's class, from its probabilities or, softmax being increasing, from its logits)."""
    return xp.argmax(z, axis=1)


def softmax_backward(xp: Any, z: Any, a: Any, da: Any) -> Any:
    """The Jacobian of note 004 (eq. 39), da_i/dz_j = a_i (delta_ij - a_j), applied row-wise
    to dA: dZ = a * (dA - sum(dA * a, axis=1))."""
    return a * (da - xp.sum(da * a, axis=1, keepdims=True))


def leaky_relu_activation(slope: float = DEFAULT_LEAKY_SLOPE) -> Activation:
    """A leaky relu with the given negative-side slope (0 <= slope < 1)."""
    if not isinstance(slope, (int, float)) or isinstance(slope, bool) or not 0.0 <= slope < 1.0:
        raise ValueError(f"leaky_relu slope must be a number in [0, 1), got {slope!r}")
    forward, backward = _leaky_relu_pair(float(slope))
    return Activation("leaky_relu", forward, backward, init="he", slope=float(slope))


ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation("identity", identity, identity_backward),
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_backward),
    "tanh": Activation("tanh", tanh, tanh_backward),
    "relu": Activation("relu", relu, relu_backward, init="he"),
    "leaky_relu": leaky_relu_activation(),
    "softmax": Activation("softmax", softmax, softmax_backward),
    "exp": Activation("exp", exp, exp_backward),
}
HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid", "identity", "exp")


def get_activation(
    spec: str | dict[str, Any] | Activation, allowed: tuple[str, ...] = tuple(ACTIVATIONS)
) -> Activation:
    """An :class:`Activation` from a name, a ``{"name": ..., "slope": ...}`` dict or an instance."""
    if isinstance(spec, Activation):
        activation = spec
    elif isinstance(spec, dict):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        if spec.get("name") != "leaky_relu" or set(kwargs) - {"slope"}:
            raise ValueError(f"only leaky_relu takes parameters ({{'name': 'leaky_relu', 'slope': s}}), got {spec!r}")
        activation = leaky_relu_activation(**kwargs)
    elif isinstance(spec, str) and spec in ACTIVATIONS:  # a str first: a list or dict name is unhashable
        activation = ACTIVATIONS[spec]
    else:
        raise ValueError(f"unknown activation {spec!r}; accepted values: {', '.join(allowed)}")
    if activation.name not in allowed:
        raise ValueError(f"activation {activation.name!r} is not allowed here; accepted values: {', '.join(allowed)}")
    return activation
