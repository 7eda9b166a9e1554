"""The benchmark harness runs end to end on tiny sizes (``--quick``), so that it cannot rot.
Speed itself is measured by ``python -m benchmarks``, never by timed tests."""

import json
import os
import pathlib
import subprocess
import sys


ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_a_table_and_json(tmp_path):
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--memory", "--backend", "numpy", "--workloads", "digits,small", "--json", str(out)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| anybackprop[numpy] |" in result.stdout and "| numpy-loop |" in result.stdout and "| gemm-floor |" in result.stdout
    report = json.loads(out.read_text())
    assert report["machine"]["numpy"] and report["backends"] == ["numpy"]
    assert [w["workload"]["name"] for w in report["workloads"]] == ["digits", "small"]
    for workload in report["workloads"]:
        row = workload["results"]["anybackprop[numpy]"]
        assert row["seconds_per_epoch"] > 0 and row["gflops"] > 0
        assert row["memory"]["host_peak_growth_mib"] >= 0


def test_unusable_backend_is_refused():
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--backend", "jax"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "backend 'jax' is not usable here" in result.stderr


def test_flop_count_of_a_workload():
    sys.path.insert(0, str(ROOT))
    from benchmarks.workloads import Workload

    w = Workload("t", (4, 3, 2), batch=2, rows=10)
    # forward 4*3 + 3*2, dW 4*3 + 3*2, dA only for the second layer 3*2; x2 flops x rows
    assert w.flops_per_epoch() == 2 * (12 + 6 + 12 + 6 + 6) * 10
    assert w.steps == 5
