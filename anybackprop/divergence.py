"""The divergence guard of :func:`anybackprop.training.fit`: :class:`DivergenceGuard` keeps the last
finite parameters and, when an epoch blows up, puts them back and raises."""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from .trainable import Trainable


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

    def check(self, epoch: int, values: dict[str, float], lr: float) -> None:
        """After ``epoch`` (1-based): keep its parameters, or restore the last good ones and raise."""
        bad: tuple[str, float] | None = next(
            (
                (name, values[name])
                for name in ("loss", "val_loss")
                if name in values and not math.isfinite(values[name])
            ),
            None,
        )
        if bad is None:
            xp, params = self.model.backend.xp, self.model.params
            # max and min of each (NaN propagates through both): no temporary the size of a parameter
            ends = xp.stack([e for p in params.values() for e in (xp.max(p), xp.min(p))]) if params else xp.zeros(1)
            peak = float(xp.max(xp.abs(ends)))
            if math.isfinite(peak):
                self._keep(epoch)
                return
            bad = ("largest parameter", peak)
        self.model.params, self.model.state = (dict(d) for d in self.saved)
        kept = f"after epoch {self.epoch}" if self.epoch else "before training"
        raise ValueError(
            f"training diverged at epoch {epoch}: the {bad[0]} is {bad[1]}; the model keeps its parameters from "
            f"{kept}; "
            f"try a smaller learning rate (lr={lr}) or scale the inputs (standardize X)"
        )
