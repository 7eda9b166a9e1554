"""Gradient checking: analytic gradients against central finite differences in float64.

For each parameter entry ``p``: ``numeric = (J(p + eps) - J(p - eps)) / (2 eps)``. The error
reported per entry is ``|analytic - numeric| / max(|analytic| + |numeric|, 1e-8)``; the floor keeps
dead units (both zero) from dividing 0 by 0.
"""

from __future__ import annotations

import itertools
from typing import Any

from .backend import host_rng
from .network import MLP


def numerical_grads(model: MLP, X: Any, Y: Any, eps: float = 1e-6) -> dict[str, Any]:
    """Central-difference gradients of ``model.loss(X, Y)``, same keys and shapes as ``params``.

    ``model`` should be float64 (float32 cannot resolve the differences; see :func:`gradcheck`).
    """
    xp = model.backend.xp
    x, y = model._check_XY(X, Y)
    grads = {}
    for key, p in model.params.items():
        g = xp.zeros(p.shape, dtype=p.dtype, device=model.backend.device)
        for idx in itertools.product(*(range(n) for n in p.shape)):
            orig = float(p[idx])
            p[idx] = orig + eps
            plus = float(model._loss(xp, model._forward(xp, x), y))
            p[idx] = orig - eps
            minus = float(model._loss(xp, model._forward(xp, x), y))
            p[idx] = orig
            g[idx] = (plus - minus) / (2 * eps)
        grads[key] = g
    return grads


def gradcheck(model: MLP, X: Any, Y: Any, *, eps: float = 1e-6, mode: str = "full", seed: int = 0, verbose: bool = False) -> float:
    """The maximum relative error of ``model``'s analytic gradients against central
    differences, computed on a float64 copy of the model (the model itself is untouched).

    ``mode="full"`` perturbs every parameter entry (2 forward passes each); ``mode="directional"``
    checks the derivative along one random direction ``v`` of all parameters at once,
    ``<grad, v>`` against ``(J(p + eps v) - J(p - eps v)) / (2 eps)``, in 2 forward passes
    whatever the size of the network (JAX's ``check_grads``, PyTorch's fast mode).
    """
    if mode not in ("full", "directional"):
        raise ValueError(f"unknown mode {mode!r}; accepted values: full, directional")
    model64 = model.copy(dtype="float64")
    xp = model64.backend.xp
    _, analytic = model64.loss_and_grads(X, Y)
    if mode == "directional":
        return _directional_error(model64, X, Y, analytic, eps, seed, verbose)
    numeric = numerical_grads(model64, X, Y, eps)
    errors = {}
    for key in model64.params:
        a, n = analytic[key], numeric[key]
        rel = xp.abs(a - n) / xp.maximum(xp.abs(a) + xp.abs(n), 1e-8)
        errors[key] = float(xp.max(rel))
    if verbose:
        for key, err in sorted(errors.items(), key=lambda kv: -kv[1]):
            print(f"{key:>6}  {tuple(model64.params[key].shape)!s:>12}  max relative error {err:.3e}")
    return max(errors.values())


def _directional_error(model: MLP, X: Any, Y: Any, analytic: dict, eps: float, seed: int, verbose: bool) -> float:
    xp, backend = model.backend.xp, model.backend
    rng = host_rng(seed)
    direction = {k: rng.standard_normal(tuple(p.shape)) for k, p in model.params.items()}
    norm = sum(float((d * d).sum()) for d in direction.values()) ** 0.5
    v = {k: backend.asarray(d / norm, model.dtype) for k, d in direction.items()}
    slope = sum(float(xp.sum(analytic[k] * v[k])) for k in v)
    base = dict(model.params)
    losses = []
    for sign in (1.0, -1.0):
        model.set_params({k: base[k] + sign * eps * v[k] for k in base})
        losses.append(model.loss(X, Y))
    model.set_params(base)
    numeric = (losses[0] - losses[1]) / (2 * eps)
    error = abs(slope - numeric) / max(abs(slope) + abs(numeric), 1e-8)
    if verbose:
        print(f"directional derivative: analytic {slope:.10e}, central difference {numeric:.10e}, relative error {error:.3e}")
    return error
