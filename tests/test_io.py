"""Save/load: bitwise round trips, across backends, atomic writes, and bad files."""

import json
import os

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import io


def model_with(output="softmax", activation="tanh", dtype="float32"):
    return ab.MLP(
        [4, 6, 5, 3], activation=[activation, {"name": "leaky_relu", "slope": 0.2}], output=output, seed=9, dtype=dtype
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bitwise(backend, tmp_path, dtype):
    model = model_with(dtype=dtype)
    path = tmp_path / "model.npz"
    ab.save(model, path)
    loaded = ab.load(path)
    assert loaded.config() == model.config() and loaded.backend.name == backend.name
    for key in model.params:
        np.testing.assert_array_equal(ab.to_numpy(loaded.params[key]), ab.to_numpy(model.params[key]))
    X = np.random.default_rng(0).standard_normal((5, 4))
    np.testing.assert_array_equal(ab.to_numpy(loaded.forward(X)), ab.to_numpy(model.forward(X)))


def test_saved_on_numpy_loads_on_array_api_strict(tmp_path):
    with ab.use_backend("numpy"):
        model = model_with(output="sigmoid" if False else "softmax")
        ab.save(model, tmp_path / "m.npz")
        expected = ab.to_numpy(model.forward(np.eye(4)))
    with ab.use_backend("array_api_strict"):
        loaded = ab.load(tmp_path / "m.npz")
        assert loaded.backend.name == "array_api_strict"
        np.testing.assert_array_equal(ab.to_numpy(loaded.forward(np.eye(4))), expected)


def test_the_name_is_used_as_given_and_no_pickle_is_needed(tmp_path):
    ab.save(model_with(), tmp_path / "model.npz")
    ab.save(model_with(), tmp_path / "weights.bin")
    assert sorted(os.listdir(tmp_path)) == ["model.npz", "weights.bin"]
    with np.load(tmp_path / "weights.bin", allow_pickle=False) as archive:
        meta = json.loads(str(archive["__anybackprop__"]))
    assert meta["format"] == "anybackprop" and meta["version"] == 3
    assert meta["mlp"]["layer_sizes"] == [4, 6, 5, 3] and meta["mlp"]["activation"] == [
        "tanh",
        {"name": "leaky_relu", "slope": 0.2},
    ]
    assert [layer["kind"] for layer in meta["layers"]] == ["dense"] * 3 and meta["head"] == {
        "output": "softmax",
        "loss": "cross_entropy",
    }


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    ab.save(model_with(), path)
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(io.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        ab.save(model_with(activation="relu"), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def meta(**changes):
    base = {
        "format": "anybackprop",
        "version": 1,
        "layer_sizes": [2, 3],
        "activation": [],
        "output": "softmax",
        "loss": "cross_entropy",
        "dtype": "float32",
    }
    base.update(changes)
    return np.array(json.dumps(base))


GOOD = {"W1": np.zeros((2, 3), np.float32), "b1": np.zeros(3, np.float32)}


@pytest.mark.parametrize(
    "make,pattern",
    [
        (lambda p: p.write_bytes(b"not a zip at all"), r"cannot read it as an .npz archive"),
        (lambda p: p.write_bytes(b""), r"cannot read it as an .npz archive"),
        (lambda p: write_npz(p, **GOOD), r"it has no anybackprop metadata"),
        (lambda p: write_npz(p, __anybackprop__=np.array("{nope"), **GOOD), r"its metadata is not JSON"),
        (lambda p: write_npz(p, __anybackprop__=meta(format="keras"), **GOOD), r"does not name the anybackprop format"),
        (lambda p: write_npz(p, __anybackprop__=meta(version=99), **GOOD), r"format version 99 is not supported"),
        (
            lambda p: write_npz(p, __anybackprop__=meta(layer_sizes=[2, 4]), **GOOD),
            r"W1 has shape \(2, 3\) dtype float32, expected \(2, 4\)",
        ),
        (
            lambda p: write_npz(p, __anybackprop__=meta(), W1=GOOD["W1"]),
            r"it holds arrays \['W1'\] but its metadata describes \['W1', 'b1'\] \(missing \['b1'\]\)",
        ),
        (lambda p: write_npz(p, __anybackprop__=meta(dtype="int8"), **GOOD), r"dtype 'int8' is not float32 or float64"),
        (
            lambda p: write_npz(p, __anybackprop__=meta(output="gelu"), **GOOD),
            r"unknown activation 'gelu'; accepted values: softmax, sigmoid, identity",
        ),
        (
            lambda p: write_npz(p, __anybackprop__=meta(), W1=np.zeros((2, 3), object), b1=GOOD["b1"]),
            r"W1 has shape \(2, 3\) dtype object, expected \(2, 3\) float32",
        ),
    ],
)
def test_bad_files_raise_a_clear_error(tmp_path, make, pattern):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(ValueError, match=rf"{path} is not a valid anybackprop model file: .*({pattern})"):
        ab.load(path)


def test_a_truncated_file_is_invalid(tmp_path):
    path = tmp_path / "m.npz"
    ab.save(model_with(), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="is not a valid anybackprop model file"):
        ab.load(path)


def test_missing_file_and_wrong_object():
    with pytest.raises(FileNotFoundError):
        ab.load("/nonexistent/model.npz")
    with pytest.raises(
        TypeError, match=r"save expects an anybackprop model \(MLP, Sequential or TabularModel\), got dict"
    ):
        ab.save({"W1": 1}, "x.npz")
