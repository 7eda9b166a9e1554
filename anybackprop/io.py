"""Saving and loading models without pickle.

A model file is a ``.npz`` archive holding the parameters (``W1``, ``b1``, ...) and the layers'
state (``state.running_mean1``, ...) as NumPy arrays, and the metadata as a JSON string in a 0-d
unicode array, so it loads with ``allow_pickle=False``. Format version 3 (2 and 1 still load) stores the list of layers
(``kind`` and ``config()`` of each, see :data:`anybackprop.layers.LAYERS`), the head, the dtype and,
for an :class:`~anybackprop.MLP`, its constructor arguments, the anybackprop version and creation
time, optional ``info`` (training settings, test metric) and, for a
:class:`~anybackprop.tables.TabularModel`, a ``table`` section (target, task, column encoding,
class labels with their dtype); version 2 files lack the last three; version 1 files (an MLP's layer sizes,
activations, output, loss, dtype) still load. Files are written atomically: a temporary file in
the same directory, flushed and fsynced, then ``os.replace``; on any error the previous file is
untouched and the temporary file is removed.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

import numpy as np

from ._version import __version__
from .backend import to_numpy
from .files import _invalid, atomic_open, read_archive

from .heads import get_head
from .layers import layer_from_spec
from .network import MLP, Sequential

FORMAT = "anybackprop"
VERSION = 3
_META_KEY = "__anybackprop__"
_STATE = "state."
__all__ = ["FORMAT", "VERSION", "atomic_open", "load", "read_archive", "save"]


def save(model: Any, path: str | os.PathLike, info: dict | None = None) -> None:
    """Write ``model`` (a :class:`~anybackprop.Sequential`/:class:`~anybackprop.MLP`, or a fitted
    :class:`~anybackprop.tables.TabularModel` with its encoder and class labels) to ``path`` (the
    name is used as given: no extension is added). The file records the anybackprop version, the
    creation time (UTC) and ``info`` (JSON-able: training settings, test metric; a
    TabularModel's ``info`` by default)."""
    from .tables import TabularModel

    table = None
    if isinstance(model, TabularModel):
        table, info, model = model.table_config(), model.info if info is None else info, model.network
    if not isinstance(model, Sequential):
        raise TypeError(f"save expects an anybackprop model (MLP, Sequential or TabularModel), got {type(model).__name__}")
    if info is not None and not isinstance(info, dict):
        raise TypeError(f"info must be a dict of JSON-able values, got {type(info).__name__}")
    arrays = {key: to_numpy(value) for key, value in model.params.items()}
    arrays.update({_STATE + key: to_numpy(value) for key, value in model.state.items()})
    meta = {"format": FORMAT, "version": VERSION, **Sequential.config(model),
            "anybackprop_version": __version__, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if isinstance(model, MLP):
        meta["mlp"] = model.mlp_config()
    if table is not None:
        meta["table"] = table
    if info:
        meta["info"] = info
    arrays[_META_KEY] = np.array(json.dumps(meta))
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def load(path: str | os.PathLike, backend: Any = None) -> Any:
    """Read a model written by :func:`save` onto ``backend`` (default: the current one): the
    network, or a :class:`~anybackprop.tables.TabularModel` around it when the file holds a table
    encoding (its ``info`` holds what :func:`save` recorded)."""
    meta, arrays = read_archive(path)
    if meta.get("format") != FORMAT:
        raise _invalid(path, "its metadata does not name the anybackprop format")
    if meta.get("version") not in (1, 2, VERSION):
        raise _invalid(path, f"format version {meta.get('version')!r} is not supported (expected 1, 2 or {VERSION})")
    if meta.get("dtype") not in ("float32", "float64"):
        raise _invalid(path, f"dtype {meta.get('dtype')!r} is not float32 or float64")
    try:
        model = _build(path, meta, backend)
    except (ValueError, TypeError) as exc:
        raise _invalid(path, str(exc)) from None
    state = {key[len(_STATE):]: arrays.pop(key) for key in list(arrays) if key.startswith(_STATE)}
    for what, expected, got in (("params", model.params, arrays), ("state", model.state, state)):
        if set(got) != set(expected):
            raise _invalid(path, f"it holds {what} {sorted(got)} but the model it describes needs {sorted(expected)}")
        for key, value in expected.items():
            shape = tuple(value.shape)
            if got[key].shape != shape or got[key].dtype != np.dtype(meta["dtype"]):
                raise _invalid(path, f"{key} has shape {got[key].shape} dtype {got[key].dtype}, expected {shape} {meta['dtype']}")
    try:
        model.set_params(arrays)
        model.set_state(state)
    except ValueError as exc:
        raise _invalid(path, str(exc)) from None
    if "table" not in meta:
        return model
    from .tables import TabularModel

    info = {k: meta[k] for k in ("anybackprop_version", "created") if k in meta} | (meta.get("info") or {})
    try:
        return TabularModel.from_saved(model, meta["table"], info)
    except (ValueError, TypeError, KeyError) as exc:
        raise _invalid(path, f"its table section is not valid ({exc})") from None


def _build(path: Any, meta: dict, backend: Any) -> Sequential:
    """The model the metadata describes, with fresh parameters."""
    if meta["version"] == 1 or isinstance(meta.get("mlp"), dict):
        config = dict(meta.get("mlp") or meta)
        sizes = config.get("layer_sizes")
        if not isinstance(sizes, list) or len(sizes) < 2 or not all(isinstance(n, int) and n > 0 for n in sizes):
            raise ValueError(f"layer_sizes {sizes!r} is not a list of positive ints")
        allowed = {"layer_sizes", "activation", "output", "loss", "dtype", "init", "dropout", "norm", "standardize"}
        kwargs = {k: v for k, v in config.items() if k in allowed}
        kwargs.setdefault("activation", [])
        return MLP(**kwargs, backend=backend)
    layers, head = meta.get("layers"), meta.get("head")
    if not isinstance(layers, list) or not isinstance(head, dict) or set(head) != {"output", "loss"}:
        raise ValueError("its metadata has no valid 'layers' list and 'head' {output, loss}")
    return Sequential([layer_from_spec(spec) for spec in layers], get_head(**head), dtype=meta["dtype"], backend=backend)
