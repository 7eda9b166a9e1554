"""JAX's adapter (``jax.numpy``), on its CPU, GPU or TPU devices."""

from __future__ import annotations

import contextlib
from typing import Any

import array_api_compat
import numpy as np

from .base import Adapter, BackendLike, _BadDevice, _Unusable


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

    def from_host(self, backend: BackendLike, host: np.ndarray) -> Any:
        return backend.library.device_put(host, backend.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.array(x)  # a writable copy (NumPy's view of a JAX array is read-only)

    def sync(self, backend: BackendLike) -> None:
        # JAX has no device-wide wait: a computation queued last on the device finishes after the others
        backend.library.device_put(0, backend.device).block_until_ready()

    def activate(self, backend: BackendLike) -> contextlib.AbstractContextManager:
        return backend.library.default_device(backend.device)
