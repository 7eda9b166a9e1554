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
import os
from typing import Any

import numpy as np

from .backend import to_numpy
from .files import Contents, Refusal, _invalid, atomic_open, display_name, read_archive

FORMAT = "anybackprop-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, run: Any, epoch: int) -> None:
    """Write the state of ``run`` (a :class:`anybackprop.training.Run`) after ``epoch`` (1-based)."""
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
            "counters": {name: getattr(optimizer, name) for name in optimizer.counters},
        },
        "history": run.history.to_dict(),
        "rng": run.rng.bit_generator.state,
        "callbacks": callbacks,
    }
    arrays["__meta__"] = np.array(json.dumps(meta))
    with atomic_open(path) as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # NumPy's stub types allow_pickle among **kwds


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
        raise ValueError("its metadata has no optimizer section")
    if not isinstance(meta.get("callbacks"), list) or not all(
        isinstance(c, dict) and isinstance(c.get("class"), str) and isinstance(c.get("values"), dict)
        for c in meta["callbacks"]
    ):
        raise ValueError("its metadata has no valid callbacks list")
    if (
        type(meta.get("epoch")) is not int
        or meta["epoch"] < 0
        or not isinstance(meta.get("history"), dict)
        or not isinstance(meta.get("rng"), dict)
    ):
        raise ValueError("its metadata has no valid epoch, history and generator state")
    model, optimizer = run.model, run.optimizer
    saved_class = meta["optimizer"].get("class")
    if saved_class != type(optimizer).__name__:
        raise Refusal(
            f"resume: {display_name(path)} was written with optimizer {saved_class}, this fit uses "
            f"{type(optimizer).__name__}"
        )
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
    model.set_params(part("model.params."))
    model.set_state(part("model.state."))
    slots = {slot: part(f"optimizer.{slot}.") for slot in optimizer.slots}
    optimizer.load_state(model, slots, meta["optimizer"]["counters"])
    for key, hook in zip(_by_occurrence([type(h).__name__ for h in run.callbacks]), run.callbacks, strict=True):
        if key in saved:
            i = saved[key]
            try:
                hook.restore_checkpoint_state(meta["callbacks"][i]["values"], part(f"callback{i}."), model)
            except (KeyError, TypeError, IndexError, AttributeError, OverflowError) as exc:
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
