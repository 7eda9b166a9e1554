"""Saving and loading models without pickle.

A model file is a ``.npz`` archive holding the parameters (``W1``, ``b1``, ...) and the layers'
state (``state.running_mean1``, ...) as NumPy arrays, and the metadata as a JSON string in a 0-d
unicode array, so it loads with ``allow_pickle=False``. Format version 2 stores the list of layers
(``kind`` and ``config()`` of each, see :data:`anybackprop.layers.LAYERS`), the head, the dtype and,
for an :class:`~anybackprop.MLP`, its constructor arguments; version 1 files (an MLP's layer sizes,
activations, output, loss, dtype) still load. Files are written atomically: a temporary file in
the same directory, flushed and fsynced, then ``os.replace``; on any error the previous file is
untouched and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from .backend import to_numpy

from .heads import get_head
from .layers import layer_from_spec
from .network import MLP, Sequential

FORMAT = "anybackprop"
VERSION = 2
_META_KEY = "__anybackprop__"
_STATE = "state."


def save(model: Sequential, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` (the name is used as given: no extension is added)."""
    if not isinstance(model, Sequential):
        raise TypeError(f"save expects an anybackprop model (MLP or Sequential), got {type(model).__name__}")
    arrays = {key: to_numpy(value) for key, value in model.params.items()}
    arrays.update({_STATE + key: to_numpy(value) for key, value in model.state.items()})
    meta = {"format": FORMAT, "version": VERSION, **Sequential.config(model)}
    if isinstance(model, MLP):
        meta["mlp"] = model.mlp_config()
    arrays[_META_KEY] = np.array(json.dumps(meta))
    with atomic_open(path) as f:
        np.savez(f, **arrays)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only when the block completes: a temporary file in the
    same directory, flushed and fsynced, then ``os.replace``. On any error the temporary file is
    removed and whatever was at ``path`` is untouched."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _invalid(path: Any, reason: str, what: str = "model") -> ValueError:
    return ValueError(f"{os.fspath(path)} is not a valid anybackprop {what} file: {reason}")


def read_archive(path: str | os.PathLike, meta_key: str = _META_KEY, what: str = "model") -> tuple[dict, dict[str, np.ndarray]]:
    """``(metadata, arrays)`` of an ``.npz`` archive holding JSON metadata under ``meta_key``,
    read with ``allow_pickle=False``; a clear ValueError when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise _invalid(path, "not an .npz archive", what)
            contents = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        if isinstance(exc, ValueError) and "not a valid anybackprop" in str(exc):
            raise
        raise _invalid(path, f"cannot read it as an .npz archive ({type(exc).__name__}: {exc})", what) from None
    if meta_key not in contents:
        raise _invalid(path, "it has no anybackprop metadata", what)
    try:
        meta = json.loads(str(contents.pop(meta_key)))
    except json.JSONDecodeError as exc:
        raise _invalid(path, f"its metadata is not JSON ({exc})", what) from None
    if not isinstance(meta, dict):
        raise _invalid(path, "its metadata is not a JSON object", what)
    return meta, contents


def load(path: str | os.PathLike, backend: Any = None) -> Sequential:
    """Read a model written by :func:`save` onto ``backend`` (default: the current one)."""
    meta, arrays = read_archive(path)
    if meta.get("format") != FORMAT:
        raise _invalid(path, "its metadata does not name the anybackprop format")
    if meta.get("version") not in (1, VERSION):
        raise _invalid(path, f"format version {meta.get('version')!r} is not supported (expected 1 or {VERSION})")
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
    return model


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
