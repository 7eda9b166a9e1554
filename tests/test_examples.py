"""Each example script runs (a few epochs) and prints what it demonstrates, on every backend (the
examples use no backend-specific call, so they run unchanged with ANYBACKPROP_BACKEND=cupy)."""

import pathlib
import runpy
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name, monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", [name, *args])
    return runpy.run_path(str(EXAMPLES / name), run_name="not_main")


def test_note000_flower(backend, monkeypatch, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    module = run_example("note000_planar_flower.py", monkeypatch)
    accuracy = module["main"](epochs=40, out=str(tmp_path / "flower.png"))
    out = capsys.readouterr().out
    assert float(out.split("max difference ")[1].split()[0]) < 1e-12
    assert accuracy > 0.6 and (tmp_path / "flower.png").exists()


def test_note001_column_formulas(backend, monkeypatch, capsys):
    module = run_example("note001_tanh_softmax.py", monkeypatch)
    assert module["main"](epochs=30) > 0.6
    assert float(capsys.readouterr().out.split("difference| ")[1].split()[0]) < 1e-12


def test_note002_003(backend, monkeypatch):
    module = run_example("note002_003_xor_sigmoid.py", monkeypatch)
    assert module["note002_partials"]() < 1e-15
    assert module["main"](epochs=2000) == 1.0


def test_note004(backend, monkeypatch):
    module = run_example("note004_deep_relu_digits.py", monkeypatch)
    coefficients = module["linear_regression"](40)
    assert abs(coefficients - [2.0, -1.0, 0.5, 3.0]).max() < 0.05
    assert module["digits"](3) > 0.85


def test_custom_layer(backend, monkeypatch, capsys):
    module = run_example("custom_layer.py", monkeypatch)
    assert module["main"](epochs=40) > 0.9
    out = capsys.readouterr().out
    assert float(out.split("max relative error ")[1].split()[0]) < 1e-5
    assert "saved and loaded back: same accuracy" in out
