"""Class table: many processes fail clearly instead of hanging or crashing. Before training, the
processes of a data-parallel ``fit`` agree on what must agree (settings, data shapes and sums,
dtype, backend, batch plan) in one small collective, and every process raises the same error
naming the rank and the difference; in a world of threads and under a real ``mpiexec -n 2``."""

import subprocess
import sys
import time

import numpy as np
import pytest
from mpi_worker import DISAGREEMENTS, data
from test_distributed import ROOT, _launch_2

import anybackprop as ab
from anybackprop.distributed import run_in_threads

X, Y, W = data()


def _errors(differ, model=lambda rank: ab.MLP([8, 16, 3], dtype="float64"), timeout=20.0):
    """What each of two ranks raised (None: nothing) when rank 1 changes ``fit``'s arguments by
    ``differ(kwargs)``; a rank still waiting after ``timeout`` seconds raises BrokenBarrierError."""

    def job(comm):
        kwargs = {"epochs": 2, "batch_size": 32, "verbose": False, "comm": comm, "X": X, "Y": Y}
        if comm.rank == 1:
            differ(kwargs)
        try:
            model(comm.rank).fit(kwargs.pop("X"), kwargs.pop("Y"), **kwargs)
        except Exception as exc:
            return type(exc).__name__, str(exc)
        return None

    start = time.perf_counter()
    found = run_in_threads(2, job, timeout=timeout)
    assert time.perf_counter() - start < timeout, "a rank waited for the other"
    return found


def _set(**changes):
    return lambda kwargs: kwargs.update(changes)


# (id, what rank 1 passes differently, the error every rank raises)
DIFFERENCES = [
    ("epochs", _set(epochs=3), r"disagree on epochs: rank 0 has 2, rank 1 has 3"),
    ("batch-size", _set(batch_size=16), r"disagree on batch_size: rank 0 has 32, rank 1 has 16"),
    ("shuffle", _set(shuffle=False), r"disagree on shuffle: rank 0 has True, rank 1 has False"),
    ("optimizer", _set(optimizer="adam"), r"disagree on the optimizer: rank 0 has \{'kind': 'sgd'"),
    ("lr", _set(lr=0.5), r"disagree on the optimizer: .*'lr': 0.1.*'lr': 0.5"),
    ("rows", _set(X=X[:150], Y=Y[:150]), r"disagree on the number of rows: rank 0 has 203, rank 1 has 150"),
    ("data", _set(X=X[::-1].copy()), r"disagree on the data \(sums of X, y, weights, validation data\)"),
    ("labels", _set(Y=(Y + 1) % 3), r"disagree on the data \(sums of X, y, weights, validation data\)"),
    ("weights", _set(sample_weight=W), r"disagree on sample weights: rank 0 has 'none', rank 1 has 'given'"),
    ("validation", _set(validation_data=(X[:9], Y[:9])), r"disagree on the validation rows: rank 0 has None"),
    ("early-stopping", _set(early_stopping=3), r"disagree on the callbacks: rank 0 has \[\], rank 1 has"),
    ("no-rows", _set(X=X[:0], Y=Y[:0]), r"^rank 1 of 2: .*0 rows|^rank 1 of 2: .*0 sample"),
    ("bad-argument", _set(epochs=0), r"^rank 1 of 2: epochs must be an integer >= 1, got 0"),
    ("nan", _set(X=np.where(np.arange(8) == 2, np.nan, X)), r"^rank 1 of 2: X contains NaN"),
]


@pytest.mark.parametrize("differ,message", [pytest.param(*c[1:], id=c[0]) for c in DIFFERENCES])
def test_every_rank_raises_the_same_error_naming_the_difference(differ, message):
    found = _errors(differ)
    assert found[0] is not None and found[0] == found[1], found
    assert found[0][0] in ("ValueError", "TypeError")
    assert __import__("re").search(message, found[0][1]), found[0][1]


# (id, rank 1's model, the error) where the model differs, not the arguments
MODELS = [
    (
        "features",
        lambda rank: ab.MLP([8 - rank, 16, 3], dtype="float64"),
        _set(X=X[:, :7]),
        r"disagree on the number of features: rank 0 has 8, rank 1 has 7",
    ),
    ("dtype", lambda rank: ab.MLP([8, 16, 3], dtype=("float64", "float32")[rank]), None, r"disagree on the dtype"),
    ("hidden", lambda rank: ab.MLP([8, 16 + rank, 3], dtype="float64"), None, r"disagree on the parameter shapes"),
    (
        "backend",
        lambda rank: ab.MLP([8, 16, 3], dtype="float64", backend=("numpy", "array_api_strict")[rank]),
        None,
        r"disagree on the backend: rank 0 has 'numpy on cpu', rank 1 has .array_api_strict on",
    ),
]


@pytest.mark.parametrize("model,differ,message", [pytest.param(*c[1:], id=c[0]) for c in MODELS])
def test_every_rank_raises_the_same_error_when_the_models_differ(model, differ, message):
    pytest.importorskip("array_api_strict")
    found = _errors(differ or (lambda kwargs: None), model)
    assert found[0] is not None and found[0] == found[1], found
    assert __import__("re").search(message, found[0][1]), found[0][1]


def test_resuming_from_checkpoints_of_other_epochs_is_the_same_error_everywhere(tmp_path):
    paths = [tmp_path / "a.ckpt", tmp_path / "b.ckpt"]
    for epochs, path in zip((1, 2), paths, strict=True):
        ab.MLP([8, 16, 3], dtype="float64").fit(X, Y, epochs=epochs, batch_size=32, checkpoint=path, verbose=False)

    def job(comm):
        try:
            ab.MLP([8, 16, 3], dtype="float64").fit(
                X, Y, epochs=3, batch_size=32, verbose=False, comm=comm, resume=paths[comm.rank]
            )
        except ValueError as exc:
            return str(exc)

    found = run_in_threads(2, job, timeout=20)
    assert found[0] == found[1] and "disagree on the checkpoint's epoch: rank 0 has 1, rank 1 has 2" in found[0]


def test_a_callback_that_stops_one_rank_stops_them_all():
    def job(comm):
        stop = (lambda epoch, history, model: epoch == 2) if comm.rank == 1 else (lambda *a: False)
        callbacks = [stop] if comm.rank == 1 else [lambda *a: False]
        model = ab.MLP([8, 16, 3], dtype="float64")
        return model.fit(X, Y, epochs=5, batch_size=32, verbose=False, comm=comm, callbacks=callbacks).epochs

    assert run_in_threads(2, job, timeout=20) == [2, 2]


@pytest.mark.parametrize(
    "name,message",
    [
        ("rows", "ValueError: the processes disagree on the number of rows: rank 0 has 203, rank 1 has 150"),
        ("epochs", "ValueError: the processes disagree on epochs: rank 0 has 2, rank 1 has 3"),
        ("features", "ValueError: rank 1 of 2: X has 7 features"),
        ("no-rows", "ValueError: rank 1 of 2: "),
    ],
)
def test_mpiexec_every_rank_raises_the_same_error(tmp_path, name, message):
    assert name in DISAGREEMENTS
    start = time.perf_counter()
    try:
        worker = str(ROOT / "tests" / "mpi_worker.py")
        done = _launch_2(sys.executable, "-m", "mpi4py", worker, name, str(tmp_path), timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mpiexec -n 2 with rank 1 passing other {name} hung")
    assert done.returncode == 0, done.stderr
    raised = [(tmp_path / f"rank{rank}.txt").read_text() for rank in range(2)]
    assert raised[0] == raised[1] and raised[0].startswith(message), raised
    assert time.perf_counter() - start < 90


def test_one_process_raises_its_error_as_it_came():
    with pytest.raises(ValueError, match=r"^epochs must be an integer >= 1, got 0"):
        ab.MLP([8, 16, 3]).fit(X, Y, epochs=0, verbose=False, comm=ab.distributed.SingleProcess())
    [found] = run_in_threads(1, lambda comm: ab.MLP([8, 16, 3]).fit(X, Y, epochs=1, verbose=False, comm=comm).epochs)
    assert found == 1
