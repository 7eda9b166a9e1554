"""Data-parallel training across processes: the communicators ``fit(..., comm=...)`` drives.

Like :mod:`anybackprop.backend` for array libraries, this is the one module that knows the
communication libraries; the trainer (:class:`anybackprop.training.DataParallelTrainer`) only
calls the methods of :class:`Communicator`.

* :func:`init` returns :class:`SingleProcess` unless an MPI launcher (``mpiexec``, ``mpirun``,
  ``srun``; read from its environment variables) started more than one process, in which case
  it returns an :class:`MPIComm` communicator (mpi4py, imported only then: importing it starts MPI).
  MPI carries CPU arrays through host buffers. CuPy arrays go through NCCL (``cupy.cuda.nccl``) on
  device buffers, on the stream of the backend's device, with no host round trip; the NCCL id
  travels over MPI. Each process takes the GPU of its local rank (modulo the GPUs it sees) unless
  a device is named (:func:`anybackprop.backend.rank_gpu`), whichever way CuPy was chosen.
* :func:`run_in_threads` runs a function on a world of threads (:class:`ThreadComm`), the same
  algorithm in one process on any backend: what the tests use.

Before its first collective, a data-parallel ``fit`` has every process check its arguments and
data and then agree (:func:`agree`, one all-gather of a small description) on what must be alike:
a failure or a difference on any process raises the same error, naming the rank, on every one.
An exception on one process later, in training, leaves the others waiting in their next all-reduce. Run scripts as
``mpiexec -n 4 python -m mpi4py script.py`` (mpi4py then aborts the whole job on an uncaught
exception); the ``anybackprop`` command does the same itself.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _launch
from .backend import Backend, to_numpy


class Communicator:
    """The interface of every communicator: ``rank`` (0 .. ``size`` - 1), ``size``, ``local_rank``
    (the rank among the processes of this machine), ``library`` (what carries the data), and the
    collectives below, which every process must call in the same order."""

    rank, size, local_rank, library = 0, 1, 0, "none (one process)"

    def allreduce_sum(self, backend: Backend, x: Any) -> Any:
        """The elementwise sum over every process of the 1-D array ``x`` of ``backend``; may
        overwrite ``x`` and return it."""
        return x

    def broadcast(self, backend: Backend, x: Any) -> Any:
        """Rank 0's 1-D array ``x`` (same shape and dtype everywhere), on every process."""
        return x

    def broadcast_value(self, value: Any) -> Any:
        """Rank 0's Python value (picklable), on every process."""
        return value

    def allgather_value(self, value: Any) -> list:
        """Every process's Python value (picklable), in rank order, on every process."""
        return [value]

    def barrier(self) -> None:
        """Returns once every process has called it."""

    def abort(self, code: int = 1) -> None:
        """Ends every process of the job with exit status ``code``."""
        raise SystemExit(code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size}, library={self.library!r})"


class SingleProcess(Communicator):
    """One process: every collective is the identity."""


class MPIComm(Communicator):
    """The processes of ``MPI.COMM_WORLD`` (mpi4py); CuPy arrays go through NCCL."""

    def __init__(self, mpi: Any, local_rank: int) -> None:
        self._mpi, self._world = mpi, mpi.COMM_WORLD
        self.rank, self.size, self.local_rank = self._world.Get_rank(), self._world.Get_size(), local_rank
        version = " ".join(mpi.Get_library_version().strip().splitlines()[0].split())
        self.library = f"MPI ({version}) through mpi4py"
        self._nccl: _Nccl | None = None

    def _gpu(self, backend: Backend, x: Any) -> _Nccl | None:
        """The NCCL communicator for a CuPy array ``x`` (made on the first call, on the backend's
        device, which the caller has made current), or None: other arrays go through host buffers."""
        if backend.name != "cupy" or not backend.owns(x):
            return None
        if self._nccl is None:
            self._nccl = _Nccl(self._mpi, backend.library)
            self.library += " and NCCL"
        return self._nccl

    @staticmethod
    def _host(x: Any) -> tuple[np.ndarray, bool]:
        """A host buffer MPI may write: ``x`` itself (NumPy) or a copy; and whether it is ``x``."""
        host = to_numpy(x)
        if host is x and host.flags.writeable and host.flags.c_contiguous:
            return host, True
        return np.array(host, order="C"), False

    @staticmethod
    def _back(backend: Backend, x: Any, host: np.ndarray, same: bool) -> Any:
        """The collective's result ``host`` as ``x`` was: ``x`` itself, a NumPy array for host
        input, else an array of the backend (made on its device)."""
        if same or not backend.owns(x):
            return x if same else host
        with backend.activate():
            return backend.asarray(host, host.dtype)

    def allreduce_sum(self, backend: Backend, x: Any) -> Any:
        with backend.activate():  # NCCL works on the current device: the backend's
            gpu = self._gpu(backend, x)
            if gpu is not None:
                return gpu.allreduce_sum(x)
        host, same = self._host(x)
        self._world.Allreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM)
        return self._back(backend, x, host, same)

    def broadcast(self, backend: Backend, x: Any) -> Any:
        with backend.activate():
            gpu = self._gpu(backend, x)
            if gpu is not None:
                return gpu.broadcast(x)
        host, same = self._host(x)
        self._world.Bcast(host, root=0)
        return self._back(backend, x, host, same)

    def broadcast_value(self, value: Any) -> Any:
        return self._world.bcast(value, root=0)

    def allgather_value(self, value: Any) -> list:
        return self._world.allgather(value)

    def barrier(self) -> None:
        self._world.Barrier()

    def abort(self, code: int = 1) -> None:
        self._world.Abort(code)


class _Nccl:
    """An NCCL communicator over the same processes, bootstrapped through MPI (ChainerMN's
    ``pure_nccl`` design): a collective check that every process has NCCL, rank 0's unique id
    broadcast, a barrier (so that no process enters the blocking init before the id has arrived
    everywhere), then ``NcclCommunicator(size, id, rank)`` on the current device."""

    def __init__(self, mpi: Any, cupy: Any) -> None:
        world = mpi.COMM_WORLD
        try:
            from cupy.cuda import nccl

            ok = bool(nccl.available)  # False when the NCCL library (the nvidia-nccl wheel) is missing
        except ImportError:
            nccl, ok = None, False
        if world.allreduce(int(ok), op=mpi.MIN) == 0:
            raise RuntimeError(
                "NCCL is not available on every process; install the NCCL wheel CuPy needs: "
                "pip install nvidia-nccl-cu12 (CUDA 12) or nvidia-nccl-cu13 (CUDA 13)"
            )
        uid = nccl.get_unique_id() if world.Get_rank() == 0 else None
        uid = world.bcast(uid, root=0)
        world.Barrier()
        self.cupy, self.nccl = cupy, nccl
        self.comm = nccl.NcclCommunicator(world.Get_size(), uid, world.Get_rank())
        self.types = {np.dtype("float32"): nccl.NCCL_FLOAT32, np.dtype("float64"): nccl.NCCL_FLOAT64}

    def allreduce_sum(self, x: Any) -> Any:
        x = self.cupy.ascontiguousarray(x)
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(x.data.ptr, x.data.ptr, x.size, self.types[x.dtype], self.nccl.NCCL_SUM, stream)
        return x

    def broadcast(self, x: Any) -> Any:
        x = self.cupy.ascontiguousarray(x)
        self.comm.bcast(x.data.ptr, x.size, self.types[x.dtype], 0, self.cupy.cuda.get_current_stream().ptr)
        return x


_SHARED_ERRORS = {"ValueError": ValueError, "TypeError": TypeError}


def agree(comm: Communicator, compute: Callable[[], Any], plan: Callable[[Any], dict[str, Any]]) -> Any:
    """``compute()`` on every process of ``comm``, then one small collective (an all-gather of
    ``plan(result)``, or of the error ``compute`` raised): returns the result where every
    process succeeded with the same plan as rank 0, else raises the same error on every process,
    naming the first rank that failed and its error, or the first entry of the plan where a rank
    differs from rank 0. So that no process waits forever in a collective that another never
    reaches (or reaches with other shapes), call it before the first collective that depends on
    what ``compute`` checks."""
    if comm.size == 1:  # nobody to wait for: the error as it came
        return compute()
    failure: Exception | None = None
    try:
        result = compute()
        mine: tuple = (plan(result), None, None)
    except Exception as exc:  # every failure is shared: the others must not wait for this rank
        result, mine = None, (None, type(exc).__name__, str(exc))
        failure = exc
    everyone = comm.allgather_value(mine)
    for rank, (_, kind, message) in enumerate(everyone):
        if kind is not None:
            error = _SHARED_ERRORS.get(kind, RuntimeError)(f"rank {rank} of {comm.size}: {message}")
            raise error from (failure if rank == comm.rank else None)
    reference = everyone[0][0]
    for key, value in reference.items():
        for rank, (other, _, _) in enumerate(everyone[1:], start=1):
            if other.get(key) != value:
                raise ValueError(
                    f"the processes disagree on {key}: rank 0 has {value!r}, rank {rank} has {other.get(key)!r}; "
                    "every process must pass the same data and arguments"
                )
    return result


def _mpi_module() -> Any:
    from mpi4py import MPI as mpi

    return mpi


def init() -> Communicator:
    """The communicator of this job: :class:`MPIComm` when an MPI launcher started several
    processes, else :class:`SingleProcess` (mpi4py is then not imported). Raises RuntimeError when
    launched but mpi4py or its MPI library is missing."""
    launch = _launch.detect()
    if launch is None:
        return SingleProcess()
    try:
        mpi = _mpi_module()
    except (ImportError, RuntimeError) as exc:  # mpi4py without an MPI library raises RuntimeError
        raise RuntimeError(
            f"started by {launch['launcher']} as {launch['size']} processes, but mpi4py cannot start MPI ({exc}); "
            "install it with pip install 'anybackprop[mpi]' (and, on a machine without MPI, pip install mpich)"
        ) from exc
    return MPIComm(mpi, launch["local_rank"])


def describe(comm: Communicator) -> str:
    """One line for ``anybackprop info``: how many processes and what connects them."""
    if comm.size > 1:
        return f"{comm.size} ({comm.library})"
    import importlib.util

    found = "installed" if importlib.util.find_spec("mpi4py") else "not installed: pip install 'anybackprop[mpi]'"
    return f"1 (not started by an MPI launcher; mpi4py {found})"


# --- a world of threads, for tests ---------------------------------------------------------------


class _ThreadWorld:
    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self.barrier = threading.Barrier(size, timeout=timeout)
        self.slots: list[Any] = [None] * size


class ThreadComm(Communicator):
    """Rank ``rank`` of a world of threads (see :func:`run_in_threads`): every collective
    exchanges through shared slots between two barriers; sums add in rank order."""

    library = "threads (in one process)"

    def __init__(self, world: _ThreadWorld, rank: int) -> None:
        self._world, self.rank, self.size, self.local_rank = world, rank, world.size, rank

    def _exchange(self, value: Any) -> list:
        world = self._world
        world.slots[self.rank] = value
        world.barrier.wait()
        values = list(world.slots)
        world.barrier.wait()
        return values

    def allreduce_sum(self, backend: Backend, x: Any) -> Any:
        parts = self._exchange(x)
        if self.size == 1:
            return x
        total = parts[0] + parts[1]  # a new array on every rank, the same everywhere
        for part in parts[2:]:
            total = total + part
        return total

    def broadcast(self, backend: Backend, x: Any) -> Any:
        return backend.xp.asarray(self._exchange(x)[0], copy=True)

    def broadcast_value(self, value: Any) -> Any:
        return self._exchange(value)[0]

    def allgather_value(self, value: Any) -> list:
        return self._exchange(value)

    def barrier(self) -> None:
        self._world.barrier.wait()

    def abort(self, code: int = 1) -> None:
        self._world.barrier.abort()
        raise SystemExit(code)


def run_in_threads(size: int, fn: Any, timeout: float = 120.0) -> list:
    """``[fn(comm) for each rank]``, run on ``size`` threads at once, each with its
    :class:`ThreadComm` and a copy of the caller's context (so the backend in force is the
    caller's). An exception on one rank breaks every barrier and is raised here."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    world = _ThreadWorld(size, timeout)
    results: list[Any] = [None] * size
    errors: list[BaseException | None] = [None] * size

    def target(rank: int) -> None:
        try:
            results[rank] = fn(ThreadComm(world, rank))
        except BaseException as exc:
            errors[rank] = exc
            world.barrier.abort()

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(target, r)) for r in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    raised = [e for e in errors if e is not None]
    if raised:
        raise next((e for e in raised if not isinstance(e, threading.BrokenBarrierError)), raised[0])
    return results
