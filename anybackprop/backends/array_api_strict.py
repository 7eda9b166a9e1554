"""The adapter of ``array_api_strict``, the array API standard's reference namespace (a test backend)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Adapter, _BadDevice, _Unusable


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

        try:
            return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
        except TypeError:  # array_api_strict's to_device calls np.asarray(copy=), which NumPy 1.x lacks
            return np.array(x._array, copy=True)  # its NumPy array (the only way off a device there)
