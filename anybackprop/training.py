"""Mini-batch training: :func:`fit` and the :class:`Trainer` it drives a model with.

The data enters the device once per ``fit``. Each epoch draws a permutation on the host (seeded),
gathers the shuffled copy once on the device, and trains on contiguous slices of it. A training
step is :meth:`Trainer.step`: forward (training mode), the head's output delta, backward, reduce
the gradients (a hook: nothing in one process; data-parallel training sums them across
processes there), update, commit new layer state. The epoch's loss and metric come from the
logits the steps computed (running averages over the epoch, like Keras), read back once per
epoch in one transfer.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import threads
from .backend import gather_rows, host_rng
from .losses import normalized_weights
from .optim import Optimizer, get_optimizer
from .validation import check_positive_float, check_positive_int


class Trainable(Protocol):
    """What :func:`fit` and :class:`Trainer` use of a model (:class:`anybackprop.Sequential` has it):

    * ``backend``, ``fast`` (its fast paths), ``head``, ``layers``, ``params``, ``state``, ``decay``;
    * ``check_data(X, Y, sample_weight, class_weight) -> (x, y, w)``: checked arrays on the device;
    * ``forward_pass(x, training=, rng=) -> ForwardPass``: logits, caches and the pass context;
    * ``backward_pass(fwd, dz) -> grads`` (keys of ``params``); ``commit_state(fwd)``;
    * ``scores(z, y, w, ss_tot) -> (loss, metric)`` in one host read; ``total_sum_of_squares(y, w)``.
    """

    backend: Any
    fast: Any
    head: Any
    layers: list
    params: dict
    state: dict

    def check_data(self, X: Any, Y: Any, sample_weight: Any = None, class_weight: Any = None, names: tuple = ...) -> tuple: ...

    def forward_pass(self, x: Any, *, training: bool = False, rng: Any = None, params: dict | None = None) -> Any: ...

    def backward_pass(self, fwd: Any, dz: Any) -> dict: ...

    def commit_state(self, fwd: Any) -> None: ...

    def scores(self, z: Any, y: Any, w: Any = None, ss_tot: float = 0.0) -> tuple[float, float]: ...

    def total_sum_of_squares(self, y: Any, w: Any = None) -> float: ...


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
        return len(self.loss)

    def record(self, values: dict[str, float]) -> None:
        """Append one epoch's ``{"loss": ..., "val_loss": ..., metric: ...}``."""
        for name, value in values.items():
            if name in ("loss", "val_loss"):
                getattr(self, name).append(value)
            else:
                self.metrics.setdefault(name, []).append(value)

    def __repr__(self) -> str:
        last = f", last loss {self.loss[-1]:.4g}" if self.loss else ""
        extra = "".join(f", {k} {v[-1]:.4g}" for k, v in self.metrics.items() if v)
        return f"History({self.epochs} epochs{last}{extra}, {self.seconds:.2f} s)"


class Trainer:
    """Drives one model's training steps with one optimizer (its state created here, for this
    model). :meth:`reduce_gradients` is the seam for data-parallel training: it returns the
    gradients unchanged in one process."""

    def __init__(self, model: Trainable, optimizer: Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        optimizer.init(model)
        self._gather = model.fast.get(gather_rows)
        self._batch = None

    def reduce_gradients(self, grads: dict[str, Any]) -> dict[str, Any]:
        """Combine the gradients of every process's share of the batch: identity here."""
        return grads

    def step(self, x: Any, y: Any, w: Any, rng: Any) -> Any:
        """One training step on a batch (``w``: raw row weights or None); returns its logits."""
        model = self.model
        xp = model.backend.xp
        fwd = model.forward_pass(x, training=True, rng=rng)
        dz = model.head.delta(xp, model.fast, fwd.logits, y, None if w is None else normalized_weights(xp, w))
        grads = self.reduce_gradients(model.backward_pass(fwd, dz))
        self.optimizer.step(xp, model.params, grads)
        model.commit_state(fwd)
        return fwd.logits

    def epoch(self, x: Any, y: Any, w: Any, batch_size: int, rng: Any, order: Any = None) -> Any:
        """One pass over the rows, in ``order`` (a device permutation; None: as they are).
        Each minibatch of ``x`` is gathered into one reused buffer (no shuffled copy of all of
        ``x``); ``y`` and ``w`` come already in that order. Returns the logits of every row, in
        order, from the steps themselves (no extra forward pass, no host read)."""
        xp = self.model.backend.xp
        gather = self._gather
        m = x.shape[0]
        logits = []
        for start in range(0, m, batch_size):
            stop = min(start + batch_size, m)
            if order is None:
                xb = x[start:stop, ...]
            else:  # the last step's batch is done with: its buffer is free
                xb = self._batch = gather(xp, x, order[start:stop], self._batch)
            wb = None if w is None else w[start:stop]
            logits.append(self.step(xb, y[start:stop, ...], wb, rng))
        return logits[0] if len(logits) == 1 else xp.concat(logits, axis=0)


class _Progress:
    """A tqdm bar over epochs on a terminal; one printed line per epoch otherwise."""

    def __init__(self, epochs: int, verbose: bool) -> None:
        self.verbose = verbose
        self.bar = None
        if verbose and sys.stderr.isatty():
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=epochs, unit="epoch", leave=True)
            except ImportError:
                pass

    def update(self, epoch: int, epochs: int, values: dict[str, float], rate: float) -> None:
        if not self.verbose:
            return
        text = {k: f"{v:.4f}" for k, v in values.items()}
        if self.bar is not None:
            self.bar.set_postfix(**text, samples_s=f"{rate:,.0f}")
            self.bar.update(1)
        else:
            parts = " - ".join(f"{k} {v}" for k, v in text.items())
            print(f"epoch {epoch}/{epochs} - {parts} - {rate:,.0f} samples/s", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fit(
    model: Trainable,
    X: Any,
    Y: Any,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    optimizer: str | Optimizer = "sgd",
    lr: float | None = None,
    seed: int | None = 0,
    shuffle: bool = True,
    validation_data: tuple | None = None,
    early_stopping: int | None = None,
    min_delta: float = 0.0,
    sample_weight: Any = None,
    class_weight: Any = None,
    num_threads: int | None = None,
    verbose: bool = True,
    **optimizer_options: Any,
) -> History:
    """Train ``model`` on ``(X, Y)`` and return its :class:`History`.

    ``optimizer`` is a name of :data:`anybackprop.optim.OPTIMIZERS` ("sgd", "momentum",
    "nesterov", "adam") or an :class:`~anybackprop.optim.Optimizer`; ``lr`` defaults to the
    optimizer's recommended rate; further keywords (``momentum``, ``weight_decay``,
    ``schedule``...) go to the optimizer. ``seed`` seeds the host generator that shuffles the rows
    each epoch and draws dropout masks. ``sample_weight`` (one weight per row) and
    ``class_weight`` (a dict ``{class index: weight}`` or "balanced") make each batch's cost the
    weighted mean ``sum w_i l_i / sum w_i``. ``validation_data`` is ``(X_val, Y_val)`` or
    ``(X_val, Y_val, w_val)``. ``early_stopping=k`` stops after ``k`` epochs without an
    improvement larger than ``min_delta`` of the validation loss (the training loss without
    validation data) and restores the best parameters. A non-finite epoch loss raises ValueError.
    ``num_threads`` fixes the BLAS threads on the CPU (default: :mod:`anybackprop.threads`'s
    policy, one thread for small products, every core for large ones).
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if early_stopping is not None:
        early_stopping = check_positive_int(early_stopping, "early_stopping")
    min_delta = check_positive_float(min_delta, "min_delta", allow_zero=True)
    opt = get_optimizer(optimizer, lr, **optimizer_options)
    with model.backend.activate(), threads.limited(model.backend, threads.largest_product(model.layers, batch_size), num_threads):
        x, y, w = model.check_data(X, Y, sample_weight, class_weight)
        val = _check_validation_data(model, validation_data)
        m = x.shape[0]
        _check_batch_sizes(model, m, batch_size)
        rng = host_rng(seed)
        trainer = Trainer(model, opt)
        metric = model.head.metric_name
        ss_tot = (model.total_sum_of_squares(y, w), 0.0 if val is None else model.total_sum_of_squares(val[1], val[2]))
        history = History()
        stopper = _EarlyStopping(early_stopping, min_delta) if early_stopping is not None else None
        gather = model.fast.get(gather_rows)
        xp = model.backend.xp
        ys = ws = order = None
        progress = _Progress(epochs, verbose)
        start = time.perf_counter()
        try:
            for epoch in range(epochs):
                tick = time.perf_counter()
                opt.start_epoch(epoch, epochs)
                if shuffle:  # last epoch's copies are free to be overwritten now
                    order = model.backend.asarray(rng.permutation(m))
                    ys = gather(xp, y, order, ys)
                    ws = None if w is None else gather(xp, w, order, ws)
                else:
                    ys, ws = y, w
                logits = trainer.epoch(x, ys, ws, batch_size, rng, order)
                loss, train_metric = model.scores(logits, ys, ws, ss_tot[0])
                if not math.isfinite(loss):
                    raise ValueError(
                        f"training diverged at epoch {epoch + 1}: the loss is {loss}; "
                        f"try a smaller learning rate (lr={opt.base_lr}) or scale the inputs (standardize X)"
                    )
                values = {"loss": loss, metric: train_metric}
                if val is not None:
                    values["val_loss"], values[f"val_{metric}"] = model.scores(model.forward_pass(val[0]).logits, val[1], val[2], ss_tot[1])
                history.record(values)
                progress.update(epoch + 1, epochs, values, m / max(time.perf_counter() - tick, 1e-9))
                if stopper is not None and stopper.should_stop(epoch + 1, values.get("val_loss", values["loss"]), model):
                    break
        finally:
            progress.close()
    if stopper is not None:
        stopper.restore_best(model, history)
    history.seconds = time.perf_counter() - start
    return history


def _check_validation_data(model: Trainable, validation_data: Any) -> tuple[Any, Any, Any] | None:
    if validation_data is None:
        return None
    if not isinstance(validation_data, tuple) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (X_val, Y_val) or (X_val, Y_val, sample_weight_val)")
    w = validation_data[2] if len(validation_data) == 3 else None
    return model.check_data(validation_data[0], validation_data[1], w, names=("X_val", "y_val"))


def _check_batch_sizes(model: Trainable, m: int, batch_size: int) -> None:
    """Layers that need several rows per training batch (batch norm: ``min_batch = 2``) get them."""
    smallest = min(batch_size, m % batch_size or batch_size, m)
    for layer in model.layers:
        needed = getattr(layer, "min_batch", 1)
        if smallest < needed:
            raise ValueError(
                f"{type(layer).__name__} needs at least {needed} rows per training batch, but {m} rows in batches "
                f"of {batch_size} leave a batch of {smallest}; choose another batch_size"
            )


class _EarlyStopping:
    """Stops after ``patience`` epochs without the monitored loss improving by more than
    ``min_delta``, keeping a copy of the parameters and state of the best epoch."""

    def __init__(self, patience: int, min_delta: float) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_epoch, self.saved = math.inf, 0, None

    def should_stop(self, epoch: int, monitored: float, model: Trainable) -> bool:
        if monitored < self.best - self.min_delta:
            xp = model.backend.xp
            self.best, self.best_epoch = monitored, epoch
            self.saved = tuple({k: xp.asarray(v, copy=True) for k, v in d.items()} for d in (model.params, model.state))
            return False
        return epoch - self.best_epoch >= self.patience

    def restore_best(self, model: Trainable, history: History) -> None:
        if self.saved is not None:
            model.params, model.state = self.saved
            history.best_epoch = self.best_epoch
