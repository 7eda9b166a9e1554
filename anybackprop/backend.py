"""Backends: the one module that knows concrete array libraries.

A :class:`Backend` bundles an array namespace ``xp`` (the array API standard, through
``array-api-compat`` where a library needs it), a device and the default float dtype. Everything
else in anybackprop gets ``xp`` from a backend and uses only what the standard defines.

Each array library is one :class:`Adapter` in ``ADAPTERS`` (load it, recognise its arrays, move
data to and from the host, wait for its device, make its device current): adding a library is
adding one adapter. Host data enters a backend once through :meth:`Backend.asarray` and leaves
through :func:`to_numpy`. Random numbers are drawn on the host by a seeded ``numpy.random.Generator``
(:func:`host_rng`) so that the same seed gives the same numbers on every backend.

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

from . import _devices, _launch

BACKEND_NAMES = ("numpy", "array_api_strict", "cupy", "torch", "jax")
"""The backends offered to users (``numpy_readonly`` and ``numpy_device``, for tests, are in ``ADAPTERS`` only)."""
DTYPE_NAMES = ("float32", "float64")
_ACCEPTED = (*BACKEND_NAMES, "auto")
_CUPY_INSTALL = "pip install 'anybackprop[cuda12]' or 'anybackprop[cuda13]'"


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


# --- adapters: one per array library -------------------------------------------------------------


class _Unusable(Exception):
    """Why a backend cannot be used here."""


class _BadDevice(_Unusable):
    """The library is usable, the device asked for is not one of it."""


class _CannotCompute(_Unusable):
    """The library imports and sees a device but cannot compute on it (missing CUDA libraries)."""


class Adapter:
    """What anybackprop needs to know about one array library. ``host`` adapters hold NumPy
    arrays, which every backend accepts as host data."""

    name = "?"
    host = False

    def load(self, device: str | None) -> tuple[Any, Any, Any]:
        """``(xp, library, device)`` for ``device`` (None: the default one); raises _Unusable."""
        raise NotImplementedError

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this library."""
        raise NotImplementedError

    def from_host(self, backend: Backend, host: np.ndarray) -> Any:
        """The NumPy array ``host`` on ``backend``'s device."""
        return backend.xp.asarray(host, device=backend.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        """``x`` as a NumPy array on the host."""
        return np.asarray(x)

    def device_of(self, x: Any) -> Any:
        """The device an array of this library lives on."""
        return array_api_compat.device(x)

    def sync(self, backend: Backend) -> None:
        """Wait for ``backend``'s queued device work."""

    def activate(self, backend: Backend) -> contextlib.AbstractContextManager:
        """A context in which ``backend``'s device and settings are current (nothing to do on the CPU)."""
        return contextlib.nullcontext()

    def detached(self, x: Any) -> Any:
        """``x`` cut from any autograd graph its library keeps (anybackprop computes its own
        gradients: training must never grow a graph)."""
        return x


def _numpy_namespace() -> Any:
    # NumPy >= 2.1 implements the standard in its main namespace; older ones need the wrapper,
    # a submodule that ``import array_api_compat`` does not load.
    if hasattr(np, "isdtype") and hasattr(np, "unstack"):
        return np
    import array_api_compat.numpy

    return array_api_compat.numpy


class _NumPy(Adapter):
    name = "numpy"
    host = True

    def load(self, device: str | None) -> tuple[Any, Any, Any]:
        if device not in (None, "", "cpu"):
            raise _BadDevice(f"{self.name} runs on the CPU only (device 'cpu'), got device {device!r}")
        return _numpy_namespace(), np, "cpu"

    def owns(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def from_host(self, backend: Backend, host: np.ndarray) -> Any:
        return host


class ReadOnlyArray(np.ndarray):
    """A NumPy array that cannot be written, nor can anything computed from it: operators,
    ufuncs, NumPy functions and ``astype``/``copy``/indexing return read-only arrays too, so a
    formula that writes into an array it did not allocate fails with NumPy's "read-only" error.
    (``xp.zeros`` or ``xp.asarray(x, copy=True)`` make an ordinary array the caller owns.)"""

    def __array_finalize__(self, obj: Any) -> None:
        self.flags.writeable = False

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, out: Any = None, **kwargs: Any) -> Any:
        if out is None:
            return _read_only(getattr(ufunc, method)(*_plain(inputs), **kwargs))
        getattr(ufunc, method)(*_plain(inputs), out=_plain(out), **kwargs)  # fails if out is read-only
        return out[0] if len(out) == 1 else out  # ``a -= b`` keeps the caller's writable ``a``

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return _read_only(func(*_plain(args), **_plain(kwargs)))

    def astype(self, *args: Any, **kwargs: Any) -> Any:
        return _read_only(self.view(np.ndarray).astype(*args, **kwargs))

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        return _read_only(self.view(np.ndarray).copy(*args, **kwargs))

    def __getitem__(self, key: Any) -> Any:
        return _read_only(self.view(np.ndarray)[_plain(key)])


def _plain(x: Any) -> Any:
    """``x`` with every ReadOnlyArray in it viewed as a plain (still read-only) ndarray."""
    return _devices.plain(x, ReadOnlyArray)


def _read_only(x: Any) -> Any:
    if isinstance(x, np.ndarray) and not isinstance(x, ReadOnlyArray):
        return x.view(ReadOnlyArray)
    if isinstance(x, (list, tuple)):
        return type(x)(_read_only(v) for v in x)
    return x


class _NumPyReadOnly(_NumPy):
    """NumPy whose arrays are read-only (:class:`ReadOnlyArray`): the test suite runs on it to
    prove that no formula writes into an array it does not own. Not offered to users."""

    name = "numpy_readonly"

    def owns(self, x: Any) -> bool:
        return isinstance(x, ReadOnlyArray)

    def from_host(self, backend: Backend, host: np.ndarray) -> Any:
        return host if isinstance(host, ReadOnlyArray) else np.array(host).view(ReadOnlyArray)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.array(x)  # a writable copy: what leaves the backend is the caller's


class _NumPyOnDevice(_NumPy):
    """NumPy standing in for a library with a current device, as CuPy has (:mod:`anybackprop._devices`):
    each array remembers its device, new arrays land on the current one, and using an array
    outside its device's :meth:`activate` raises. Its default device is 1 while each thread's
    current device starts at 0, so that the test suite run on it finds every array made or
    combined outside ``Backend.activate()``. Not offered to users."""

    name = "numpy_device"
    host = False

    def load(self, device: str | None) -> tuple[Any, Any, Any]:
        try:
            index = 1 if device in (None, "") else int(device)
            dev = _devices.VirtualDevice(index)
        except ValueError as exc:
            raise _BadDevice(f"numpy_device has devices 0..{_devices.COUNT - 1}, got device {device!r}") from exc
        return _devices.Namespace(_numpy_namespace()), np, dev

    def owns(self, x: Any) -> bool:
        return isinstance(x, _devices.DeviceArray)

    def from_host(self, backend: Backend, host: np.ndarray) -> Any:
        return Adapter.from_host(self, backend, host)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.array(x.view(np.ndarray))

    def device_of(self, x: Any) -> Any:
        return x.device

    def activate(self, backend: Backend) -> contextlib.AbstractContextManager:
        return _devices.VirtualDevice(backend.device.id)  # a context of its own: threads share the backend


class _ArrayApiStrict(Adapter):
    name = "array_api_strict"

    def load(self, device: str | None) -> tuple[Any, Any, Any]:
        try:
            import array_api_strict
        except ImportError as exc:
            raise _Unusable("array_api_strict is not installed (pip install array-api-strict)") from exc
        names = [str(d).split("'")[1] for d in array_api_strict.__array_namespace_info__().devices()]
        name = device or "CPU_DEVICE"
        if name not in names:
            raise _BadDevice(f"array_api_strict has devices {names}, got device {device!r}")
        return array_api_strict, array_api_strict, array_api_strict.Device(name)

    def owns(self, x: Any) -> bool:
        return type(x).__module__.split(".")[0] == "array_api_strict"

    def to_numpy(self, x: Any) -> np.ndarray:
        import array_api_strict

        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))


class _CuPy(Adapter):
    name = "cupy"

    def load(self, device: str | None) -> tuple[Any, Any, Any]:
        try:
            import cupy
        except ImportError as exc:
            raise _Unusable(f"cupy is not installed ({_CUPY_INSTALL})") from exc
        except Exception as exc:  # a broken CUDA install fails at import with various errors
            raise _Unusable(f"cupy failed to import: {exc}") from exc
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            raise _Unusable(f"no CUDA device is usable here ({exc})") from exc
        if count == 0:
            raise _Unusable("no CUDA device is usable here (CUDA reports 0 devices)")
        try:
            index = rank_gpu(count) if device in (None, "") else int(device)
        except ValueError as exc:
            raise _BadDevice(f"cupy devices are integers 0..{count - 1}, got {device!r}") from exc
        if not 0 <= index < count:
            raise _BadDevice(f"cupy devices are integers 0..{count - 1}, got {device!r}")
        dev = cupy.cuda.Device(index)
        _check_cupy_computes(cupy, dev)
        return array_api_compat.array_namespace(cupy.empty(0)), cupy, dev

    def owns(self, x: Any) -> bool:
        return array_api_compat.is_cupy_array(x)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.get()

    def sync(self, backend: Backend) -> None:
        with backend.device:  # the backend's device's stream, whichever device is current
            backend.library.cuda.get_current_stream().synchronize()

    def activate(self, backend: Backend) -> contextlib.AbstractContextManager:
        return _cupy_activated(backend)


PROBE_INPUT = np.arange(4, dtype=np.float32).reshape(2, 2)
"""The usability probe's input; it computes ``square(X) @ X`` with an elementwise kernel then cuBLAS."""


def rank_gpu(count: int, environ: dict | None = None) -> int:
    """The GPU a process takes when no device is named: under an MPI launcher that started several
    processes, its local rank modulo the ``count`` GPUs it sees (one each on a node of several
    GPUs; 0 where Slurm shows each task its own single GPU); else 0."""
    launch = _launch.detect(environ)
    return 0 if launch is None else launch["local_rank"] % count


def _check_cupy_computes(cupy: Any, device: Any) -> None:
    """Compile and run a tiny elementwise kernel (NVRTC and the CUDA headers) and a matrix
    product (cuBLAS) on ``device``: CuPy imports and counts devices without either library.
    The result must equal NumPy's ``(X * X) @ X`` exactly (small integers)."""
    try:
        with device:
            x = cupy.asarray(PROBE_INPUT)
            square = cupy.ElementwiseKernel("T x", "T y", "y = x * x", "anybackprop_probe")
            got = cupy.asnumpy(square(x) @ x)
    except Exception as exc:
        raise _CannotCompute(
            f"cupy cannot compute on device {device.id} ({type(exc).__name__}: {exc}); "
            f"install CuPy with its CUDA libraries: {_CUPY_INSTALL}"
        ) from exc
    expected = (PROBE_INPUT * PROBE_INPUT) @ PROBE_INPUT
    if not np.array_equal(got, expected):
        raise _CannotCompute(
            f"cupy computed a wrong matrix product on device {device.id}: {got.tolist()}, expected {expected.tolist()}"
        )


@contextlib.contextmanager
def _cupy_activated(backend: Backend) -> Iterator[None]:
    """Make ``backend``'s CuPy device current, then apply its TF32 setting; restore both after.

    The float32 compute type is CuPy's own switch (``cupy._core._routines_linalg``, which
    ``CUPY_TF32=1`` also sets); ``tf32=None`` leaves it as it is. Where a CuPy version lacks the
    switch, TF32 is left as CuPy has it and a warning says so when a setting was asked for.
    """
    cupy = backend.library
    with backend.device:
        linalg: Any = None
        if backend.tf32 is not None:
            try:
                from cupy._core import _routines_linalg as linalg  # type: ignore[no-redef]

                before = linalg.get_compute_type(cupy.float32)
                wanted = linalg.COMPUTE_TYPE_TF32 if backend.tf32 else linalg.COMPUTE_TYPE_DEFAULT
            except (ImportError, AttributeError):
                linalg = None
                warnings.warn(
                    "this CuPy has no compute-type switch: TF32 stays as CuPy set it (CUPY_TF32)", stacklevel=4
                )
        if linalg is not None:
            linalg.set_compute_type(cupy.float32, wanted)
        try:
            yield
        finally:
            if linalg is not None:
                linalg.set_compute_type(cupy.float32, before)


class _Torch(Adapter):
    name = "torch"

    def load(self, device: str | None) -> tuple[Any, Any, Any]:
        try:
            import torch
        except ImportError as exc:
            raise _Unusable("torch is not installed (pip install torch)") from exc
        try:
            dev = torch.device(device or "cpu")
        except RuntimeError as exc:
            raise _BadDevice(f"torch does not know device {device!r}") from exc
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise _Unusable("torch has no usable CUDA device here")
            dev = torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())
        elif dev.type != "cpu":
            raise _BadDevice(f"torch devices are 'cpu' or 'cuda:N', got {device!r}")
        return array_api_compat.array_namespace(torch.empty(0)), torch, dev

    def owns(self, x: Any) -> bool:
        return array_api_compat.is_torch_array(x)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def detached(self, x: Any) -> Any:
        return x.detach() if x.requires_grad else x

    def from_host(self, backend: Backend, host: np.ndarray) -> Any:
        # torch cannot wrap negative strides (a reversed view such as x[::-1]) nor read-only memory (it warns)
        if any(stride < 0 for stride in host.strides) or not host.flags.writeable:
            host = np.array(host, order="C")
        return super().from_host(backend, host)

    def sync(self, backend: Backend) -> None:
        if backend.device.type == "cuda":
            backend.library.cuda.synchronize(backend.device)


class _Jax(Adapter):
    """JAX (``jax.numpy`` implements the standard): immutable arrays, a device per platform
    (``cpu``, ``gpu``/``cuda:N``, ``tpu``). float64 needs ``jax_enable_x64``, which loading turns
    on (JAX's own default silently makes every float64 array float32): float32 work is unchanged."""

    name = "jax"

    def load(self, device: str | None) -> tuple[Any, Any, Any]:
        try:
            import jax
        except ImportError as exc:
            raise _Unusable("jax is not installed (pip install 'anybackprop[jax]')") from exc
        jax.config.update("jax_enable_x64", True)
        platform, _, index = (device or "").replace("cuda", "gpu").partition(":")
        try:
            devices = jax.devices(platform or None)
        except RuntimeError as exc:
            if not platform:
                raise _Unusable(f"jax has no usable device here ({exc})") from exc
            raise _BadDevice(f"jax has no {platform!r} device here") from exc
        try:
            dev = devices[int(index or 0)]
        except (ValueError, IndexError) as exc:
            raise _BadDevice(
                f"jax devices are 'cpu', 'gpu' or 'tpu' with an index 0..{len(devices) - 1}, got {device!r}"
            ) from exc
        return jax.numpy, jax, dev

    def owns(self, x: Any) -> bool:
        return array_api_compat.is_jax_array(x)

    def from_host(self, backend: Backend, host: np.ndarray) -> Any:
        return backend.library.device_put(host, backend.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.array(x)  # a writable copy (NumPy's view of a JAX array is read-only)

    def sync(self, backend: Backend) -> None:
        # JAX has no device-wide wait: a computation queued last on the device finishes after the others
        backend.library.device_put(0, backend.device).block_until_ready()

    def activate(self, backend: Backend) -> contextlib.AbstractContextManager:
        return backend.library.default_device(backend.device)


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


def host_rng(seed: int | None) -> np.random.Generator:
    """The seeded host generator every random draw in anybackprop comes from."""
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    return np.random.default_rng(seed)


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
