"""Data-parallel training equals one process's: in a world of threads on every backend, and for
real under ``mpiexec -n 2`` (MPICH from the test extras); errors end every process; the command
line trains, prints, saves and checkpoints once under mpiexec, and resumes."""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from mpi_worker import CASES, data, train

import anybackprop as ab
from anybackprop import _launch
from anybackprop.distributed import SingleProcess, ThreadComm, run_in_threads

ROOT = pathlib.Path(__file__).resolve().parent.parent


def assert_same_model(got, want, rtol=1e-12):
    """Every parameter and state array within ``rtol`` of the reference (absolute floor: ``rtol``
    times the largest reference value, for entries that are rounding noise around 0)."""
    for d_got, d_want in ((got.params, want.params), (got.state, want.state)):
        assert set(d_got) == set(d_want)
        for key in d_want:
            a, b = ab.to_numpy(d_got[key]), ab.to_numpy(d_want[key])
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.max(np.abs(b)))), err_msg=key)


def bitwise_equal(m1, m2):
    return all(
        np.array_equal(ab.to_numpy(d1[k]), ab.to_numpy(d2[k]))
        for d1, d2 in ((m1.params, m2.params), (m1.state, m2.state))
        for k in d1
    )


@pytest.mark.parametrize("size", [1, 2, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_a_world_of_threads_trains_as_one_process(backend, case, size):
    want = train(case)
    models = run_in_threads(size, lambda comm: train(case, comm, seed=0 if comm.rank == 0 else 7))
    for model in models:
        assert bitwise_equal(model, models[0]), "the ranks ended with different parameters"
    assert_same_model(models[0], want)
    if size == 1 and backend.name == "numpy":
        assert bitwise_equal(models[0], want)


def test_history_validation_and_early_stopping_agree_on_every_rank():
    X, y, _ = data()
    kw = dict(
        epochs=8,
        batch_size=40,
        optimizer="adam",
        lr=0.05,
        validation_data=(X[:60], y[:60]),
        early_stopping=2,
        verbose=False,
    )
    want_model = ab.MLP([8, 16, 3], dtype="float64")
    want = want_model.fit(X, y, **kw)
    runs = run_in_threads(
        3, lambda comm: (lambda m: (m, m.fit(X, y, comm=comm, **kw)))(ab.MLP([8, 16, 3], dtype="float64"))
    )
    for model, history in runs:
        assert history.epochs == want.epochs and history.best_epoch == want.best_epoch
        np.testing.assert_allclose(history.loss, want.loss, rtol=1e-12)
        np.testing.assert_allclose(history.val_loss, want.val_loss, rtol=1e-12)
        assert history.metrics == runs[0][1].metrics
        assert_same_model(model, want_model)


def test_rank_zero_alone_writes_the_checkpoint_and_the_log_and_every_rank_resumes(tmp_path):
    X, y, _ = data()
    kw = dict(batch_size=16, optimizer="adam", lr=0.05, verbose=False)
    paths = [tmp_path / f"rank{r}.ckpt" for r in range(2)]  # one path per rank shows who wrote
    logs = [tmp_path / f"rank{r}.csv" for r in range(2)]
    run_in_threads(
        2,
        lambda comm: ab.MLP([8, 16, 3], dtype="float64").fit(
            X, y, epochs=2, comm=comm, checkpoint=paths[comm.rank], callbacks=[ab.CSVLogger(logs[comm.rank])], **kw
        ),
    )
    assert paths[0].exists() and not paths[1].exists()
    assert len(logs[0].read_text().splitlines()) == 3 and not logs[1].exists()  # the header and two epochs
    want = ab.MLP([8, 16, 3], dtype="float64")
    want.fit(X, y, epochs=4, **kw)
    models = run_in_threads(
        2,
        lambda comm: (lambda m: (m.fit(X, y, epochs=4, comm=comm, resume=paths[0], **kw), m)[1])(
            ab.MLP([8, 16, 3], dtype="float64")
        ),
    )
    for model in models:
        assert_same_model(model, want)


def test_every_rank_keeps_the_bins_one_process_keeps():
    """TabularModel's default bins='auto' trains its first network twice and keeps one: in a
    world of threads every rank keeps the one the single process keeps, with the same weights."""
    rng = np.random.default_rng(0)
    year = rng.integers(0, 12, 300).astype(float)
    columns = {"year": year, "x": rng.standard_normal(300)}
    y = 3 * np.sin(2 * year) + columns["x"]
    kw = dict(epochs=30, optimizer="adam", validation_fraction=0.2, verbose=False)
    want = ab.TabularModel([8], seed=0, ensemble=2, dtype="float64")
    want.fit(columns, y, **kw)
    assert want.bins_choice["bins"] == 32
    models = run_in_threads(
        2,
        lambda comm: (lambda m: (m.fit(columns, y, comm=comm, **kw), m)[1])(
            ab.TabularModel([8], seed=0, ensemble=2, dtype="float64")
        ),
    )
    for model in models:
        assert model.bins_choice["bins"] == 32
        np.testing.assert_allclose(model.bins_choice["validation_loss"], want.bins_choice["validation_loss"], rtol=1e-9)
        for got, member in zip(model.members, want.members, strict=True):  # the first, and one trained after
            assert_same_model(got, member, rtol=1e-9)


def test_a_rank_without_rows_still_takes_part():
    X, y, _ = data()
    kw = dict(
        epochs=2, batch_size=2, optimizer="momentum", verbose=False
    )  # 3 ranks: rank 0 gets no row of a batch of 2
    want = ab.MLP([8, 16, 3], dtype="float64", norm="batch", dropout=0.2)
    want.fit(X[:42], y[:42], **kw)
    models = run_in_threads(
        3,
        lambda comm: (lambda m: (m.fit(X[:42], y[:42], comm=comm, **kw), m)[1])(
            ab.MLP([8, 16, 3], dtype="float64", norm="batch", dropout=0.2)
        ),
    )
    assert_same_model(models[2], want)


def test_seed_none_shuffles_alike_on_every_rank():
    X, y, _ = data()
    models = run_in_threads(
        2,
        lambda comm: (lambda m: (m.fit(X, y, epochs=2, batch_size=32, seed=None, verbose=False, comm=comm), m)[1])(
            ab.MLP([8, 16, 3], seed=None)
        ),
    )
    assert bitwise_equal(*models)


def test_an_error_on_one_rank_reaches_the_caller_instead_of_hanging():
    X, y, _ = data()
    bad = X.copy()
    bad[5, 2] = np.nan

    def job(comm):
        ab.MLP([8, 4, 3]).fit(bad if comm.rank == 1 else X, y, epochs=1, verbose=False, comm=comm)

    start = time.perf_counter()
    with pytest.raises(ValueError, match="NaN"):
        run_in_threads(2, job, timeout=30)
    assert time.perf_counter() - start < 10


def test_comm_must_be_a_communicator():
    X, y, _ = data()
    with pytest.raises(TypeError, match=r"comm must be a communicator.*lacks rank, size"):
        ab.MLP([8, 4, 3]).fit(X, y, epochs=1, verbose=False, comm="mpi")


def test_collectives_of_the_thread_world():
    def job(comm):
        backend = ab.get_backend()
        x = backend.asarray([comm.rank + 1.0, 10.0 * comm.rank])
        return (
            ab.to_numpy(comm.allreduce_sum(backend, x)),
            ab.to_numpy(comm.broadcast(backend, x)),
            comm.broadcast_value(comm.rank + 5),
        )

    for total, root, value in run_in_threads(3, job):
        np.testing.assert_array_equal(total, [6.0, 30.0])
        np.testing.assert_array_equal(root, [1.0, 0.0])
        assert value == 5
    with pytest.raises(ValueError, match="size must be a positive int"):
        run_in_threads(0, job)
    assert isinstance(run_in_threads(1, lambda comm: comm)[0], ThreadComm)


def test_launchers_are_read_from_their_environment(monkeypatch):
    assert _launch.detect({}) is None
    assert _launch.detect({"PMI_SIZE": "1", "PMI_RANK": "0"}) is None  # mpiexec -n 1: one process
    hydra = _launch.detect({"PMI_SIZE": "4", "PMI_RANK": "3", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"})
    assert hydra == {"launcher": "MPICH/Hydra", "size": 4, "rank": 3, "local_rank": 1, "local_size": 2}
    ompi = _launch.detect({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_LOCAL_RANK": "1"})
    assert (ompi["launcher"], ompi["local_rank"], ompi["local_size"]) == ("Open MPI", 1, 2)
    assert _launch.detect({"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1"})["size"] == 8
    # across nodes, the cores of a node are shared by the tasks on that node, not by the world
    slurm = _launch.detect(
        {"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_STEP_TASKS_PER_NODE": "2(x4)"}
    )
    assert slurm["size"] == 8 and slurm["local_size"] == 2
    for variable in (*_launch.BLAS_THREAD_VARIABLES, "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("MPI_LOCALNRANKS", "2")
    monkeypatch.setattr(_launch, "cores", lambda: 8)
    assert _launch.limit_blas_threads() == 4 and os.environ["OPENBLAS_NUM_THREADS"] == "4"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice stands
    assert _launch.limit_blas_threads() is None


def test_without_a_launcher_init_is_one_process_and_leaves_mpi_alone():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MV2_", "SLURM_"))}
    code = (
        "import sys, anybackprop as ab; c = ab.distributed.init(); "
        "print(type(c).__name__, c.size, 'mpi4py' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["SingleProcess", "1", "False"], out.stderr
    assert isinstance(SingleProcess(), ab.distributed.Communicator)


# --- real processes --------------------------------------------------------------------------


def _mpiexec():
    found = pathlib.Path(sys.executable).parent / "mpiexec"
    found = str(found) if found.exists() else shutil.which("mpiexec")
    if found is None or importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpiexec or mpi4py is missing: pip install '.[test]' installs mpi4py and the mpich wheel (mpiexec)")
    return found


def _launch_2(*args, timeout=120):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("ANYBACKPROP_BACKEND", None)
    return subprocess.run([_mpiexec(), "-n", "2", *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_mpiexec_two_processes_train_as_one(tmp_path):
    out = tmp_path / "found.npz"
    done = _launch_2(sys.executable, "-m", "mpi4py", str(ROOT / "tests" / "mpi_worker.py"), str(out))
    assert done.returncode == 0, done.stderr
    found = np.load(out)
    assert int(found["size"]) == 2 and "MPI" in str(found["library"])
    for case in CASES:
        want = train(case)
        assert float(found[f"{case}/ranks_differing"]) == 0.0
        for key, value in want.params.items():
            np.testing.assert_allclose(found[f"{case}/{key}"], value, rtol=1e-12, atol=1e-12, err_msg=f"{case}: {key}")


def test_mpiexec_an_exception_on_one_rank_ends_the_job_with_its_message():
    start = time.perf_counter()
    done = _launch_2(sys.executable, "-m", "mpi4py", str(ROOT / "tests" / "mpi_worker.py"), "raise", timeout=60)
    assert done.returncode != 0
    assert "rank 1 failed on purpose" in done.stderr
    assert time.perf_counter() - start < 30


def test_mpiexec_the_command_line_checkpoints_once_and_resumes_exactly(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    common = (sys.executable, "-m", "anybackprop", "train", "--ensemble", "1", "--json")
    whole = _launch_2(*common, "--epochs", "4")
    part = _launch_2(*common, "--epochs", "2", "--checkpoint", str(ckpt))  # every process passes it: they agree
    assert whole.returncode == part.returncode == 0, part.stderr
    assert ckpt.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # rank 0 wrote it, alone
    rest = _launch_2(*common, "--epochs", "4", "--resume", str(ckpt))
    assert rest.returncode == 0, rest.stderr
    full, resumed = json.loads(whole.stdout), json.loads(rest.stdout)  # one JSON line: rank 0 prints
    assert resumed["history"]["loss"] == pytest.approx(full["history"]["loss"], rel=1e-6)
    assert resumed["test"]["accuracy"] == full["test"]["accuracy"] and resumed["processes"] == 2


def test_mpiexec_the_command_line_trains_prints_and_saves_once(tmp_path):
    path = tmp_path / "model.npz"
    done = _launch_2(sys.executable, "-m", "anybackprop", "train", "--epochs", "2", "--save", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("test accuracy:") == 1 and done.stdout.count("saved the model") == 1
    assert done.stdout.count("epoch 2/2") == 3 and "on 2 processes" in done.stdout  # one per network, one process
    assert ab.load(path).evaluate(*datasets_test_split())["accuracy"] > 0.8  # the saved model takes raw columns
    failed = _launch_2(
        sys.executable,
        "-m",
        "anybackprop",
        "train",
        "--epochs",
        "1",
        "--save",
        str(tmp_path / "no" / "dir" / "m.npz"),
        timeout=60,
    )
    assert failed.returncode == 2 and failed.stderr.count("anybackprop: error: --save") == 1, failed.stderr
    assert "Traceback" not in failed.stderr and "MPI_Abort" not in failed.stderr
    table = tmp_path / "t.csv"
    table.write_text("x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    failed = _launch_2(sys.executable, "-m", "anybackprop", "train", "--data", str(table), "--target", "y", timeout=60)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
    assert failed.stderr.strip().splitlines() == [
        f"anybackprop: error: target column 'y' is not in {table}; its columns are x, label"
    ]
    info = _launch_2(sys.executable, "-m", "anybackprop", "info")
    assert info.stdout.count("processes: 2 (MPI") == 1


def datasets_test_split():
    from anybackprop import datasets

    X, y = datasets.load("digits", seed=0)
    _, X_test, _, y_test = datasets.train_test_split(X, y, 0.2, seed=0)
    return {f"x{j}": X_test[:, j] for j in range(X.shape[1])}, y_test
