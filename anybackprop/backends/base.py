"""What anybackprop needs to know about one array library (:class:`Adapter`), the errors a library
gives when it cannot be used here, and :class:`BackendLike`, what an adapter reads of a backend
(this package sits below :mod:`anybackprop.backend` and does not import it)."""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import array_api_compat
import numpy as np


class BackendLike(Protocol):
    """What an adapter reads of a :class:`~anybackprop.backend.Backend`: its namespace, raw library,
    device and TF32 setting."""

    @property
    def xp(self) -> Any:
        """The array API namespace."""

    @property
    def library(self) -> Any:
        """The raw module of the array library."""

    @property
    def device(self) -> Any:
        """The library's own device object."""

    @property
    def tf32(self) -> bool | None:
        """The TF32 setting (CuPy only)."""


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

    def from_host(self, backend: BackendLike, host: np.ndarray) -> Any:
        """The NumPy array ``host`` on ``backend``'s device."""
        return backend.xp.asarray(host, device=backend.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        """``x`` as a NumPy array on the host."""
        return np.asarray(x)

    def writeable(self, x: Any) -> bool:
        """Whether an array of this library can be written in place."""
        return bool(array_api_compat.is_writeable_array(x))

    def device_of(self, x: Any) -> Any:
        """The device an array of this library lives on."""
        return array_api_compat.device(x)

    def sync(self, backend: BackendLike) -> None:
        """Wait for ``backend``'s queued device work."""

    def activate(self, backend: BackendLike) -> contextlib.AbstractContextManager:
        """A context in which ``backend``'s device and settings are current (nothing to do on the CPU)."""
        return contextlib.nullcontext()

    def ready_rows(self, x: Any, n_features: int, dtype: Any, most: int) -> bool:
        """Whether ``x`` is already a finite ``(m, n_features)`` array of this library in ``dtype``
        with ``0 < m * n_features <= most``, which ``Backend.asarray`` would return unchanged (no
        conversion, copy or move): the one cheap test of a small input (a row to predict) in
        :func:`anybackprop.validation.check_X`, whose full checks run wherever this says False
        (and raise their errors). False where unsure."""
        return False

    def detached(self, x: Any) -> Any:
        """``x`` cut from any autograd graph its library keeps (anybackprop computes its own
        gradients: training must never grow a graph)."""
        return x
