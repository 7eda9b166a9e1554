"""Run by tests/test_distributed.py under ``mpiexec -n 2 python -m mpi4py``: trains every case of
:data:`CASES` data-parallel and has rank 0 write the parameters (and whether every rank ended
with bitwise the same ones) to the ``.npz`` named on the command line. ``raise`` instead makes
rank 1 fail before its first collective, to show the job ends (not hangs); a name of
:data:`DISAGREEMENTS` has rank 1 pass other data or arguments to ``fit``."""

import sys

import numpy as np

import anybackprop as ab

# name: (model keywords, fit keywords); 203 rows in batches of 50 leave a short last batch of 3
CASES = {
    "sgd": ({}, {"optimizer": "sgd"}),
    "momentum_batch_norm": ({"norm": "batch"}, {"optimizer": "momentum"}),
    "adam_decay_dropout_weights": ({"dropout": 0.3}, {"optimizer": "adam", "weight_decay": 1e-2, "weighted": True}),
}


def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((203, 8))
    return X, rng.integers(0, 3, 203), rng.uniform(0.5, 2.0, 203)


def train(name, comm=None, seed=0):
    """The model a case trains (on ``comm``'s processes, or in one when None)."""
    model_kw, fit_kw = CASES[name]
    fit_kw = dict(fit_kw)
    X, y, w = data()
    model = ab.MLP([8, 16, 3], dtype="float64", seed=seed, **model_kw)
    weights = w if fit_kw.pop("weighted", False) else None
    model.fit(X, y, epochs=3, batch_size=50, sample_weight=weights, verbose=False, comm=comm, **fit_kw)
    return model


# name: what rank 1 passes differently from rank 0 (see disagree)
DISAGREEMENTS = {
    "rows": lambda X, y: ((X[:150], y[:150]), {}),
    "epochs": lambda X, y: ((X, y), {"epochs": 3}),
    "no-rows": lambda X, y: ((X[:0], y[:0]), {}),
    "features": lambda X, y: ((X[:, :7], y), {}),
}


def disagree(comm, name, folder):
    """Rank 1 passes other data or arguments (``DISAGREEMENTS[name]``); every rank writes the
    error it raised, ``TYPE: MESSAGE``, to ``folder/rankR.txt``."""
    X, y, _ = data()
    args, kwargs = ((X, y), {}) if comm.rank == 0 else DISAGREEMENTS[name](X, y)
    try:
        ab.MLP([8, 16, 3], dtype="float64").fit(*args, **{"epochs": 2, "verbose": False, "comm": comm, **kwargs})
    except Exception as exc:
        with open(f"{folder}/rank{comm.rank}.txt", "w") as f:
            f.write(f"{type(exc).__name__}: {exc}")


def main(out, *more):
    comm = ab.distributed.init()
    if out in DISAGREEMENTS:
        disagree(comm, out, *more)
        return
    if out == "raise":
        if comm.rank == 1:
            raise RuntimeError("rank 1 failed on purpose")
        comm.barrier()
        return
    found = {"size": comm.size, "library": comm.library}
    for name in CASES:
        model = train(name, comm, seed=0 if comm.rank == 0 else 1 + comm.rank)  # rank 0's parameters win
        flat = np.concatenate([ab.to_numpy(p).ravel() for p in model.params.values()])
        differs = not np.array_equal(comm.broadcast(model.backend, flat.copy()), flat)
        found[f"{name}/ranks_differing"] = comm.allreduce_sum(model.backend, np.array([float(differs)]))[0]
        found.update({f"{name}/{key}": ab.to_numpy(value) for key, value in model.params.items()})
    if comm.rank == 0:
        np.savez(out, **found)


if __name__ == "__main__":
    main(*sys.argv[1:])
