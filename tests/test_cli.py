"""The anybackprop command end to end, in a subprocess, and its errors on bad flags."""

import os
import subprocess
import sys

import numpy as np
import pytest

import anybackprop as ab


def cli(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    return subprocess.run(
        [sys.executable, "-m", "anybackprop.cli", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def test_train_prints_progress_and_test_accuracy_and_saves(tmp_path):
    result = cli("train", "--epochs", "3", "--batch-size", "64", "--save", str(tmp_path / "m.npz"))  # 3 short epochs
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # by default three networks (the classification ensemble), each with its own progress
    assert lines[0].startswith("digits: 1293 training, 144 validation and 360 test rows; 3 x MLP([64, 128, 64, 10]")
    for k in range(3):
        member = lines[1 + 4 * k : 5 + 4 * k]
        assert member[0] == f"network {k + 1} of 3 (seed {k})"
        assert [line.split(" - ")[0] for line in member[1:]] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
        assert "val_accuracy" in member[1]
    accuracy = float(lines[13].split()[2])
    assert 0.9 < accuracy <= 1.0 and "3 networks averaged, 3/3/3 epochs" in lines[13]
    model = ab.load(tmp_path / "m.npz")  # a TabularModel: the networks, their standardisation and labels
    assert len(model.members) == 3 and model.network.layer_sizes == [64, 128, 64, 10]
    assert model.classes.tolist() == list(range(10))
    X, y = ab.datasets.digits()  # raw pixels in, the test accuracy the training process printed out
    _, X_test, _, y_test = ab.datasets.train_test_split(X, y, 0.2, seed=0)
    columns = {f"x{j}": X_test[:, j] for j in range(64)}
    assert np.mean(model.predict(columns) == y_test) == pytest.approx(accuracy, abs=1e-4)


def test_train_on_a_plane_with_plot_on_array_api_strict(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    result = cli(
        "train",
        "--dataset",
        "moons",
        "--hidden",
        "8",
        "--epochs",
        "5",
        "--backend",
        "array_api_strict",
        "--quiet",
        "--plot",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "on array_api_strict" in result.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_info_and_gradcheck():
    info = cli("info")
    assert info.returncode == 0 and "numpy             usable" in info.stdout
    check = cli("gradcheck", "--backend", "numpy")
    assert check.returncode == 0, check.stdout
    rows = [line for line in check.stdout.splitlines() if line.endswith(("ok", "FAIL"))]
    assert len(rows) == 5 * 7 and all(row.endswith("ok") for row in rows)  # softmax, sigmoid, exp: 2 losses each
    assert {row.split()[0] for row in rows if row.split()[1:3] == ["exp", "poisson"]} == {
        "identity",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
    }
    assert check.stdout.strip().endswith("all pairings agree")


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["train", "--activation", "gelu"], "argument --activation: invalid choice: 'gelu' (choose from"),
        (["train", "--hidden", "128,x"], "argument --hidden: expected comma-separated positive ints"),
        (["train", "--epochs", "0"], "argument --epochs: expected a positive int, got '0'"),
        (["train", "--dataset", "mnist"], "argument --dataset: invalid choice: 'mnist'"),
        (["train", "--backend", "tensorflow"], "argument --backend: invalid choice: 'tensorflow'"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_bad_flags_name_the_accepted_values(args, pattern):
    result = cli(*args)
    assert result.returncode == 2
    assert pattern in result.stderr


def test_unusable_backend_is_a_clean_error():
    result = cli("train", "--backend", "cupy", "--epochs", "1")
    if "cupy" in ab.available_backends():
        assert result.returncode == 0
    else:
        assert result.returncode == 2
        assert result.stderr.startswith("anybackprop: error: backend='cupy' is not usable here")


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_train_with_dropout_and_norm(norm, tmp_path):
    result = cli(
        "train",
        "--dataset",
        "moons",
        "--epochs",
        "3",
        "--dropout",
        "0.2",
        "--norm",
        norm,
        "--quiet",
        "--save",
        str(tmp_path / "m.npz"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("test accuracy: ")
    assert 0.5 < float(lines[0].split()[2]) <= 1.0
    model = ab.load(tmp_path / "m.npz").network
    assert model.norm == norm and model.dropout == [0.2] * (len(model.layer_sizes) - 2)


def test_bad_dropout_and_norm_flags():
    for args, pattern in (
        (["--dropout", "1.5"], "argument --dropout"),
        (["--norm", "group"], "argument --norm: invalid choice: 'group'"),
    ):
        result = cli("train", *args)
        assert result.returncode == 2 and pattern in result.stderr


def test_selftest_checks_every_usable_backend_against_numpy():
    result = cli("selftest")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.endswith(("pass", "FAIL"))}
    assert set(ab.available_backends()) <= set(rows)
    assert all(row[-1] == "pass" and float(row[3]) <= 1e-9 for row in rows.values())
    assert rows["numpy"][3:5] == ["0.00e+00", "36/36"]  # NumPy's fast paths, bit for bit, in both dtypes
    assert result.stdout.strip().endswith("every backend agrees with NumPy")


def test_selftest_fails_with_the_reason_when_a_backend_disagrees(monkeypatch, capsys):
    from anybackprop import cli as cli_module
    from anybackprop import cli_checks

    real = cli_checks._selftest_run

    def off_by_a_little(backend, fast=None):
        found = real(backend, fast)
        return [a * (1 + 1e-6) for a in found] if backend.name == "array_api_strict" else found

    monkeypatch.setattr(cli_checks, "_selftest_run", off_by_a_little)
    assert cli_module.main(["selftest"]) == 1
    out = capsys.readouterr().out
    assert "array_api_strict" in out and "training differs from NumPy by 1.00e-06" in out
    assert out.strip().endswith("1 backends FAILED")
