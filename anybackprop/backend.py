"""Backends: with the adapters of :mod:`anybackprop.backends`, the one place that knows array libraries.

A :class:`Backend` bundles an array namespace ``xp`` (the array API standard, through
``array-api-compat`` where a library needs it), a device and the default float dtype. Everything
else in anybackprop gets ``xp`` from a backend and uses only what the standard defines.

Each array library is one :class:`Adapter` (its own module of :mod:`anybackprop.backends`) in
``ADAPTERS`` (load it, recognise its arrays, move data to and from the host, wait for its device,
make its device current): adding a library is adding one adapter. Host data enters a backend
once through :meth:`Backend.asarray` and leaves through :func:`to_numpy`. Random numbers are
drawn on the host by a seeded ``numpy.random.Generator`` (:func:`host_rng`) so that the same
seed gives the same numbers on every backend.

The backend in force is chosen, in order, by :func:`use_backend` (a context manager),
:func:`set_backend`, or the environment variables ``ANYBACKPROP_BACKEND``,
``ANYBACKPROP_DEVICE``, ``ANYBACKPROP_DTYPE`` and ``ANYBACKPROP_TF32`` read at first use.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from .backends.array_api_strict import _ArrayApiStrict
from .backends.base import Adapter as Adapter
from .backends.base import _BadDevice, _CannotCompute, _Unusable
from .backends.cupy import PROBE_INPUT as PROBE_INPUT
from .backends.cupy import _CuPy
from .backends.cupy import rank_gpu as rank_gpu
from .backends.jax import _Jax
from .backends.numpy import ReadOnlyArray as ReadOnlyArray
from .backends.numpy import _NumPy, _numpy_namespace, _NumPyOnDevice, _NumPyReadOnly
from .backends.torch import _Torch

BACKEND_NAMES = ("numpy", "array_api_strict", "cupy", "torch", "jax")
"""The backends offered to users (``numpy_readonly`` and ``numpy_device``, for tests, are in ``ADAPTERS`` only)."""
DTYPE_NAMES = ("float32", "float64")
_ACCEPTED = (*BACKEND_NAMES, "auto")


@dataclass(frozen=True, eq=False)
class Backend:
    """An array library, one device on it, and the default float dtype.

    ``xp`` is the array API namespace, ``library`` the raw module (``numpy``, ``cupy``,
    ``torch``, ``array_api_strict``), ``device`` the library's own device object. ``tf32``:
    True or False switches TF32 float32 matrix products on or off on CuPy for the work inside
    :meth:`activate`; None leaves CuPy's own setting (``CUPY_TF32``) alone. The fast paths for
    this library live above the formulas, in :mod:`anybackprop.fastpaths`.
    """

    name: str
    xp: Any
    library: Any
    device: Any
    dtype: str = "float32"
    tf32: bool | None = None

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r}, dtype={self.dtype!r})"

    @property
    def adapter(self) -> Adapter:
        """The :class:`Adapter` of this backend's array library."""
        return ADAPTERS[self.name]

    @functools.cached_property
    def holds_float64(self) -> bool:
        """Whether this backend's device holds float64 arrays (array_api_strict's "no_float64"
        device does not); asked of the namespace's inspection API, assumed where it has none."""
        try:
            return "float64" in self.xp.__array_namespace_info__().dtypes(device=self.device)
        except (AttributeError, TypeError, ValueError):
            return True

    def host_float64(self, x: Any) -> tuple[Any, np.ndarray] | None:
        """``(NumPy's namespace, x as a NumPy array)`` when ``x`` is host float64 data (a NumPy
        array or a list) that this backend's device cannot hold, to be checked and cast to float32
        on the host; else None."""
        if self.holds_float64 or not isinstance(x, (np.ndarray, list, tuple)):
            return None
        host = np.asarray(x)
        return (_numpy_namespace(), host) if host.dtype == np.float64 else None

    def float_dtype(self, dtype: Any = None) -> Any:
        """The namespace's float dtype for a name ("float32", "float64"), a dtype, or None."""
        name = self.dtype if dtype is None else _dtype_name(dtype)
        if name not in DTYPE_NAMES:
            raise ValueError(f"dtype must be one of {DTYPE_NAMES}, got {dtype!r}")
        return getattr(self.xp, name)

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this backend's library."""
        return _adapter_of(x) is self.adapter

    def asarray(self, x: Any, dtype: Any = None, *, name: str = "array") -> Any:
        """``x`` as an array of this backend and device, cast to ``dtype`` if given.

        NumPy arrays, lists and scalars are accepted on every backend and moved once.
        An array of another array library, or on another device, is an error naming both.
        Complex, object and string data are rejected with a TypeError.
        """
        xp = self.xp
        target = None if dtype is None else _as_dtype(xp, dtype)
        adapter = _adapter_of(x)
        library = _foreign_library(x) if adapter is None else None if adapter.host else adapter.name
        if library is not None and adapter is not self.adapter:
            raise TypeError(
                f"{name} is a {library} array but the current backend is {self.name!r}; "
                f"pass a NumPy array (ab.to_numpy(x)) or switch backend with "
                f"ab.use_backend({library!r})"
            )
        if library is not None:
            _check_real_kind(xp.isdtype(x.dtype, ("real floating", "integral", "bool")), x.dtype, name)
            self._check_device(x, name)
            x = self.adapter.detached(x)
            return x if target is None or x.dtype == target else xp.astype(x, target)
        host = x if adapter is self.adapter else _host_array(x, name)
        _check_real_kind(host.dtype.kind in "fiub", host.dtype, name)
        if target is not None:
            host = host.astype(_dtype_name(target), copy=False)
        return self.adapter.from_host(self, host)

    def _check_device(self, x: Any, name: str) -> None:
        got = self.adapter.device_of(x)
        if str(got) != str(self.device):
            raise ValueError(
                f"{name} is on device {got!r} but the {self.name} backend uses device "
                f"{self.device!r}; move it with ab.to_numpy(x) or set ANYBACKPROP_DEVICE"
            )

    def activate(self) -> contextlib.AbstractContextManager:
        """A context that makes this backend's device current (and, on CuPy, applies its TF32
        setting) for the work inside it; ``fit``, ``forward``, the losses and ``gradcheck`` run
        in one, so that every array they allocate lands on this device."""
        return self.adapter.activate(self)

    def uniform(self, rng: np.random.Generator, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """Uniform numbers in [0, 1) of ``shape`` in ``dtype`` (default: the backend's), drawn in
        that dtype from the host generator ``rng`` and moved once (float32 draws move half the
        bytes): the same seed, the same draws on every backend."""
        name = _dtype_name(self.float_dtype(dtype))
        return self.asarray(rng.random(shape, dtype=np.dtype(name)))

    def sync(self) -> None:
        """Wait for queued device work (for timing); a no-op on the CPU."""
        self.adapter.sync(self)


_RaggedWarning: type[Warning] = getattr(np, "exceptions", np).VisibleDeprecationWarning


def _host_array(x: Any, name: str) -> np.ndarray:
    """``x`` (a list, a scalar, anything NumPy reads) as a NumPy array, or a clear error."""
    module = type(x).__module__
    if module.startswith("scipy.sparse") or module.startswith("sparse"):
        raise TypeError(
            f"{name} is a sparse matrix ({type(x).__name__}); sparse input is not supported; call .toarray()"
        )
    try:
        with warnings.catch_warnings():  # NumPy < 1.24 turns a ragged list into objects, with this warning
            warnings.simplefilter("error", _RaggedWarning)
            return np.asarray(x)
    except (ValueError, TypeError, _RaggedWarning) as exc:
        raise ValueError(
            f"{name} is not a rectangular array of numbers (a ragged or mixed nested list?): {exc}"
        ) from None


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, str):
        return dtype
    for name in (*DTYPE_NAMES, "int64", "int32", "bool"):
        if name in str(dtype):
            return name
    return str(dtype)


def _as_dtype(xp: Any, dtype: Any) -> Any:
    name = _dtype_name(dtype)
    if not hasattr(xp, name):
        raise ValueError(f"dtype must be a real dtype such as 'float32' or 'float64', got {dtype!r}")
    return getattr(xp, name)


def _check_real_kind(ok: bool, dtype: Any, name: str) -> None:
    if not ok:
        raise TypeError(
            f"{name} has dtype {dtype}; expected real numbers (float, int or bool). "
            "Complex, object and string data are not supported"
        )


ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter
    for adapter in (_NumPyReadOnly(), _NumPyOnDevice(), _NumPy(), _ArrayApiStrict(), _CuPy(), _Torch(), _Jax())
}
"""Every array library anybackprop knows, by backend name; the first that owns an array is its
library (the read-only and device-tracking NumPys before NumPy, whose arrays theirs also are)."""


def _adapter_of(x: Any) -> Adapter | None:
    """The adapter of the library ``x`` belongs to, or None (lists, scalars, other libraries)."""
    return next((adapter for adapter in ADAPTERS.values() if adapter.owns(x)), None)


def _foreign_library(x: Any) -> str | None:
    """The module name of an array of a library no adapter knows, else None."""
    if hasattr(x, "__array_namespace__") or array_api_compat.is_array_api_obj(x):
        return type(x).__module__.split(".")[0]
    return None


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy (or view) of an array of any backend; lists and scalars too."""
    adapter = _adapter_of(x)
    return np.asarray(x) if adapter is None else adapter.to_numpy(x)


def host_namespace() -> Any:
    """NumPy's array API namespace, for checks that run on host data before it moves."""
    return _numpy_namespace()


def wider_host_floats(x: Any, dtype: Any) -> bool:
    """Whether ``x`` is a NumPy float array with more bytes per value than ``dtype`` (float64 data
    for a float32 model): data to check and cast on the host, so that half the bytes move."""
    return (
        isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.dtype.itemsize > np.dtype(_dtype_name(dtype)).itemsize
    )


def gather_rows(xp: Any, x: Any, order: Any, out: Any = None) -> Any:
    """The rows of ``x`` in ``order`` (a shuffled copy); ``out`` is an array of the same shape
    that the caller no longer needs, which a backend's fast path may fill instead of allocating."""
    return xp.take(x, order, axis=0)


def check_seed(seed: Any) -> int | None:
    """``seed`` as a Python int (or None), once it is a non-negative int or None (bools refused)."""
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    return None if seed is None else int(seed)


@functools.lru_cache(maxsize=64)
def _pcg64_words(seed: int, spawn_key: tuple) -> np.ndarray:
    """The four 64-bit words ``SeedSequence(seed, spawn_key=spawn_key)`` gives PCG64 to seed it
    with (read-only)."""
    words = np.random.SeedSequence(seed, spawn_key=spawn_key).generate_state(4, np.uint64)
    words.flags.writeable = False
    return words


class _SeedSequence(np.random.SeedSequence):
    """``SeedSequence(seed)`` whose words for PCG64 (4 x uint64) are mixed once per seed
    (:func:`_pcg64_words`): the same words, the same generator, without the hashing per ``fit``.
    Its children (``spawn``) are of this class too; every other request is the plain
    SeedSequence's."""

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        if n_words == 4 and (dtype is np.uint64 or np.dtype(dtype) == np.uint64):
            return _pcg64_words(self.entropy, self.spawn_key).copy()
        return super().generate_state(n_words, dtype)


def host_rng(seed: int | None) -> np.random.Generator:
    """The seeded host generator every random draw in anybackprop comes from: ``default_rng(seed)``'s
    generator (PCG64 seeded through SeedSequence), without its dispatch."""
    seed = check_seed(seed)
    return np.random.Generator(np.random.PCG64(None if seed is None else _SeedSequence(seed)))


# --- choosing a backend --------------------------------------------------------------------------


@functools.cache
def _probe_error(name: str) -> _Unusable | None:
    """None when backend ``name`` is usable on its default device, else why not."""
    try:
        ADAPTERS[name].load(None)
    except _Unusable as exc:
        return exc
    return None


def _probe(name: str) -> str | None:
    error = _probe_error(name)
    return None if error is None else str(error)


def available_backends() -> tuple[str, ...]:
    """Names of the backends usable on this machine, e.g. ``("numpy", "array_api_strict")``."""
    return tuple(name for name in BACKEND_NAMES if _probe(name) is None)


def _make_backend(name: Any, device: Any, dtype: Any, tf32: bool | None, source: str) -> Backend:
    """Build a backend; ``source`` names where the value came from, for the error message."""
    if not isinstance(name, str) or (name.lower() not in ADAPTERS and name.lower() != "auto"):
        raise ValueError(f"{source}={name!r} is not a backend; accepted values: {', '.join(_ACCEPTED)}")
    name = name.lower()
    if name == "auto":
        reason = _probe("cupy")
        if reason is not None:
            warnings.warn(f"{source}='auto': cupy is not usable here ({reason}); using numpy", stacklevel=4)
        name = "numpy" if reason else "cupy"
    what = "ANYBACKPROP_DTYPE" if dtype is None else "dtype"
    dtype = os.environ.get("ANYBACKPROP_DTYPE", "float32") if dtype is None else _dtype_name(dtype)
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"{what}={dtype!r} is not a float dtype; accepted values: {', '.join(DTYPE_NAMES)}")
    if tf32 is not None and not isinstance(tf32, bool):
        raise TypeError(f"tf32 must be True, False or None (leave CuPy's setting), got {tf32!r}")
    try:
        xp, library, dev = ADAPTERS[name].load(None if device is None else str(device))
    except _BadDevice as exc:
        what = "ANYBACKPROP_DEVICE" if source == "ANYBACKPROP_BACKEND" else "device"
        raise ValueError(f"{what}={device!r} is not a device of the {name} backend: {exc}") from None
    except _Unusable as exc:
        raise ValueError(
            f"{source}={name!r} is not usable here: {exc}; accepted values: {', '.join(_ACCEPTED)} "
            f"(usable now: {', '.join(available_backends())})"
        ) from None
    return Backend(name=name, xp=xp, library=library, device=dev, dtype=dtype, tf32=tf32)


def _env_tf32() -> bool | None:
    tf32 = os.environ.get("ANYBACKPROP_TF32", "")
    if tf32 not in ("0", "1", ""):
        raise ValueError(f"ANYBACKPROP_TF32={tf32!r} is not valid; accepted values: 0, 1")
    return {"0": False, "1": True, "": None}[tf32]


def environment_backend(name: str | None = None, device: Any = None, dtype: Any = None) -> Backend:
    """The backend the environment variables describe, where each of ``name``, ``device`` and
    ``dtype`` that is not None replaces only its own variable (a command's ``--backend``,
    ``--device``, ``--dtype``); ``ANYBACKPROP_TF32`` always applies, and ``ANYBACKPROP_DEVICE``
    applies unless ``name`` names another backend than ``ANYBACKPROP_BACKEND``."""
    env_name = os.environ.get("ANYBACKPROP_BACKEND", "numpy")
    same = name is None or name.strip().lower() == env_name.strip().lower()
    if device is None and same:
        device = os.environ.get("ANYBACKPROP_DEVICE") or None
    return _make_backend(
        env_name if name is None else name, device, dtype, _env_tf32(), "ANYBACKPROP_BACKEND" if same else "backend"
    )


def _backend_from_env() -> Backend:
    return environment_backend()


_current: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("anybackprop_backend", default=None)
_process_default: Backend | None = None  # set_backend's choice, or the environment's, for every thread


def get_backend() -> Backend:
    """The backend in force: the innermost :func:`use_backend` of this thread or task, else the
    process default (:func:`set_backend`, or the environment variables at first use)."""
    global _process_default
    backend = _current.get()
    if backend is not None:
        return backend
    if _process_default is None:
        _process_default = _backend_from_env()
    return _process_default


def create_backend(name: str, device: Any = None, *, dtype: Any = None, tf32: bool | None = None) -> Backend:
    """A :class:`Backend` for ``name`` on ``device`` without making it the one in force."""
    return _make_backend(name, device, dtype, tf32, "backend")


def backend_for(name: str | Backend | None) -> Backend:
    """A backend from a name (default device and dtype), a Backend, or None for the current one."""
    if name is None:
        return get_backend()
    if isinstance(name, Backend):
        return name
    return create_backend(name)


def set_backend(name: str, device: Any = None, *, dtype: Any = None, tf32: bool | None = None) -> Backend:
    """Make ``name`` (on ``device``) the process default, seen by every thread (also those started
    later), and return it; inside a :func:`use_backend` block that block's backend still wins."""
    global _process_default
    _process_default = create_backend(name, device, dtype=dtype, tf32=tf32)
    return _process_default


@contextlib.contextmanager
def use_backend(
    name: str | Backend, device: Any = None, *, dtype: Any = None, tf32: bool | None = None
) -> Iterator[Backend]:
    """Run a ``with`` block on the backend ``name`` (``with use_backend("array_api_strict"):``; a
    :class:`Backend` is used as it is), then restore the previous one."""
    backend = name if isinstance(name, Backend) else create_backend(name, device, dtype=dtype, tf32=tf32)
    token = _current.set(backend)
    try:
        yield backend
    finally:
        _current.reset(token)


def asarray(x: Any, dtype: Any = None) -> Any:
    """``x`` as an array of the current backend and device (see :meth:`Backend.asarray`)."""
    return get_backend().asarray(x, dtype)


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` is not usable here, or None when it is."""
    return _probe(name)


def broken_reason(name: str) -> str | None:
    """Why backend ``name`` cannot compute although its library imports and sees a device (CuPy
    without its CUDA libraries), or None: such a backend is broken, not merely absent."""
    error = _probe_error(name)
    return str(error) if isinstance(error, _CannotCompute) else None
