"""Data-parallel scaling: ``python -m benchmarks --distributed [--workloads small,mid] [--ranks 2]``.

For each workload it times anybackprop's ``fit`` (float32, SGD, the global batch of the workload)
as 1 process x T threads, 1 process x T/P threads and P processes x T/P threads
(``mpiexec -n P``), T = the cores here, each configuration in a fresh launch, interleaved and
repeated (median). Each run also reports the all-reduce's share of the training time (time
inside the gradient all-reduce, waiting for the slower rank included) and, beside it, the cost
model ``2 (P - 1) / P * bytes / bandwidth`` with the bus bandwidth of a plain all-reduce of the
same buffer measured in the same job. Timings on a shared machine are noisy: compare within one
run. ``python -m benchmarks.distributed worker NAME EPOCHS`` is what each launch runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

import anybackprop as ab

from .workloads import LR, QUICK, WORKLOADS, load_data


class _Timed(ab.distributed.Communicator):
    """A communicator that adds up the seconds its all-reduces of ``size`` elements take."""

    def __init__(self, comm: ab.distributed.Communicator, size: int) -> None:
        self.inner, self.n, self.seconds, self.calls = comm, size, 0.0, 0
        self.rank, self.size, self.local_rank, self.library = comm.rank, comm.size, comm.local_rank, comm.library

    def allreduce_sum(self, backend, x):
        if x.shape[0] != self.n:
            return self.inner.allreduce_sum(backend, x)
        start = time.perf_counter()
        out = self.inner.allreduce_sum(backend, x)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out

    def broadcast(self, backend, x):
        return self.inner.broadcast(backend, x)

    def broadcast_value(self, value):
        return self.inner.broadcast_value(value)

    def barrier(self):
        self.inner.barrier()


def worker(name: str, epochs: int, quick: bool) -> None:
    workload = (QUICK if quick else WORKLOADS)[name]
    comm = ab.distributed.init()
    X, y = load_data(workload)
    with ab.use_backend("numpy", dtype="float32"):
        model = ab.MLP(list(workload.sizes), activation="relu", output="softmax", seed=0)
        n = sum(int(np.prod(p.shape)) for p in model.params.values())
        timed = _Timed(comm, n)
        fit = dict(
            batch_size=workload.batch, optimizer="sgd", lr=LR, verbose=False, comm=timed if comm.size > 1 else None
        )
        model.fit(X, y, epochs=1, **fit)  # warm-up
        timed.seconds = timed.calls = 0
        comm.barrier()
        start = time.perf_counter()
        model.fit(X, y, epochs=epochs, **fit)
        comm.barrier()
        seconds = time.perf_counter() - start
        bandwidth = None
        if comm.size > 1:  # a plain all-reduce of the gradient's bytes, after a barrier: the floor
            buf, times = np.ones(n, np.float32), []
            for _ in range(10):
                comm.barrier()
                tick = time.perf_counter()
                comm.allreduce_sum(model.backend, buf)
                times.append(time.perf_counter() - tick)
            bandwidth = 2 * (comm.size - 1) / comm.size * 4 * n / statistics.median(times)
    if comm.rank == 0:
        steps = workload.steps * epochs
        print(
            json.dumps(
                {
                    "s_per_epoch": seconds / epochs,
                    "allreduce_share": timed.seconds / seconds,
                    "allreduce_ms_per_step": 1e3 * timed.seconds / steps if timed.calls else 0.0,
                    "bytes": 4 * n,
                    "bus_bandwidth_GBs": None if bandwidth is None else bandwidth / 1e9,
                    "model_ms_per_step": None
                    if bandwidth is None
                    else 1e3 * 2 * (comm.size - 1) / comm.size * 4 * n / bandwidth,
                }
            ),
            flush=True,
        )


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _run(ranks: int, threads: int, name: str, epochs: int, quick: bool) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    cmd = [sys.executable, "-m", "benchmarks.distributed", "worker", name, str(epochs)] + (["--quick"] if quick else [])
    if ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        mpiexec = mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec")
        if mpiexec is None:
            raise SystemExit("mpiexec not found: pip install '.[mpi]' mpich")
        cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", "mpi4py", *cmd[1:]]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --distributed", description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="small,mid")
    parser.add_argument("--ranks", type=int, default=2, help="P, the processes of the data-parallel runs (default 2)")
    parser.add_argument("--threads", type=int, default=_cores(), help="T, the cores to use (default: all here)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke test of the harness")
    parser.add_argument("--json", default="benchmarks/results-distributed.json")
    args = parser.parse_args(argv)
    table_of = QUICK if args.quick else WORKLOADS
    p, t = args.ranks, args.threads
    configs = [(1, t), (1, max(1, t // p)), (p, max(1, t // p))]
    configs = list(dict.fromkeys(configs))
    report = {"cores": _cores(), "load_average": os.getloadavg(), "workloads": {}}
    for name in args.workloads.split(","):
        if name not in table_of:
            parser.error(f"unknown workload {name!r}; accepted values: {', '.join(table_of)}")
        epochs = 1 if args.quick else table_of[name].epochs_per_timing
        runs: dict = {c: [] for c in configs}
        for r in range(1 if args.quick else args.repeats):
            for c in configs[r % len(configs) :] + configs[: r % len(configs)]:  # rotate the order
                runs[c].append(_run(*c, name, epochs, args.quick))
        w = table_of[name]
        print(
            f"### {name}: {'-'.join(map(str, w.sizes))}, global batch {w.batch}, {w.rows} rows, "
            f"{4 * sum(a * b + b for a, b in itertools.pairwise(w.sizes)) / 1e6:.2f} MB of gradients"
        )
        print(
            "\n| processes x threads | s/epoch (median) | speed-up against 1 x T | all-reduce share | "
            "all-reduce ms/step | model 2(P-1)/P*bytes/bw, ms | bus bandwidth GB/s |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        rows = {}
        for (ranks, threads), found in runs.items():

            def med(key, found=found):
                return statistics.median(f[key] for f in found) if found[0][key] is not None else None

            rows[f"{ranks}x{threads}"] = row = {k: med(k) for k in found[0]}
            rows[f"{ranks}x{threads}"]["all"] = found
        base = rows[f"1x{t}"]["s_per_epoch"]
        for label, row in rows.items():

            def fmt(v, f):
                return "-" if v is None else format(v, f)

            print(
                f"| {label} | {row['s_per_epoch']:.3f} | {base / row['s_per_epoch']:.2f} | "
                f"{row['allreduce_share']:.1%} | {row['allreduce_ms_per_step']:.2f} | "
                f"{fmt(row['model_ms_per_step'], '.2f')} | {fmt(row['bus_bandwidth_GBs'], '.2f')} |"
            )
        print()
        report["workloads"][name] = rows
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2], int(sys.argv[3]), "--quick" in sys.argv)
    else:
        raise SystemExit(main())
