"""The divergence guard of :func:`anybackprop.training.fit`: :class:`DivergenceGuard` keeps the last
finite parameters and, when an epoch blows up, puts them back and raises."""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from .trainable import Trainable


def largest_magnitude(xp: Any, arrays: list) -> Any:
    """The largest ``|entry|`` of ``arrays`` as a 0-d array (0 for none; NaN where an entry is
    NaN, which propagates through max and min), from each array's max and min: no temporary the
    size of an array, and no sum that could overflow."""
    ends = xp.stack([e for a in arrays for e in (xp.max(a), xp.min(a))]) if arrays else xp.zeros(1)
    return xp.max(xp.abs(ends))


def flat_copy(xp: Any, arrays: list, out: Any = None) -> Any:
    """Every entry of ``arrays`` (one dtype, at least one array), in order, as one fresh 1-D array.
    ``out``: the caller's last copy, which a fast path may refill in place where it fits."""
    return xp.concat([xp.reshape(a, (-1,)) for a in arrays])


class DivergenceGuard:
    """Keeps the parameters and state of the last epoch that ended finite. An epoch whose loss,
    validation loss or parameters are not finite (a blow-up in its last update included) puts
    them back and raises, so the model is never left with NaN or infinite parameters."""

    def __init__(self, model: Trainable, epoch: int) -> None:
        self.model = model
        self._flat_copy = model.fast.get(flat_copy, may_overwrite=True)
        self._largest = model.fast.get(largest_magnitude)
        self.params: Any = None  # the kept parameters, one flat copy in the order of model.params
        self.state: dict[str, Any] = {}
        self._keep(epoch)

    def _keep(self, epoch: int) -> None:
        """Copy the parameters (one flat copy, refilled in place where the fast paths allow it:
        no fresh allocation, and its page faults, per epoch) and the state (refilled in place
        where the arrays allow it) into the kept arrays."""
        model = self.model
        xp = model.backend.xp
        self.epoch = epoch
        arrays = list(model.params.values())
        self.params = self._flat_copy(xp, arrays, self.params) if arrays else None  # none to keep
        for key, value in model.state.items():
            old: Any = self.state.get(key)
            if old is not None and array_api_compat.is_writeable_array(old) and old.shape == value.shape:
                old[...] = value
            else:
                self.state[key] = xp.asarray(value, copy=True)

    def _restore(self) -> None:
        """Put the kept parameters (views of the flat copy, in the model's keys and shapes) and
        state back into the model."""
        xp, params, offset = self.model.backend.xp, {}, 0
        for key, value in self.model.params.items():
            n = math.prod(value.shape)
            params[key] = xp.reshape(self.params[offset : offset + n], value.shape)
            offset += n
        self.model.params, self.model.state = params, dict(self.state)

    def check(self, epoch: int, values: dict[str, float], lr: float, keep: bool = True) -> None:
        """After ``epoch`` (1-based): keep its parameters (unless ``keep`` is False: no epoch
        follows, so no copy is needed), or restore the last good ones and raise."""
        bad = first_not_finite(values)
        if bad is None:
            model = self.model
            peak = float(self._largest(model.backend.xp, list(model.params.values())))
            if math.isfinite(peak):
                if keep:
                    self._keep(epoch)
                return
            bad = ("largest parameter", peak)
        self._restore()
        raise diverged(epoch, bad, self.epoch, lr)


def first_not_finite(values: dict[str, float]) -> tuple[str, float] | None:
    """``(name, value)`` of the first of an epoch's loss and validation loss that is not finite."""
    for name in ("loss", "val_loss"):  # a plain loop: this runs once an epoch inside every fit
        if name in values and not math.isfinite(values[name]):
            return name, values[name]
    return None


def diverged(epoch: int, bad: tuple[str, float], kept: int, lr: float) -> ValueError:
    """The error of a fit whose ``epoch`` (1-based) ended with ``bad`` (a figure's name and
    value), the model keeping its parameters from after epoch ``kept`` (0: before training)."""
    since = f"after epoch {kept}" if kept else "before training"
    return ValueError(
        f"training diverged at epoch {epoch}: the {bad[0]} is {bad[1]}; the model keeps its parameters from "
        f"{since}; try a smaller learning rate (lr={lr}) or scale the inputs (standardize X)"
    )
