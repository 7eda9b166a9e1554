"""Hooks into :func:`anybackprop.training.fit`: the :class:`Run` they see, the :class:`Callback` base,
and the callbacks the package ships (:class:`LambdaCallback`, :class:`EarlyStopping`,
:class:`Checkpoint`, :class:`CSVLogger`), with how ``fit`` assembles and calls them."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from .backend import to_numpy
from .checkpoint import save_checkpoint
from .history import History
from .optim import Optimizer
from .trainable import Trainable
from .validation import check_positive_float, check_positive_int


@dataclass
class Run:
    """One ``fit`` as callbacks see it in :meth:`Callback.on_train_begin`: the model, its
    :class:`Trainer` (and optimizer), the host generator, the number of epochs, the history,
    the callbacks in the order they run, the training rows, the batch size, whether there is
    validation data."""

    model: Trainable
    trainer: Any  # an anybackprop.training.Trainer
    rng: Any
    epochs: int
    history: History
    callbacks: list
    rows: int = 0
    batch_size: int = 1
    validation: bool = False

    @property
    def optimizer(self) -> Optimizer:
        """The optimizer of this run's trainer."""
        return self.trainer.optimizer


class Callback:
    """Hooks into :func:`fit`; override the ones you need. :meth:`on_epoch_end` returns True to
    stop training after this epoch. A callback with state that must survive a resume gives it
    in :meth:`checkpoint_state` (JSON-able values, host arrays) and takes it back in
    :meth:`restore_checkpoint_state`."""

    def on_train_begin(self, run: Run) -> None:
        """Before the first epoch (and before a resumed run's state is restored)."""

    def on_epoch_end(self, epoch: int, history: History, model: Trainable) -> bool | None:
        """After epoch ``epoch`` (1-based) is recorded in ``history``."""
        return False

    def on_train_end(self, history: History, model: Trainable) -> None:
        """After the last epoch, outside the training loop."""

    def checkpoint_state(self) -> tuple[dict, dict[str, Any]]:
        """``(values, arrays)`` to save in a checkpoint (JSON-able values, NumPy arrays); nothing by default."""
        return {}, {}

    def restore_checkpoint_state(self, values: dict, arrays: dict[str, Any], model: Trainable) -> None:
        """Take back what :meth:`checkpoint_state` gave."""

    def stops_after(self, epoch: int) -> bool:
        """Whether, with its state restored from a checkpoint, this callback asked to stop after
        ``epoch`` (then a resumed run trains no further)."""
        return False


class LambdaCallback(Callback):
    """A function ``f(epoch, history, model) -> stop?`` as a callback."""

    def __init__(self, function: Any) -> None:
        if not callable(function):
            raise TypeError(
                f"callbacks must hold Callback objects or functions (epoch, history, model), got {function!r}"
            )
        self.function = function

    def on_epoch_end(self, epoch: int, history: History, model: Trainable) -> bool | None:
        return self.function(epoch, history, model)


def _callbacks(callbacks: Any, early_stopping: int | None, min_delta: float, checkpoint: Any) -> list[Callback]:
    """The callbacks of a ``fit`` in the order they run: the user's, early stopping, then the
    checkpoint (so that it saves the epoch as the others left it)."""
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of Callback objects or functions, got {type(callbacks).__name__}")
    hooks = [c if isinstance(c, Callback) else LambdaCallback(c) for c in callbacks or ()]
    check_positive_float(min_delta, "min_delta", allow_zero=True)
    if early_stopping is not None:
        hooks.append(EarlyStopping(early_stopping, min_delta))
    if checkpoint is not None:
        hooks.append(checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint))
    return hooks


def _epoch_end(hooks: list[Callback], epoch: int, history: History, model: Trainable) -> bool:
    """Every callback sees the epoch; training stops if any asks to."""
    stops = [bool(hook.on_epoch_end(epoch, history, model)) for hook in hooks]
    return any(stops)


class EarlyStopping(Callback):
    """Stops after ``patience`` epochs without the monitored loss (the validation loss, or the
    training loss without validation data) improving by more than ``min_delta``; at the end of
    training restores the parameters and state of the best epoch (``history.best_epoch``)."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = check_positive_int(patience, "early_stopping")
        self.min_delta = check_positive_float(min_delta, "min_delta", allow_zero=True)
        self.best, self.best_epoch = math.inf, 0
        self.saved: tuple[dict[str, Any], ...] | None = None

    def on_epoch_end(self, epoch: int, history: History, model: Trainable) -> bool:
        monitored = (history.val_loss or history.loss)[-1]
        if monitored < self.best - self.min_delta:
            xp = model.backend.xp
            self.best, self.best_epoch = monitored, epoch
            self.saved = tuple({k: xp.asarray(v, copy=True) for k, v in d.items()} for d in (model.params, model.state))
            return False
        return self.stops_after(epoch)

    def stops_after(self, epoch: int) -> bool:
        return epoch > 0 and epoch - self.best_epoch >= self.patience

    def on_train_end(self, history: History, model: Trainable) -> None:
        if self.saved is not None:
            model.params, model.state = self.saved
            history.best_epoch = self.best_epoch

    def checkpoint_state(self) -> tuple[dict, dict[str, Any]]:
        """The best loss and epoch, and the kept best parameters and state as NumPy arrays."""
        arrays: dict[str, Any] = (
            {}
            if self.saved is None
            else {
                f"{part}.{k}": to_numpy(v)
                for part, d in zip(("params", "state"), self.saved, strict=True)
                for k, v in d.items()
            }
        )
        return {"best": self.best, "best_epoch": self.best_epoch}, arrays

    def restore_checkpoint_state(self, values: dict, arrays: dict[str, Any], model: Trainable) -> None:
        best, best_epoch = float(values["best"]), values["best_epoch"]
        if type(best_epoch) is not int or best_epoch < 0 or (best_epoch > 0) != bool(arrays) or best != best:
            raise ValueError(
                f"field best_epoch is {best_epoch!r} and best {best!r}, with {'' if arrays else 'no '}saved "
                "parameters; expected an epoch >= 0, with saved parameters after the first"
            )
        self.best, self.best_epoch = best, best_epoch
        if arrays:
            copy = model.copy()
            copy.set_params({k[7:]: v for k, v in arrays.items() if k.startswith("params.")})
            copy.set_state({k[6:]: v for k, v in arrays.items() if k.startswith("state.")})
            self.saved = (copy.params, copy.state)


class Checkpoint(Callback):
    """Writes a checkpoint to ``path`` at each epoch's end, atomically (see
    :mod:`anybackprop.checkpoint`), with the run's ``fingerprint`` when given (a table run's);
    ``fit(..., resume=path)`` continues from it; ``fit(checkpoint=)`` takes a path or one of these.
    In data-parallel training every process passes it and rank 0 writes the file (every process
    holds the same parameters, optimizer state, history and generator)."""

    def __init__(self, path: str | os.PathLike, fingerprint: dict | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path, got {type(path).__name__}")
        self.path, self.fingerprint = path, fingerprint
        self.run: Run | None = None
        self.rank = 0

    def on_train_begin(self, run: Run) -> None:
        self.run, self.rank = run, run.trainer.rank

    def on_epoch_end(self, epoch: int, history: History, model: Trainable) -> bool:
        if self.rank == 0:
            save_checkpoint(self.path, self.run, epoch, self.fingerprint)
        return False


class CSVLogger(Callback):
    """Writes the history (one row per epoch: ``epoch``, ``loss``, ``val_loss``, metrics) to the
    CSV file ``path`` at each epoch's end, the whole file atomically; in data-parallel training
    rank 0 writes it (every process holds the same history)."""

    def __init__(self, path: str | os.PathLike) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"CSVLogger's path must be a path, got {type(path).__name__}")
        self.path = path
        self.rank = 0

    def on_train_begin(self, run: Run) -> None:
        self.rank = run.trainer.rank

    def on_epoch_end(self, epoch: int, history: History, model: Trainable) -> bool:
        if self.rank == 0:
            history.to_csv(self.path)
        return False
