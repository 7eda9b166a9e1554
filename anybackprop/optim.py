"""Optimizers: the update formulas of :mod:`anybackprop.updates` plus explicit state.

An optimizer's state (velocities, Adam's moments and step count) is created by :meth:`Optimizer.init`
for one model, before the first step (``fit`` calls it); reusing the optimizer on the same model
continues from its state, and on a model of another shape, dtype or backend is an error.
``step(xp, params, grads)`` updates ``params`` in place where the arrays allow it and by replacing
the dict entry where they do not, on the device of the model given to ``init`` (inside its
``Backend.activate()``, wherever it is called from).

``weight_decay`` adds the L2 term ``wd * P`` to the gradient of the parameters the model marks for
decay (``model.decay``: the weights, not biases or normalisation scales). The learning rate follows
a schedule: "constant", "step" (times ``gamma`` every ``step_size`` epochs) or "cosine" (from
``lr`` to 0 over the run), or any callable ``(epoch, epochs) -> factor``. :data:`OPTIMIZERS` is the
one registry of names, with each optimizer's recommended learning rate, that ``fit``, the command
line and the estimators share.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .updates import adam_step, decayed, momentum_step, sgd_update
from .validation import check_positive_float, check_positive_int

SCHEDULES = ("constant", "step", "cosine")


def _constant(epoch: int, epochs: int) -> float:
    return 1.0


def step_schedule(step_size: int = 10, gamma: float = 0.5) -> Callable[[int, int], float]:
    """Factor ``gamma ** (epoch // step_size)``."""
    step_size = check_positive_int(step_size, "step_size")
    gamma = check_positive_float(gamma, "gamma")  # a Python float, whatever number type was given
    return lambda epoch, epochs: gamma ** (epoch // step_size)


def cosine_schedule(epoch: int, epochs: int) -> float:
    """Factor ``(1 + cos(pi epoch / epochs)) / 2``: 1 at the start, near 0 at the end."""
    return 0.5 * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))


def get_schedule(schedule: str | Callable[[int, int], float]) -> Callable[[int, int], float]:
    """A learning-rate schedule ``f(epoch, epochs) -> factor`` from a name in :data:`SCHEDULES` or a function."""
    if callable(schedule):
        return schedule
    if not isinstance(schedule, str) or schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; accepted values: {', '.join(SCHEDULES)} or a callable")
    return step_schedule() if schedule == "step" else cosine_schedule if schedule == "cosine" else _constant


class Optimizer:
    """Base class: learning rate, schedule, weight decay, explicit state and the in-place or
    functional update. Subclasses name their per-parameter state arrays in ``slots`` and
    implement :meth:`_update`."""

    slots: tuple[str, ...] = ()
    counters: tuple[str, ...] = ()  # scalar state beside the arrays (Adam's step count "t")
    nonnegative: tuple[str, ...] = ()  # slots whose entries are never negative (Adam's second moment "v")

    def __init__(self, lr: float, weight_decay: float = 0.0, schedule: str | Callable = "constant") -> None:
        self.base_lr = check_positive_float(lr, "lr")
        self.lr = self.base_lr
        self.weight_decay = check_positive_float(weight_decay, "weight_decay", allow_zero=True)
        self.schedule = get_schedule(schedule)
        self.schedule_name = schedule if isinstance(schedule, str) else "callable"
        self.state: dict[str, dict[str, Any]] | None = None
        self._signature: tuple | None = None
        self._decay: frozenset = frozenset()
        self._inplace = False
        self._sgd: Callable = sgd_update  # the SGD update as the model's fast paths resolve it
        self._activate: Callable = contextlib.nullcontext  # the model's Backend.activate, from init

    def init(self, model: Any) -> None:
        """Create the state for ``model`` (zeros for every slot and parameter), or keep the
        state of an earlier ``init`` on a model of the same parameters, dtype and backend."""
        signature = (
            model.backend.name,
            str(model.backend.device),
            model.dtype_name,
            tuple((k, tuple(p.shape)) for k, p in model.params.items()),
        )
        if self.state is not None and signature != self._signature:
            raise ValueError(
                f"this {type(self).__name__} holds state for another model ({_describe(self._signature)}), "
                f"not for this one ({_describe(signature)}); use a new optimizer or call reset() first"
            )
        if self.state is None:
            xp, device = model.backend.xp, model.backend.device
            with model.backend.activate():  # CuPy's zeros ignores device= (array-api-compat #337)
                self.state = {
                    slot: {k: xp.zeros(p.shape, dtype=p.dtype, device=device) for k, p in model.params.items()}
                    for slot in self.slots
                }
            self._init_counters()
        self._signature = signature
        self._activate = model.backend.activate  # steps run on the model's device, called from anywhere
        self._decay = frozenset(model.decay)
        self._inplace = all(map(model.backend.adapter.writeable, model.params.values()))
        self._sgd = model.fast.get(sgd_update, may_overwrite=self._inplace)

    def load_state(self, model: Any, state: dict[str, dict[str, Any]], counters: dict[str, int]) -> None:
        """Take saved state (``{slot: {parameter key: host array}}`` and ``{counter: int}``, as
        :attr:`state` and :attr:`counters` hold them) for ``model``; :meth:`init` must have run."""
        if self.state is None:
            raise ValueError(f"{type(self).__name__}.load_state before init: call optimizer.init(model) first")
        if set(state) != set(self.slots) or set(counters) != set(self.counters):
            raise ValueError(
                f"saved optimizer state has slots {sorted(state)} and counters {sorted(counters)}; "
                f"{type(self).__name__} needs {sorted(self.slots)} and {sorted(self.counters)}"
            )
        for slot, arrays in state.items():
            current = self.state[slot]
            if set(arrays) != set(current):
                raise ValueError(f"saved optimizer slot {slot!r} has keys {sorted(arrays)}, expected {sorted(current)}")
            for key, value in arrays.items():
                arr = model.backend.asarray(value, model.dtype, name=f"optimizer {slot}[{key!r}]")
                if tuple(arr.shape) != tuple(current[key].shape):
                    raise ValueError(
                        f"saved optimizer {slot}[{key!r}] has shape {tuple(arr.shape)}, expected "
                        f"{tuple(current[key].shape)}"
                    )
                current[key] = model.backend.xp.asarray(arr, copy=True, device=model.backend.device)
        for name, value in counters.items():
            setattr(self, name, int(value))

    @property
    def kind(self) -> str:
        """The name in :data:`OPTIMIZERS` this optimizer is an instance of (a subclass of
        another's: its class name, lower case)."""
        return type(self).__name__.lower()

    def settings(self) -> dict[str, Any]:
        """Everything besides the state that decides this optimizer's updates, as JSON values
        (a checkpoint records them and a resume must match them): the kind, the learning rate,
        weight decay, the schedule's name ("callable" for a function) and the kind's own."""
        return {
            "kind": self.kind,
            "lr": self.base_lr,
            "weight_decay": self.weight_decay,
            "schedule": self.schedule_name,
        }

    def reset(self) -> None:
        """Forget the state, so that the next :meth:`init` starts afresh."""
        self.state, self._signature = None, None

    def _init_counters(self) -> None:
        """Scalar state beside the arrays (Adam's step count)."""

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Set the learning rate for ``epoch`` (0-based) of ``epochs``."""
        factor = self.schedule(epoch, epochs)
        real = type(factor) is float or (not isinstance(factor, bool) and isinstance(factor, numbers.Real))
        if not real or not 0 <= factor < float("inf"):
            raise ValueError(f"schedule returned {factor!r} for epoch {epoch}; expected a finite factor >= 0")
        self.lr = self.base_lr * float(factor)  # a Python float: a NumPy scalar would not mix with every backend

    def step(self, xp: Any, params: dict, grads: dict) -> None:
        """One update of ``params`` from ``grads`` (same keys), in place where the arrays allow it."""
        if self.state is None:
            raise ValueError(f"{type(self).__name__}.step before init: call optimizer.init(model) first (fit does)")
        self._begin_step()
        with self._activate():
            self._apply(xp, params, grads, self.state, self._scalars(self.lr, self._step_count()), self._inplace)

    def apply(self, xp: Any, params: dict, grads: dict, state: dict, lr: Any, t: Any) -> tuple[dict, dict]:
        """The same update as a pure function: new ``(params, state)`` dicts from ``params``,
        ``grads`` and the slots ``state`` (as :attr:`state` holds them), writing into none of
        them, at learning rate ``lr`` and step number ``t`` (1 for the first step; Adam's bias
        corrections). ``lr`` and ``t`` may be 0-d arrays, so that a compiled step takes them as
        inputs; this optimizer's own state and counters are not touched."""
        params = dict(params)
        state = {slot: dict(arrays) for slot, arrays in state.items()}
        self._apply(xp, params, grads, state, self._scalars(lr, t), False)
        return params, state

    def _apply(self, xp: Any, params: dict, grads: dict, state: dict, scalars: dict, inplace: bool) -> None:
        decay, wd = self._decay, self.weight_decay
        for key, g in grads.items():
            if wd and key in decay:
                g = decayed(xp, params[key], g, wd)
            u = self._update(xp, params, state, key, g, scalars, inplace)
            if u is None:  # the update wrote params[key] itself
                continue
            if inplace:
                params[key] -= u
            else:
                params[key] = params[key] - u

    def _begin_step(self) -> None:
        """Per-step counters (Adam's step count)."""

    def _step_count(self) -> int:
        """The number of the step under way (1-based), for :meth:`_scalars`."""
        return 0

    def _scalars(self, lr: Any, t: Any) -> dict[str, Any]:
        """The step's scalars from the learning rate and the step number (Python floats, or 0-d
        arrays in a compiled step)."""
        return {"lr": lr}

    def _update(self, xp: Any, params: dict, state: dict, key: str, g: Any, scalars: dict, inplace: bool) -> Any:
        """The step ``U`` (``P' = P - U``) for one parameter, storing the new slots in ``state``;
        or None after storing ``params[key]`` itself (a fused in-place path, only when
        ``inplace``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.base_lr}, weight_decay={self.weight_decay})"


def _describe(signature: tuple | None) -> str:
    if signature is None:
        return "none"
    backend, device, dtype, shapes = signature
    return f"{backend} on {device}, {dtype}, params " + ", ".join(f"{k}{s}" for k, s in shapes)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum."""

    def __init__(self, lr: float = 0.1, momentum: float = 0.0, nesterov: bool = False, **kwargs: Any) -> None:
        super().__init__(lr, **kwargs)
        self.momentum = check_positive_float(momentum, "momentum", allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and not self.momentum:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.slots = ("velocity",) if self.momentum else ()

    @property
    def kind(self) -> str:
        return "sgd" if not self.momentum else "nesterov" if self.nesterov else "momentum"

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "momentum": self.momentum, "nesterov": self.nesterov}

    def _apply(self, xp: Any, params: dict, grads: dict, state: dict, scalars: dict, inplace: bool) -> None:
        if self.momentum or self.weight_decay or not inplace or self._sgd is not sgd_update:
            super()._apply(xp, params, grads, state, scalars, inplace)
            return
        lr = scalars["lr"]
        for key, g in grads.items():  # plain SGD in place, the base's loop without its per-key calls
            params[key] -= lr * g

    def _update(self, xp: Any, params: dict, state: dict, key: str, g: Any, scalars: dict, inplace: bool) -> Any:
        lr = scalars["lr"]
        if self.momentum:
            velocity = state["velocity"]
            u, velocity[key] = momentum_step(xp, g, velocity[key], lr, self.momentum, self.nesterov)
            return u
        if self._sgd is sgd_update or not inplace:
            return lr * g
        params[key] = self._sgd(xp, params[key], g, lr)  # a fused update in P's buffer
        return None

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.base_lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
            f"weight_decay={self.weight_decay})"
        )


class Adam(Optimizer):
    """Adam with bias correction."""

    slots = ("m", "v")
    counters = ("t",)
    nonnegative = ("v",)

    def __init__(
        self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, **kwargs: Any
    ) -> None:
        super().__init__(lr, **kwargs)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= check_positive_float(beta, name, allow_zero=True) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = check_positive_float(eps, "eps")
        self.t = 0
        self._adam: Callable = adam_step  # the moments' update as the model's fast paths resolve it

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def init(self, model: Any) -> None:
        super().init(model)
        writeable = model.backend.adapter.writeable
        owned = self._inplace and all(writeable(a) for arrays in (self.state or {}).values() for a in arrays.values())
        self._adam = model.fast.get(adam_step, may_overwrite=owned)  # a fast path updates M and S in place

    def _init_counters(self) -> None:
        self.t = 0

    def _begin_step(self) -> None:
        self.t += 1

    def _step_count(self) -> int:
        return self.t

    def _scalars(self, lr: Any, t: Any) -> dict[str, Any]:
        return {"step_size": lr / (1.0 - self.beta1**t), "v_scale": 1.0 / (1.0 - self.beta2**t)}

    def _update(self, xp: Any, params: dict, state: dict, key: str, g: Any, scalars: dict, inplace: bool) -> Any:
        m, v = state["m"], state["v"]
        u, m[key], v[key] = (self._adam if inplace else adam_step)(
            xp, g, m[key], v[key], scalars["step_size"], self.beta1, self.beta2, scalars["v_scale"], self.eps
        )
        return u

    def __repr__(self) -> str:
        return (
            f"Adam(lr={self.base_lr}, beta1={self.beta1}, beta2={self.beta2}, eps={self.eps}, "
            f"weight_decay={self.weight_decay})"
        )


@dataclass(frozen=True)
class OptimizerSpec:
    """A registered optimizer: how to build it from keywords and its recommended learning rate."""

    name: str
    build: Callable[..., Optimizer]
    lr: float
    summary: str


OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        OptimizerSpec("sgd", SGD, 0.1, "plain stochastic gradient descent"),
        OptimizerSpec("momentum", lambda **kw: SGD(**{"momentum": 0.9, **kw}), 0.05, "SGD with momentum 0.9"),
        OptimizerSpec(
            "nesterov",
            lambda **kw: SGD(nesterov=True, **{"momentum": 0.9, **kw}),
            0.05,
            "SGD with Nesterov momentum 0.9",
        ),
        OptimizerSpec("adam", Adam, 3e-3, "Adam with bias correction"),
    )
}


def get_optimizer(optimizer: str | Optimizer, lr: float | None = None, **kwargs: Any) -> Optimizer:
    """An optimizer from a name in :data:`OPTIMIZERS` (``lr`` defaults to its recommended
    learning rate) or an instance (then ``lr`` and settings belong to the instance)."""
    if isinstance(optimizer, Optimizer):
        if lr is not None or kwargs:
            raise ValueError("pass lr and other settings to the optimizer object, not to fit, when giving an instance")
        return optimizer
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; accepted values: {', '.join(OPTIMIZERS)} or an Optimizer")
    spec = OPTIMIZERS[optimizer]
    return spec.build(lr=spec.lr if lr is None else lr, **kwargs)
