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

from .backend import gather_rows, host_rng
from .losses import normalized_weights
from .optim import Optimizer, get_optimizer
from .validation import check_positive_float, check_positive_int


class Trainable(Protocol):
    """What :func:`fit` and :class:`Trainer` use of a model (:class:`anybackprop.Sequential` has it):

    * ``backend``, ``fast`` (its fast paths), ``head``, ``layers``, ``params``, ``state``, ``decay``;
    * ``check_data(X, Y, sample_weight, class_weight) -> (x, y, w)``: checked arrays on the device;
    * ``forward_pass(x, training=, rng=, part=) -> ForwardPass``: logits, caches and the pass context;
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

    def forward_pass(self, x: Any, *, training: bool = False, rng: Any = None, params: dict | None = None, part: Any = None) -> Any: ...

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
    gradients unchanged in one process (:class:`DataParallelTrainer` sums them across processes)."""

    rank = 0

    def __init__(self, model: Trainable, optimizer: Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        optimizer.init(model)

    def reduce_gradients(self, grads: dict[str, Any]) -> dict[str, Any]:
        """Combine the gradients of every process's share of the batch: identity here."""
        return grads

    def own_rows(self, x: Any, order: Any, batch_size: int, gather: Any, out: Any) -> Any:
        """The rows of ``x`` this process trains on, in ``order`` (None: as they are); ``out``
        is last epoch's copy, free to be overwritten."""
        return x if order is None else gather(self.model.backend.xp, x, order, out)

    def logits(self, x: Any) -> Any:
        """Inference-mode logits of every row of ``x`` (the validation data)."""
        return self.model.forward_pass(x).logits

    def step(self, x: Any, y: Any, w: Any, rng: Any, part: Any = None) -> Any:
        """One training step on a batch (``w``: raw row weights or None); returns its logits.
        ``part``: the batch is this process's part of a global batch (:class:`BatchPart`)."""
        model = self.model
        xp = model.backend.xp
        fwd = model.forward_pass(x, training=True, rng=rng, part=part)
        # a part's delta is that of the global batch's cost: weights over its total, rows over its count
        wn = None if w is None else normalized_weights(xp, w, None if part is None else part.weight)
        dz = model.head.delta(xp, model.fast, fwd.logits, y, wn)
        if part is not None and w is None and part.stop - part.start != part.rows:
            dz = dz * ((part.stop - part.start) / part.rows)
        grads = self.reduce_gradients(model.backward_pass(fwd, dz))
        self.optimizer.step(xp, model.params, grads)
        model.commit_state(fwd)
        return fwd.logits

    def epoch(self, x: Any, y: Any, w: Any, batch_size: int, rng: Any) -> Any:
        """One pass over the (shuffled) rows; returns the logits of every row, in order, from the
        steps themselves (no extra forward pass, no host read)."""
        xp = self.model.backend.xp
        m = x.shape[0]
        logits = []
        for start in range(0, m, batch_size):
            stop = min(start + batch_size, m)
            wb = None if w is None else w[start:stop]
            logits.append(self.step(x[start:stop, ...], y[start:stop, ...], wb, rng))
        return logits[0] if len(logits) == 1 else xp.concat(logits, axis=0)


@dataclass(frozen=True)
class BatchPart:
    """Rows ``start:stop`` of a global batch of ``rows`` rows (total row weight ``weight``, a
    1-element array, or None) that one process of ``comm`` trains on; ``sum`` adds an array
    over every process (what :class:`~anybackprop.layers.Pass` needs for batch statistics)."""

    start: int
    stop: int
    rows: int
    weight: Any
    comm: Any
    backend: Any

    def sum(self, a: Any) -> Any:
        xp = self.backend.xp
        return xp.reshape(self.comm.allreduce_sum(self.backend, xp.reshape(a, (-1,))), a.shape)


class DataParallelTrainer(Trainer):
    """Synchronous data-parallel training over the processes of ``comm`` (see
    :mod:`anybackprop.distributed`), equal to one process's training with the same global batch.

    Every process holds the whole data and draws the same permutation; each takes a contiguous
    part of every global batch (rows ``b r / p`` to ``b (r + 1) / p`` of ``b``; none when
    ``b < p``), so that every process runs the same steps. Each output delta is that of the global
    batch's cost (rows over the global count, or weights over the global total), so that the
    gradients add up: one all-reduce of one flat buffer per step, in the order of ``params``.
    The parameters and state start from rank 0's, so the model's seed does not matter. Epoch
    logits and validation logits are assembled on every process (each writes its rows into zeros,
    then one all-reduce), so that the scores, the history and every decision taken from them are
    the same everywhere."""

    def __init__(self, model: Trainable, optimizer: Optimizer, comm: Any) -> None:
        missing = [a for a in ("rank", "size", "allreduce_sum", "broadcast", "broadcast_value") if not hasattr(comm, a)]
        if missing:
            raise TypeError(f"comm must be a communicator such as anybackprop.distributed.init() returns, got {comm!r} (it lacks {', '.join(missing)})")
        self.comm, self.rank, self.size = comm, comm.rank, comm.size
        self.model = model
        model.params = self._broadcast(model.params)
        model.state = self._broadcast(model.state)
        super().__init__(model, optimizer)

    def _broadcast(self, arrays: dict[str, Any]) -> dict[str, Any]:
        if not arrays:
            return arrays
        return self._unflatten(self.comm.broadcast(self.model.backend, self._flatten(arrays)), arrays)

    def _flatten(self, arrays: dict[str, Any]) -> Any:
        xp = self.model.backend.xp
        return xp.concat([xp.reshape(a, (-1,)) for a in arrays.values()])

    def _unflatten(self, flat: Any, like: dict[str, Any]) -> dict[str, Any]:
        xp = self.model.backend.xp
        out, offset = {}, 0
        for key, a in like.items():
            n = math.prod(a.shape)
            out[key] = xp.reshape(flat[offset : offset + n], a.shape)
            offset += n
        return out

    def _slice(self, rows: int) -> tuple[int, int]:
        """This process's rows of a global batch of ``rows`` rows."""
        return rows * self.rank // self.size, rows * (self.rank + 1) // self.size

    def _assemble(self, parts: list[tuple[int, int, int, Any]]) -> Any:
        """Every process's rows of the batches ``(start, stop, rows, logits)``, in order: each
        places its own between zeros and one all-reduce adds them."""
        xp, backend = self.model.backend.xp, self.model.backend
        blocks = []
        for start, stop, rows, z in parts:
            n_out = z.shape[1]
            zeros = [xp.zeros((n, n_out), dtype=z.dtype, device=backend.device) for n in (start, rows - stop)]
            blocks += [zeros[0], z, zeros[1]]
        whole = xp.concat(blocks, axis=0)
        return xp.reshape(self.comm.allreduce_sum(backend, xp.reshape(whole, (-1,))), whole.shape)

    def reduce_gradients(self, grads: dict[str, Any]) -> dict[str, Any]:
        """The sum over every process of its part of the global batch's gradient."""
        grads = {k: grads[k] for k in self.model.params}
        return self._unflatten(self.comm.allreduce_sum(self.model.backend, self._flatten(grads)), grads)

    def own_rows(self, x: Any, order: Any, batch_size: int, gather: Any, out: Any) -> Any:
        xp, m = self.model.backend.xp, x.shape[0]
        if order is None:
            order = xp.arange(m, device=self.model.backend.device)
        mine = []
        for start in range(0, m, batch_size):
            lo, hi = self._slice(min(batch_size, m - start))
            mine.append(order[start + lo : start + hi])
        return gather(xp, x, xp.concat(mine), out)

    def logits(self, x: Any) -> Any:
        lo, hi = self._slice(x.shape[0])
        return self._assemble([(lo, hi, x.shape[0], self.model.forward_pass(x[lo:hi, ...]).logits)])

    def epoch(self, x: Any, y: Any, w: Any, batch_size: int, rng: Any) -> Any:
        """``x``: this process's rows (:meth:`own_rows`); ``y``, ``w``: every row, shuffled.
        Returns the logits of every row, assembled from every process's."""
        xp, backend = self.model.backend.xp, self.model.backend
        m, done, parts = y.shape[0], 0, []
        for start in range(0, m, batch_size):
            rows = min(batch_size, m - start)
            lo, hi = self._slice(rows)
            weight = None if w is None else xp.reshape(xp.sum(w[start : start + rows]), (1,))
            part = BatchPart(lo, hi, rows, weight, self.comm, backend)
            wb = None if w is None else w[start + lo : start + hi]
            z = self.step(x[done : done + hi - lo, ...], y[start + lo : start + hi, ...], wb, rng, part)
            parts.append((lo, hi, rows, z))
            done += hi - lo
        return self._assemble(parts)


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
    verbose: bool = True,
    comm: Any = None,
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

    ``comm`` (a communicator of :func:`anybackprop.distributed.init`) trains data-parallel over its
    processes (:class:`DataParallelTrainer`): every process passes the same data and arguments,
    ``batch_size`` is the global batch, and the result equals one process's (to float rounding);
    the history is the same on every process and only rank 0 prints.
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if early_stopping is not None:
        early_stopping = check_positive_int(early_stopping, "early_stopping")
    min_delta = check_positive_float(min_delta, "min_delta", allow_zero=True)
    opt = get_optimizer(optimizer, lr, **optimizer_options)
    with model.backend.activate():
        x, y, w = model.check_data(X, Y, sample_weight, class_weight)
        val = _check_validation_data(model, validation_data)
        m = x.shape[0]
        _check_batch_sizes(model, m, batch_size)
        if comm is None:
            trainer = Trainer(model, opt)
        else:
            trainer = DataParallelTrainer(model, opt, comm)
            seed = comm.broadcast_value(int(host_rng(None).integers(2**62)) if seed is None else seed)  # rank 0's
        rng = host_rng(seed)
        metric = model.head.metric_name
        ss_tot = (model.total_sum_of_squares(y, w), 0.0 if val is None else model.total_sum_of_squares(val[1], val[2]))
        history = History()
        stopper = _EarlyStopping(early_stopping, min_delta) if early_stopping is not None else None
        gather = model.fast.get(gather_rows)
        xp = model.backend.xp
        xs = ys = ws = None
        progress = _Progress(epochs, verbose and trainer.rank == 0)
        start = time.perf_counter()
        try:
            for epoch in range(epochs):
                tick = time.perf_counter()
                opt.start_epoch(epoch, epochs)
                order = model.backend.asarray(rng.permutation(m)) if shuffle else None
                xs = trainer.own_rows(x, order, batch_size, gather, xs)  # last epoch's copies are free now
                if shuffle:
                    ys = gather(xp, y, order, ys)
                    ws = None if w is None else gather(xp, w, order, ws)
                else:
                    ys, ws = y, w
                logits = trainer.epoch(xs, ys, ws, batch_size, rng)
                loss, train_metric = model.scores(logits, ys, ws, ss_tot[0])
                if not math.isfinite(loss):
                    raise ValueError(
                        f"training diverged at epoch {epoch + 1}: the loss is {loss}; "
                        f"try a smaller learning rate (lr={opt.base_lr}) or scale the inputs (standardize X)"
                    )
                values = {"loss": loss, metric: train_metric}
                if val is not None:
                    values["val_loss"], values[f"val_{metric}"] = model.scores(trainer.logits(val[0]), val[1], val[2], ss_tot[1])
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
