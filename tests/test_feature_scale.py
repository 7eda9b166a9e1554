"""The learned scale per input (anybackprop/layers/scaled_dense.py, RealMLP's scaling layer folded
into the first dense layer): its formula against the unfolded one, central differences in float64
and PyTorch autograd on every backend, the gain on the optimizer's steps, the MLP and TabularModel
options (on for regression by default), saving, loading, ONNX, and the command line's switch."""

import io
import json
import zipfile

import numpy as np
import pytest
from conftest import assert_equals_torch_autograd, assert_gradients_match
from onnx_run import onnx_and_runtime, run_onnx

import anybackprop as ab
from anybackprop.cli import main
from anybackprop.layers import Dense, ScaledDense
from anybackprop.tables import FEATURE_SCALE, TabularModel

# --- the layer's formulas -------------------------------------------------------------------------


def network(gain=4.0, seed=2):
    """Dense -> ScaledDense -> Dense (float64), the scales away from 1, so that the scaled layer's
    dA_prev is on the gradient's path and each scale matters."""
    model = ab.Sequential(
        [Dense(3, 4, "tanh"), ScaledDense(4, 5, "tanh", gain=gain), Dense(5, 2)],
        head="identity",
        seed=seed,
        dtype="float64",
    )
    model.set_params(
        {**{k: ab.to_numpy(v) for k, v in model.params.items()}, "p1": np.array([0.5, -1.5, 2.0, 0.25]) / gain}
    )
    return model


def test_scaled_dense_is_the_dense_layer_of_the_inputs_times_their_scales(backend, rng):
    model = network()
    X = rng.standard_normal((6, 3))
    p = {k: ab.to_numpy(v) for k, v in model.params.items()}
    hidden = np.tanh(X @ p["W1"] + p["b1"])
    scaled = np.tanh((hidden * (4.0 * p["p1"])) @ p["W2"] + p["b2"])  # the scale as its own step
    want = scaled @ p["W3"] + p["b3"]
    np.testing.assert_allclose(ab.to_numpy(model.forward(X)), want, rtol=1e-12, atol=1e-14)


def test_scaled_dense_matches_central_differences(backend, rng):
    model = network()
    assert set(model.params) == {"W1", "b1", "W2", "b2", "p1", "W3", "b3"}  # the scale's parameter: the first "p"
    assert_gradients_match(model, rng.standard_normal((7, 3)), rng.standard_normal((7, 2)))


def test_scaled_dense_equals_torch_autograd(backend, rng):
    def forward(torch, p, s, X):
        hidden = torch.tanh(X @ p["W1"] + p["b1"])
        scaled = torch.tanh((hidden * (4.0 * p["p1"])) @ p["W2"] + p["b2"])
        return scaled @ p["W3"] + p["b3"]

    assert_equals_torch_autograd(network(), rng.standard_normal((7, 3)), rng.standard_normal((7, 2)), forward)


@pytest.mark.parametrize("gain", [1.0, 10.0])
def test_the_gain_makes_adams_first_step_on_the_scales_gain_times_the_rate(gain, rng):
    model = ab.Sequential([ScaledDense(4, 3, gain=gain)], head="identity", dtype="float64", seed=0)
    X, Y = rng.standard_normal((16, 4)), rng.standard_normal((16, 3))
    model.fit(X, Y, epochs=1, batch_size=16, optimizer="adam", lr=0.01, shuffle=False, verbose=False)
    scales = gain * ab.to_numpy(model.params["p1"])  # Adam's first step is lr * sign(gradient)
    np.testing.assert_allclose(np.abs(scales - 1.0), gain * 0.01, rtol=1e-6)


def test_the_gain_is_checked_in_code_and_in_a_layer_spec():
    for gain in (0.0, -1.0, float("nan"), float("inf"), 1e39, 1e-39, True, "10"):
        with pytest.raises(ValueError, match=r"gain must be a number from 0\.001 to 1000"):
            ScaledDense(3, 2, gain=gain)
        with pytest.raises(ValueError, match=r"gain must be a number from 0\.001 to 1000"):
            ab.layers.layer_from_spec({"kind": "scaled_dense", "config": {"n_in": 3, "n_out": 2, "gain": gain}})
        with pytest.raises(ValueError, match=r"feature_scale must be a number from 0\.001 to 1000"):
            ab.MLP([3, 4, 2], feature_scale=gain)
    assert ScaledDense(3, 2, gain=1e3).gain == 1000.0 and ab.MLP([3, 2], feature_scale=1e-3).feature_scale == 0.001


# --- the MLP option and TabularModel's default ------------------------------------------------------


@pytest.mark.parametrize("hidden,norm", [([8, 6], None), ([8], "layer"), ([], None)])
def test_mlp_feature_scale_makes_its_first_dense_layer_scaled(hidden, norm):
    model = ab.MLP([3, *hidden, 2], norm=norm, standardize="robust", feature_scale=6)
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    assert type(dense[0]) is ScaledDense and dense[0].gain == 6.0
    assert all(type(layer) is Dense for layer in dense[1:])
    assert model.mlp_config()["feature_scale"] == 6.0 and "feature_scale=6.0" in repr(model)
    plain = ab.MLP([3, *hidden, 2], norm=norm)
    assert all(type(layer) is Dense for layer in plain.layers if isinstance(layer, Dense))
    assert "feature_scale" not in plain.mlp_config() and "feature_scale" not in repr(plain)


def regression_table(rng, m=200):
    columns = {"a": rng.standard_normal(m), "b": rng.uniform(0, 50, m), "noise": rng.standard_normal(m)}
    y = 100.0 * np.tanh(columns["a"]) + 4.0 * columns["b"]
    return columns, y


def first_dense(model):
    return next(layer for layer in model.network.layers if isinstance(layer, Dense))


def test_tabular_regression_with_adam_learns_the_scales_by_default_and_nothing_else_does(rng):
    columns, y = regression_table(rng)
    regression = TabularModel([8], seed=0)
    regression.fit(columns, y, epochs=2, optimizer="adam", verbose=False)
    assert type(first_dense(regression)) is ScaledDense and first_dense(regression).gain == FEATURE_SCALE
    with_object = TabularModel([8], seed=0)
    with_object.fit(columns, y, epochs=2, optimizer=ab.optim.Adam(0.001), verbose=False)
    assert type(first_dense(with_object)) is ScaledDense
    classification = TabularModel([8], seed=0)
    classification.fit(columns, y > np.median(y), epochs=2, optimizer="adam", verbose=False)
    assert type(first_dense(classification)) is Dense
    # SGD (fit's default): the gain would multiply the scales' steps by its square, 100x (diverged here)
    with_sgd = TabularModel([8], seed=0)
    with_sgd.fit(columns, y, epochs=20, verbose=False)
    assert type(first_dense(with_sgd)) is Dense and np.isfinite(with_sgd.predict(columns)).all()
    for option, kind, gain in ((None, Dense, None), (3, ScaledDense, 3.0)):
        model = TabularModel([8], seed=0, feature_scale=option)
        model.fit(columns, y, epochs=2, optimizer="adam", verbose=False)
        assert type(first_dense(model)) is kind and getattr(first_dense(model), "gain", None) == gain
    with pytest.raises(ValueError, match=r"feature_scale must be a number from 0\.001 to 1000, got .on."):
        TabularModel([8], feature_scale="on").fit(columns, y, epochs=1, verbose=False)


@pytest.mark.parametrize("option", ["auto", None])
def test_a_saved_model_keeps_its_scales_or_their_absence_through_load_export_and_refit(rng, tmp_path, option):
    columns, y = regression_table(rng)
    model = TabularModel([8], seed=0, feature_scale=option)
    model.fit(columns, y, epochs=5, optimizer="adam", verbose=False)
    ab.save(model, tmp_path / "m.npz")
    loaded = ab.load(tmp_path / "m.npz")
    assert [layer.kind for layer in loaded.network.layers] == [layer.kind for layer in model.network.layers]
    np.testing.assert_array_equal(loaded.predict(columns), model.predict(columns))
    loaded.fit(columns, y, epochs=1, optimizer="adam", verbose=False)  # rebuilds the network it was saved with
    assert loaded.network.mlp_config() == model.network.mlp_config()
    onnx_and_runtime()
    ab.export_onnx(model, tmp_path / "m.onnx")
    out = run_onnx(tmp_path / "m.onnx", model.encode(columns))["prediction"]
    np.testing.assert_allclose(out[:, 0], model.predict(columns), rtol=1e-5)


@pytest.mark.parametrize("option,first,then,kinds", [
    ("auto", "adam", "sgd", ("scaled_dense", "dense")),  # "auto" chooses again at the next fit
    ("auto", "sgd", "adam", ("dense", "scaled_dense")),
    (None, "adam", "adam", ("dense", "dense")),  # switched off: stays off
    (3, "adam", "sgd", ("scaled_dense", "scaled_dense")),  # a gain given: kept
])  # fmt: skip
def test_a_loaded_model_refits_with_its_setting_not_the_gain_auto_chose(rng, tmp_path, option, first, then, kinds):
    columns, y = regression_table(rng)
    model = TabularModel([8], seed=0, feature_scale=option)
    model.fit(columns, y, epochs=1, optimizer=first, verbose=False)
    assert first_dense(model).kind == kinds[0]
    ab.save(model, tmp_path / "m.npz")
    loaded = ab.load(tmp_path / "m.npz")
    assert first_dense(loaded).kind == kinds[0]
    loaded.fit(columns, y, epochs=1, optimizer=then, verbose=False)
    model.fit(columns, y, epochs=1, optimizer=then, verbose=False)
    assert first_dense(loaded).kind == first_dense(model).kind == kinds[1]


def test_a_file_whose_table_section_has_another_feature_scale_is_refused(rng, tmp_path):
    columns, y = regression_table(rng)
    model = TabularModel([8], seed=0)
    model.fit(columns, y, epochs=1, optimizer="adam", verbose=False)
    ab.save(model, tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as zf:
        items = {name: zf.read(name) for name in zf.namelist()}
    meta = np.load(tmp_path / "m.npz")["__anybackprop__"].item()
    assert '"feature_scale": "auto"' in meta
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array(meta.replace('"feature_scale": "auto"', '"feature_scale": 1e39')))
    items["__anybackprop__.npy"] = buffer.getvalue()
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as zf:
        for name, data in items.items():
            zf.writestr(name, data)
    with pytest.raises(ValueError, match=r"bad\.npz is not a valid .*feature_scale is 1e\+39; expected 'auto' or none"):
        ab.load(tmp_path / "bad.npz")


# --- the command line ---------------------------------------------------------------------------------


@pytest.mark.parametrize("argument,kind", [(None, "scaled_dense"), ("off", "dense"), ("2.5", "scaled_dense")])
def test_train_feature_scale_switch(rng, tmp_path, capsys, argument, kind):
    columns, y = regression_table(rng)
    path = tmp_path / "t.csv"
    rows = ["a,b,noise,y"] + [",".join(map(str, r)) for r in zip(*columns.values(), y, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    extra = [] if argument is None else ["--feature-scale", argument]
    argv = ["train", "--data", path, "--target", "y", "--epochs", "2", "--json", "--save", tmp_path / "m.npz"]
    assert main([str(a) for a in argv + extra]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["task"] == "regression"
    loaded = ab.load(tmp_path / "m.npz")
    assert loaded.info["training"]["feature_scale"] == {None: FEATURE_SCALE, "off": None, "2.5": 2.5}[argument]
    assert next(layer.kind for layer in loaded.network.layers if isinstance(layer, Dense)) == kind


@pytest.mark.parametrize("argument", ["0", "-1", "inf", "nan", "on", "1e39"])
def test_train_refuses_a_feature_scale_that_is_not_auto_off_or_a_gain(tmp_path, capsys, argument):
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tmp_path / "t.csv"), "--target", "y", "--feature-scale", argument])
    assert f"expected auto, off or a gain from 0.001 to 1000, got '{argument}'" in capsys.readouterr().err
