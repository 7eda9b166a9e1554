"""NumPy standing in for a library with several devices and a *current* one, as CuPy has: the
array type and namespace behind the ``numpy_device`` test backend (see ``backends.numpy._NumPyOnDevice``).

CuPy allocates every new array on the current device of the calling thread, whatever device
the arrays it is computed from live on, and refuses to run a kernel on an array of another
device ("array device (1) ... current device (0)"). A :class:`DeviceArray` remembers the
:class:`VirtualDevice` it was made on and behaves the same way:

* creating an array (``xp.zeros``, ``xp.arange``, ``xp.empty_like``...) puts it on the current
  device and ignores ``device=``, as array-api-compat's CuPy wrappers do; ``xp.asarray`` honours
  ``device=`` (the wrapper makes that device current around the copy);
* any operator, ufunc, NumPy function, ``astype``/``copy``, indexing with an array or item
  assignment on an array that is not on the current device raises :class:`DeviceMismatch`
  (an AssertionError, which nothing catches);
* views (slices, reshapes) stay on their parent's device; reading back to the host
  (``np.asarray``, ``float``, ``bool``, ``to_numpy``) works from any device, as ``.get()`` does.

``with device:`` makes ``device`` current for the calling thread (each thread starts on device
0, as in CUDA). Only the tests use this module.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

COUNT = 2
"""The number of virtual devices."""


class DeviceMismatch(AssertionError):
    """An array was used on a device other than the current one. CuPy raises a ValueError; this
    is an AssertionError so that no ``except ValueError`` or ``pytest.raises(ValueError)`` can
    swallow it."""


class _Current(threading.local):
    index = 0


_current = _Current()


class VirtualDevice:
    """Device ``index`` of :data:`COUNT`; a context manager that makes it current, like ``cupy.cuda.Device``."""

    def __init__(self, index: int) -> None:
        if not 0 <= index < COUNT:
            raise ValueError(f"virtual devices are 0..{COUNT - 1}, got {index}")
        self.id = index
        self._previous: list[int] = []

    def __enter__(self) -> VirtualDevice:
        self._previous.append(_current.index)
        _current.index = self.id
        return self

    def __exit__(self, *exc: Any) -> None:
        _current.index = self._previous.pop()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VirtualDevice) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("VirtualDevice", self.id))

    def __repr__(self) -> str:
        return f"<VirtualDevice {self.id}>"


def current() -> VirtualDevice:
    """The calling thread's current device."""
    return VirtualDevice(_current.index)


def _check(arrays: Any, what: str) -> None:
    for a in arrays:
        if isinstance(a, DeviceArray) and a.device_id != _current.index:
            raise DeviceMismatch(
                f"{what}: array device ({a.device_id}) is not the current device ({_current.index}); "
                "the work must run inside the backend's activate()"
            )


def _arrays_in(x: Any) -> list:
    if isinstance(x, DeviceArray):
        return [x]
    if isinstance(x, (list, tuple)):
        return [a for v in x for a in _arrays_in(v)]
    if isinstance(x, dict):
        return [a for v in x.values() for a in _arrays_in(v)]
    return []


def plain(x: Any, kind: type[np.ndarray]) -> Any:
    """``x`` with every array of the ndarray subclass ``kind`` in it (in lists, tuples and dicts
    too) viewed as a plain ndarray: what NumPy's own functions are handed."""
    if isinstance(x, kind):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(plain(v, kind) for v in x)
    if isinstance(x, dict):
        return {k: plain(v, kind) for k, v in x.items()}
    return x


def _plain(x: Any) -> Any:
    return plain(x, DeviceArray)


def _on_current(x: Any) -> Any:
    """NumPy results (arrays, or tuples of them) as DeviceArrays of the current device."""
    if isinstance(x, np.ndarray):
        out = x.view(DeviceArray)
        out.device_id = _current.index
        return out
    if isinstance(x, (list, tuple)):
        return type(x)(_on_current(v) for v in x)
    return x


class DeviceArray(np.ndarray):
    """A NumPy array that lives on one :class:`VirtualDevice` (``device_id``)."""

    device_id: int = 0

    def __array_finalize__(self, obj: Any) -> None:
        self.device_id = getattr(obj, "device_id", _current.index)  # a view: its parent's device

    @property
    def device(self) -> VirtualDevice:  # type: ignore[override]
        return VirtualDevice(self.device_id)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, out: Any = None, **kwargs: Any) -> Any:
        _check(_arrays_in(inputs) + _arrays_in(out), f"numpy.{ufunc.__name__}")
        if out is None:
            return _on_current(getattr(ufunc, method)(*_plain(inputs), **kwargs))
        getattr(ufunc, method)(*_plain(inputs), out=_plain(out), **kwargs)
        return out[0] if len(out) == 1 else out

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        _check(_arrays_in(args) + _arrays_in(kwargs), f"numpy.{func.__name__}")
        return _on_current(func(*_plain(args), **_plain(kwargs)))

    def astype(self, *args: Any, **kwargs: Any) -> Any:
        _check([self], "astype")
        return _on_current(self.view(np.ndarray).astype(*args, **kwargs))

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        _check([self], "copy")
        return _on_current(self.view(np.ndarray).copy(*args, **kwargs))

    def __getitem__(self, key: Any) -> Any:
        arrays = _arrays_in(key) if isinstance(key, tuple) else _arrays_in([key])
        if arrays:  # advanced indexing runs a kernel; a basic index is a view
            _check([self, *arrays], "indexing")
            return _on_current(self.view(np.ndarray)[_plain(key)])
        return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        _check([self, *_arrays_in(value), *_arrays_in(key if isinstance(key, tuple) else [key])], "item assignment")
        self.view(np.ndarray)[_plain(key)] = _plain(value)

    def __reduce__(self) -> Any:
        raise TypeError("a numpy_device array cannot be pickled; move it to the host with ab.to_numpy first")


_CREATORS = ("zeros", "ones", "empty", "full", "arange", "eye", "linspace")


class Namespace:
    """NumPy's array API namespace whose creation functions make DeviceArrays on the current
    device; every other function dispatches through :class:`DeviceArray`'s overrides."""

    def __init__(self, numpy_namespace: Any) -> None:
        self._np = numpy_namespace
        for name in _CREATORS:
            setattr(self, name, self._creator(getattr(numpy_namespace, name)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._np, name)

    @staticmethod
    def _creator(function: Any) -> Any:
        def create(*args: Any, device: Any = None, **kwargs: Any) -> Any:  # device= ignored, as on CuPy
            return _on_current(function(*_plain(args), **kwargs))

        create.__name__ = function.__name__
        return create

    def asarray(self, obj: Any, /, *, dtype: Any = None, device: Any = None, copy: bool | None = None) -> Any:
        """Like array-api-compat's CuPy ``asarray``: ``device`` (default: the current one) is made
        current around the conversion, and an array is returned as it is unless a copy is asked
        for or a cast needed (a copy of an array of another device is allowed, as CuPy's is)."""
        with device if isinstance(device, VirtualDevice) else current():
            if isinstance(obj, DeviceArray) and not copy and (dtype is None or obj.dtype == dtype):
                return obj
            if copy is False:
                raise ValueError("Unable to avoid copy while creating an array as requested")
            if isinstance(obj, DeviceArray) and dtype is not None and obj.dtype != dtype:
                _check([obj], "asarray with a cast")
            return _on_current(np.array(_plain(obj), dtype=dtype, copy=True))

    def __repr__(self) -> str:
        return "<numpy_device namespace>"
