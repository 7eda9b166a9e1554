"""Checkpoints for an exact resume of :func:`anybackprop.training.fit`.

A checkpoint is an ``.npz`` archive like a model file (:mod:`anybackprop.io`), written atomically
at an epoch's end, holding everything the rest of the run depends on: the model's parameters and
state (``model.*``), the optimizer's state arrays (``optimizer.<slot>.<key>``) and counters (Adam's
``t``), the callbacks' state (``callback<i>.*``: early stopping's best parameters), and as JSON the
epoch, the number of epochs, the history and the host generator's ``bit_generator.state`` (which
drives the shuffles and dropout masks). Resuming restores all of it, so the remaining epochs do
exactly what they would have done in a run that was never stopped.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .backend import to_numpy
from .files import atomic_open, read_archive

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
        callbacks.append({"class": type(hook).__name__, "values": values})
        arrays.update({f"callback{i}.{k}": v for k, v in hook_arrays.items()})
    meta = {
        "format": FORMAT, "version": VERSION, "epoch": epoch, "epochs": run.epochs,
        "optimizer": {"class": type(optimizer).__name__, "counters": {name: getattr(optimizer, name) for name in optimizer.counters}},
        "history": run.history.to_dict(), "rng": run.rng.bit_generator.state, "callbacks": callbacks,
    }
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


def load_checkpoint(path: str | os.PathLike, run: Any) -> int:
    """Restore ``run`` (model, optimizer, generator, history, callbacks) from ``path``; returns the
    number of epochs already done. The run must train the same model with the same optimizer as
    the one that wrote it; its callbacks with state (early stopping) find theirs by class."""
    meta, arrays = read_archive(path, "__meta__", "checkpoint")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{os.fspath(path)} is not an anybackprop checkpoint (format {FORMAT} version {VERSION})")
    model, optimizer = run.model, run.optimizer
    saved_class = meta["optimizer"]["class"]
    if saved_class != type(optimizer).__name__:
        raise ValueError(f"resume: {os.fspath(path)} was written with optimizer {saved_class}, this fit uses {type(optimizer).__name__}")
    saved = _by_occurrence([c["class"] for c in meta["callbacks"]])
    epoch = int(meta["epoch"])
    if epoch > run.epochs:
        raise ValueError(f"resume: {os.fspath(path)} is at epoch {epoch}, past this fit's epochs={run.epochs}")

    def part(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    model.set_params(part("model.params."))
    model.set_state(part("model.state."))
    slots = {slot: part(f"optimizer.{slot}.") for slot in optimizer.slots}
    optimizer.load_state(model, slots, meta["optimizer"]["counters"])
    for key, hook in zip(_by_occurrence([type(h).__name__ for h in run.callbacks]), run.callbacks):
        if key in saved:
            i = saved[key]
            hook.restore_checkpoint_state(meta["callbacks"][i]["values"], part(f"callback{i}."), model)
        elif hook.checkpoint_state()[0]:
            raise ValueError(f"resume: {os.fspath(path)} has no state for this fit's callback {key[0]} (number {key[1] + 1} of its class)")
    restored = type(run.history).from_dict(meta["history"])
    run.history.__dict__.update(restored.__dict__)
    run.rng.bit_generator.state = meta["rng"]
    return epoch
