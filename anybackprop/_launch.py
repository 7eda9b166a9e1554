"""What an MPI launcher (``mpiexec``, ``mpirun``, ``srun``) tells a process through its
environment, read without importing NumPy or mpi4py: the package calls :func:`limit_blas_threads`
before NumPy loads its BLAS, which reads its thread count once, at load."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

# (launcher, world size, world rank, local rank, ranks on this node), most specific first
_LAUNCHERS = (
    (
        "Open MPI",
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
    ),
    ("MPICH/Hydra", "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
    ("MVAPICH", "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_SIZE"),
    ("Slurm srun", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_LOCALID", None),
)
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def detect(environ: dict | None = None) -> dict | None:
    """``{"launcher", "size", "rank", "local_rank", "local_size"}`` when this process was started
    by an MPI launcher with more than one process, else None (a plain ``python`` or ``-n 1``)."""
    env = os.environ if environ is None else environ
    for name, size, rank, local_rank, local_size in _LAUNCHERS:
        if env.get(size, "").strip().isdigit() and env.get(rank, "").strip().isdigit():
            n = int(env[size])
            if n < 2:
                return None
            local = env.get(local_size, "") if local_size else _slurm_tasks_here(env)
            return {
                "launcher": name,
                "size": n,
                "rank": int(env[rank]),
                "local_rank": int(env[local_rank]) if env.get(local_rank, "").strip().isdigit() else int(env[rank]),
                "local_size": int(local) if local.strip().isdigit() else n,
            }
    return None


def _slurm_tasks_here(env: Any) -> str:
    """Slurm's tasks on this node: ``SLURM_STEP_TASKS_PER_NODE`` ("4(x2),3" gives 4 on the first
    nodes; the leading count is a fair share for every node) or "" when it is not set."""
    value = env.get("SLURM_STEP_TASKS_PER_NODE", "") or env.get("SLURM_TASKS_PER_NODE", "")
    digits = ""
    for char in value.strip():
        if not char.isdigit():
            break
        digits += char
    return digits


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory() -> int | None:
    """This machine's physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def limit_blas_threads() -> int | None:
    """Under a launcher, BLAS threads per process = cores / processes on this node (at least 1),
    unless the user set one of :data:`BLAS_THREAD_VARIABLES`; returns the number set or None.
    Too late once NumPy is loaded: then threadpoolctl (if installed) limits them, else a warning."""
    launch = detect()
    if launch is None or any(v in os.environ for v in BLAS_THREAD_VARIABLES):
        return None
    threads = max(1, cores() // launch["local_size"])
    for variable in BLAS_THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    if "numpy" in sys.modules:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            warnings.warn(
                f"NumPy was imported before anybackprop under {launch['launcher']}, so its BLAS may run more threads "
                f"than the {threads} core(s) per process; set OMP_NUM_THREADS={threads} before mpiexec",
                RuntimeWarning,
                stacklevel=3,
            )
        else:
            threadpool_limits(threads)
    return threads
