"""Gradient checking: analytic gradients against central finite differences in float64.

For each parameter entry ``p``: ``numeric = (J(p + eps) - J(p - eps)) / (2 eps)``, where ``J`` is
the training-mode cost that ``loss_and_grads`` differentiates (batch statistics; dropout masks
drawn again from the same seed for every evaluation, so they stay fixed). The error reported per
entry is ``|analytic - numeric| / max(|analytic| + |numeric|, 1e-8)``; the floor keeps dead units
(both zero) from dividing 0 by 0. Parameters are perturbed by ``where`` into new arrays, never
in place, so read-only arrays work too.
"""

from __future__ import annotations

from typing import Any

from .backend import host_rng
from .losses import normalized_weights
from .network import Sequential
from .validation import check_positive_float


def _training_cost(model: Sequential, x: Any, y: Any, wn: Any, seed: int, params: dict) -> float:
    xp = model.backend.xp
    fwd = model.forward_pass(x, training=True, rng=host_rng(seed), params=params)
    return float(model.head.cost(xp, fwd.logits, y, wn, model.fast))


def numerical_grads(
    model: Sequential, X: Any, Y: Any, eps: float = 1e-6, *, sample_weight: Any = None, seed: int = 0
) -> dict[str, Any]:
    """Central-difference gradients of the training-mode cost, same keys and shapes as ``params``.

    ``model`` should be float64 (float32 cannot resolve the differences; see :func:`gradcheck`).
    """
    backend, xp = model.backend, model.backend.xp
    with backend.activate():
        x, y, w = model.check_data(X, Y, sample_weight)
        wn = None if w is None else normalized_weights(xp, w)
        grads = {}
        for key, p in model.params.items():
            size = 1
            for n in p.shape:
                size *= n
            index = xp.reshape(xp.arange(size, device=backend.device), p.shape)
            g = []
            for i in range(size):
                hit = index == i
                plus, minus = (
                    _training_cost(model, x, y, wn, seed, {**model.params, key: xp.where(hit, p + step, p)})
                    for step in (eps, -eps)
                )
                g.append((plus - minus) / (2 * eps))
            grads[key] = xp.reshape(backend.asarray(g, model.dtype), p.shape)
    return grads


def gradcheck(
    model: Sequential,
    X: Any,
    Y: Any,
    *,
    eps: float = 1e-6,
    mode: str = "full",
    seed: int = 0,
    sample_weight: Any = None,
    verbose: bool = False,
) -> float:
    """The maximum relative error of ``model``'s analytic gradients against central
    differences, computed on a float64 copy of the model (the model itself is untouched).

    ``mode="full"`` perturbs every parameter entry (2 forward passes each); ``mode="directional"``
    checks the derivative along one random direction ``v`` of all parameters at once,
    ``<grad, v>`` against ``(J(p + eps v) - J(p - eps v)) / (2 eps)``, in 2 forward passes
    whatever the size of the network (JAX's ``check_grads``, PyTorch's fast mode). ``seed`` fixes
    the dropout masks (and the direction).
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"gradcheck expects an anybackprop model (MLP or Sequential), got {type(model).__name__}")
    if not isinstance(mode, str) or mode not in ("full", "directional"):
        raise ValueError(f"unknown mode {mode!r}; accepted values: full, directional")
    check_positive_float(eps, "eps")
    model64 = model.copy(dtype="float64")
    xp = model64.backend.xp
    with model64.backend.activate():  # every comparison runs on the model's device
        _, analytic = model64.loss_and_grads(X, Y, sample_weight, seed=seed)
        if mode == "directional":
            return _directional_error(model64, X, Y, sample_weight, analytic, eps, seed, verbose)
        numeric = numerical_grads(model64, X, Y, eps, sample_weight=sample_weight, seed=seed)
        errors = {}
        for key in model64.params:
            a, n = analytic[key], numeric[key]
            errors[key] = float(xp.max(xp.abs(a - n) / xp.maximum(xp.abs(a) + xp.abs(n), 1e-8)))
    if verbose:
        for key, err in sorted(errors.items(), key=lambda kv: -kv[1]):
            print(f"{key:>6}  {tuple(model64.params[key].shape)!s:>12}  max relative error {err:.3e}")
    return max(errors.values())


def _directional_error(
    model: Sequential, X: Any, Y: Any, sample_weight: Any, analytic: dict, eps: float, seed: int, verbose: bool
) -> float:
    backend, xp = model.backend, model.backend.xp
    rng = host_rng(seed)
    direction = {k: rng.standard_normal(tuple(p.shape)) for k, p in model.params.items()}
    norm = sum(float((d * d).sum()) for d in direction.values()) ** 0.5
    v = {k: backend.asarray(d / norm, model.dtype) for k, d in direction.items()}
    slope = sum(float(xp.sum(analytic[k] * v[k])) for k in v)
    x, y, w = model.check_data(X, Y, sample_weight)  # inside gradcheck's backend.activate()
    wn = None if w is None else normalized_weights(xp, w)
    costs = [
        _training_cost(model, x, y, wn, seed, {k: p + sign * eps * v[k] for k, p in model.params.items()})
        for sign in (1.0, -1.0)
    ]
    numeric = (costs[0] - costs[1]) / (2 * eps)
    error = abs(slope - numeric) / max(abs(slope) + abs(numeric), 1e-8)
    if verbose:
        print(
            f"directional derivative: analytic {slope:.10e}, central difference {numeric:.10e}, relative error "
            f"{error:.3e}"
        )
    return error
