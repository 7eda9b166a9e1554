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


class DivergenceGuard:
    """Keeps the parameters and state of the last epoch that ended finite. An epoch whose loss,
    validation loss or parameters are not finite (a blow-up in its last update included) puts
    them back and raises, so the model is never left with NaN or infinite parameters."""

    def __init__(self, model: Trainable, epoch: int) -> None:
        self.model = model
        self.saved: tuple[dict, dict] = ({}, {})
        self._keep(epoch)

    def _keep(self, epoch: int) -> None:
        """Copy the parameters and state into the kept arrays (refilled in place where they allow
        it: no fresh allocation, and its page faults, per epoch)."""
        xp = self.model.backend.xp
        self.epoch = epoch
        for kept, live in zip(self.saved, (self.model.params, self.model.state), strict=True):
            for key, value in live.items():
                old: Any = kept.get(key)
                if old is not None and array_api_compat.is_writeable_array(old) and old.shape == value.shape:
                    old[...] = value
                else:
                    kept[key] = xp.asarray(value, copy=True)

    def check(self, epoch: int, values: dict[str, float], lr: float, keep: bool = True) -> None:
        """After ``epoch`` (1-based): keep its parameters (unless ``keep`` is False: no epoch
        follows, so no copy is needed), or restore the last good ones and raise."""
        bad = first_not_finite(values)
        if bad is None:
            model = self.model
            peak = float(model.fast.get(largest_magnitude)(model.backend.xp, list(model.params.values())))
            if math.isfinite(peak):
                if keep:
                    self._keep(epoch)
                return
            bad = ("largest parameter", peak)
        self.model.params, self.model.state = (dict(d) for d in self.saved)
        raise diverged(epoch, bad, self.epoch, lr)


def first_not_finite(values: dict[str, float]) -> tuple[str, float] | None:
    """``(name, value)`` of the first of an epoch's loss and validation loss that is not finite."""
    return next(
        ((name, values[name]) for name in ("loss", "val_loss") if name in values and not math.isfinite(values[name])),
        None,
    )


def diverged(epoch: int, bad: tuple[str, float], kept: int, lr: float) -> ValueError:
    """The error of a fit whose ``epoch`` (1-based) ended with ``bad`` (a figure's name and
    value), the model keeping its parameters from after epoch ``kept`` (0: before training)."""
    since = f"after epoch {kept}" if kept else "before training"
    return ValueError(
        f"training diverged at epoch {epoch}: the {bad[0]} is {bad[1]}; the model keeps its parameters from "
        f"{since}; try a smaller learning rate (lr={lr}) or scale the inputs (standardize X)"
    )
