"""Mini-batch training and prediction for :class:`~anybackprop.network.MLP`.

The data enters the device once per ``fit``. Each epoch draws a permutation on the host (seeded),
gathers the shuffled copy once on the device, and trains on contiguous slices of it. The epoch's
loss and metric are accumulated on the device from the minibatches already computed (as running
averages over the epoch, like Keras) and read back once per epoch: each step keeps its output logits
in an epoch-sized buffer, and the loss and metric are computed from that buffer at the epoch's end.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .backend import host_rng, to_numpy
from .network import MLP
from .optim import Optimizer, get_optimizer
from .validation import check_positive_float, check_positive_int, check_targets


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


def gather_rows(xp: Any, x: Any, order: Any, out: Any = None) -> Any:
    """The rows of ``x`` in ``order`` (a shuffled copy); ``out`` is an array of the same shape
    that the caller no longer needs, which a backend's fast path may fill instead of allocating."""
    return xp.take(x, order, axis=0)


def _metric_name(model: MLP) -> str:
    return "accuracy" if model.is_classifier else "r2"


def _total_sum_of_squares(xp: Any, y: Any) -> float:
    d = y - xp.mean(y, axis=0, keepdims=True)
    return float(xp.sum(d * d))


def _scores(model: MLP, z: Any, y: Any, ss_tot: float) -> tuple[float, float]:
    """Mean loss and metric of output logits ``z`` against dense targets ``y``, read back in one
    transfer: accuracy for classifiers (argmax for softmax, ``z >= 0`` for each sigmoid output),
    R^2 = 1 - SS_res / SS_tot for regression."""
    xp, kernels = model.backend.xp, model.backend.kernels
    a = model.output.forward(xp, z) if model.loss_fn.uses_activation else None
    loss = kernels.get(model.loss_fn.value, model.loss_fn.value)(xp, z, a, y)
    if model.output.name == "softmax":
        metric = xp.mean(xp.astype(xp.argmax(z, axis=1) == xp.argmax(y, axis=1), z.dtype))
    elif model.output.name == "sigmoid":
        metric = xp.mean(xp.astype((z >= 0) == (y >= 0.5), z.dtype))
    else:
        d = a - y
        metric = xp.sum(d * d)
    loss, metric = (float(v) for v in to_numpy(xp.stack([loss, metric])))
    if not model.is_classifier:
        metric = 1.0 - metric / ss_tot if ss_tot > 0 else 0.0
    return loss, metric


def _evaluate(model: MLP, x: Any, y: Any, ss_tot: float) -> tuple[float, float]:
    """Loss and metric of checked arrays, in one forward pass."""
    return _scores(model, model._forward(model.backend.xp, x)[-1][1], y, ss_tot)


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
    model: MLP,
    X: Any,
    Y: Any,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    optimizer: str | Optimizer = "sgd",
    lr: float | None = None,
    seed: int | None = 0,
    shuffle: bool = True,
    validation_data: tuple[Any, Any] | None = None,
    early_stopping: int | None = None,
    min_delta: float = 0.0,
    verbose: bool = True,
    **optimizer_options: Any,
) -> History:
    """Train ``model`` on ``(X, Y)`` and return its :class:`History`.

    ``optimizer`` is "sgd", "momentum", "nesterov", "adam" or an :class:`~anybackprop.optim.Optimizer`;
    ``lr`` defaults to the optimizer's (0.1 for SGD, 1e-3 for Adam); further keywords
    (``momentum``, ``weight_decay``, ``schedule``...) go to the optimizer. ``seed`` seeds the host
    generator that shuffles the rows each epoch. ``early_stopping=k`` stops after ``k`` epochs
    without an improvement larger than ``min_delta`` of the validation loss (the training loss
    without validation data) and restores the best parameters. A non-finite epoch loss raises
    ValueError.
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if early_stopping is not None:
        early_stopping = check_positive_int(early_stopping, "early_stopping")
    min_delta = check_positive_float(min_delta, "min_delta", allow_zero=True)
    opt = get_optimizer(optimizer, lr, **optimizer_options)
    x, y = model._check_XY(X, Y)
    val = _check_validation_data(model, validation_data)
    xp = model.backend.xp
    rng = host_rng(seed)
    m = x.shape[0]
    metric = _metric_name(model)
    ss_tot = (0.0, 0.0) if model.is_classifier else (
        _total_sum_of_squares(xp, y), 0.0 if val is None else _total_sum_of_squares(xp, val[1])
    )
    logits = xp.empty((m, model.n_outputs), dtype=model.dtype, device=model.backend.device)
    history = History()
    stopper = _EarlyStopping(early_stopping, min_delta) if early_stopping is not None else None
    opt.kernels = model.backend.kernels
    gather = model.backend.kernels.get(gather_rows, gather_rows)
    xs = ys = None
    progress = _Progress(epochs, verbose)
    start = time.perf_counter()
    with model.backend.activate():
        try:
            for epoch in range(epochs):
                tick = time.perf_counter()
                opt.start_epoch(epoch, epochs)
                if shuffle:  # last epoch's copies are free to be overwritten now
                    order = model.backend.asarray(rng.permutation(m))
                    xs, ys = gather(xp, x, order, xs), gather(xp, y, order, ys)
                else:
                    xs, ys = x, y
                _train_epoch(model, opt, xs, ys, batch_size, logits)
                loss, train_metric = _scores(model, logits, ys, ss_tot[0])
                if not math.isfinite(loss):
                    raise ValueError(
                        f"training diverged at epoch {epoch + 1}: the loss is {loss}; "
                        f"try a smaller learning rate (lr={opt.base_lr}) or scale the inputs (standardize X)"
                    )
                values = {"loss": loss, metric: train_metric}
                if val is not None:
                    values["val_loss"], values[f"val_{metric}"] = _evaluate(model, val[0], val[1], ss_tot[1])
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


def _check_validation_data(model: MLP, validation_data: Any) -> tuple[Any, Any] | None:
    if validation_data is None:
        return None
    if not isinstance(validation_data, tuple) or len(validation_data) != 2:
        raise ValueError("validation_data must be a tuple (X_val, Y_val)")
    xv = model._check_X(validation_data[0], "X_val")
    yv = check_targets(model.backend, validation_data[1], model.output.name, model.n_outputs, xv.shape[0], model.dtype, "y_val")
    return xv, yv


class _EarlyStopping:
    """Stops after ``patience`` epochs without the monitored loss improving by more than
    ``min_delta``, keeping a copy of the parameters of the best epoch."""

    def __init__(self, patience: int, min_delta: float) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_epoch, self.params = math.inf, 0, None

    def should_stop(self, epoch: int, monitored: float, model: MLP) -> bool:
        if monitored < self.best - self.min_delta:
            xp = model.backend.xp
            self.best, self.best_epoch = monitored, epoch
            self.params = {k: xp.asarray(v, copy=True) for k, v in model.params.items()}
            return False
        return epoch - self.best_epoch >= self.patience

    def restore_best(self, model: MLP, history: History) -> None:
        if self.params is not None:
            model.params = self.params
            history.best_epoch = self.best_epoch


def _train_epoch(model: MLP, opt: Optimizer, xs: Any, ys: Any, batch_size: int, logits: Any) -> None:
    """One pass over the (shuffled) rows. Each minibatch's output logits are kept in ``logits``
    so that the epoch's loss and metric come from them afterwards, in one vectorised pass and
    one host read, instead of a sync or an extra forward pass per step."""
    xp = model.backend.xp
    m = xs.shape[0]
    for start in range(0, m, batch_size):
        stop = min(start + batch_size, m)
        yb = ys[start:stop, ...]
        caches = model._forward(xp, xs[start:stop, ...])
        grads = model._backward(xp, caches, yb)
        logits[start:stop, :] = caches[-1][1]
        opt.step(xp, model.params, grads)


def predict(model: MLP, X: Any) -> Any:
    xp = model.backend.xp
    a = model.forward(X)
    if model.output.name == "softmax":
        return xp.argmax(a, axis=1)
    out = xp.astype(a >= 0.5, xp.int64) if model.output.name == "sigmoid" else a
    return out[:, 0] if model.n_outputs == 1 else out


def predict_proba(model: MLP, X: Any) -> Any:
    if not model.is_classifier:
        raise ValueError(f"predict_proba needs a classifier (softmax or sigmoid output), this model has output {model.output.name!r}")
    xp = model.backend.xp
    a = model.forward(X)
    if model.output.name == "sigmoid" and model.n_outputs == 1:
        return xp.concat([1.0 - a, a], axis=1)
    return a


def score(model: MLP, X: Any, Y: Any) -> float:
    with model.backend.activate():
        x, y = model._check_XY(X, Y)
        ss_tot = 0.0 if model.is_classifier else _total_sum_of_squares(model.backend.xp, y)
        return _evaluate(model, x, y, ss_tot)[1]
