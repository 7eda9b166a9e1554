"""ONNX round trip against predict_proba/predict, plotting that leaves the matplotlib backend
alone, and model files of format version 2 still loading."""

import json

import numpy as np
import pytest
from onnx_run import onnx_and_runtime, run_onnx

import anybackprop as ab
from anybackprop.tables import TabularModel


@pytest.fixture
def data():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((64, 4)) * [1, 30, 0.5, 4] + [0, 100, 0, -3]
    return X, (X[:, 0] + X[:, 1] / 30 > 3.3).astype(int) + (X[:, 3] > -3)


@pytest.mark.parametrize(
    "options",
    [
        {"norm": "batch", "dropout": 0.3},
        {"norm": "layer", "activation": "tanh"},
        {"activation": {"name": "leaky_relu", "slope": 0.2}},
        {"activation": "sigmoid", "output": "sigmoid"},
        {"output": "identity"},
    ],
)
def test_onnx_round_trip_equals_predict_proba_and_predict(data, tmp_path, options):
    onnx, _ = onnx_and_runtime()
    X, y = data
    options = dict(options)
    output = options.pop("output", "softmax")
    n_out = {"softmax": 3, "sigmoid": 1, "identity": 2}[output]
    target = {"softmax": y, "sigmoid": (y > 0).astype(int), "identity": X[:, :2] / 10}[output]
    model = ab.MLP([4, 8, 6, n_out], output=output, standardize=True, **options)
    model.fit(X, target, epochs=3, batch_size=16, optimizer="adam", verbose=False)
    ab.export_onnx(model, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(tmp_path / "m.onnx"))
    got = run_onnx(tmp_path / "m.onnx", X)
    if output == "identity":
        np.testing.assert_allclose(got["prediction"], ab.to_numpy(model.forward(X)), atol=1e-5, rtol=1e-5)
    else:
        np.testing.assert_allclose(got["probabilities"], ab.to_numpy(model.predict_proba(X)), atol=1e-5, rtol=1e-5)
        assert np.array_equal(got["label"], ab.to_numpy(model.predict(X)))
    ops = {node.op_type for node in onnx.load(tmp_path / "m.onnx").graph.node}
    assert "Dropout" not in ops and {"Gemm", "Sub", "Div"} <= ops  # standardisation and dense layers in the graph
    if options.get("norm") == "batch":
        assert "BatchNormalization" in ops


def test_cli_export_of_a_table_model_carries_classes_and_feature_names(tmp_path):
    onnx, _ = onnx_and_runtime()
    rng = np.random.default_rng(0)
    cols = {"a": rng.standard_normal(80) * 10, "kind": np.array(rng.choice(["x", "y"], 80), dtype=object)}
    labels = np.where(cols["a"] + 5 * (cols["kind"] == "x") > 2, "high", "low").astype(object)
    model = TabularModel([8], seed=0)
    model.fit(cols, labels, epochs=5, verbose=False, target="level")
    ab.save(model, tmp_path / "m.npz")
    from anybackprop.cli import main

    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 0
    proto = onnx.load(tmp_path / "m.onnx")
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["classes"]) == ["high", "low"] and json.loads(meta["feature_names"]) == [
        "a",
        "kind=x",
        "kind=y",
    ]
    got = run_onnx(tmp_path / "m.onnx", model.encode(cols))
    np.testing.assert_allclose(got["probabilities"], model.predict_proba(cols), atol=1e-5)
    assert np.array(["high", "low"])[got["label"]].tolist() == model.predict(cols).tolist()


def test_plotting_returns_a_figure_and_leaves_the_backend_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from anybackprop.plotting import plot_decision_boundary, plot_training

    before = matplotlib.get_backend()
    X, y = ab.datasets.moons(60)
    model = ab.MLP([2, 6, 2])
    history = model.fit(X, y, epochs=2, validation_data=(X, y), verbose=False)
    fig = plot_training(history, model=model, data=(X, y))
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 3
    assert not list(tmp_path.iterdir())
    plot_decision_boundary(model, X, y, path=tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    assert matplotlib.get_backend() == before


def test_a_version_2_file_still_loads(tmp_path):
    model = ab.MLP([3, 4, 2], norm="batch", seed=1)
    ab.save(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays["__anybackprop__"]))
    for key in ("anybackprop_version", "created"):
        del meta[key]
    meta["version"] = 2
    arrays["__anybackprop__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "v2.npz", **arrays)
    loaded = ab.load(tmp_path / "v2.npz")
    assert isinstance(loaded, ab.MLP) and loaded.norm == "batch"
    X = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_array_equal(ab.to_numpy(loaded.forward(X)), ab.to_numpy(model.forward(X)))
