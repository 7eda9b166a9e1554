"""The benchmark harness runs end to end on tiny sizes (``--quick``), so that it cannot rot.
Speed itself is measured by ``python -m benchmarks``, never by timed tests."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from anybackprop.backend import unavailable_reason

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_a_table_and_json(tmp_path):
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--memory",
            "--backend",
            "numpy",
            "--workloads",
            "digits,small",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "| anybackprop[numpy] |" in result.stdout
        and "| numpy-loop |" in result.stdout
        and "| gemm-floor |" in result.stdout
    )
    report = json.loads(out.read_text())
    assert report["machine"]["numpy"] and report["backends"] == ["numpy"]
    assert [w["workload"]["name"] for w in report["workloads"]] == ["digits", "small"]
    for workload in report["workloads"]:
        row = workload["results"]["anybackprop[numpy]"]
        assert row["seconds_per_epoch"] > 0 and row["gflops"] > 0
        assert row["memory"]["host_peak_growth_mib"] >= 0


def test_quick_busy_and_scaling_modes(tmp_path):
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--busy",
            "--scaling",
            "--backend",
            "numpy",
            "--workloads",
            "digits",
            "--skip",
            "torch[cpu],scikit-learn",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "GEMM roof" in result.stdout and "with one core busy: anybackprop[numpy] " in result.stdout
    assert "| width | batch | anybackprop[numpy] s/epoch | x numpy-loop | x gemm-floor |" in result.stdout
    report = json.loads(out.read_text())
    assert all(v > 0 for v in report["gemm_roof_gflops"].values())
    assert [w["workload"]["name"] for w in report["busy"]] == ["digits"]
    assert [w["workload"]["name"] for w in report["scaling"]] == ["w64-b32", "w64-b128"]


def test_unusable_backend_is_refused():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--backend", "tensorflow"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2 and "backend 'tensorflow' is not usable here" in result.stderr


def test_flop_count_of_a_workload():
    sys.path.insert(0, str(ROOT))
    from benchmarks.workloads import Workload

    w = Workload("t", (4, 3, 2), batch=2, rows=10)
    # forward 4*3 + 3*2, dW 4*3 + 3*2, dA only for the second layer 3*2; x2 flops x rows
    assert w.flops_per_epoch() == 2 * (12 + 6 + 12 + 6 + 6) * 10
    assert w.steps == 5


def _quick_digits():
    sys.path.insert(0, str(ROOT))
    from benchmarks.workloads import QUICK, initial_params, load_data

    workload = QUICK["digits"]
    X, y = load_data(workload)
    return workload, X, y, initial_params(workload)


def test_torch_tf32_is_switched_around_each_timing_not_at_construction():
    torch = pytest.importorskip("torch")
    from benchmarks import runners

    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    tf32, fp32 = (runners.Torch(*_quick_digits(), "cpu", tf32=flag) for flag in (True, False))
    assert matmul.allow_tf32 == before  # building a contestant changes nothing process-wide
    with tf32.settings():
        assert matmul.allow_tf32 is True
        with fp32.settings():
            assert matmul.allow_tf32 is False
        assert matmul.allow_tf32 is True
    assert matmul.allow_tf32 == before


@pytest.mark.skipif(
    unavailable_reason("cupy") is not None, reason=f"cupy is not usable here: {unavailable_reason('cupy')}"
)
def test_the_cupy_contestants_are_built_and_run():
    from benchmarks.__main__ import contestants

    workload, X, y, params = _quick_digits()
    labels = []
    for label, factory in contestants(workload, ["cupy"], tf32=True):
        runner = factory(workload, X, y, params)
        with runner.settings():
            runner.run(1)
        runner.sync()
        assert runner.label == label
        labels.append(label)
    assert {"anybackprop[cupy]", "anybackprop[cupy+tf32]", "cupy-loop", "gemm-floor[cupy]"} <= set(labels)


def test_quick_distributed_benchmark_compares_processes_and_threads(tmp_path):
    if (
        not (pathlib.Path(sys.executable).parent / "mpiexec").exists()
        or __import__("importlib").util.find_spec("mpi4py") is None
    ):
        pytest.skip("mpiexec or mpi4py is missing: pip install '.[test]' installs mpi4py and the mpich wheel")
    out = tmp_path / "distributed.json"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--distributed",
            "--quick",
            "--workloads",
            "small",
            "--threads",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["workloads"]["small"]
    assert set(rows) == {"1x2", "1x1", "2x1"}
    assert (
        rows["2x1"]["allreduce_ms_per_step"] > 0
        and rows["2x1"]["bus_bandwidth_GBs"] > 0
        and rows["1x2"]["model_ms_per_step"] is None
    )


def test_table_benchmark_runs_and_the_readers_agree():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.tables", "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "identical tables: True" in result.stdout and "max_categories=256: 257 features" in result.stdout


def test_real_table_benchmark_runs_the_cli_and_both_baselines_on_the_same_split(tmp_path):
    out = tmp_path / "tables.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    command = [sys.executable, "-m", "benchmarks", "--tables", "--only", "wine,diabetes", "--seeds", "1"]
    command += ["--contestants", "anybackprop,sklearn-mlp,hgb"]
    result = subprocess.run(
        [*command, "--args=--epochs 5", "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "**held-out, classification**" in result.stdout and "**tuning, regression**" in result.stdout
    report = json.loads(out.read_text())
    assert [r["table"] for r in report["results"]] == ["diabetes", "wine"]
    for r in report["results"]:
        assert r["rows"] == {"diabetes": 442, "wine": 178}[r["table"]]
        assert set(r["results"]) == {"anybackprop", "sklearn-mlp", "hgb"}
        for contestant in r["results"].values():
            assert len(contestant["scores"]) == len(contestant["seconds"]) == 1
    wine = report["results"][1]["results"]
    assert all(0.5 < row["scores"][0] <= 1.0 for row in wine.values())  # 3 classes: chance is 0.4


def test_the_table_gap_is_to_the_goals_two_baselines_not_to_realmlp():
    from benchmarks.realtables import summary

    def scores(value):
        return {"scores": [value], "seconds": [1.0]}

    row = {"table": "t", "subset": "held-out", "task": "classification", "rows": 10}
    row["results"] = {"anybackprop": scores(0.92), "sklearn-mlp": scores(0.8), "hgb": scores(0.9)}
    row["results"]["realmlp"] = scores(0.99)
    text = summary([row])
    assert "| t | 10 | 0.9200 (1.00 s) | 0.8000 (1.00 s) | 0.9000 (1.00 s) | 0.9900 (1.00 s) | +0.0200 |" in text
    assert "**+0.0200** (worst +0.0200)" in text


def test_realmlp_is_a_default_contestant_only_where_pytabkit_imports(monkeypatch):
    import importlib.util

    from benchmarks import realtables

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "pytabkit" else real(name))
    assert realtables._default_contestants() == ("anybackprop", "sklearn-mlp", "hgb")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "pytabkit" else real(name))
    assert realtables._default_contestants() == ("anybackprop", "sklearn-mlp", "hgb", "realmlp")


def test_realmlp_trains_on_the_same_split_where_pytabkit_installs():
    pytest.importorskip("pytabkit")
    from benchmarks.realtables import TABLES, _frame, _realmlp, _split

    wine = next(t for t in TABLES if t.name == "wine")
    X_train, X_test, y_train, y_test = _split(_frame(wine), wine, 0)
    score, seconds = _realmlp(X_train, X_test, y_train, y_test, wine.task, 0)
    assert 0.8 < score <= 1.0 and seconds > 0  # 3 classes: chance is 0.4
