"""The benchmark workloads: float32, relu hidden layers, softmax + cross-entropy, plain SGD."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

LR = 0.01


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple[int, ...]
    batch: int
    rows: int
    gpu_only: bool = False
    epochs_per_timing: int = 1  # several, as a user's fit runs several: its set-up is not per epoch

    @property
    def steps(self) -> int:
        """Minibatches per epoch (the last one may be short)."""
        return -(-self.rows // self.batch)

    def flops_per_epoch(self) -> float:
        """Multiply-adds x 2 of the three matrix products per layer (forward, dW, dA; no dA for
        the first layer), summed over every row of an epoch."""
        pairs = list(itertools.pairwise(self.sizes))
        per_row = sum(3 * n_in * n_out for n_in, n_out in pairs) - pairs[0][0] * pairs[0][1]
        return 2.0 * per_row * self.rows


WORKLOADS = {
    "digits": Workload("digits", (64, 128, 64, 10), 64, 1437, epochs_per_timing=10),
    "small": Workload("small", (784, 256, 256, 10), 128, 20000, epochs_per_timing=5),
    "mid": Workload("mid", (784, 1024, 1024, 10), 512, 20000, epochs_per_timing=2),
    "big": Workload("big", (4096, 4096, 4096, 4096, 10), 4096, 40960, gpu_only=True),
}
QUICK = {
    "digits": Workload("digits", (64, 16, 10), 64, 256),
    "small": Workload("small", (32, 16, 16, 10), 32, 256),
    "mid": Workload("mid", (32, 64, 10), 64, 256),
    "big": Workload("big", (64, 64, 64, 10), 128, 512, gpu_only=True),
}


def load_data(workload: Workload, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``X (rows, n_in)`` float32 and integer labels: the standardised digits for "digits" (their
    first 1437 rows at full size), standard normal features and uniform labels otherwise."""
    n_in, n_out = workload.sizes[0], workload.sizes[-1]
    if workload.name == "digits" and n_in == 64:
        from anybackprop import datasets

        X, y = datasets.digits()
        X = datasets.standardize(X)[0]
        reps = -(-workload.rows // len(X))
        return np.tile(X, (reps, 1))[: workload.rows].astype(np.float32), np.tile(y, reps)[: workload.rows]
    rng = np.random.default_rng(seed)
    return rng.standard_normal((workload.rows, n_in), dtype=np.float32), rng.integers(0, n_out, workload.rows)


def initial_params(workload: Workload) -> dict[str, np.ndarray]:
    """The initial weights every contestant starts from (anybackprop's He draw, seed 0)."""
    import anybackprop as ab

    with ab.use_backend("numpy"):
        model = ab.MLP(list(workload.sizes), activation="relu", output="softmax", seed=0)
    return {k: ab.to_numpy(v) for k, v in model.params.items()}
