"""Peak memory of one contestant, measured in a fresh process so that contestants do not share a
high-water mark (Linux only: it reads /proc): ``python -m benchmarks.memory WORKLOAD LABEL [--quick]``
prints JSON with the peak host RSS growth over the baseline (after imports and data) and, on a GPU, the peak device
bytes the contestant's arrays held, the same measure for both libraries: CuPy's pool bytes in
use at their highest (a memory hook reads ``used_bytes()`` after every allocation) and PyTorch's
``max_memory_allocated()``; neither counts memory an allocator caches but no array uses."""

from __future__ import annotations

import contextlib
import json
import resource
import sys
from collections.abc import Iterator

from .workloads import QUICK, WORKLOADS, initial_params, load_data


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _reset_peak() -> None:
    """Start the high-water mark afresh (Linux >= 4.0), so that earlier peaks do not count."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_mib() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@contextlib.contextmanager
def _device_peak(label: str) -> Iterator[list[int]]:
    """Yields a list that holds, after the block, the peak device bytes in use by the block's
    arrays (empty for a CPU contestant)."""
    peak: list[int] = []
    if "cupy" in label:
        import cupy

        pool = cupy.get_default_memory_pool()

        class PeakHook(cupy.cuda.MemoryHook):
            name = "anybackprop_peak"
            highest = 0

            def malloc_postprocess(self, **kwargs: object) -> None:
                self.highest = max(self.highest, pool.used_bytes())

        hook = PeakHook()
        with hook:
            yield peak
        peak.append(hook.highest)
    elif "cuda" in label:
        import torch

        torch.cuda.reset_peak_memory_stats()
        yield peak
        peak.append(torch.cuda.max_memory_allocated())
    else:
        yield peak


def main(argv: list[str]) -> int:
    from .__main__ import contestants

    workload = (QUICK if "--quick" in argv else WORKLOADS)[argv[0]]
    label, backends = argv[1], argv[2].split(",")
    X, y = load_data(workload)
    params = initial_params(workload)
    factory = dict(contestants(workload, backends, tf32="tf32" in label))[label]
    baseline = _rss_mib()
    _reset_peak()
    with _device_peak(label) as device_peak:
        runner = factory(workload, X, y, params)
        with runner.settings():
            runner.run(1)
        runner.sync()
    result = {"host_peak_growth_mib": round(_peak_mib() - baseline, 1)}
    if device_peak:
        result["device_mib"] = round(device_peak[0] / 2**20, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
