"""The GPU-only code's logic, run on the CPU: the CuPy adapter (probe, device per rank, TF32
switch, sync), the fused kernels (interpreted with NumPy), the NCCL communicator, the command
line's flag/environment merging and selftest rows, with the recording stand-in of
``tests/fake_cupy.py`` in CuPy's place, and the ``numpy_device`` backend for the current-device
discipline. What needs a real GPU is in ``tests/test_gpu.py``."""

import builtins
import json
import pathlib
import sys
import types
import warnings

import numpy as np
import pytest
from fake_cupy import FakeCupy, FakeMPI, install

import anybackprop as ab
from anybackprop import backend as backend_module
from anybackprop import cli, distributed
from anybackprop._devices import DeviceMismatch
from anybackprop.backend import ADAPTERS, broken_reason, create_backend, environment_backend, rank_gpu
from anybackprop.fastpaths import cupy_kernels
from anybackprop.fastpaths.check import check_path

LAUNCH_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_SIZE")
ENVIRONMENT = ("ANYBACKPROP_BACKEND", "ANYBACKPROP_DEVICE", "ANYBACKPROP_DTYPE", "ANYBACKPROP_TF32")


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    """No launcher, no backend variables, and no probe or kernel cached from a fake CuPy."""
    for variable in (*LAUNCH_VARIABLES, *ENVIRONMENT, "SLURM_STEP_NUM_TASKS", "SLURM_PROCID"):
        monkeypatch.delenv(variable, raising=False)
    yield
    backend_module._probe_error.cache_clear()
    cupy_kernels.kernel.cache_clear()


def launched_as(monkeypatch, local_rank, size=4):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", str(size))
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", str(local_rank))
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", str(local_rank))


# --- the probe -----------------------------------------------------------------------------------


def test_the_probe_accepts_a_cupy_that_computes_square_x_times_x(monkeypatch):
    fake = install(monkeypatch, FakeCupy(count=1))
    _, library, device = ADAPTERS["cupy"].load(None)
    assert library is fake and device.id == 0
    assert ("ElementwiseKernel", "anybackprop_probe") in fake.calls
    assert backend_module.unavailable_reason("cupy") is None and "cupy" in ab.available_backends()


@pytest.mark.parametrize(
    ("fake", "message"),
    [
        (FakeCupy(compile_error="libnvrtc.so.12: cannot open shared object file"), "cupy cannot compute on device 0"),
        (FakeCupy(wrong_product=True), r"cupy computed a wrong matrix product on device 0: .* expected \[\[2.0, 3.0\]"),
    ],
)
def test_a_cupy_that_imports_but_cannot_compute_is_broken_not_absent(monkeypatch, fake, message):
    install(monkeypatch, fake)
    assert broken_reason("cupy") is not None
    with pytest.raises(ValueError, match=message):
        create_backend("cupy")


def not_installed(monkeypatch):
    """The CuPy adapter as it is where cupy is not installed (whether or not it is here)."""

    def load(device):
        raise backend_module._Unusable("cupy is not installed (pip install 'anybackprop[cuda12]')")

    monkeypatch.setattr(ADAPTERS["cupy"], "load", load)
    backend_module._probe_error.cache_clear()


def _import_fails(monkeypatch, error):
    real = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "cupy":
            raise error
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


@pytest.mark.parametrize(
    ("setup", "device", "error", "message"),
    [
        (lambda mp, fake: _import_fails(mp, ImportError("no cupy")), None, "_Unusable", "cupy is not installed"),
        (
            lambda mp, fake: _import_fails(mp, OSError("libcuda.so.1")),
            None,
            "_Unusable",
            "cupy failed to import: libcuda",
        ),
        (lambda mp, fake: setattr(fake, "count", 0), None, "_Unusable", "CUDA reports 0 devices"),
        (lambda mp, fake: setattr(fake.cuda.runtime, "getDeviceCount", lambda: 1 / 0), None, "_Unusable", "no CUDA"),
        (lambda mp, fake: None, "gpu1", "_BadDevice", r"cupy devices are integers 0..1, got 'gpu1'"),
        (lambda mp, fake: None, "2", "_BadDevice", r"cupy devices are integers 0..1, got '2'"),
    ],
)
def test_the_cupy_adapter_says_why_it_cannot_load(monkeypatch, setup, device, error, message):
    fake = install(monkeypatch, FakeCupy(count=2))
    setup(monkeypatch, fake)
    with pytest.raises(getattr(backend_module, error), match=message):
        ADAPTERS["cupy"].load(device)


def test_cupy_arrays_come_back_through_get(monkeypatch):
    fake = install(monkeypatch, FakeCupy())
    x = fake.asarray([1.0, 2.0])
    assert create_backend("cupy").owns(x) and type(ab.to_numpy(x)) is np.ndarray


def test_a_missing_cupy_is_absent_not_broken(monkeypatch):
    not_installed(monkeypatch)
    assert "not installed" in backend_module.unavailable_reason("cupy") and broken_reason("cupy") is None


# --- which GPU a process takes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "count", "gpu"),
    [
        ({}, 4, 0),
        ({"OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}, 4, 1),
        ({"PMI_SIZE": "8", "PMI_RANK": "6", "MPI_LOCALRANKID": "6"}, 4, 2),  # local rank beyond the GPUs
        ({"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "3"}, 1, 0),  # one GPU per task
    ],
)
def test_rank_gpu_is_the_local_rank_modulo_the_visible_gpus(environ, count, gpu):
    assert rank_gpu(count, environ) == gpu


@pytest.mark.parametrize("how", ["auto", "cupy", "environment", "use_backend"])
def test_every_way_of_choosing_cupy_puts_a_rank_on_its_own_gpu(monkeypatch, how):
    install(monkeypatch, FakeCupy(count=2))
    launched_as(monkeypatch, local_rank=3)
    if how == "environment":
        monkeypatch.setenv("ANYBACKPROP_BACKEND", "cupy")
        backend = environment_backend()
    elif how == "use_backend":
        with ab.use_backend("cupy") as backend:
            pass
    else:
        backend = create_backend(how)
    assert backend.name == "cupy" and backend.device.id == 1
    assert create_backend("cupy", 0).device.id == 0  # a device named wins


# --- TF32, the current device, sync ---------------------------------------------------------------


@pytest.mark.parametrize("tf32", [True, False, None])
def test_activate_makes_the_device_current_applies_tf32_and_restores_both(monkeypatch, tf32):
    fake = install(monkeypatch, FakeCupy(count=2))
    backend = create_backend("cupy", 1, tf32=tf32)
    with pytest.raises(KeyError), backend.activate():
        assert fake.current == 1
        assert fake.linalg.compute_type[np.float32] == {True: "tf32", False: "default", None: "default"}[tf32]
        fake.linalg.compute_type[np.float32] = (
            "changed inside" if tf32 is None else fake.linalg.compute_type[np.float32]
        )
        raise KeyError("an error inside")
    assert fake.current == 0
    assert fake.linalg.compute_type[np.float32] == ("changed inside" if tf32 is None else "default")


def test_a_cupy_without_the_compute_type_switch_warns_only_when_tf32_is_asked_for(monkeypatch):
    install(monkeypatch, FakeCupy(compute_type_switch=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with create_backend("cupy").activate():
            pass
    with pytest.warns(UserWarning, match="no compute-type switch"), create_backend("cupy", tf32=True).activate():
        pass


def test_sync_waits_on_the_backends_device_whichever_is_current(monkeypatch):
    fake = install(monkeypatch, FakeCupy(count=2))
    create_backend("cupy", 1).sync()
    assert fake.calls[-1] == ("synchronize", 1) and fake.current == 0


# --- the fused kernels, interpreted with NumPy ----------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_fused_kernel_computes_its_formula_nan_included(monkeypatch, dtype):
    """Each kernel's C operation, run by NumPy, against the portable formula it replaces on the
    inputs of ``anybackprop selftest`` (a NaN row for the fused activations: relu keeps NaN)."""
    install(monkeypatch, FakeCupy())
    cupy_kernels.kernel.cache_clear()
    backend = create_backend("numpy_device", dtype=dtype)
    rng = np.random.default_rng(0)
    checks = [check_path(backend, path, rng) for path in cupy_kernels.paths()]
    assert len(checks) == len(cupy_kernels.KERNELS)
    assert [(c.path.formula, c.problem) for c in checks if not c.ok] == []


# --- NCCL -----------------------------------------------------------------------------------------


def test_nccl_is_set_up_and_called_on_the_backends_device_outside_fit(monkeypatch):
    fake = install(monkeypatch, FakeCupy(count=2))
    mpi = FakeMPI(rank=0, size=2)
    comm = distributed.MPIComm(mpi, local_rank=1)
    backend = create_backend("cupy", 1)
    x = fake.asarray(np.arange(3.0, dtype=np.float32))
    assert comm.allreduce_sum(backend, x) is not None and comm.broadcast(backend, x) is not None
    assert [c for c in fake.calls if c[0] in ("NcclCommunicator", "allReduce", "bcast")] == [
        ("NcclCommunicator", 2, ("nccl-id",), 0, 1),
        ("allReduce", 3, "f32", "sum", 1),
        ("bcast", 3, "f32", 0, 1),
    ]
    assert fake.current == 0 and comm.library.endswith("and NCCL")


def test_the_communicator_gives_numpy_back_for_numpy_input_on_a_cupy_backend(monkeypatch):
    install(monkeypatch, FakeCupy(count=1))
    comm = distributed.MPIComm(FakeMPI(size=2), local_rank=0)
    backend = create_backend("cupy")
    x = np.arange(3.0)
    for result in (comm.allreduce_sum(backend, x), comm.broadcast(backend, np.arange(3.0)[::-1])):
        assert type(result) is np.ndarray
    np.testing.assert_array_equal(x, [0.0, 2.0, 4.0])  # summed in place over the 2 processes


@pytest.mark.parametrize("how", ["library missing", "module missing"])
def test_nccl_missing_on_any_process_is_one_clear_error(monkeypatch, how):
    fake = install(monkeypatch, FakeCupy(nccl_available=how != "library missing"))
    if how == "module missing":
        monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", None)
        monkeypatch.delattr(fake.cuda, "nccl")
    comm = distributed.MPIComm(FakeMPI(), local_rank=0)
    with pytest.raises(RuntimeError, match=r"NCCL is not available on every process; install .*nvidia-nccl-cu12"):
        comm.allreduce_sum(create_backend("cupy"), fake.asarray(np.zeros(2, np.float32)))


# --- the command line -----------------------------------------------------------------------------


def test_a_flag_replaces_only_its_own_environment_variable(monkeypatch):
    install(monkeypatch, FakeCupy(count=2))
    monkeypatch.setenv("ANYBACKPROP_BACKEND", "cupy")
    monkeypatch.setenv("ANYBACKPROP_DEVICE", "1")
    monkeypatch.setenv("ANYBACKPROP_TF32", "1")
    for flags, name, device, dtype in (
        ({"dtype": "float64"}, "cupy", 1, "float64"),
        ({"backend": "cupy"}, "cupy", 1, "float32"),
        ({"device": "0"}, "cupy", 0, "float32"),
        ({"backend": "numpy"}, "numpy", "cpu", "float32"),  # ANYBACKPROP_DEVICE is cupy's, not numpy's
    ):
        args = types.SimpleNamespace(**{"backend": None, "device": None, "dtype": None, **flags})
        with cli._backend_of(args) as backend:
            assert (backend.name, getattr(backend.device, "id", backend.device), backend.dtype) == (name, device, dtype)
            assert backend.tf32 is True


def test_train_json_records_where_it_ran_with_the_environments_device(monkeypatch, capsys):
    monkeypatch.setenv("ANYBACKPROP_BACKEND", "array_api_strict")
    monkeypatch.setenv("ANYBACKPROP_DEVICE", "device1")
    argv = ["train", "--dtype", "float64", "--json", "--epochs", "1", "--hidden", "8", "--test-size", "0.5"]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert {k: result[k] for k in ("backend", "dtype", "processes", "threads")} == {
        "backend": "array_api_strict",
        "dtype": "float64",
        "processes": 1,
        "threads": None,  # not NumPy: no BLAS thread limit applies
    }
    assert "device1" in result["device"]


def test_train_json_records_the_host_and_its_blas_threads(monkeypatch, capsys):
    monkeypatch.setenv("ANYBACKPROP_BACKEND", "numpy")
    monkeypatch.delenv("ANYBACKPROP_DEVICE", raising=False)
    argv = ["train", "--dtype", "float64", "--json", "--epochs", "1", "--hidden", "64", "--test-size", "0.5"]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["device"], result["threads"]) == ("cpu", 1)  # 128 x 64 x 64 multiply-adds: one BLAS thread


def test_selftest_fails_a_backend_asked_for_that_cannot_run(monkeypatch, capsys):
    not_installed(monkeypatch)
    monkeypatch.setenv("ANYBACKPROP_BACKEND", "cupy")
    assert cli.main(["selftest"]) == 1
    out = capsys.readouterr().out
    assert "\ncupy " in out and "FAIL\n    not usable: " in out and "cupy is not installed" in out
    monkeypatch.delenv("ANYBACKPROP_BACKEND")
    assert cli.main(["selftest", "--backend", "cupy"]) == 1
    assert cli.main(["selftest"]) == 0  # not asked for, not installed: no row


def test_selftest_fails_a_cupy_that_cannot_compute_even_unasked(monkeypatch, capsys):
    install(monkeypatch, FakeCupy(compile_error="nvrtc: libnvrtc.so not found"))
    assert cli.main(["selftest"]) == 1
    assert "cupy cannot compute on device 0" in capsys.readouterr().out


def test_selftest_tests_the_device_the_environment_names(monkeypatch, capsys):
    monkeypatch.setenv("ANYBACKPROP_BACKEND", "array_api_strict")
    monkeypatch.setenv("ANYBACKPROP_DEVICE", "device1")
    assert cli.main(["selftest"]) == 0
    assert any(line.startswith("array_api_strict  device1 ") for line in capsys.readouterr().out.splitlines())


# --- dropout draws, host casts, the current device ------------------------------------------------


def test_uniform_draws_in_the_dtype_asked_for():
    b = create_backend("numpy")
    for dtype in ("float32", "float64"):
        got = b.uniform(np.random.default_rng(7), (3, 4), dtype)
        np.testing.assert_array_equal(got, np.random.default_rng(7).random((3, 4), dtype=np.dtype(dtype)))


def test_float64_input_to_a_float32_device_model_moves_as_float32(monkeypatch, rng):
    adapter = ADAPTERS["numpy_device"]
    moved = []
    model = ab.MLP([3, 4, 2], seed=0, backend="numpy_device")
    real = adapter.from_host
    monkeypatch.setattr(adapter, "from_host", lambda b, host: (moved.append(host.dtype), real(b, host))[1])
    model.predict(rng.standard_normal((5, 3)))
    assert moved == [np.float32]


def test_numpy_device_refuses_work_outside_activate_and_allows_it_inside():
    b = create_backend("numpy_device")
    x = b.asarray(np.ones(3))  # made on device 1 while device 0 is current: allowed, as CuPy's device= is
    assert x.device.id == 1
    with pytest.raises(DeviceMismatch, match=r"array device \(1\) is not the current device \(0\)"):
        x + 1
    with b.activate():
        assert (x + 1).device.id == 1 and b.xp.zeros(2).device.id == 1


def test_a_model_on_the_second_device_allocates_and_computes_only_there(rng):
    X, y = rng.standard_normal((40, 6)), rng.integers(0, 3, 40)
    opt = ab.get_optimizer("adam", 1e-2)
    with ab.use_backend("numpy_device", device=1):
        model = ab.MLP([6, 8, 3], seed=0, dropout=0.2)
        model.fit(X, y, epochs=2, batch_size=8, optimizer=opt, validation_data=(X, y), verbose=False)
        error = ab.gradcheck(model.copy(dtype="float64"), X[:4], y[:4])
        model.set_params({k: ab.to_numpy(v) for k, v in model.params.items()})
        predicted, proba = model.predict(X), model.predict_proba(X)
        score = model.score(X, y)
    arrays = [*model.params.values(), *(a for slot in opt.state.values() for a in slot.values()), predicted, proba]
    assert {a.device.id for a in arrays} == {1}
    assert error < 1e-4 and 0 <= score <= 1


# --- the GPU extras -------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "cuda"), [("cuda12", "12"), ("cuda13", "13")])
def test_the_gpu_extras_require_cupy_14_with_its_libraries_and_nccl(extra, cuda):
    """CuPy 13 has no [ctk] extra (no NVRTC: nothing compiles); neither CuPy brings NCCL."""
    tomllib = pytest.importorskip("tomllib")
    root = pathlib.Path(__file__).resolve().parent.parent
    requirements = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"][extra]
    cupy = next(r for r in requirements if r.startswith(f"cupy-cuda{cuda}x"))
    assert cupy.startswith(f"cupy-cuda{cuda}x[ctk]>=14")
    assert any(r.startswith(f"nvidia-nccl-cu{cuda}>=") for r in requirements)
