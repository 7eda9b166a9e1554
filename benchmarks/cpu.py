"""CPU-only measurements around the workloads: the machine's GEMM roof, a busy core, and the
width x batch scaling grid (``python -m benchmarks --busy --scaling``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np

from .workloads import Workload

ROOF_SIZE = 2048
SCALING_WIDTHS = (64, 256, 1024, 2048)
SCALING_BATCHES = (32, 128, 1024)


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def gemm_roof(size: int = ROOF_SIZE, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a large float32 matrix product (``size`` squared), best of ``repeats``, with
    one BLAS thread and with every core: the ceiling any training step can reach here."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    roof = {}
    for threads in (1, len(_cores())):
        with threadpool_limits(limits=threads, user_api="blas"):
            np.matmul(a, b, out=out)  # warm-up
            best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
        roof[f"{threads} thread{'s' if threads > 1 else ''}"] = 2.0 * size**3 / best / 1e9
    return roof


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextlib.contextmanager
def busy_core() -> Iterator[int]:
    """A competing process spinning on one core (the last one this process may use) for the
    duration of the block, as a browser tab or a CI neighbour would; yields that core."""
    core = _cores()[-1]
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(spinner.pid, {core})
        time.sleep(0.2)  # let it take the core
        yield core
    finally:
        spinner.kill()
        spinner.wait()


def scaling_workloads(steps: int = 10) -> list[Workload]:
    """width-width-width-10 networks (input width too) over the widths and batches of the grid,
    ``steps`` minibatches per epoch."""
    return [
        Workload(f"w{width}-b{batch}", (width, width, width, 10), batch, steps * batch, epochs_per_timing=2)
        for width in SCALING_WIDTHS
        for batch in SCALING_BATCHES
    ]


def scaling_table(results: list[dict]) -> str:
    """One row per grid point: s/epoch of anybackprop and its ratio to each other contestant."""
    labels = [label for label in results[0]["results"] if not label.startswith("anybackprop")]
    ours = next(label for label in results[0]["results"] if label.startswith("anybackprop"))
    lines = [
        f"| width | batch | {ours} s/epoch | " + " | ".join(f"x {label}" for label in labels) + " |",
        "|---:|---:|---:|" + "---:|" * len(labels),
    ]
    for result in results:
        w, rows = result["workload"], result["results"]
        mine = rows[ours]["seconds_per_epoch"]
        ratios = " | ".join(f"{mine / rows[label]['seconds_per_epoch']:.2f}" for label in labels)
        lines.append(f"| {w['sizes'][0]} | {w['batch']} | {mine:.4g} | {ratios} |")
    return "\n".join(lines)
