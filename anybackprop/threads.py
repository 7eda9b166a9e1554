"""The BLAS thread policy: how many threads NumPy's BLAS may use while anybackprop trains or
predicts on the CPU, chosen from the size of the work and restored afterwards.

A product that BLAS splits across threads waits for every thread; when another program holds a
core, a small product then takes milliseconds instead of microseconds (OpenBLAS's threads spin
for the busy core). Small products gain nothing from a second thread even on an idle machine. So:

* the largest matrix product of a step, ``batch x n_in x n_out`` multiply-adds, below
  :data:`SMALL_PRODUCT` (2 M): one thread (below :func:`tiny_product`, the pools are not touched:
  BLAS keeps such products on one thread itself);
* otherwise every core this process may run on (``os.sched_getaffinity``), divided among the
  processes an MPI launcher started on this machine, and capped by ``OMP_NUM_THREADS`` /
  ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` where set.

``ANYBACKPROP_NUM_THREADS`` (a positive integer) or ``fit(..., num_threads=n)`` overrides the
rule. The policy is applied through threadpoolctl with one cached controller (a scan of the
loaded libraries costs about a millisecond; a limit about 10 microseconds) and only on backends
whose arrays live on the host (NumPy); CuPy and torch keep their own threading.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from typing import Any

from . import _launch
from .layers import Dense

SMALL_PRODUCT = 2_000_000
TINY_PRODUCT = 65_536
"""Below this many multiply-adds the pools are left alone whatever the BLAS: setting a limit (about
10 us, twice) would cost more than the product (a one-row prediction)."""
OPENBLAS_ONE_THREAD = 65_536 * 4
"""OpenBLAS runs a GEMM of at most this many multiply-adds on one thread by itself: its
``interface/gemm.c`` sets ``args.nthreads = 1`` when ``M * N * K <= SMP_THRESHOLD_MIN *
GEMM_MULTITHREAD_THRESHOLD``, with ``SMP_THRESHOLD_MIN`` 65536.0 for real types (defined at the top
of that file) and ``GEMM_MULTITHREAD_THRESHOLD`` 4 unless the build sets another (OpenBLAS's
``Makefile.system``; NumPy's wheels keep it). A limit of one thread changes nothing for such
products, so where every BLAS pool is OpenBLAS the pools are left alone up to this size too."""
ENV = "ANYBACKPROP_NUM_THREADS"


def check_num_threads(value: Any, name: str) -> int:
    """``value`` as a thread count >= 1 (an int, or a string of one from the environment)."""
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not a thread count; expected a positive integer") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def cores() -> int:
    """The cores this process may use: its CPU affinity, shared among the processes an MPI
    launcher started on this machine, and no more than a BLAS thread variable the user (or the
    launcher set-up in :mod:`anybackprop._launch`) set."""
    launch = _launch.detect()
    share = max(1, _launch.cores() // (launch["local_size"] if launch else 1))
    for variable in _launch.BLAS_THREAD_VARIABLES:
        if os.environ.get(variable, "").strip().isdigit():
            share = min(share, max(1, int(os.environ[variable])))
    return share


def count(largest_product: int, num_threads: int | None = None) -> int:
    """The thread count of :func:`choose` without its explanation (what a block of :func:`limited` needs)."""
    if num_threads is not None:
        return check_num_threads(num_threads, "num_threads")
    if os.environ.get(ENV):
        return check_num_threads(os.environ[ENV], ENV)
    return 1 if largest_product < SMALL_PRODUCT else cores()


def choose(largest_product: int, num_threads: int | None = None) -> tuple[int, str]:
    """``(threads, why)`` for a step whose largest product has ``largest_product``
    multiply-adds; ``num_threads`` (or the environment) overrides the rule."""
    threads = count(largest_product, num_threads)
    if num_threads is not None:
        return threads, "num_threads"
    if os.environ.get(ENV):
        return threads, ENV
    if largest_product < SMALL_PRODUCT:
        return threads, f"largest product {largest_product:,} < {SMALL_PRODUCT:,} multiply-adds"
    return threads, f"largest product {largest_product:,} multiply-adds: the {threads} cores this process may use"


@functools.lru_cache(maxsize=1)
def _controller() -> Any:
    """One threadpoolctl controller, created after NumPy is loaded; None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    import numpy  # noqa: F401  (the controller sees only libraries already loaded)

    return ThreadpoolController()


def blas_threads() -> int | None:
    """BLAS threads in force now (None when no BLAS library is visible)."""
    controller = _controller()
    if controller is None:
        return None
    pools = [info["num_threads"] for info in controller.info() if info["user_api"] == "blas"]
    return max(pools) if pools else None


class _Limits:
    """The process-wide BLAS limit shared by every block of :func:`limited` running now, in any
    thread: the first to start remembers the limits in force before it, the request of the latest
    one still running is applied (the inner one of nested blocks), and the last to end puts the
    remembered limits back. (Each block restoring what it found would leave the process at 1
    thread when two overlap: the second finds the first one's limit.) The BLAS pools are read and
    set through threadpoolctl's library controllers, each only where its count differs (its
    ``limit()`` gathers every library's details first: tens of microseconds, more than a small
    ``fit`` step)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[int] = []
        self.original: list[tuple[Any, int]] = []  # each BLAS pool and its count before the first block

    def enter(self, controller: Any, threads: int) -> None:
        with self.lock:
            _release_control()
            if not self.requests:
                self.original = [(pool, pool.get_num_threads()) for pool in _blas_pools(controller)]
                _set(self.original, threads)
            elif threads != self.requests[-1]:
                _set(self.original, threads)
            _release_control()
            self.requests.append(threads)

    def leave(self, controller: Any, threads: int) -> None:
        with self.lock:
            _release_control()
            latest = self.requests[-1]
            del self.requests[len(self.requests) - 1 - self.requests[::-1].index(threads)]
            if not self.requests:
                for pool, count in self.original:
                    _set([(pool, count)], count)
                self.original = []
            elif self.requests[-1] != latest:
                _set(self.original, self.requests[-1])
            _release_control()


def _blas_pools(controller: Any) -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded in this process."""
    return [pool for pool in controller.lib_controllers if pool.user_api == "blas"]


def _set(pools: list[tuple[Any, Any]], threads: int | None) -> None:
    """Set each pool of ``(pool, _)`` to ``threads`` where it differs (None: leave it)."""
    for pool, _ in pools:
        if threads is not None and pool.get_num_threads() != threads:
            pool.set_num_threads(threads)


def _release_control() -> None:
    """threadpoolctl (3.6 and later) lets only the thread that last set OpenBLAS's limit set it
    again while that thread lives, and ignores the others; :class:`_Limits` serialises every
    change under its lock, so it takes that control before each and hands it back after."""
    release = _releaser()
    if release is not None:
        release(force=True)


@functools.lru_cache(maxsize=1)
def _releaser() -> Any:
    """threadpoolctl's ``OpenBLASController.clear_controlling_thread`` (None before 3.6)."""
    import threadpoolctl

    return getattr(getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None)


_LIMITS = _Limits()


_UNTOUCHED = contextlib.nullcontext(None)


def limited(backend: Any, largest_product: int, num_threads: int | None = None) -> contextlib.AbstractContextManager:
    """Run the block with BLAS limited by :func:`choose` when ``backend`` computes on the host;
    the block gets the thread count applied (None where the policy does not apply). Blocks that
    overlap, nested or in several threads, share one process-wide limit (:class:`_Limits`): the
    latest one's, and the limits from before the first once the last has ended. Products under
    :func:`tiny_product` multiply-adds leave the pools alone (setting them costs more than it saves),
    and such a block costs nothing but this test (a one-row prediction)."""
    if _untouched(largest_product, num_threads):
        return _UNTOUCHED
    return _limited(backend, largest_product, num_threads)


def _untouched(largest_product: int, num_threads: int | None) -> bool:
    """Whether :func:`limited` leaves the pools alone: a tiny product and no override."""
    return num_threads is None and largest_product < tiny_product(largest_product) and not os.environ.get(ENV)


def tiny_product(largest_product: int = TINY_PRODUCT) -> int:
    """The size from which :func:`limited` sets the pools for a product of ``largest_product``
    multiply-adds: :data:`TINY_PRODUCT` whatever the BLAS (below it no library is looked at), else
    one above :data:`OPENBLAS_ONE_THREAD` where every BLAS pool is OpenBLAS."""
    return TINY_PRODUCT if largest_product < TINY_PRODUCT else _tiny_for_the_blas()


@functools.lru_cache(maxsize=1)
def _tiny_for_the_blas() -> int:
    controller = _controller()
    pools = [] if controller is None else _blas_pools(controller)
    if pools and all(pool.internal_api == "openblas" for pool in pools):
        return OPENBLAS_ONE_THREAD + 1
    return TINY_PRODUCT


def in_force(backend: Any, largest_product: int, num_threads: int | None = None) -> int | None:
    """The BLAS threads a block of :func:`limited` with these arguments runs with: the policy's
    count where it sets the pools, the pools' own where it leaves them alone (tiny products), None
    where it does not apply (arrays off the host, no BLAS visible to threadpoolctl)."""
    if not backend.adapter.host or _controller() is None:
        return None
    if _untouched(largest_product, num_threads):
        return blas_threads()
    return count(largest_product, num_threads)


@contextlib.contextmanager
def _limited(backend: Any, largest_product: int, num_threads: int | None) -> Iterator[int | None]:
    controller = _controller() if backend.adapter.host else None
    if controller is None:
        if num_threads is not None:
            check_num_threads(num_threads, "num_threads")
        yield None
        return
    threads = count(largest_product, num_threads)
    _LIMITS.enter(controller, threads)
    try:
        yield threads
    finally:
        _LIMITS.leave(controller, threads)


def largest_product(layers: list, rows: int) -> int:
    """The most multiply-adds of one dense layer's product for ``rows`` rows through ``layers``."""
    return max((rows * layer.n_in * layer.n_out for layer in layers if isinstance(layer, Dense)), default=0)


def describe() -> str:
    """The policy in force, for ``anybackprop info``."""
    blas = blas_threads()
    override = os.environ.get(ENV)
    rule = (
        f"{ENV}={override}"
        if override
        else f"1 thread when a step's largest product is under {SMALL_PRODUCT:,} multiply-adds, "
        f"else the {cores()} cores this process may use"
    )
    return (
        f"BLAS threads: {rule}; {'no BLAS visible to threadpoolctl' if blas is None else f'{blas} outside fit/predict'}"
    )
