"""The per-epoch record of a ``fit``: :class:`History` (losses, metrics, best epoch, seconds), with
its CSV and JSON forms."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .files import csv_text, write_text


@dataclass
class History:
    """Per-epoch records of a ``fit``: ``loss``, ``val_loss`` (empty without validation data) and
    ``metrics`` ("accuracy"/"val_accuracy" or "r2"/"val_r2"); ``best_epoch`` is 1-based."""

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        """The number of epochs recorded."""
        return len(self.loss)

    def record(self, values: dict[str, float]) -> None:
        """Append one epoch's ``{"loss": ..., "val_loss": ..., metric: ...}``."""
        for name, value in values.items():
            if name in ("loss", "val_loss"):
                getattr(self, name).append(value)
            else:
                self.metrics.setdefault(name, []).append(value)

    def columns(self) -> dict[str, list[float]]:
        """Every per-epoch series by name: ``loss``, ``val_loss`` (if any), then the metrics."""
        return {"loss": self.loss, **({"val_loss": self.val_loss} if self.val_loss else {}), **self.metrics}

    def to_dict(self) -> dict:
        """A JSON-able dict that :meth:`from_dict` turns back into this history."""
        return {
            "loss": self.loss,
            "val_loss": self.val_loss,
            "metrics": self.metrics,
            "best_epoch": self.best_epoch,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict) -> History:
        """The history :meth:`to_dict` described (a checkpoint's)."""
        return cls(
            [float(v) for v in data["loss"]],
            [float(v) for v in data["val_loss"]],
            {k: [float(v) for v in vs] for k, vs in data["metrics"].items()},
            data["best_epoch"],
            float(data["seconds"]),
        )

    def to_csv(self, path: str | os.PathLike) -> None:
        """One row per epoch (``epoch`` 1-based, then :meth:`columns`), written atomically."""
        columns = self.columns()
        rows = ([i + 1, *(repr(series[i]) for series in columns.values())] for i in range(self.epochs))
        write_text(path, csv_text(["epoch", *columns], rows))

    def __repr__(self) -> str:
        last = f", last loss {self.loss[-1]:.4g}" if self.loss else ""
        extra = "".join(f", {k} {v[-1]:.4g}" for k, v in self.metrics.items() if v)
        return f"History({self.epochs} epochs{last}{extra}, {self.seconds:.2f} s)"
