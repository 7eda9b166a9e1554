"""NumPy's adapter, and the two test-only NumPys: read-only arrays (:class:`ReadOnlyArray`, backend
``numpy_readonly``) and arrays that track a current device (backend ``numpy_device``, arrays from
:mod:`anybackprop._devices`)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from .. import _devices
from .base import Adapter, BackendLike, _BadDevice


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

    def from_host(self, backend: BackendLike, host: np.ndarray) -> Any:
        return host

    array_type: type[np.ndarray] = np.ndarray

    def writeable(self, x: Any) -> bool:
        return bool(x.flags.writeable)  # what array_api_compat.is_writeable_array reads, without its dispatch

    def ready_rows(self, x: Any, n_features: int, dtype: Any, most: int) -> bool:
        return (
            isinstance(x, np.ndarray)
            and type(x) is self.array_type
            and x.dtype == dtype
            and x.ndim == 2
            and x.shape[1] == n_features
            and 0 < x.size <= most
            and bool(np.isfinite(x).all())
        )


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

    def from_host(self, backend: BackendLike, host: np.ndarray) -> Any:
        return host if isinstance(host, ReadOnlyArray) else np.array(host).view(ReadOnlyArray)

    array_type = ReadOnlyArray

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

    ready_rows = Adapter.ready_rows  # an array must be checked against the current device

    def from_host(self, backend: BackendLike, host: np.ndarray) -> Any:
        return Adapter.from_host(self, backend, host)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.array(x.view(np.ndarray))

    def device_of(self, x: Any) -> Any:
        return x.device

    def activate(self, backend: BackendLike) -> contextlib.AbstractContextManager:
        return _devices.VirtualDevice(backend.device.id)  # a context of its own: threads share the backend
