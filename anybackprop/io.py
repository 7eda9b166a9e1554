"""Saving and loading models without pickle.

A model file is a ``.npz`` archive holding the parameters (``W1``, ``b1``, ...) as NumPy arrays and
the metadata (format name and version, layer sizes, activations, output, loss, dtype) as a JSON
string in a 0-d unicode array, so it loads with ``allow_pickle=False``. Files are written
atomically: a temporary file in the same directory, flushed and fsynced, then ``os.replace``; on
any error the previous file is untouched and the temporary file is removed.
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
from .network import MLP

FORMAT = "anybackprop"
VERSION = 1
_META_KEY = "__anybackprop__"


def save(model: MLP, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` (the name is used as given: no extension is added)."""
    if not isinstance(model, MLP):
        raise TypeError(f"save expects an anybackprop MLP, got {type(model).__name__}")
    arrays = {key: to_numpy(value) for key, value in model.params.items()}
    meta = {"format": FORMAT, "version": VERSION, **model.config()}
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


def _invalid(path: Any, reason: str) -> ValueError:
    return ValueError(f"{os.fspath(path)} is not a valid anybackprop model file: {reason}")


def _read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise _invalid(path, "not an .npz archive")
            contents = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        if isinstance(exc, ValueError) and "not a valid anybackprop" in str(exc):
            raise
        raise _invalid(path, f"cannot read it as an .npz archive ({type(exc).__name__}: {exc})") from None
    if _META_KEY not in contents:
        raise _invalid(path, "it has no anybackprop metadata")
    try:
        meta = json.loads(str(contents.pop(_META_KEY)))
    except json.JSONDecodeError as exc:
        raise _invalid(path, f"its metadata is not JSON ({exc})") from None
    return meta, contents


def load(path: str | os.PathLike, backend: Any = None) -> MLP:
    """Read a model written by :func:`save` onto ``backend`` (default: the current one)."""
    meta, arrays = _read(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _invalid(path, "its metadata does not name the anybackprop format")
    if meta.get("version") != VERSION:
        raise _invalid(path, f"format version {meta.get('version')!r} is not supported (expected {VERSION})")
    sizes = meta.get("layer_sizes")
    if not isinstance(sizes, list) or len(sizes) < 2 or not all(isinstance(n, int) and n > 0 for n in sizes):
        raise _invalid(path, f"layer_sizes {sizes!r} is not a list of positive ints")
    if meta.get("dtype") not in ("float32", "float64"):
        raise _invalid(path, f"dtype {meta.get('dtype')!r} is not float32 or float64")
    expected = {}
    for i in range(1, len(sizes)):
        expected[f"W{i}"] = (sizes[i - 1], sizes[i])
        expected[f"b{i}"] = (sizes[i],)
    if set(arrays) != set(expected):
        raise _invalid(path, f"it holds arrays {sorted(arrays)} but layer_sizes {sizes} needs {sorted(expected)}")
    for key, shape in expected.items():
        if arrays[key].shape != shape or arrays[key].dtype != np.dtype(meta["dtype"]):
            raise _invalid(path, f"{key} has shape {arrays[key].shape} dtype {arrays[key].dtype}, expected {shape} {meta['dtype']}")
    try:
        model = MLP(
            sizes, activation=meta.get("activation", []), output=meta.get("output"), loss=meta.get("loss"),
            dtype=meta["dtype"], backend=backend,
        )
    except (ValueError, TypeError) as exc:
        raise _invalid(path, str(exc)) from None
    model.set_params(arrays)
    return model
