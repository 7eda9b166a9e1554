"""A recording stand-in for CuPy (and for mpi4py's MPI where NCCL is bootstrapped), built on
NumPy, so that the logic of the CuPy adapter, the fused kernels and the NCCL communicator runs
on a machine without a GPU.

What it models: ``cupy.cuda.Device`` with a current device (``with Device(i):``),
``runtime.getDeviceCount``, arrays (:class:`ndarray`, a NumPy subclass with ``data.ptr``),
``ElementwiseKernel`` (its C operation interpreted with NumPy: statements, ``T x = ...``
locals, ``(T)`` casts, one ``c ? a : b`` per statement, ``||``, ``exp``/``fabs``/``tanh``),
streams (``synchronize`` records the device it ran on), the TF32 compute-type switch
(``cupy._core._routines_linalg``) and ``cupy.cuda.nccl``. ``install(monkeypatch, cupy)`` puts
it in ``sys.modules`` for one test. It records what it was asked to do in ``cupy.calls``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np


class ndarray(np.ndarray):
    """A device array of the fake: a NumPy array with CuPy's ``data.ptr``."""

    @property
    def data(self) -> Any:  # type: ignore[override]
        return types.SimpleNamespace(ptr=self.ctypes.data)

    def get(self) -> np.ndarray:
        return np.array(self)


def _c_to_python(c: str) -> str:
    """One C expression of a kernel as a NumPy expression."""
    c = c.replace("(T)", "")
    if "?" in c:
        condition, rest = c.split("?", 1)
        yes, no = rest.split(":", 1)
        return f"where({_c_to_python(condition)}, {_c_to_python(yes)}, {_c_to_python(no)})"
    if "||" in c:
        return " | ".join(f"({_c_to_python(part)})" for part in c.split("||"))
    return c.strip()


_FUNCTIONS = {"where": np.where, "exp": np.exp, "fabs": np.abs, "tanh": np.tanh}


class ElementwiseKernel:
    """``cupy.ElementwiseKernel`` run by NumPy: outputs given are written in place, the others
    allocated in the inputs' broadcast shape and the first input's dtype."""

    def __init__(self, in_params: str, out_params: str, operation: str, name: str, fake: FakeCupy) -> None:
        self.ins = [p.split()[-1] for p in in_params.split(",")]
        self.outs = [p.split()[-1] for p in out_params.split(",")]
        self.operation, self.name, self.fake = operation, name, fake
        fake.calls.append(("ElementwiseKernel", name))
        if fake.compile_error is not None:
            self.operation = None

    def __call__(self, *args: Any) -> Any:
        if self.operation is None:
            raise RuntimeError(self.fake.compile_error)  # as CompileException would, at the first call
        ins, outs = args[: len(self.ins)], list(args[len(self.ins) :])
        arrays = [a for a in ins if isinstance(a, np.ndarray)]
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        while len(outs) < len(self.outs):  # of the inputs' kind (they may be another stand-in's arrays)
            outs.append(np.empty_like(arrays[0], shape=shape))
        env = dict(zip(self.ins, ins, strict=True)) | dict(zip(self.outs, outs, strict=True))
        for statement in filter(str.strip, self.operation.split(";")):
            target, expression = (s.strip() for s in statement.split("=", 1))
            value = eval(_c_to_python(expression), dict(_FUNCTIONS), env)  # the kernel's own operation
            name = target.split()[-1]
            if name in self.outs:
                env[name][...] = value
            else:
                env[name] = value
        return outs[0] if len(outs) == 1 else tuple(outs)


class FakeCupy(types.ModuleType):
    """``cupy`` with ``count`` devices. ``compile_error``: every kernel fails at its first call
    with this message (NVRTC missing); ``wrong_product``: matrix products are off by one (a broken
    cuBLAS); ``compute_type_switch``: whether ``cupy._core._routines_linalg`` exists;
    ``nccl_available``: ``cupy.cuda.nccl.available``."""

    float32, float64 = np.float32, np.float64

    def __init__(
        self,
        count: int = 2,
        *,
        compile_error: str | None = None,
        wrong_product: bool = False,
        compute_type_switch: bool = True,
        nccl_available: bool = True,
    ) -> None:
        super().__init__("cupy")
        self.__version__ = "14.0.0-fake"
        self.count, self.compile_error, self.wrong_product = count, compile_error, wrong_product
        self.current = 0
        self.calls: list[tuple] = []
        fake = self

        class Device:
            def __init__(self, index: int | None = None) -> None:
                self.id = fake.current if index is None else int(index)
                self._previous: list[int] = []

            def __enter__(self) -> Device:
                self._previous.append(fake.current)
                fake.current = self.id
                return self

            def __exit__(self, *exc: Any) -> None:
                fake.current = self._previous.pop()

            def __repr__(self) -> str:
                return f"<CUDA Device {self.id}>"

        class Stream:
            ptr = 1234

            def synchronize(self) -> None:
                fake.calls.append(("synchronize", fake.current))

        self.ndarray = ndarray
        self.cuda = types.SimpleNamespace(
            Device=Device,
            runtime=types.SimpleNamespace(getDeviceCount=lambda: fake.count),
            get_current_stream=lambda: Stream(),
            nccl=_nccl_module(self, nccl_available),
        )
        self.linalg = _linalg_module() if compute_type_switch else None

    def ElementwiseKernel(self, in_params: str, out_params: str, operation: str, name: str) -> ElementwiseKernel:
        return ElementwiseKernel(in_params, out_params, operation, name, self)

    def asarray(self, x: Any, dtype: Any = None) -> ndarray:
        return np.array(x, dtype=dtype).view(ndarray)

    def ascontiguousarray(self, x: Any) -> ndarray:
        return np.ascontiguousarray(x).view(ndarray)

    def empty(self, shape: Any, dtype: Any = float) -> ndarray:
        return np.empty(shape, dtype).view(ndarray)

    def asnumpy(self, x: Any) -> np.ndarray:
        out = np.array(x)
        return out + 1 if self.wrong_product else out


def _linalg_module() -> types.ModuleType:
    linalg = types.ModuleType("cupy._core._routines_linalg")
    linalg.COMPUTE_TYPE_DEFAULT, linalg.COMPUTE_TYPE_TF32 = "default", "tf32"
    linalg.compute_type = {np.float32: "default"}
    linalg.get_compute_type = lambda dtype: linalg.compute_type[dtype]
    linalg.set_compute_type = lambda dtype, value: linalg.compute_type.__setitem__(dtype, value)
    return linalg


def _nccl_module(fake: FakeCupy, available: bool) -> types.SimpleNamespace:
    class NcclCommunicator:
        def __init__(self, size: int, uid: Any, rank: int) -> None:
            fake.calls.append(("NcclCommunicator", size, uid, rank, fake.current))

        def allReduce(self, send: int, recv: int, count: int, dtype: Any, op: Any, stream: int) -> None:
            fake.calls.append(("allReduce", count, dtype, op, fake.current))

        def bcast(self, buffer: int, count: int, dtype: Any, root: int, stream: int) -> None:
            fake.calls.append(("bcast", count, dtype, root, fake.current))

    return types.SimpleNamespace(
        available=available,
        get_unique_id=lambda: ("nccl-id",),
        NcclCommunicator=NcclCommunicator,
        NCCL_FLOAT32="f32",
        NCCL_FLOAT64="f64",
        NCCL_SUM="sum",
    )


def install(monkeypatch: Any, cupy: FakeCupy) -> FakeCupy:
    """Make ``import cupy`` (and its submodules the adapter imports) give ``cupy`` for one test;
    the CuPy adapter is asked first which library an array belongs to (the fake's arrays are
    NumPy's too), and the probe's cache is emptied (the test's fixture empties it after)."""
    from anybackprop import backend

    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cupy.cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", cupy.cuda.nccl)
    core = types.ModuleType("cupy._core")
    if cupy.linalg is not None:
        core._routines_linalg = cupy.linalg
        monkeypatch.setitem(sys.modules, "cupy._core._routines_linalg", cupy.linalg)
    else:
        monkeypatch.setitem(sys.modules, "cupy._core._routines_linalg", None)
    monkeypatch.setitem(sys.modules, "cupy._core", core)
    adapters = backend.ADAPTERS
    monkeypatch.setattr(backend, "ADAPTERS", {"cupy": adapters["cupy"], **adapters})
    backend._probe_error.cache_clear()
    return cupy


class FakeMPI:
    """mpi4py's ``MPI`` for one process of ``size``: collectives act as that process alone would
    see them from the others (``allreduce`` returns ``others_min`` for MIN), and are recorded."""

    MIN, SUM, IN_PLACE = "MIN", "SUM", "IN_PLACE"

    def __init__(self, rank: int = 0, size: int = 2, others_min: int = 1) -> None:
        self.calls: list[tuple] = []
        mpi = self

        class World:
            def Get_rank(self) -> int:
                return rank

            def Get_size(self) -> int:
                return size

            def allreduce(self, value: int, op: str) -> int:
                mpi.calls.append(("allreduce", value, op))
                return min(value, others_min) if op == "MIN" else value

            def bcast(self, value: Any, root: int) -> Any:
                mpi.calls.append(("bcast", value, root))
                return value

            def Barrier(self) -> None:
                mpi.calls.append(("Barrier",))

            def Allreduce(self, send: Any, recv: np.ndarray, op: str) -> None:
                mpi.calls.append(("Allreduce", op))
                recv *= size  # every process held the same values

            def Bcast(self, buffer: np.ndarray, root: int) -> None:
                mpi.calls.append(("Bcast", root))

        self.COMM_WORLD = World()

    def Get_library_version(self) -> str:
        return "Fake MPI 1.0\n"
