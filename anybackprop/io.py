"""Saving and loading models without pickle.

A model file is a ``.npz`` archive holding the parameters (``W1``, ``b1``, ...) and the layers'
state (``state.running_mean1``, ...) as NumPy arrays, and the metadata as a JSON string in a 0-d
unicode array, so it loads with ``allow_pickle=False``. Format version 3 (2 and 1 still load) stores the list of layers
(``kind`` and ``config()`` of each, see :data:`anybackprop.layers.LAYERS`), the head, the dtype and,
for an :class:`~anybackprop.MLP`, its constructor arguments, the anybackprop version and creation
time, optional ``info`` (training settings, test metric) and, for a
:class:`~anybackprop.tables.TabularModel`, a ``table`` section (target, task, column encoding,
class labels with their dtype, and the number of networks of an ensemble, whose members after the
first store their arrays as ``member2.W1``, ``member2.state.center1``, ...); version 2 files lack
the last three; version 1 files (an MLP's layer sizes, activations, output, loss, dtype) still
load. Files are written atomically: a temporary file in the same directory, flushed and fsynced,
then ``os.replace``; on any error the previous file is untouched and the temporary file is
removed. :func:`save` first checks that the file would load
back (every array of the dtype and shape the metadata implies, and finite).

A model file is untrusted input: :func:`load` reads the metadata first (bounded in size and
depth), builds the model it describes only when the file is large enough to hold its parameters,
then reads each member after checking its name, dtype, byte order and shape against that model
(see :func:`anybackprop.files.read_archive`); it never unpickles and never decompresses. Any
problem is ``ValueError("<path> is not a valid anybackprop model file: <reason>")``.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
from typing import Any

import numpy as np

from ._version import __version__
from .backend import to_numpy
from .ensemble import MAX_MEMBERS, Ensemble
from .files import Contents, _invalid, atomic_open, display_name, read_archive
from .heads import get_head
from .layers import BatchNorm, Dense, LayerNorm, Standardize, layer_from_spec
from .network import MLP, Sequential

FORMAT = "anybackprop"
VERSION = 3
_META_KEY = "__anybackprop__"
_STATE = "state."
_MEMBER = "member{}."
"""Prefix of the arrays of an ensemble's member ``k`` (2, 3, ...; the first member's have none)."""
__all__ = ["FORMAT", "VERSION", "atomic_open", "load", "read_archive", "save"]


def save(model: Any, path: str | os.PathLike, info: dict | None = None) -> None:
    """Write ``model`` (a :class:`~anybackprop.Sequential`/:class:`~anybackprop.MLP`, or a fitted
    :class:`~anybackprop.tables.TabularModel` with its encoder and class labels) to ``path`` (the
    name is used as given: no extension is added). The file records the anybackprop version, the
    creation time (UTC) and ``info`` (JSON-able: training settings, test metric; a
    TabularModel's ``info`` by default)."""
    from .tables import TabularModel

    table, others = None, []
    if isinstance(model, TabularModel):
        table, info, others = model.table_config(), model.info if info is None else info, model.members[1:]
        model = model.network
    if isinstance(model, Ensemble):
        raise TypeError(
            "save takes an Ensemble's TabularModel (which saves every member), or one member, not an Ensemble"
        )
    if not isinstance(model, Sequential):
        raise TypeError(
            f"save expects an anybackprop model (MLP, Sequential or TabularModel), got {type(model).__name__}"
        )
    if info is not None and not isinstance(info, dict):
        raise TypeError(f"info must be a dict of JSON-able values, got {type(info).__name__}")
    arrays = _arrays(model)
    for k, member in enumerate(others, start=2):
        arrays.update({_MEMBER.format(k) + key: value for key, value in _arrays(member).items()})
    meta = {
        "format": FORMAT,
        "version": VERSION,
        **Sequential.config(model),
        "anybackprop_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if isinstance(model, MLP):
        meta["mlp"] = model.mlp_config()
    if table is not None:
        meta["table"] = table
    if info:
        meta["info"] = info
    try:
        # the arrays a fresh model of the same layers has (built from the layers, not from their
        # specs: a model of an unregistered layer kind saves, and loads once the kind is registered)
        expected = _expected(
            Sequential(model.layers, model.head, dtype=model.dtype_name, backend="numpy"), 1 + len(others)
        )
        for key, (shape, dtype) in expected.items():
            _check_array(key, arrays.get(key), shape, dtype)
    except ValueError as exc:
        raise ValueError(
            f"cannot save this model to {display_name(path)}: {exc}; the file would not load back"
        ) from None
    if set(arrays) != set(expected):
        raise ValueError(
            f"cannot save this model to {display_name(path)}: it has arrays {sorted(arrays)}, its layers "
            f"describe {sorted(expected)}"
        )
    arrays[_META_KEY] = np.array(json.dumps(meta))
    with atomic_open(path) as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # NumPy's stub types allow_pickle among **kwds


def _arrays(model: Sequential) -> dict[str, np.ndarray]:
    """A network's parameters and (prefixed) state as NumPy arrays, named as a file holds them."""
    arrays = {key: to_numpy(value) for key, value in model.params.items()}
    arrays.update({_STATE + key: to_numpy(value) for key, value in model.state.items()})
    return arrays


def _check_array(key: str, value: Any, shape: tuple, dtype: np.dtype) -> None:
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{key} is missing")
    if value.dtype != dtype or tuple(value.shape) != tuple(shape):
        raise ValueError(f"{key} has shape {tuple(value.shape)} dtype {value.dtype}, expected {tuple(shape)} {dtype}")
    if not np.isfinite(value).all():
        raise ValueError(f"{key} contains NaN or infinity")


def _expected(model: Sequential, networks: int = 1) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The members a file of ``model`` holds: its parameters and (prefixed) state, and as many
    again per further network of an ensemble of ``networks`` like it (prefixed ``member{k}.``)."""
    dtype = np.dtype(model.dtype_name)
    one = {key: (tuple(value.shape), dtype) for key, value in model.params.items()}
    one.update({_STATE + key: (tuple(value.shape), dtype) for key, value in model.state.items()})
    found = dict(one)
    for k in range(2, networks + 1):
        found.update({_MEMBER.format(k) + key: spec for key, spec in one.items()})
    return found


def _networks(meta: dict) -> int:
    """How many networks the file holds: its table section's ``ensemble`` (1 without one)."""
    table = meta.get("table")
    count = table.get("ensemble", 1) if isinstance(table, dict) else 1
    if type(count) is not int or not 1 <= count <= MAX_MEMBERS:
        raise ValueError(f"its table section's ensemble {count!r} is not a count of networks from 1 to {MAX_MEMBERS}")
    return count


def _check_meta(meta: dict) -> None:
    if meta.get("format") != FORMAT:
        raise ValueError("its metadata does not name the anybackprop format")
    if meta.get("version") not in (1, 2, VERSION):
        raise ValueError(f"format version {meta.get('version')!r} is not supported (expected 1, 2 or {VERSION})")
    if meta.get("dtype") not in ("float32", "float64"):
        raise ValueError(f"dtype {meta.get('dtype')!r} is not float32 or float64")


def load(path: Any, backend: Any = None) -> Any:
    """Read a model written by :func:`save` (from a path or a binary file object) onto ``backend``
    (default: the current one): the network, or a :class:`~anybackprop.tables.TabularModel`
    around it when the file holds a table encoding (its ``info`` holds what :func:`save`
    recorded). A file that is not a valid model is a ValueError naming what is wrong."""
    built: list[Sequential] = []

    def expect(meta: dict, contents: Contents) -> dict:
        _check_meta(meta)
        networks = _networks(meta)
        try:  # the file must hold every network's parameters before the first one is built
            model = _build(meta, backend, contents.nbytes // networks)
            built.extend([model, *(_build(meta, backend) for _ in range(networks - 1))])
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        except TypeError as exc:  # a layer config with arguments of the wrong kind
            raise ValueError(f"its layers are not valid ({exc})") from None
        return _expected(model, networks)

    meta, arrays = read_archive(path, expect)
    model = built[0]
    for k, network in reversed(list(enumerate(built, start=1))):  # the prefixed members first
        prefix = _MEMBER.format(k) if k > 1 else ""
        mine = {key[len(prefix) :]: arrays.pop(key) for key in list(arrays) if key.startswith(prefix)}
        state = {key[len(_STATE) :]: mine.pop(key) for key in list(mine) if key.startswith(_STATE)}
        try:
            network.set_params(mine)
            network.set_state(state)
        except ValueError as exc:
            raise _invalid(path, str(exc)) from None
    if "table" not in meta:
        return model
    from .tables import TabularModel

    saved_info = meta.get("info")
    info = {k: meta[k] for k in ("anybackprop_version", "created") if k in meta} | (
        saved_info if isinstance(saved_info, dict) else {}
    )
    try:
        return TabularModel.from_saved(model, meta["table"], info, built)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise _invalid(path, f"its table section is not valid ({exc})") from None


def _least_elements(layers: list) -> int:
    """A lower bound on the parameter and state elements of ``layers``, from their sizes alone
    (nothing allocated): what a file must hold before the model is built."""
    total = 0
    for layer in layers:
        if isinstance(layer, Dense):
            total += layer.n_in * layer.n_out + layer.n_out
        elif isinstance(layer, (BatchNorm, LayerNorm, Standardize)):
            total += 2 * layer.n_in
    return total


def _build(meta: dict, backend: Any, capacity: int | None = None) -> Sequential:
    """The model the metadata describes, with fresh parameters; with ``capacity`` (the file's
    size in bytes), refused before anything is allocated when its parameters could not fit."""
    if meta["version"] == 1 or isinstance(meta.get("mlp"), dict):
        config = dict(meta.get("mlp") or meta)
        sizes = config.get("layer_sizes")
        if not isinstance(sizes, list) or len(sizes) < 2 or not all(type(n) is int and n > 0 for n in sizes):
            raise ValueError(f"layer_sizes {sizes!r} is not a list of positive ints")
        least = sum(a * b + b for a, b in itertools.pairwise(sizes))
        _check_capacity(least, meta["dtype"], capacity)
        allowed = {
            "layer_sizes",
            "activation",
            "output",
            "loss",
            "dtype",
            "init",
            "dropout",
            "norm",
            "standardize",
            "target_scale",
            "bins",
            "bin_features",
            "feature_scale",
        }
        kwargs = {k: v for k, v in config.items() if k in allowed}
        kwargs.setdefault("activation", [])
        return MLP(**kwargs, backend=backend)
    layers, head = meta.get("layers"), meta.get("head")
    if not isinstance(layers, list) or not isinstance(head, dict) or set(head) != {"output", "loss"}:
        raise ValueError("its metadata has no valid 'layers' list and 'head' {output, loss}")
    layers = [layer_from_spec(spec) for spec in layers]
    _check_capacity(_least_elements(layers), meta["dtype"], capacity)
    return Sequential(layers, get_head(**head), dtype=meta["dtype"], backend=backend)


def _check_capacity(elements: int, dtype: str, capacity: int | None) -> None:
    if capacity is not None and elements * np.dtype(dtype).itemsize > capacity:
        raise ValueError(
            f"its metadata describes a model of at least {elements} {dtype} values, more than its {capacity} "
            "bytes can hold"
        )
