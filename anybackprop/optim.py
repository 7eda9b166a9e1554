"""Optimizers, array API only. Each ``step(xp, params, grads)`` updates ``params`` in place where
the arrays allow it (``p -= u``) and by replacing the dict entry where they do not.

* SGD (note 004): ``W <- W - lr dW``; with momentum ``v <- mu v - lr dW; W <- W + v``; Nesterov
  ``W <- W + mu v - lr dW`` (with the new ``v``).
* Adam (bias-corrected): ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
  ``W <- W - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.

``weight_decay`` adds the L2 term ``wd * W`` to the gradient of weights (not biases). The learning
rate follows a schedule: "constant", "step" (times ``gamma`` every ``step_size`` epochs) or
"cosine" (from ``lr`` to 0 over the run), or any callable ``(epoch, epochs) -> factor``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import array_api_compat

from .validation import check_positive_float, check_positive_int

SCHEDULES = ("constant", "step", "cosine")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


def sgd_update(xp: Any, p: Any, g: Any, lr: float) -> Any:
    """The plain SGD step W - lr dW (note 004), as a new array: the reference formula that a
    backend's in-place fast path replaces."""
    return p - lr * g


def _constant(epoch: int, epochs: int) -> float:
    return 1.0


def step_schedule(step_size: int = 10, gamma: float = 0.5) -> Callable[[int, int], float]:
    """Factor ``gamma ** (epoch // step_size)``."""
    check_positive_int(step_size, "step_size")
    check_positive_float(gamma, "gamma")
    return lambda epoch, epochs: gamma ** (epoch // step_size)


def cosine_schedule(epoch: int, epochs: int) -> float:
    """Factor ``(1 + cos(pi epoch / epochs)) / 2``: 1 at the start, near 0 at the end."""
    return 0.5 * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))


def get_schedule(schedule: str | Callable[[int, int], float]) -> Callable[[int, int], float]:
    if callable(schedule):
        return schedule
    table = {"constant": _constant, "step": step_schedule(), "cosine": cosine_schedule}
    if schedule not in table:
        raise ValueError(f"unknown schedule {schedule!r}; accepted values: {', '.join(SCHEDULES)} or a callable")
    return table[schedule]


class Optimizer:
    """Base class: learning rate, schedule, weight decay and the in-place/functional update."""

    def __init__(self, lr: float, weight_decay: float = 0.0, schedule: str | Callable = "constant") -> None:
        self.base_lr = check_positive_float(lr, "lr")
        self.lr = self.base_lr
        self.weight_decay = check_positive_float(weight_decay, "weight_decay", allow_zero=True)
        self.schedule = get_schedule(schedule)
        self._inplace: bool | None = None
        self.kernels: dict = {}  # a backend's fast paths, set by fit

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Set the learning rate for ``epoch`` (0-based) of ``epochs``."""
        self.lr = self.base_lr * self.schedule(epoch, epochs)

    def _grad(self, key: str, p: Any, g: Any) -> Any:
        return g + self.weight_decay * p if self.weight_decay and key.startswith("W") else g

    def _subtract(self, params: dict, key: str, update: Any) -> None:
        """``params[key] -= update``: in place where the arrays allow it (checked once)."""
        p = params[key]
        if self._inplace is None:
            self._inplace = array_api_compat.is_writeable_array(p)
        if self._inplace:
            p -= update
        else:
            params[key] = p - update

    def step(self, xp: Any, params: dict, grads: dict) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.base_lr}, weight_decay={self.weight_decay})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum."""

    def __init__(self, lr: float = 0.1, momentum: float = 0.0, nesterov: bool = False, **kwargs: Any) -> None:
        super().__init__(lr, **kwargs)
        self.momentum = check_positive_float(momentum, "momentum", allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and not self.momentum:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = nesterov
        self.velocity: dict[str, Any] = {}

    def step(self, xp: Any, params: dict, grads: dict) -> None:
        lr, mu = self.lr, self.momentum
        for key, g in grads.items():
            g = self._grad(key, params[key], g)
            if not mu:
                fast = self.kernels.get(sgd_update)
                if fast is not None:
                    fast(xp, params[key], g, lr)
                else:
                    self._subtract(params, key, lr * g)
                continue
            v = self.velocity.get(key)
            v = -lr * g if v is None else mu * v - lr * g
            self.velocity[key] = v
            self._subtract(params, key, lr * g - mu * v if self.nesterov else -v)

    def __repr__(self) -> str:
        return f"SGD(lr={self.base_lr}, momentum={self.momentum}, nesterov={self.nesterov}, weight_decay={self.weight_decay})"


class Adam(Optimizer):
    """Adam with bias correction."""

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, **kwargs: Any) -> None:
        super().__init__(lr, **kwargs)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= check_positive_float(beta, name, allow_zero=True) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = check_positive_float(eps, "eps")
        self.t = 0
        self.m: dict[str, Any] = {}
        self.v: dict[str, Any] = {}

    def step(self, xp: Any, params: dict, grads: dict) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr / (1.0 - b1**self.t)
        v_scale = 1.0 / (1.0 - b2**self.t)
        for key, g in grads.items():
            g = self._grad(key, params[key], g)
            m = (1.0 - b1) * g if key not in self.m else b1 * self.m[key] + (1.0 - b1) * g
            v = (1.0 - b2) * (g * g) if key not in self.v else b2 * self.v[key] + (1.0 - b2) * (g * g)
            self.m[key], self.v[key] = m, v
            self._subtract(params, key, step_size * m / (xp.sqrt(v * v_scale) + self.eps))

    def __repr__(self) -> str:
        return f"Adam(lr={self.base_lr}, beta1={self.beta1}, beta2={self.beta2}, eps={self.eps}, weight_decay={self.weight_decay})"


def get_optimizer(optimizer: str | Optimizer, lr: float | None = None, **kwargs: Any) -> Optimizer:
    """An optimizer from a name ("sgd", "momentum" (0.9), "nesterov", "adam") or an instance."""
    if isinstance(optimizer, Optimizer):
        if lr is not None or kwargs:
            raise ValueError("pass lr and other settings to the optimizer object, not to fit, when giving an instance")
        return optimizer
    if lr is not None:
        kwargs["lr"] = lr
    if optimizer == "sgd":
        return SGD(**kwargs)
    if optimizer in ("momentum", "nesterov"):
        kwargs.setdefault("momentum", 0.9)
        return SGD(nesterov=optimizer == "nesterov", **kwargs)
    if optimizer == "adam":
        return Adam(**kwargs)
    raise ValueError(f"unknown optimizer {optimizer!r}; accepted values: {', '.join(OPTIMIZERS)} or an Optimizer")
