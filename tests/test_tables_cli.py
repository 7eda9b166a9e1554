"""Your own table end to end: CSV/Parquet/.npz -> train -> saved model with its preprocessing and
labels -> predict / evaluate / export, through the command line in subprocesses, checked against
the model used inside this process and against figures computed here."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ["size", "colour", "weight", "label"]


def cli(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "anybackprop.cli", *map(str, args)], capture_output=True, text=True, env=env
    )


def table(m=240, seed=0):
    """Three string classes that depend on a large-scale number and a string feature."""
    rng = np.random.default_rng(seed)
    size = rng.standard_normal(m) * 100 + 500
    colour = rng.choice(["red", "green", "blue"], m)
    weight = rng.standard_normal(m)
    score = (size - 500) / 100 + 1.5 * (colour == "red") + 0.3 * weight
    label = np.where(score > 1.0, "cat", np.where(score > -0.5, "dog", "bird"))
    return {"size": size, "colour": colour.astype(object), "weight": weight, "label": label.astype(object)}


def write_csv(path, cols, order):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(order)
        writer.writerows(zip(*(cols[c] for c in order), strict=True))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained by the CLI on a CSV with string labels and a string feature, its JSON
    result, and the rows of its test split (recomputed here)."""
    tmp = tmp_path_factory.mktemp("table")
    cols = table()
    write_csv(tmp / "train.csv", cols, COLUMNS)
    result = cli(
        "train",
        "--data",
        tmp / "train.csv",
        "--target",
        "label",
        "--hidden",
        "16",
        "--epochs",
        "25",
        "--save",
        tmp / "m.npz",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    features = {k: v for k, v in cols.items() if k != "label"}
    _, test_cols, _, y_test = datasets.split_table(features, cols["label"], 0.2, seed=0, stratify=True)
    return tmp, json.loads(result.stdout), test_cols, y_test


def test_train_reports_the_task_the_labels_and_the_test_accuracy(trained):
    _, result, _, y_test = trained
    assert result["task"] == "classification" and result["classes"] == ["bird", "cat", "dog"]
    assert result["rows"] == {"train": 172, "validation": 20, "test": 48} and len(y_test) == 48
    assert result["test"]["accuracy"] > 0.7 and len(result["history"]["loss"]) == 25


def test_predict_on_raw_shuffled_columns_gives_the_labels_the_training_process_scored(trained):
    tmp, result, test_cols, y_test = trained
    shuffled = ["weight", "colour", "size"]  # another order, no label column
    write_csv(tmp / "new.csv", {**test_cols, "label": y_test}, shuffled)
    out = cli("predict", tmp / "m.npz", tmp / "new.csv", "--output", tmp / "pred.csv")
    assert out.returncode == 0, out.stderr
    with open(tmp / "pred.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["prediction"] and len(rows) == 49
    predicted = np.array([r[0] for r in rows[1:]], dtype=object)
    assert np.mean(predicted == y_test) == pytest.approx(result["test"]["accuracy"], abs=1e-6)
    model = ab.load(tmp / "m.npz")
    assert isinstance(model, ab.TabularModel) and model.classes.tolist() == ["bird", "cat", "dog"]
    assert model.predict(test_cols).tolist() == predicted.tolist()
    info = model.info
    assert info["anybackprop_version"] == ab.__version__ and info["created"].endswith("+00:00")
    assert info["training"]["hidden"] == [16] and info["test"]["accuracy"] == result["test"]["accuracy"]

    proba = cli("predict", tmp / "m.npz", tmp / "new.csv", "--proba")
    assert proba.returncode == 0, proba.stderr
    lines = list(csv.reader(proba.stdout.splitlines()))
    p = np.array(lines[1:], dtype=float)
    assert lines[0] == ["bird", "cat", "dog"] and p.shape == (48, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert [lines[0][i] for i in p.argmax(axis=1)] == predicted.tolist()
    np.testing.assert_allclose(p, model.predict_proba(test_cols), rtol=1e-6)


def test_evaluate_prints_metric_loss_and_a_confusion_matrix(trained):
    tmp, result, test_cols, y_test = trained
    write_csv(tmp / "eval.csv", {**test_cols, "label": y_test}, ["label", "size", "weight", "colour"])
    out = cli("evaluate", tmp / "m.npz", tmp / "eval.csv", "--target", "label", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    confusion = np.array(got["confusion"])
    assert got["accuracy"] == pytest.approx(result["test"]["accuracy"]) and got["loss"] == pytest.approx(
        result["test"]["loss"]
    )
    assert confusion.sum() == 48 and np.trace(confusion) / 48 == pytest.approx(got["accuracy"])
    assert confusion.sum(axis=1).tolist() == [int(np.sum(y_test == c)) for c in ("bird", "cat", "dog")]
    text = cli("evaluate", tmp / "m.npz", tmp / "eval.csv")
    assert text.returncode == 0 and text.stdout.startswith(f"accuracy: {got['accuracy']:.4f} on 48 rows")
    assert "confusion matrix (rows: true class, columns: predicted class):" in text.stdout


def test_a_missing_column_unknown_categories_and_missing_values(trained, tmp_path):
    tmp, _, test_cols, _ = trained
    write_csv(tmp_path / "lacks.csv", test_cols, ["size", "colour"])
    out = cli("predict", tmp / "m.npz", tmp_path / "lacks.csv")
    assert out.returncode == 2 and "lacks the column(s) 'weight'" in out.stderr
    odd = {**test_cols, "colour": np.array(["purple"] * 5 + list(test_cols["colour"][5:]), dtype=object)}
    write_csv(tmp_path / "odd.csv", odd, ["size", "colour", "weight"])
    out = cli("predict", tmp / "m.npz", tmp_path / "odd.csv")
    assert (
        out.returncode == 0
        and "categories not seen in training encode as all zeros ('colour': 5 rows: 'purple')" in out.stderr
    )
    cols = table(60)
    cols["weight"] = cols["weight"].astype(object)
    cols["weight"][[7, 9]] = ""
    write_csv(tmp_path / "gaps.csv", cols, COLUMNS)
    out = cli("train", "--data", tmp_path / "gaps.csv", "--target", "label", "--epochs", "1", "--quiet")
    assert (
        out.returncode == 2
        and f"column 'weight' has a missing value in line 9 of {tmp_path / 'gaps.csv'} (2 in all)" in out.stderr
    )
    out = cli(
        "train", "--data", tmp_path / "gaps.csv", "--target", "label", "--epochs", "1", "--quiet", "--impute", "mean"
    )
    assert out.returncode == 0, out.stderr


def test_parquet_and_regression_from_npz(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame(table(120)).to_parquet(tmp_path / "t.parquet")
    out = cli(
        "train",
        "--data",
        tmp_path / "t.parquet",
        "--target",
        "label",
        "--epochs",
        "3",
        "--hidden",
        "8",
        "--save",
        tmp_path / "p.npz",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("task: classification (inferred from the target 'label': 3 classes bird, cat, dog)")
    assert ab.load(tmp_path / "p.npz").predict({k: v for k, v in table(5).items()}).dtype.kind == "U"
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 3)) * [1, 50, 0.1]
    y = X @ [1.0, 0.02, 5.0] + 3
    np.savez(tmp_path / "r.npz", X=X, y=y)
    out = cli(
        "train",
        "--data",
        tmp_path / "r.npz",
        "--epochs",
        "40",
        "--hidden",
        "16",
        "--lr",
        "0.01",
        "--json",
        "--save",
        tmp_path / "r_model.npz",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["task"] == "regression" and result["classes"] is None and result["test"]["r2"] > 0.9
    evaluated = cli("evaluate", tmp_path / "r_model.npz", tmp_path / "r.npz")
    assert evaluated.returncode == 0 and evaluated.stdout.startswith("r2: ")


def test_cli_resume_continues_exactly(tmp_path):
    cols = table(100)
    write_csv(tmp_path / "t.csv", cols, COLUMNS)
    common = ("train", "--data", tmp_path / "t.csv", "--target", "label", "--hidden", "8", "--json", "--dropout", "0.1")
    common += ("--ensemble", "1", "--bins", "0")  # a checkpoint follows one network (no second one for the bins)
    whole = cli(*common, "--epochs", "4")
    part = cli(*common, "--epochs", "2", "--checkpoint", tmp_path / "c.ckpt")
    rest = cli(*common, "--epochs", "4", "--resume", tmp_path / "c.ckpt")
    assert whole.returncode == part.returncode == rest.returncode == 0, rest.stderr
    full, resumed = json.loads(whole.stdout), json.loads(rest.stdout)
    assert resumed["history"]["loss"] == full["history"]["loss"] and resumed["test"] == full["test"]


def test_help_shows_every_default():
    out = cli("train", "--help")
    assert out.returncode == 0
    options = out.stdout[out.stdout.index("options:") :]
    entries = {}
    for line in options.splitlines()[1:]:
        if line.startswith("  -"):
            flag = line.split()[0].rstrip(",")
            entries[flag] = line
        elif entries:
            entries[flag] += " " + line.strip()
    assert len(entries) == 42  # -h and the 41 flags of train
    missing = [f for f, text in entries.items() if f != "-h" and "(default: " not in text]
    assert not missing
    for flag, default in (
        ("--epochs", "100"),
        ("--early-stopping", "None"),
        ("--validation-size", "0.1"),
        ("--scaling", "robust"),
        ("--ensemble", "None"),
        ("--no-target-scaling", "True"),
        ("--schedule", "constant"),
        ("--optimizer", "adam"),
        ("--feature-scale", "auto"),
    ):
        assert entries[flag].endswith(f"(default: {default})"), entries[flag]
