"""The first run on a GPU machine, as one command: ``python -m benchmarks.gpu_check``.

Runs in order, each step with its own time limit (about 5 minutes in all on one GPU), and writes
one Markdown report (``--report``, default ``benchmarks/gpu-check-report.md``) with the machine,
each step's command, exit status, seconds and output:

1. ``nvidia-smi``: the GPUs, driver and CUDA version;
2. the install check: the fused kernels compiled with NVRTC and the CuPy/NCCL names
   (``tests/test_cupy_install.py``), then ``anybackprop info``;
3. ``anybackprop selftest`` with ``ANYBACKPROP_BACKEND=cupy`` (cupy must be usable);
4. the test suite on cupy (``ANYBACKPROP_TEST_BACKENDS=cupy``) and ``tests/test_gpu.py``;
5. the benchmarks on cupy with ``--tf32 --memory`` (``--quick`` sizes);
6. where 2 GPUs exist, data-parallel training with 2 ranks (``mpiexec -n 2``, NCCL), and
   ``ANYBACKPROP_DEVICE=1 anybackprop selftest``.

Every step runs even when one before it failed, so that one report shows everything; the exit
status is 1 when any step failed. Quote the report in the issue.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAIL = 60  # output lines kept per step


@dataclass
class Step:
    """One command of the check: ``env`` is added to the environment; ``timeout`` in seconds."""

    title: str
    command: list[str]
    timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    step: Step
    status: int | None  # None: it ran past its time limit, or could not start
    seconds: float
    output: str


def gpu_count() -> int:
    """The CUDA devices CuPy sees (0 where CuPy is missing or cannot count them)."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def steps(gpus: int, python: str = sys.executable) -> list[Step]:
    """The check's steps for a machine with ``gpus`` GPUs."""
    cupy = {"ANYBACKPROP_BACKEND": "cupy"}
    found = [
        Step("GPUs, driver and CUDA", ["nvidia-smi"], 30),
        Step(
            "install: kernels compile, CuPy/NCCL names exist",
            [python, "-m", "pytest", "-q", "-rs", "tests/test_cupy_install.py"],
            60,
        ),
        Step("install: anybackprop info", [python, "-m", "anybackprop", "info"], 30),
        Step("selftest on cupy", [python, "-m", "anybackprop", "selftest"], 60, cupy),
        Step(
            "test suite on cupy",
            [python, "-m", "pytest", "-q", "-rs", "-x", "tests"],
            200,
            {"ANYBACKPROP_TEST_BACKENDS": "cupy"},
        ),
        Step(
            "benchmarks on cupy, TF32 and memory",
            [
                python,
                "-m",
                "benchmarks",
                "--backend",
                "cupy",
                "--tf32",
                "--memory",
                "--quick",
                "--json",
                "benchmarks/results-gpu-check.json",
            ],
            90,
        ),
    ]
    if gpus >= 2:
        mpiexec = shutil.which("mpiexec") or os.path.join(os.path.dirname(python), "mpiexec")
        found += [
            Step(
                "data-parallel training, 2 ranks on 2 GPUs (NCCL)",
                [
                    mpiexec,
                    "-n",
                    "2",
                    python,
                    "-m",
                    "anybackprop",
                    "train",
                    "--dtype",
                    "float64",
                    "--epochs",
                    "3",
                    "--json",
                ],
                120,
                cupy,
            ),
            Step(
                "selftest on the second GPU",
                [python, "-m", "anybackprop", "selftest"],
                90,
                {**cupy, "ANYBACKPROP_DEVICE": "1"},
            ),
        ]
    return found


def run(step: Step) -> Outcome:
    """Run one step from the repository root with the checkout first on the import path."""
    env = {**os.environ, **step.env, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            step.command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=step.timeout, check=False
        )
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        status = None
        output = f"{_text(exc.stdout)}{_text(exc.stderr)}\n(stopped after its limit of {step.timeout:g} s)"
    except OSError as exc:
        status, output = None, f"could not start: {exc}"
    return Outcome(step, status, time.perf_counter() - start, output)


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def report(outcomes: list[Outcome], gpus: int) -> str:
    """The Markdown report: a summary table, then each step's command and output tail."""
    ok = sum(o.status == 0 for o in outcomes)
    lines = [
        "# GPU check",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {platform.node()}; Python {platform.python_version()}; "
        f"{gpus} GPU(s) seen by CuPy; {ok}/{len(outcomes)} steps passed.",
        "",
        "| step | status | seconds |",
        "|---|---|---|",
    ]
    lines += [f"| {o.step.title} | {_status(o)} | {o.seconds:.1f} |" for o in outcomes]
    for o in outcomes:
        env = " ".join(f"{k}={v}" for k, v in o.step.env.items())
        tail = o.output.rstrip().splitlines()[-TAIL:]
        lines += [
            "",
            f"## {o.step.title}: {_status(o)}",
            "",
            "```",
            f"$ {env + ' ' if env else ''}{' '.join(o.step.command)}",
            *tail,
            "```",
        ]
    return "\n".join(lines) + "\n"


def _status(outcome: Outcome) -> str:
    if outcome.status is None:
        return "FAIL (timed out or did not start)"
    return "pass" if outcome.status == 0 else f"FAIL (exit {outcome.status})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", default="benchmarks/gpu-check-report.md", help="the Markdown report to write")
    args = parser.parse_args(argv)
    gpus = gpu_count()
    outcomes = []
    for step in steps(gpus):
        print(f"gpu_check: {step.title} ...", flush=True)
        outcomes.append(run(step))
        print(f"gpu_check: {step.title}: {_status(outcomes[-1])} in {outcomes[-1].seconds:.1f} s", flush=True)
    with open(args.report, "w", encoding="utf-8") as f:
        f.write(report(outcomes, gpus))
    print(f"gpu_check: wrote {args.report}")
    return 0 if all(o.status == 0 for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
