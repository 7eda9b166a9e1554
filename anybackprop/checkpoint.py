"""Checkpoints for an exact resume of :func:`anybackprop.training.fit`.

A checkpoint is an ``.npz`` archive like a model file (:mod:`anybackprop.io`), written atomically
at an epoch's end, holding everything the rest of the run depends on: the model's parameters and
state (``model.*``), the optimizer's state arrays (``optimizer.<slot>.<key>``) and counters (Adam's
``t``), the callbacks' state (``callback<i>.*``: early stopping's best parameters), and as JSON the
epoch, the number of epochs, the history and the host generator's ``bit_generator.state`` (which
drives the shuffles and dropout masks). Resuming restores all of it, so the remaining epochs do
exactly what they would have done in a run that was never stopped.

A checkpoint is read like a model file, as untrusted input and through the same reader
(:func:`anybackprop.files.read_archive`): the metadata first, then only the members that the
resuming run and the metadata imply (the model's and optimizer's arrays with the run's shapes, each
callback's arrays as its ``arrays`` entry declares them), each checked before its data is read.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from .backend import to_numpy
from .files import Contents, Refusal, _invalid, atomic_open, display_name, read_archive

FORMAT = "anybackprop-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, run: Any, epoch: int, fingerprint: dict | None = None) -> None:
    """Write the state of ``run`` (a :class:`anybackprop.training.Run`) after ``epoch`` (1-based),
    with the run's ``fingerprint`` (JSON-able, see :func:`check_fingerprint`) if given."""
    model, optimizer = run.model, run.optimizer
    arrays = {f"model.params.{k}": to_numpy(v) for k, v in model.params.items()}
    arrays.update({f"model.state.{k}": to_numpy(v) for k, v in model.state.items()})
    for slot, values in (optimizer.state or {}).items():
        arrays.update({f"optimizer.{slot}.{k}": to_numpy(v) for k, v in values.items()})
    callbacks = []
    for i, hook in enumerate(run.callbacks):
        values, hook_arrays = hook.checkpoint_state()
        hook_arrays = {k: np.asarray(v) for k, v in hook_arrays.items()}
        declared = {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in hook_arrays.items()}
        callbacks.append({"class": type(hook).__name__, "values": values, "arrays": declared})
        arrays.update({f"callback{i}.{k}": v for k, v in hook_arrays.items()})
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": epoch,
        "epochs": run.epochs,
        "optimizer": {
            "class": type(optimizer).__name__,
            "settings": optimizer.settings(),
            "counters": {name: getattr(optimizer, name) for name in optimizer.counters},
        },
        "batches": {"rows": run.rows, "batch_size": run.batch_size},
        "history": run.history.to_dict(),
        "rng": run.rng.bit_generator.state,
        "callbacks": callbacks,
    }
    if fingerprint is not None:
        meta["fingerprint"] = fingerprint
    arrays["__meta__"] = np.array(json.dumps(meta))
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def _by_occurrence(names: list[str]) -> dict[tuple[str, int], int]:
    """``{(class name, k-th of that class): position}``: how a resumed run's callbacks find
    their saved state (those without state, such as plain functions, may differ)."""
    seen: dict[str, int] = {}
    keys = {}
    for i, name in enumerate(names):
        keys[(name, seen.get(name, 0))] = i
        seen[name] = seen.get(name, 0) + 1
    return keys


MAX_META_CHARS = 1 << 24
"""Longest JSON metadata of a checkpoint (its history grows with the epochs), in characters."""
_CALLBACK_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
)


def _expected(meta: dict, contents: Contents, run: Any, path: Any) -> dict[str, tuple[tuple[int, ...], Any]]:
    """The members a checkpoint of ``run`` holds, from its metadata: the model's and optimizer's
    arrays with the run's shapes, and each callback's declared arrays."""
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"it is not an anybackprop checkpoint (format {FORMAT} version {VERSION})")
    counters = meta["optimizer"].get("counters") if isinstance(meta.get("optimizer"), dict) else None
    if not isinstance(counters, dict) or not all(type(v) is int for v in counters.values()):
        raise ValueError(f"its metadata has no optimizer section (field optimizer.counters is {counters!r})")
    if not isinstance(meta.get("callbacks"), list) or not all(
        isinstance(c, dict) and isinstance(c.get("class"), str) and isinstance(c.get("values"), dict)
        for c in meta["callbacks"]
    ):
        raise ValueError("its metadata has no valid callbacks list (field callbacks: each {class, values})")
    for field, ok in (
        ("epoch", type(meta.get("epoch")) is int and meta["epoch"] >= 0),
        ("history", isinstance(meta.get("history"), dict)),
        ("rng", isinstance(meta.get("rng"), dict)),
    ):
        if not ok:
            raise ValueError(
                f"its metadata has no valid epoch, history and generator state (field {field} is "
                f"{str(meta.get(field))[:80]!r})"
            )
    model, optimizer = run.model, run.optimizer
    saved_class = meta["optimizer"].get("class")
    if saved_class != type(optimizer).__name__:
        raise Refusal(
            f"resume: {display_name(path)} was written with optimizer {saved_class}, this fit uses "
            f"{type(optimizer).__name__}"
        )
    _check_run(meta, run, path)
    dtype = np.dtype(model.dtype_name)
    found = {f"model.params.{k}": (tuple(v.shape), dtype) for k, v in model.params.items()}
    found.update({f"model.state.{k}": (tuple(v.shape), dtype) for k, v in model.state.items()})
    for slot, values in (optimizer.state or {}).items():
        found.update({f"optimizer.{slot}.{k}": (tuple(v.shape), dtype) for k, v in values.items()})
    shapes = {
        **{f"params.{k}": v for k, v in model.params.items()},
        **{f"state.{k}": v for k, v in model.state.items()},
    }
    for i, callback in enumerate(meta["callbacks"]):
        declared = callback.get("arrays")
        if declared is None:  # written before callbacks declared their arrays: early stopping's best model, if any
            for name in contents.names:
                key = name[len(f"callback{i}.") :]
                if name.startswith(f"callback{i}.") and key in shapes:
                    found[name] = (tuple(shapes[key].shape), dtype)
            continue
        if not isinstance(declared, dict):
            raise ValueError(f"callback {i}'s arrays are not a JSON object")
        for key, spec in declared.items():
            shape, kind = (spec.get("shape"), spec.get("dtype")) if isinstance(spec, dict) else (None, None)
            if (
                not isinstance(shape, list)
                or not all(type(n) is int and n >= 0 for n in shape)
                or kind not in _CALLBACK_DTYPES
            ):
                raise ValueError(f"callback {i}'s array {key!r} has no valid shape and dtype ({spec!r})")
            found[f"callback{i}.{key}"] = (tuple(shape), np.dtype(kind))
    return found


def _check_run(meta: dict, run: Any, path: Any) -> None:
    """The metadata's fields that the resuming ``run`` implies: the optimizer's kind and settings
    and the batch plan must be the run's (else :class:`Refusal`, saying what differs); the
    counters must count at least the steps of the epochs done and ``epochs`` be at least
    ``epoch`` (else ValueError naming the field)."""
    name, optimizer, epoch = display_name(path), run.optimizer, meta["epoch"]
    saved = meta["optimizer"].get("settings")
    if not isinstance(saved, dict):
        raise ValueError(f"its field optimizer.settings is {saved!r}; expected a JSON object")
    now = optimizer.settings()
    if saved.get("kind") != now["kind"]:
        raise Refusal(
            f"resume: {name} was written with optimizer {saved.get('kind')!r} (optimizer.settings.kind), this fit "
            f"uses {now['kind']!r}; resume with the optimizer it was written with"
        )
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key) or type(saved.get(key)) is not type(now.get(key)):
            raise Refusal(
                f"resume: {name} was written with {now['kind']} {key}={saved.get(key)!r} (optimizer.settings.{key}), "
                f"this fit has {key}={now.get(key)!r}; resume with the settings it was written with"
            )
    batches = meta.get("batches")
    if not isinstance(batches, dict) or not all(type(batches.get(k)) is int for k in ("rows", "batch_size")):
        raise ValueError(f"its field batches is {batches!r}; expected {{'rows': int, 'batch_size': int}}")
    for key, value in (("rows", run.rows), ("batch_size", run.batch_size)):
        if batches[key] != value:
            raise Refusal(
                f"resume: {name} was written by a fit of {key}={batches[key]} (batches.{key}), this fit has "
                f"{key}={value}; resume on the same data with the same batch_size"
            )
    steps = epoch * -(-run.rows // run.batch_size)
    counters = meta["optimizer"]["counters"]
    if sorted(counters) != sorted(optimizer.counters):
        raise ValueError(f"its field optimizer.counters has {sorted(counters)}; expected {sorted(optimizer.counters)}")
    for key, value in counters.items():
        if value < steps:
            raise ValueError(
                f"its field optimizer.counters.{key} is {value}; expected a step count of at least {steps} "
                f"(epoch {epoch} of {steps // max(epoch, 1)} steps)"
            )
    if type(meta.get("epochs")) is not int or meta["epochs"] < epoch:
        raise ValueError(f"its field epochs is {meta.get('epochs')!r}; expected an int >= epoch ({epoch})")


def _check_history(history: Any, run: Any, epoch: int, path: Any) -> None:
    """The restored history has one finite record per epoch done of each series the run records."""
    columns = history.columns()
    if epoch and ("val_loss" in columns) != run.validation:
        has = ("with", "without") if run.validation else ("without", "with")
        raise Refusal(
            f"resume: {display_name(path)} was written by a fit {has[1]} validation data (history.val_loss), "
            f"this fit is {has[0]}; resume with the validation data it was written with"
        )
    metric = run.model.head.metric_name
    names = ["loss", metric, *(("val_loss", f"val_{metric}") if run.validation else ())]
    for key in [*names, *(k for k in columns if k not in names)]:
        where = f"history.{key}" if key in ("loss", "val_loss") else f"history.metrics.{key}"
        series = columns.get(key, [])
        if key not in names:
            raise _invalid(path, f"its field {where} is not one this fit records ({', '.join(names)})", "checkpoint")
        if len(series) != epoch or not all(math.isfinite(v) for v in series):
            raise _invalid(
                path,
                f"its field {where} has {len(series)} entries for epoch {epoch} (each a finite number)",
                "checkpoint",
            )
    if history.best_epoch is not None and (type(history.best_epoch) is not int or not 1 <= history.best_epoch <= epoch):
        raise _invalid(
            path, f"its field history.best_epoch is {history.best_epoch!r}; expected 1 to {epoch}", "checkpoint"
        )
    if not 0 <= history.seconds < math.inf:
        raise _invalid(
            path, f"its field history.seconds is {history.seconds!r}; expected a finite number >= 0", "checkpoint"
        )


def _check_moments(arrays: dict[str, np.ndarray], optimizer: Any, path: Any) -> None:
    """Slots that are never negative (Adam's second moment) have no negative entry."""
    for slot in optimizer.nonnegative:
        for key, value in arrays.items():
            if key.startswith(f"optimizer.{slot}.") and value.size and value.min() < 0:
                raise _invalid(
                    path,
                    f"its array {key} has negative entries (smallest {float(value.min())!r}); "
                    f"{type(optimizer).__name__}'s {slot} is never negative",
                    "checkpoint",
                )


def load_checkpoint(path: str | os.PathLike, run: Any) -> int:
    """Restore ``run`` (model, optimizer, generator, history, callbacks) from ``path``; returns the
    number of epochs already done. The run must train the same model with the same optimizer as
    the one that wrote it; its callbacks with state (early stopping) find theirs by class."""
    meta, arrays = read_archive(
        path,
        lambda meta, contents: _expected(meta, contents, run, path),
        "__meta__",
        "checkpoint",
        max_meta=MAX_META_CHARS,
    )
    model, optimizer = run.model, run.optimizer
    saved = _by_occurrence([c["class"] for c in meta["callbacks"]])
    epoch = int(meta["epoch"])
    if epoch > run.epochs:
        raise ValueError(f"resume: {display_name(path)} is at epoch {epoch}, past this fit's epochs={run.epochs}")

    def part(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

    try:  # the metadata's parts that the arrays do not cover, checked before the run changes
        restored = type(run.history).from_dict(meta["history"])
        np.random.Generator(type(run.rng.bit_generator)()).bit_generator.state = meta["rng"]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise _invalid(
            path, f"its history or generator state is not valid ({type(exc).__name__}: {exc})", "checkpoint"
        ) from None
    _check_history(restored, run, epoch, path)
    _check_moments(arrays, optimizer, path)
    model.set_params(part("model.params."))
    model.set_state(part("model.state."))
    slots = {slot: part(f"optimizer.{slot}.") for slot in optimizer.slots}
    optimizer.load_state(model, slots, meta["optimizer"]["counters"])
    for key, hook in zip(_by_occurrence([type(h).__name__ for h in run.callbacks]), run.callbacks, strict=True):
        if key in saved:
            i = saved[key]
            try:
                hook.restore_checkpoint_state(meta["callbacks"][i]["values"], part(f"callback{i}."), model)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
                raise _invalid(
                    path, f"the state of callback {key[0]} is not valid ({type(exc).__name__}: {exc})", "checkpoint"
                ) from None
        elif hook.checkpoint_state()[0]:
            raise ValueError(
                f"resume: {display_name(path)} has no state for this fit's callback {key[0]} (number "
                f"{key[1] + 1} of its class)"
            )
    run.history.__dict__.update(restored.__dict__)
    run.rng.bit_generator.state = meta["rng"]
    return epoch


def check_fingerprint(path: str | os.PathLike, fingerprint: dict) -> int:
    """The epoch of the checkpoint ``path`` (its metadata alone is read), after checking that
    its fingerprint (what :meth:`anybackprop.tables.TabularModel.fingerprint` gives: columns,
    encoding, rows, a hash of the encoded data, model and training settings) is ``fingerprint``;
    a ValueError names each part that differs."""
    meta = read_checkpoint_meta(path)
    if meta.get("format") != FORMAT or type(meta.get("epoch")) is not int:
        raise _invalid(path, f"it is not an anybackprop checkpoint (format {FORMAT} version {VERSION})", "checkpoint")
    saved = meta.get("fingerprint")
    if not isinstance(saved, dict):
        raise ValueError(
            f"resume: {display_name(path)} holds no fingerprint of its data and settings (it was not written by "
            "a table run: TabularModel.fit or anybackprop train --data), so it cannot be checked against this run"
        )
    differences = []
    for key, value in fingerprint.items():
        there = saved.get(key)
        if isinstance(value, dict) and isinstance(there, dict):
            differences += [
                f"{key}.{k} ({_short(there.get(k))} there, {_short(value.get(k))} here)"
                for k in sorted(set(value) | set(there))
                if value.get(k) != there.get(k)
            ]
        elif there != value:
            shown = "they differ" if key in ("data", "encoding") else f"{_short(there)} there, {_short(value)} here"
            differences.append(f"{key} ({shown})")
    if differences:
        raise ValueError(
            f"resume: {display_name(path)} was written by another run; what differs: {'; '.join(differences)}"
        )
    return meta["epoch"]


class _MetaRead(Exception):
    """Carries a checkpoint's metadata out of :func:`read_archive` before any array is read."""


def read_checkpoint_meta(path: str | os.PathLike) -> dict:
    """A checkpoint's JSON metadata alone, read and checked as :func:`read_archive` does."""

    def stop(meta: dict, contents: Contents) -> dict:
        raise _MetaRead(meta)

    try:
        read_archive(path, stop, "__meta__", "checkpoint", max_meta=MAX_META_CHARS)
    except _MetaRead as found:
        return found.args[0]
    raise AssertionError("unreachable: read_archive calls stop")  # pragma: no cover


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a checkpoint's metadata is untrusted)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
