"""Peak memory of one contestant, measured in a fresh process so that contestants do not share a
high-water mark (Linux only: it reads /proc): ``python -m benchmarks.memory WORKLOAD LABEL [--quick]`` prints JSON with the
peak host RSS growth over the baseline (after imports and data) and, on a GPU, the device memory
the contestant's allocator held (CuPy's pool total, or PyTorch's max_memory_allocated)."""

from __future__ import annotations

import json
import resource
import sys

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


def main(argv: list[str]) -> int:
    from .__main__ import contestants

    workload = (QUICK if "--quick" in argv else WORKLOADS)[argv[0]]
    label, backends = argv[1], argv[2].split(",")
    X, y = load_data(workload)
    params = initial_params(workload)
    factory = dict(contestants(workload, backends, tf32="tf32" in label))[label]
    baseline = _rss_mib()
    _reset_peak()
    runner = factory(workload, X, y, params)
    runner.run(1)
    runner.sync()
    peak = _peak_mib()
    result = {"host_peak_growth_mib": round(peak - baseline, 1)}
    if "cupy" in label:
        import cupy

        result["device_mib"] = round(cupy.get_default_memory_pool().total_bytes() / 2**20, 1)
    elif "cuda" in label:
        import torch

        result["device_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
