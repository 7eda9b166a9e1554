"""Class table: an ONNX export agrees with the model. The graph computes in the model's dtype (a
float64 model with a timestamp feature keeps it), and its labels follow ``predict``'s rule, ties
included; checked against onnxruntime for every layer kind and output."""

import numpy as np
import pytest
from test_export_plot import onnx_and_runtime, run_onnx

import anybackprop as ab

rng = np.random.default_rng(7)
TIMESTAMPS = 1.7e9 + rng.uniform(0, 3600, 96)  # seconds: float32 keeps them only to 128 s
X = np.column_stack([TIMESTAMPS, rng.standard_normal(96), rng.standard_normal(96) * 5])
LABELS = ((TIMESTAMPS - 1.7e9) / 3600 + X[:, 1] > 1.0).astype(int) + (X[:, 2] > 2)

# (id, MLP options, output) for every layer kind and output
KINDS = [
    ("batch-norm-dropout", {"norm": "batch", "dropout": 0.3}, "softmax"),
    ("layer-norm-tanh", {"norm": "layer", "activation": "tanh"}, "softmax"),
    ("leaky-relu", {"activation": {"name": "leaky_relu", "slope": 0.2}}, "softmax"),
    ("sigmoid", {"activation": "sigmoid"}, "sigmoid"),
    ("identity", {}, "identity"),
]


def _trained(options, output, dtype):
    n_out = {"softmax": 3, "sigmoid": 1, "identity": 2}[output]
    target = {"softmax": LABELS, "sigmoid": (LABELS > 0).astype(int), "identity": X[:, 1:] / 5}[output]
    model = ab.MLP([3, 8, n_out], output=output, standardize=True, dtype=dtype, seed=3, **options)
    model.fit(X, target, epochs=4, batch_size=16, optimizer="adam", lr=0.01, verbose=False)
    return model


@pytest.mark.parametrize("options,output", [pytest.param(*c[1:], id=c[0]) for c in KINDS])
def test_a_float64_model_with_a_timestamp_exports_in_float64(tmp_path, options, output):
    onnx, _ = onnx_and_runtime()
    model = _trained(options, output, "float64")
    ab.export_onnx(model, tmp_path / "m.onnx")
    graph = onnx.load(tmp_path / "m.onnx").graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    got = run_onnx(tmp_path / "m.onnx", X)
    if output == "identity":
        np.testing.assert_allclose(got["prediction"], ab.to_numpy(model.forward(X)), rtol=1e-12, atol=1e-12)
        return
    np.testing.assert_allclose(got["probabilities"], ab.to_numpy(model.predict_proba(X)), rtol=1e-12, atol=1e-12)
    assert np.array_equal(got["label"], ab.to_numpy(model.predict(X)))


def test_a_float32_model_still_exports_in_float32(tmp_path):
    onnx, _ = onnx_and_runtime()
    model = _trained({}, "softmax", "float32")
    ab.export_onnx(model, tmp_path / "m.onnx")
    assert onnx.load(tmp_path / "m.onnx").graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def _tied(output, n_out):
    """A model whose output layer is all zeros: p = 0.5 for a sigmoid, equal softmax scores."""
    model = ab.MLP([3, 4, n_out], output=output, dtype="float64")
    params = {k: ab.to_numpy(v).copy() for k, v in model.params.items()}
    params["W2"][...] = 0.0
    params["b2"][...] = 0.0
    model.set_params(params)
    return model


@pytest.mark.parametrize(
    "output,n_out,label",
    [("sigmoid", 1, [1, 1]), ("sigmoid", 2, [[1, 1], [1, 1]]), ("softmax", 3, [0, 0])],
    ids=["sigmoid-one-output", "sigmoid-two-outputs", "softmax"],
)
def test_a_tie_gets_predicts_label(tmp_path, output, n_out, label):
    onnx_and_runtime()
    model = _tied(output, n_out)
    rows = X[:2]
    ab.export_onnx(model, tmp_path / "m.onnx")
    got = run_onnx(tmp_path / "m.onnx", rows)
    assert ab.to_numpy(model.predict(rows)).tolist() == label
    assert got["label"].tolist() == label and got["label"].dtype == np.int64
