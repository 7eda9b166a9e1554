"""Run the benchmarks: ``python -m benchmarks [--backend numpy] [--workloads digits,small] [--quick]``.

For each workload every contestant trains from the same initial weights; timings are interleaved
(A B C, B C A, C A B, ...: the order rotates each round) after one warm-up round and the median of
``--repeats`` is reported: seconds per epoch on the CPU, milliseconds per step on a GPU. One timing
covers ``epochs_per_timing`` epochs (10 for digits, 5 for small, 2 for mid) for every contestant;
anybackprop trains them in one ``fit`` call, as a user would. Prints a Markdown table and writes
JSON with the machine, the library versions, the BLAS and its threads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

import anybackprop as ab

from . import cpu, runners
from .workloads import QUICK, WORKLOADS, Workload, initial_params, load_data


def _installed(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def contestants(workload: Workload, backends: list[str], tf32: bool) -> list[tuple[str, Any]]:
    """(label, factory) pairs for the contestants that can run here on this workload."""
    gpu = "cupy" in backends
    found: list[tuple[str, Any]] = [
        (f"anybackprop[{name}]", lambda w, X, y, p, name=name: runners.Anybackprop(w, X, y, p, name))
        for name in backends
    ]
    if gpu:
        import cupy

        if tf32:
            found.append(
                ("anybackprop[cupy+tf32]", lambda w, X, y, p: runners.Anybackprop(w, X, y, p, "cupy", tf32=True))
            )
        found.append(("cupy-loop", lambda w, X, y, p: runners.HandLoop(w, X, y, p, xp=cupy)))
        found.append(("gemm-floor[cupy]", lambda w, X, y, p: runners.GemmFloor(w, X, y, p, xp=cupy)))
    if not gpu or any(b != "cupy" for b in backends):
        found.append(("numpy-loop", lambda w, X, y, p: runners.HandLoop(w, X, y, p)))
        found.append(("gemm-floor", lambda w, X, y, p: runners.GemmFloor(w, X, y, p)))
        if _installed("sklearn"):
            found.append(("scikit-learn", lambda w, X, y, p: runners.Sklearn(w, X, y, p)))
    if "jax" in backends:
        found.append(("jax-jit", lambda w, X, y, p: runners.JaxJit(w, X, y, p)))
    if _installed("torch"):
        import torch

        device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
        found.append((f"torch[{device}]", lambda w, X, y, p: runners.Torch(w, X, y, p, device)))
        if device == "cuda" and tf32:
            found.append(("torch[cuda+tf32]", lambda w, X, y, p: runners.Torch(w, X, y, p, device, tf32=True)))
    return found


def measure_memory(workload: str, labels: list[str], backends: list[str], quick: bool) -> dict[str, dict]:
    """Peak memory per contestant, each in a fresh process (see :mod:`benchmarks.memory`)."""
    found = {}
    for label in labels:
        cmd = [sys.executable, "-m", "benchmarks.memory", workload, label, ",".join(backends)] + (
            ["--quick"] if quick else []
        )
        done = subprocess.run(cmd, capture_output=True, text=True)
        found[label] = (
            json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr.strip().splitlines()[-1:]}
        )
    return found


def run_workload(
    workload: Workload, backends: list[str], repeats: int, tf32: bool, skip: tuple[str, ...] = (), settle: float = 0.3
) -> dict:
    X, y = load_data(workload)
    params = initial_params(workload)
    built = []
    for label, factory in contestants(workload, backends, tf32):
        if label in skip:
            continue
        try:
            built.append(factory(workload, X, y, params))
        except Exception as exc:  # a contestant that cannot start here is reported, not fatal
            print(f"  {label}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
    times: dict[str, list[float]] = {r.label: [] for r in built}
    for round_ in range(repeats + 1):  # round 0 warms up
        # rotate the order each round, so that no contestant always runs right after the same one
        # (whoever follows PyTorch on the CPU pays for its worker threads, measured up to 1.3x)
        shift = round_ % max(len(built), 1)
        for runner in built[shift:] + built[:shift]:
            runner.sync()
            time.sleep(settle)  # let the previous contestant's idle worker threads (OpenMP) stop spinning
            with runner.settings():
                start = time.perf_counter()
                runner.run(workload.epochs_per_timing)
                runner.sync()
                elapsed = (time.perf_counter() - start) / workload.epochs_per_timing
            if round_:
                times[runner.label].append(elapsed)
    rows = {}
    for label, values in times.items():
        median = statistics.median(values)
        rows[label] = {
            "seconds_per_epoch": median,
            "ms_per_step": 1e3 * median / workload.steps,
            "gflops": workload.flops_per_epoch() / median / 1e9,
            "all_seconds": values,
        }
    return {"workload": workload.__dict__, "steps_per_epoch": workload.steps, "results": rows}


def table(result: dict, gpu: bool) -> str:
    rows = result["results"]
    unit = "ms/step" if gpu else "s/epoch"
    key = "ms_per_step" if gpu else "seconds_per_epoch"

    def ref(*labels: str) -> float | None:
        return next((rows[label][key] for label in labels if label in rows), None)

    floor = ref("cupy-loop", "numpy-loop")
    gemm = ref("gemm-floor[cupy]", "gemm-floor")
    torch = ref("torch[cuda]", "torch[cpu]")
    anchor = ref("jax-jit")  # the compiled hand step, when the jax backend runs
    w = result["workload"]
    lines = [
        f"### {w['name']}: {'-'.join(map(str, w['sizes']))}, batch {w['batch']}, {w['rows']} rows "
        f"({result['steps_per_epoch']} steps/epoch)",
        "",
        f"| contestant | {unit} | x hand loop | x GEMM floor | x torch |{' x jax-jit |' if anchor else ''} GFLOP/s | "
        "peak host MiB | device MiB |",
        f"|---|---:|---:|---:|---:|{'---:|' if anchor else ''}---:|---:|---:|",
    ]
    for label, row in sorted(rows.items(), key=lambda kv: kv[1][key]):

        def ratio(base, row=row):
            return f"{row[key] / base:.2f}" if base else "-"

        value = f"{row[key]:.4g}"
        memory = row.get("memory", {})
        host, device = memory.get("host_peak_growth_mib", "-"), memory.get("device_mib", "-")
        lines.append(
            f"| {label} | {value} | {ratio(floor)} | {ratio(gemm)} | {ratio(torch)} |"
            f"{f' {ratio(anchor)} |' if anchor else ''} {row['gflops']:.1f} | "
            f"{host} | {device} |"
        )
    return "\n".join(lines)


def machine() -> dict:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "anybackprop": ab.__version__,
    }
    for name in ("sklearn", "torch", "cupy", "jax", "array_api_compat"):
        with contextlib.suppress(ImportError):
            info[name] = __import__(name).__version__
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: v for k, v in pool.items() if k in ("internal_api", "version", "num_threads", "architecture")}
            for pool in threadpool_info()
        ]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    return info


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--distributed" in argv:  # data-parallel scaling: its own options (benchmarks/distributed.py)
        from . import distributed

        return distributed.main([a for a in argv if a != "--distributed"])
    if "--tables" in argv:  # real tables against scikit-learn: its own options (benchmarks/realtables.py)
        from . import realtables

        return realtables.main([a for a in argv if a != "--tables"])
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", default=None, help="comma-separated anybackprop backends (default: cupy where usable, else numpy)"
    )
    parser.add_argument(
        "--workloads",
        default=None,
        help=f"comma-separated, from {', '.join(WORKLOADS)} (default: all that fit the device)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke test of the harness")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tf32", action="store_true", help="also run TF32 variants on the GPU")
    parser.add_argument(
        "--memory", action="store_true", help="also measure each contestant's peak memory, in a fresh process"
    )
    parser.add_argument("--skip", default="", help="comma-separated contestant labels to leave out, e.g. torch[cpu]")
    parser.add_argument(
        "--busy", action="store_true", help="CPU: time every workload again with another process spinning on one core"
    )
    parser.add_argument(
        "--scaling", action="store_true", help="CPU: a width x batch grid (widths 64..2048, batches 32..1024)"
    )
    parser.add_argument(
        "--fixed-costs",
        action="store_true",
        help="also time import, one-row predict and a one-epoch fit at 64 rows against hand NumPy, torch, onnxruntime",
    )
    parser.add_argument("--json", default="benchmarks/results.json", help="where to write the JSON")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel scaling instead: see python -m benchmarks --distributed --help",
    )
    args = parser.parse_args(argv)
    backends = args.backend.split(",") if args.backend else ["cupy" if "cupy" in ab.available_backends() else "numpy"]
    unknown = [b for b in backends if b not in ab.available_backends()]
    if unknown:
        parser.error(f"backend {unknown[0]!r} is not usable here; usable: {', '.join(ab.available_backends())}")
    gpu = "cupy" in backends
    table_of = QUICK if args.quick else WORKLOADS
    names = args.workloads.split(",") if args.workloads else [n for n, w in table_of.items() if gpu or not w.gpu_only]
    for name in names:
        if name not in table_of:
            parser.error(f"unknown workload {name!r}; accepted values: {', '.join(table_of)}")
    repeats = 1 if args.quick else args.repeats
    report = {"machine": machine(), "backends": backends, "repeats": repeats, "workloads": []}
    skip = tuple(filter(None, args.skip.split(",")))
    settle = 0.0 if args.quick else 0.3
    if not gpu:
        report["gemm_roof_gflops"] = cpu.gemm_roof(256 if args.quick else cpu.ROOF_SIZE)
        print(
            "GEMM roof (float32 "
            + ("256" if args.quick else str(cpu.ROOF_SIZE))
            + "^2 product): "
            + ", ".join(f"{v:.1f} GFLOP/s with {k}" for k, v in report["gemm_roof_gflops"].items())
            + "\n",
            flush=True,
        )
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result = run_workload(table_of[name], backends, repeats, args.tf32, skip, settle)
        if args.memory:
            for label, memory in measure_memory(name, list(result["results"]), backends, args.quick).items():
                result["results"][label]["memory"] = memory
        report["workloads"].append(result)
        print(table(result, gpu) + "\n", flush=True)
    if args.busy and not gpu:
        report["busy"] = []
        with cpu.busy_core() as core:
            for name in names:
                print(f"running {name} with core {core} busy ...", file=sys.stderr, flush=True)
                report["busy"].append(run_workload(table_of[name], backends, repeats, args.tf32, skip, settle))
        for idle, busy in zip(report["workloads"], report["busy"], strict=True):
            print(
                f"{table(busy, gpu)}\n\nwith one core busy: "
                + ", ".join(
                    f"{label} {row['seconds_per_epoch'] / idle['results'][label]['seconds_per_epoch']:.2f}x its "
                    "idle time"
                    for label, row in busy["results"].items()
                )
                + "\n",
                flush=True,
            )
    if args.scaling and not gpu:
        grid = cpu.scaling_workloads(steps=2 if args.quick else 10)
        report["scaling"] = []
        for workload in grid[:2] if args.quick else grid:
            print(f"running {workload.name} ...", file=sys.stderr, flush=True)
            report["scaling"].append(run_workload(workload, backends, repeats, False, (*skip, "scikit-learn"), settle))
        print(cpu.scaling_table(report["scaling"]) + "\n", flush=True)
    if args.fixed_costs:
        from . import fixed_costs

        print("measuring fixed costs ...", file=sys.stderr, flush=True)
        report["fixed_costs"] = fixed_costs.measure(repeats, args.quick)
        print(fixed_costs.table(report["fixed_costs"]) + "\n", flush=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
