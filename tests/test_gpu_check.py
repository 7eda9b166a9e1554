"""The one command for the first GPU machine (``python -m benchmarks.gpu_check``): its steps, how
it runs one, and the report it writes. On a GPU machine the command itself is the test."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is not installed: the suite may run from another folder
    sys.path.append(str(ROOT))

from benchmarks import gpu_check  # noqa: E402
from benchmarks.gpu_check import Step  # noqa: E402


def test_two_gpus_add_the_data_parallel_run_and_the_second_device():
    one, two = gpu_check.steps(1), gpu_check.steps(2)
    titles = [s.title for s in one]
    assert titles[0] == "GPUs, driver and CUDA" and "selftest on cupy" in titles and "test suite on cupy" in titles
    assert [s.title for s in two[: len(one)]] == titles and len(two) == len(one) + 2
    mpi, second = two[-2:]
    assert mpi.command[1:3] == ["-n", "2"] and mpi.env == {"ANYBACKPROP_BACKEND": "cupy"}
    assert second.env == {"ANYBACKPROP_BACKEND": "cupy", "ANYBACKPROP_DEVICE": "1"}
    suite = next(s for s in one if s.title == "test suite on cupy")
    assert suite.env == {"ANYBACKPROP_TEST_BACKENDS": "cupy"}  # stops at once where cupy is not usable
    assert sum(s.timeout for s in one) <= 500


def test_a_step_records_its_status_output_and_time_limit():
    done = gpu_check.run(
        Step(
            "prints",
            [sys.executable, "-c", "import os; print(os.environ['X']); raise SystemExit(3)"],
            env={"X": "hello"},
        )
    )
    assert (done.status, done.output.strip()) == (3, "hello")
    slow = gpu_check.run(
        Step("sleeps", [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"], 1)
    )
    assert slow.status is None and "stopped after its limit of 1 s" in slow.output and slow.seconds < 10
    missing = gpu_check.run(Step("missing", ["/nonexistent/command"]))
    assert missing.status is None and "could not start" in missing.output


def test_every_step_runs_and_the_report_shows_each(monkeypatch, tmp_path):
    fake = [
        Step("first", [sys.executable, "-c", "raise SystemExit(1)"]),
        Step("second", [sys.executable, "-c", "print('ran anyway')"], env={"ANYBACKPROP_BACKEND": "cupy"}),
    ]
    monkeypatch.setattr(gpu_check, "steps", lambda gpus: fake)
    path = tmp_path / "report.md"
    assert gpu_check.main(["--report", str(path)]) == 1
    text = path.read_text()
    assert "| first | FAIL (exit 1) |" in text and "| second | pass |" in text and "1/2 steps passed" in text
    assert "$ ANYBACKPROP_BACKEND=cupy " in text and "ran anyway" in text
