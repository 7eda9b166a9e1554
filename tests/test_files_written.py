"""Issue 9, class 3: files written correctly. Saved models, checkpoints, CSV files and pictures get
the permissions a plain write would give; temporary names fit the file system; the directory is
fsynced after the rename; save refuses a model it could not load back; the CLI checks its output
destinations before training; a save killed at any moment leaves the old or the new model."""

import os
import random
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import files
from anybackprop.cli import main

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


def data():
    X = np.random.default_rng(0).standard_normal((20, 2))
    return X, (X[:, 0] > 0).astype(int)


def write_model(path):
    ab.save(ab.MLP([2, 3, 2]), path)


def write_checkpoint(path):
    ab.MLP([2, 3, 2]).fit(*data(), epochs=1, checkpoint=path, verbose=False)


def write_csv(path):
    files.write_text(path, files.csv_text(["a"], [[1]]))


def write_history_csv(path):
    ab.MLP([2, 3, 2]).fit(*data(), epochs=1, verbose=False).to_csv(path)


def write_picture(path):
    pytest.importorskip("matplotlib")
    from anybackprop.plotting import plot_training

    plot_training(ab.MLP([2, 3, 2]).fit(*data(), epochs=2, verbose=False), path)


def write_onnx(path):
    pytest.importorskip("onnx")
    from anybackprop.onnx_export import export_onnx

    export_onnx(ab.MLP([2, 3, 2]), path)


WRITERS = [write_model, write_checkpoint, write_csv, write_history_csv, write_picture, write_onnx]
CASES = [
    # (id, umask, mode of an existing file or None, name, expected mode)
    ("new-umask-022", 0o022, None, "out.png", 0o644),
    ("new-umask-077", 0o077, None, "out.png", 0o600),
    ("new-umask-002", 0o002, None, "out.png", 0o664),
    ("overwrite-keeps-0644", 0o077, 0o644, "out.png", 0o644),
    ("overwrite-keeps-0640", 0o022, 0o640, "out.png", 0o640),
    ("overwrite-keeps-0664", 0o022, 0o664, "out.png", 0o664),
    ("name-of-250-characters", 0o022, None, "m" * 246 + ".png", 0o644),
    ("name-of-250-non-ascii-bytes", 0o022, None, "é" * 123 + ".png", 0o644),
]


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
@pytest.mark.parametrize("mask,existing,name,expected", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_written_files_get_a_normal_mode_and_fitting_names(tmp_path, umask, writer, mask, existing, name, expected):
    if writer is write_history_csv and not hasattr(ab.History, "to_csv"):
        pytest.skip("no History.to_csv")
    path = tmp_path / name
    if existing is not None:
        path.write_bytes(b"old")
        path.chmod(existing)
    umask(mask)
    writer(path)
    assert stat.S_IMODE(path.stat().st_mode) == expected
    assert os.listdir(tmp_path) == [name] and path.stat().st_size > 3


def test_the_directory_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os,
        "fsync",
        lambda fd: (events.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"), real_fsync(fd))[1],
    )
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    write_model(tmp_path / "m.npz")
    assert events == ["file", "replace", "dir"]


def test_temporary_names_fit_a_short_name_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "pathconf", lambda path, name: 40)
    name = files._temporary_name(str(tmp_path), "x" * 100 + ".npz")
    assert len(os.path.basename(name)) <= 40 and name.endswith(".tmp")


def replaced(key, value):
    def change(model):
        model.params[key] = value(ab.to_numpy(model.params[key]))

    return change


SAVE_REFUSALS = [
    (
        "float64-in-float32",
        replaced("W1", lambda w: w.astype(np.float64)),
        r"W1 has shape \(2, 3\) dtype float64, expected \(2, 3\) float32",
    ),
    (
        "int-weights",
        replaced("b2", lambda b: b.astype(np.int32)),
        r"b2 has shape \(2,\) dtype int32, expected \(2,\) float32",
    ),
    (
        "wrong-shape",
        replaced("W2", lambda w: w.T.copy()),
        r"W2 has shape \(2, 3\) dtype float32, expected \(3, 2\) float32",
    ),
    ("nan", replaced("W1", lambda w: np.full_like(w, np.nan)), r"W1 contains NaN or infinity"),
    (
        "inf-state",
        lambda m: m.state.update(running_var1=np.full(3, np.inf, np.float32)),
        r"state.running_var1 contains NaN or infinity",
    ),
    (
        "extra-param",
        lambda m: m.params.update(W9=np.zeros(2, np.float32)),
        r"it has arrays \[.*'W9'.*\], its layers describe",
    ),
]


@pytest.mark.parametrize("change,pattern", [pytest.param(c, p, id=i) for i, c, p in SAVE_REFUSALS])
def test_save_refuses_a_model_it_could_not_load_back(tmp_path, change, pattern):
    model = ab.MLP([2, 3, 2], norm="batch")
    change(model)
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match=rf"^cannot save this model to {path}: .*{pattern}"):
        ab.save(model, path)
    assert os.listdir(tmp_path) == []


def no_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)


CLI_CASES = [
    # (id, arguments (tmp is the temporary directory), error pattern, set-up)
    (
        "save-missing-dir",
        ["train", "--save", "{tmp}/no/m.npz"],
        r"--save '.*/no/m.npz': the directory .*/no does not exist",
        None,
    ),
    ("save-a-directory", ["train", "--save", "{tmp}"], r"--save '.*' is a directory; give a file name", None),
    (
        "checkpoint-missing-dir",
        ["train", "--checkpoint", "{tmp}/no/c.ckpt"],
        r"--checkpoint '.*/no/c.ckpt': the directory .*/no does not exist",
        None,
    ),
    (
        "plot-missing-dir",
        ["train", "--plot", "{tmp}/no/c.png"],
        r"--plot '.*/no/c.png': the directory .*/no does not exist",
        None,
    ),
    (
        "plot-unknown-format",
        ["train", "--plot", "{tmp}/curves.xyz"],
        r"--plot '.*/curves.xyz': matplotlib cannot write .xyz pictures; use one of .*png",
        None,
    ),
    (
        "plot-without-matplotlib",
        ["train", "--plot", "{tmp}/curves.png"],
        r"--plot needs matplotlib, an optional extra",
        no_matplotlib,
    ),
    (
        "predict-output-missing-dir",
        ["predict", "{tmp}/m.npz", "{tmp}/t.csv", "--output", "{tmp}/no/p.csv"],
        r"--output '.*/no/p.csv': the directory .*/no does not exist",
        None,
    ),
    (
        "export-missing-dir",
        ["export", "{tmp}/m.npz", "{tmp}/no/m.onnx"],
        r"OUT.onnx '.*/no/m.onnx': the directory .*/no does not exist",
        None,
    ),
]


@pytest.mark.parametrize("argv,pattern,setup", [pytest.param(*c[1:], id=c[0]) for c in CLI_CASES])
def test_the_cli_checks_destinations_before_training(tmp_path, capsys, monkeypatch, argv, pattern, setup):
    if setup is not None:
        setup(monkeypatch)
    else:
        pytest.importorskip("matplotlib")

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the destination")

    monkeypatch.setattr(ab.tables.TabularModel, "fit", no_training)
    monkeypatch.setattr(ab.datasets, "load", no_training)
    monkeypatch.setattr("anybackprop.cli.load", no_training)
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert re.match(rf"anybackprop: error: {pattern}", err), err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_the_cli_refuses_a_read_only_directory(tmp_path, capsys):
    tmp_path.chmod(0o500)
    try:
        assert main(["train", "--save", str(tmp_path / "m.npz")]) == 2
    finally:
        tmp_path.chmod(0o700)
    assert "is not writable" in capsys.readouterr().err


SAVE_LOOP = textwrap.dedent("""
    import sys
    import anybackprop as ab
    models = [ab.MLP([64, 256, 256, 10], seed=seed) for seed in (1, 2)]
    ab.save(models[0], sys.argv[1])
    print("ready", flush=True)
    i = 1
    while True:
        ab.save(models[i % 2], sys.argv[1])
        i += 1
""")


def test_a_save_killed_at_any_moment_leaves_the_old_or_the_new_model(tmp_path):
    path = tmp_path / "m.npz"
    expected = [ab.MLP([64, 256, 256, 10], seed=seed).params for seed in (1, 2)]
    rng = random.Random(9)
    seen = set()
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", SAVE_LOOP, str(path)], stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": HERE}
        )
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        loaded = ab.load(path)
        which = [all(np.array_equal(ab.to_numpy(loaded.params[k]), ab.to_numpy(p[k])) for k in p) for p in expected]
        assert any(which)
        seen.add(which.index(True))
        for name in os.listdir(tmp_path):  # a killed save may leave its temporary file: never the model
            if name != "m.npz":
                assert name.startswith(".m.npz.") and name.endswith(".tmp")
                os.unlink(tmp_path / name)
