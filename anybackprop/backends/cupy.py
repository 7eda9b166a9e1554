"""CuPy's adapter (the GPU backend): loading it with a probe that it computes, the GPU a process
takes (:func:`rank_gpu`), and its device and TF32 setting made current."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import array_api_compat
import numpy as np

from .. import _launch
from .base import Adapter, BackendLike, _BadDevice, _CannotCompute, _Unusable

_CUPY_INSTALL = "pip install 'anybackprop[cuda12]' or 'anybackprop[cuda13]'"


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

    def sync(self, backend: BackendLike) -> None:
        with backend.device:  # the backend's device's stream, whichever device is current
            backend.library.cuda.get_current_stream().synchronize()

    def activate(self, backend: BackendLike) -> contextlib.AbstractContextManager:
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
def _cupy_activated(backend: BackendLike) -> Iterator[None]:
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
