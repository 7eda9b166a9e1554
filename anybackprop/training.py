"""Mini-batch training: :func:`fit` and the :class:`Trainer` it drives a model with.

The data enters the device once per ``fit``. Each epoch draws a permutation on the host (seeded)
and gathers each minibatch's rows into one reused buffer on the device (no shuffled copy of all
of X; the targets and weights, small, are shuffled whole). A training
step is :meth:`Trainer.step`: forward (training mode), the head's output delta, backward, reduce
the gradients (a hook: nothing in one process; data-parallel training sums them across
processes there), update, commit new layer state. The epoch's loss and metric come from the
logits the steps computed (running averages over the epoch, like Keras), read back once per
epoch in one transfer.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import threads
from .backend import gather_rows, host_rng
from .callbacks import Callback as Callback
from .callbacks import Checkpoint as Checkpoint
from .callbacks import CSVLogger as CSVLogger
from .callbacks import EarlyStopping as EarlyStopping
from .callbacks import LambdaCallback as LambdaCallback
from .callbacks import Run as Run
from .callbacks import _callbacks, _epoch_end
from .checkpoint import load_checkpoint
from .compiled import CompiledTrainer, compiles, gradients
from .distributed import agree
from .divergence import DivergenceGuard
from .history import History as History
from .optim import Optimizer, get_optimizer
from .trainable import Trainable as Trainable
from .validation import check_positive_int


class Trainer:
    """Drives one model's training steps with one optimizer (its state created here, for this
    model). :meth:`reduce_gradients` is the seam for data-parallel training: it returns the
    gradients unchanged in one process (:class:`DataParallelTrainer` sums them across processes)."""

    rank = 0
    start = 0
    """The rows it is handed are the output of the model's first ``start`` layers (``fit`` sets it
    to the model's fixed prefix, run once over every row); every pass starts after them."""

    def __init__(self, model: Trainable, optimizer: Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        optimizer.init(model)
        self._gather = model.fast.get(gather_rows)
        self._batch = None

    def reduce_gradients(self, grads: dict[str, Any]) -> dict[str, Any]:
        """Combine the gradients of every process's share of the batch: identity here."""
        return grads

    def logits(self, x: Any) -> Any:
        """Inference-mode logits of every row of ``x`` (the validation data)."""
        return self.model.forward_pass(x, start=self.start).logits

    def scores(self, z: Any, y: Any, w: Any, ss_tot: float) -> tuple[float, float]:
        """The epoch's loss and metric from its logits (the model's :meth:`scores`)."""
        return self.model.scores(z, y, w, ss_tot)

    def step(self, x: Any, y: Any, w: Any, rng: Any, part: Any = None) -> Any:
        """One training step on a batch (``w``: raw row weights or None); returns its logits.
        ``part``: the batch is this process's part of a global batch (:class:`BatchPart`)."""
        model = self.model
        fwd, grads = gradients(model, x, y, w, rng, part, start=self.start)
        self.optimizer.step(model.backend.xp, model.params, self.reduce_gradients(grads))
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
        """The sum of ``a`` over the processes holding the parts of the global batch."""
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
        _check_comm(comm)
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

    def _own_rows(self, x: Any, order: Any, batch_size: int) -> Any:
        """The rows of ``x`` this process trains on this epoch, in ``order`` (None: as they
        are), gathered into last epoch's copy."""
        xp, m = self.model.backend.xp, x.shape[0]
        if order is None:
            order = xp.arange(m, device=self.model.backend.device)
        mine = []
        for start in range(0, m, batch_size):
            lo, hi = self._slice(min(batch_size, m - start))
            mine.append(order[start + lo : start + hi])
        self._batch = self._gather(xp, x, xp.concat(mine), self._batch)
        return self._batch

    def logits(self, x: Any) -> Any:
        lo, hi = self._slice(x.shape[0])
        return self._assemble([(lo, hi, x.shape[0], self.model.forward_pass(x[lo:hi, ...], start=self.start).logits)])

    def epoch(self, x: Any, y: Any, w: Any, batch_size: int, rng: Any, order: Any = None) -> Any:
        """``x``: every row, of which this process gathers its parts of the global batches in
        ``order``; ``y``, ``w``: every row, already in that order. Returns the logits of every
        row, assembled from every process's."""
        xp, backend = self.model.backend.xp, self.model.backend
        x = self._own_rows(x, order, batch_size)
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


def _check_comm(comm: Any) -> None:
    needed = ("rank", "size", "allreduce_sum", "broadcast", "broadcast_value", "allgather_value")
    missing = [a for a in needed if not hasattr(comm, a)]
    if missing:
        raise TypeError(
            f"comm must be a communicator such as anybackprop.distributed.init() returns, got {comm!r} (it "
            f"lacks {', '.join(missing)})"
        )


def _plan(model: Trainable, prepared: tuple, shuffle: bool, resume: Any, preprocess: Any) -> dict[str, Any]:
    """What every process of a data-parallel ``fit`` must have alike: settings, backend, dtype,
    layer shapes, the data's shapes and sums (every process holds all of it), the batch plan."""
    epochs, batch_size, hooks, opt, x, y, w, val = prepared
    xp, device = model.backend.xp, model.backend.device

    def checksum(a: Any) -> float:  # sum of the entries weighted by row and column: order and labels count
        a = xp.astype(a, x.dtype)
        rows = xp.arange(1, a.shape[0] + 1, dtype=a.dtype, device=device) / a.shape[0]
        if a.ndim == 1:
            return float(xp.sum(a * rows))
        return float(xp.sum(rows @ a * (xp.arange(1, a.shape[1] + 1, dtype=a.dtype, device=device))))

    with model.backend.activate():  # the data lives on the model's device
        sums = [checksum(a) for a in (x, y, *(() if w is None else (w,)), *(() if val is None else val[:2]))]
    return {
        "the backend": f"{model.backend.name} on {model.backend.device}",
        "the dtype": model.dtype_name,
        "the number of features": x.shape[1],
        "the number of rows": x.shape[0],
        "the targets' shape": tuple(y.shape[1:]),
        "the layers": [type(layer).__name__ for layer in model.layers],
        "the parameter shapes": {k: tuple(p.shape) for k, p in model.params.items()},
        "sample weights": "given" if w is not None else "none",
        "the validation rows": None if val is None else val[0].shape[0],
        "the data (sums of X, y, weights, validation data)": sums,
        "epochs": epochs,
        "batch_size": batch_size,
        "shuffle": bool(shuffle),
        "the optimizer": opt.settings(),
        "the callbacks": [type(hook).__name__ for hook in hooks],
        "resume": resume is not None,
        "preprocess": preprocess,
    }


class _Progress:
    """A ``tqdm.auto`` bar over epochs on a terminal or in a notebook (a widget there), its
    figures kept short enough for 80 columns; one printed line per epoch otherwise."""

    def __init__(self, epochs: int, verbose: bool, initial: int = 0) -> None:
        self.verbose = verbose
        self.bar = None
        if verbose and (sys.stderr.isatty() or "ipykernel" in sys.modules):
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=epochs,
                    initial=initial,
                    unit="epoch",
                    leave=True,
                    bar_format="epoch {n_fmt}/{total_fmt} {bar:10} {desc}",
                )
            except ImportError:
                pass

    def update(self, epoch: int, epochs: int, values: dict[str, float], rate: float) -> None:
        if not self.verbose:
            return
        if self.bar is not None:
            short = " ".join(f"{k.replace('accuracy', 'acc')}={v:.4f}" for k, v in values.items())
            self.bar.set_description_str(short, refresh=False)
            self.bar.update(1)
        else:
            parts = " - ".join(f"{k} {v:.4f}" for k, v in values.items())
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
    callbacks: Sequence[Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    preprocess: bool | None = None,
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
    ``(X_val, Y_val, w_val)``. A non-finite epoch loss raises ValueError.
    ``num_threads`` fixes the BLAS threads on the CPU (default: :mod:`anybackprop.threads`'s
    policy, one thread for small products, every core for large ones).

    ``preprocess`` sets the state of layers that learn it from the training rows
    (:class:`~anybackprop.layers.Standardize`) first: True always, False never, None (default)
    only while that state is still the layer's initial one, so that a second ``fit`` (or one on a
    loaded model) continues under the scaling the weights were trained with.
    ``callbacks`` are :class:`Callback` objects or functions ``f(epoch, history, model)``, called at
    each epoch's end (epoch 1-based); one that returns True stops training after that epoch.
    ``early_stopping=k`` adds :class:`EarlyStopping` ``(k, min_delta)``; ``checkpoint=PATH`` adds
    :class:`Checkpoint` ``(PATH)``, which writes the model, optimizer state, epoch, history and
    random state at each epoch's end; ``resume=PATH`` continues from such a file, and ends with the
    parameters and history of a run that was never stopped (bitwise on NumPy).

    ``comm`` (a communicator of :func:`anybackprop.distributed.init`) trains data-parallel over its
    processes (:class:`DataParallelTrainer`): every process passes the same data and arguments,
    ``batch_size`` is the global batch, and the result equals one process's (to float rounding);
    the history is the same on every process and only rank 0 prints.
    """

    def prepare() -> tuple:
        """The checked arguments and data (on every process, before its first collective)."""
        checked = (
            check_positive_int(epochs, "epochs"),
            check_positive_int(batch_size, "batch_size"),
            _callbacks(callbacks, early_stopping, min_delta, checkpoint),
            get_optimizer(optimizer, lr, **optimizer_options),
        )
        with model.backend.activate():
            x, y, w = model.check_data(X, Y, sample_weight, class_weight)
            val = _check_validation_data(model, validation_data)
            _check_batch_sizes(model, x.shape[0], checked[1])
        return (*checked, x, y, w, val)

    if comm is None:
        prepared = prepare()
    else:  # every process checks, then all agree on what must agree (or all raise the same error)
        _check_comm(comm)
        prepared = agree(comm, prepare, lambda p: _plan(model, p, shuffle, resume, preprocess))
    epochs, batch_size, hooks, opt, x, y, w, val = prepared
    with (
        model.backend.activate(),
        threads.limited(model.backend, threads.largest_product(model.layers, batch_size), num_threads),
    ):
        m = x.shape[0]
        if preprocess or preprocess is None:
            model.learn_preprocessing(x, only_initial=preprocess is None)
        compiled: CompiledTrainer | None = None
        if comm is None:
            trainer = Trainer(model, opt)
            if compiles(model, epochs, m, batch_size):  # a backend that compiles the epoch (JAX)
                compiled = CompiledTrainer(trainer)
        else:
            trainer = DataParallelTrainer(model, opt, comm)
            seed = comm.broadcast_value(int(host_rng(None).integers(2**62)) if seed is None else seed)  # rank 0's
        rng = host_rng(seed)
        history = History()
        run = Run(model, trainer, rng, epochs, history, hooks, m, batch_size, val is not None)
        for hook in hooks:
            hook.on_train_begin(run)
        if resume is None:
            first = 0
        elif comm is None:
            first = load_checkpoint(resume, run)
        else:
            first = agree(comm, lambda: load_checkpoint(resume, run), lambda epoch: {"the checkpoint's epoch": epoch})
        if not compiled and model.fixed_prefix:  # a leading scaling, in the state training runs with: once
            trainer.start = model.fixed_prefix
            x = model.prefix(x)
            val = None if val is None else (model.prefix(val[0]), *val[1:])
        # a resumed run that early stopping ended trains no further
        last = first if any(hook.stops_after(first) for hook in hooks) else epochs
        metric = model.head.metric_name
        ss_tot = (model.total_sum_of_squares(y, w), 0.0 if val is None else model.total_sum_of_squares(val[1], val[2]))
        gather = model.fast.get(gather_rows)
        xp = model.backend.xp
        ys = ws = order = None
        progress = _Progress(epochs, verbose and trainer.rank == 0, first)
        guard = None if compiled else DivergenceGuard(model, first)  # a compiled epoch checks itself
        # with nothing looking at the model between epochs, a compiled epoch is launched before the last is read
        then = None if hooks else lambda e: opt.start_epoch(e, epochs)
        try:
            for epoch in range(first, last):
                tick = time.perf_counter()
                if not (compiled and compiled.ahead_of(epoch + 1)):  # (an epoch launched early was set up then)
                    opt.start_epoch(epoch, epochs)
                ahead = then if epoch + 1 < last else None
                values = (
                    compiled.epoch(epoch + 1, x, y, w, val, batch_size, rng, shuffle, ss_tot, ahead)
                    if compiled
                    else None
                )
                if values is None:  # an eager epoch (or one of a model the compiled trainer cannot trace)
                    guard = guard or DivergenceGuard(model, epoch)
                    if shuffle:  # last epoch's copies are free to be overwritten now
                        order = model.backend.adapter.from_host(model.backend, rng.permutation(m))  # ours: no checks
                        ys = gather(xp, y, order, ys)
                        ws = None if w is None else gather(xp, w, order, ws)
                    else:
                        ys, ws = y, w
                    logits = trainer.epoch(x, ys, ws, batch_size, rng, order)
                    loss, train_metric = trainer.scores(logits, ys, ws, ss_tot[0])
                    values = {"loss": loss, metric: train_metric}
                    if val is not None:
                        values["val_loss"], values[f"val_{metric}"] = trainer.scores(
                            trainer.logits(val[0]), val[1], val[2], ss_tot[1]
                        )
                    guard.check(epoch + 1, values, opt.base_lr, keep=epoch + 1 < last)
                history.record(values)
                progress.update(epoch + 1, epochs, values, m / max(time.perf_counter() - tick, 1e-9))
                history.seconds += time.perf_counter() - tick
                stop = _epoch_end(hooks, epoch + 1, history, model)
                if comm is not None:  # a callback that stops one process stops them all
                    stop = any(comm.allgather_value(stop))
                if stop:
                    break
        finally:
            progress.close()
    for hook in hooks:
        hook.on_train_end(history, model)
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
