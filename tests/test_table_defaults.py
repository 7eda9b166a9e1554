"""The defaults for real tables (issue 19): robust scaling with smooth clipping and the target's
scale as layers (formulas, central differences in float64 and PyTorch autograd on every backend,
saved and exported), the regression target standardised by TabularModel, the validation split
it holds out with the best epoch kept, and the warnings where a default is likely wrong."""

import json
import warnings

import numpy as np
import pytest
from conftest import assert_equals_torch_autograd, assert_gradients_match, targets
from onnx_run import onnx_and_runtime, run_onnx

import anybackprop as ab
from anybackprop import tables
from anybackprop.layers import PiecewiseLinear, RobustScale, TargetScale
from anybackprop.tables import TabularModel

# --- the layers' formulas -------------------------------------------------------------------------


def test_robust_scale_learns_median_and_quartile_spread_with_fallbacks(backend):
    x = np.array(
        [
            [1.0, 0.0, 5.0],
            [2.0, 0.0, 5.0],
            [3.0, 0.0, 5.0],
            [4.0, 1.0, 5.0],
            [100.0, 0.0, 5.0],
        ]
    )
    with backend.activate():
        state = RobustScale(3).learn_state(backend.xp, backend.asarray(x))
    center, scale = ab.to_numpy(state["center"]), ab.to_numpy(state["scale"])
    # column 0: median 3, quartiles 2 and 4; column 1: quartiles equal, so the population std
    # sqrt(0.16) = 0.4; column 2: constant, so 1
    np.testing.assert_allclose(center, [3.0, 0.0, 5.0])
    np.testing.assert_allclose(scale, [2.0 / 1.349, 0.4, 1.0])


def layer_forward(layer, state, x):
    """``layer``'s forward pass of ``x`` in float64 on the current backend, with ``state`` set (and
    checked) as a model's state of its first layer."""
    model = ab.Sequential([layer, ab.Dense(layer.n_out, 1)], head="identity", dtype="float64")
    model.set_state({f"{key}1": value for key, value in state.items()})
    with model.backend.activate():
        ctx = ab.layers.Pass(model.backend, model.fast)
        out, _ = layer.forward(
            ctx, {}, {key: model.state[f"{key}1"] for key in state}, model.backend.asarray(x, model.dtype)
        )
    return ab.to_numpy(out)


def test_robust_scale_forward_is_the_smooth_clip_of_the_scaled_value(backend):
    x = np.array([[1.0, -2.0], [7.0, -2.5], [-1000.0, 1000.0]])
    out = layer_forward(RobustScale(2, clip=3.0), {"center": [1.0, -2.0], "scale": [2.0, 0.5]}, x)
    c = (x - [1.0, -2.0]) / [2.0, 0.5]  # [[0, 0], [3, -1], [-500.5, 2004]]
    expected = c / np.sqrt(1 + (c / 3) ** 2)  # 3 -> 3/sqrt(2); far values -> about +-3
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert np.all(np.abs(out) < 3.0)


def test_piecewise_linear_learns_quantile_bins_and_encodes_how_far_a_value_passed(backend):
    x = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0]])
    layer = PiecewiseLinear(2, bins=2)
    with backend.activate():
        state = layer.learn_state(backend.xp, backend.asarray(x))
    # column 0: edges 0, 2, 4 (the 0, 1/2, 1 quantiles); column 1: constant, widths 0 -> 1
    np.testing.assert_allclose(ab.to_numpy(state["lower"]), [[0.0, 2.0], [1.0, 1.0]])
    np.testing.assert_allclose(ab.to_numpy(state["width"]), [[2.0, 2.0], [1.0, 1.0]])
    out = layer_forward(layer, state, np.array([[-1.0, 0.0], [1.0, 1.5], [3.0, 9.0], [7.0, 1.0]]))
    expected = [[0, 0, 0, 0], [0.5, 0, 0.5, 0.5], [1, 0.5, 1, 1], [1, 1, 0, 0]]
    np.testing.assert_allclose(out, expected)


def test_piecewise_linear_encodes_only_its_features_and_passes_the_rest_after_them(backend):
    x = np.array([[0.0, 7.0, 1.0], [1.0, 8.0, 1.0], [2.0, 9.0, 1.0], [3.0, 7.0, 1.0], [4.0, 8.0, 1.0]])
    layer = PiecewiseLinear(3, bins=2, features=[0, 2])
    assert layer.n_out == 2 * 2 + 1
    with backend.activate():
        state = layer.learn_state(backend.xp, backend.asarray(x))
    # the edges of columns 0 and 2 only (column 1 is passed through)
    np.testing.assert_allclose(ab.to_numpy(state["lower"]), [[0.0, 2.0], [1.0, 1.0]])
    np.testing.assert_allclose(ab.to_numpy(state["width"]), [[2.0, 2.0], [1.0, 1.0]])
    out = layer_forward(layer, state, np.array([[1.0, -5.0, 1.5], [3.0, 6.0, 9.0]]))
    np.testing.assert_allclose(out, [[0.5, 0, 0.5, 0.5, -5.0], [1, 0.5, 1, 1, 6.0]])


def test_piecewise_linear_features_are_checked_saved_and_shown(tmp_path):
    for features in ([], [2, 1], [0, 0], [0, 3], [-1], [True], (0.5,), "0"):
        with pytest.raises(ValueError, match=r"features must list increasing input indices in \[0, 3\)"):
            PiecewiseLinear(3, 2, features=features)
    with pytest.raises(ValueError, match=r"features must list increasing input indices in \[0, 3\)"):
        ab.layers.layer_from_spec({"kind": "piecewise_linear", "config": {"n": 3, "bins": 2, "features": [1, 5]}})
    with pytest.raises(ValueError, match="bin_features names the inputs that bins encodes; give bins too"):
        ab.MLP([3, 2], bin_features=[0])
    model = ab.MLP([3, 4, 2], bins=2, bin_features=[0, 2], dtype="float64")
    ab.save(model, tmp_path / "m.npz")
    loaded = ab.load(tmp_path / "m.npz")
    assert loaded.bin_features == [0, 2] and loaded.layers[0].n_out == 5
    assert "bin_features=[0, 2]" in repr(loaded)


def network_with_features(seed=4):
    """Dense -> PiecewiseLinear of inputs 1 and 3 only -> Dense: dX of the encoded inputs and of
    the passed-through ones, put back in the inputs' order."""
    model = ab.Sequential(
        [ab.Dense(3, 4, "tanh"), PiecewiseLinear(4, 3, features=[1, 3]), ab.Dense(2 * 3 + 2, 2)],
        head="identity",
        seed=seed,
        dtype="float64",
    )
    model.set_state({"lower1": [[-0.9, -0.2, 0.3], [-0.5, 0.0, 0.5]], "width1": [[0.7, 0.5, 0.6], [0.5, 0.5, 0.4]]})
    return model


def test_piecewise_linear_of_some_features_matches_central_differences(backend, rng):
    model = network_with_features()
    X, Y = rng.standard_normal((9, 3)), rng.standard_normal((9, 2))
    assert_gradients_match(model, X, Y)


def test_piecewise_linear_of_some_features_equals_torch_autograd(backend, rng):
    def forward(torch, p, s, X):
        a = torch.tanh(X @ p["W1"] + p["b1"])
        e = torch.clamp((a[:, [1, 3], None] - s["lower1"]) / s["width1"], 0, 1).reshape(len(X), 6)
        return torch.cat([e, a[:, [0, 2]]], dim=1) @ p["W2"] + p["b2"]

    X, Y = rng.standard_normal((9, 3)), rng.standard_normal((9, 2))
    assert_equals_torch_autograd(network_with_features(), X, Y, forward)


def network_with_both(seed=3):
    """Dense -> RobustScale -> PiecewiseLinear -> Dense -> TargetScale, so that every new layer's
    dX is on the gradient's path."""
    model = ab.Sequential(
        [ab.Dense(3, 4, "tanh"), RobustScale(4, clip=1.5), PiecewiseLinear(4, 3), ab.Dense(12, 2), TargetScale(2)],
        head="identity",
        seed=seed,
        dtype="float64",
    )
    # state away from the identity, with inputs that reach the clip's curved part and every bin
    model.set_state(
        {
            "center1": [0.1, -0.2, 0.0, 0.3],
            "scale1": [0.5, 0.2, 1.5, 0.3],
            "lower1": [[-1.0, -0.3, 0.4]] * 4,
            "width1": [[0.7, 0.7, 0.9]] * 4,
            "mean1": [10.0, -3.0],
            "scale2": [4.0, 0.25],
        }
    )
    return model


def test_robust_and_target_scale_match_central_differences(backend, rng):
    model = network_with_both()
    X, Y = rng.standard_normal((7, 3)) * 2, rng.standard_normal((7, 2)) * [4, 0.25] + [10, -3]
    assert_gradients_match(model, X, Y)


def test_robust_and_target_scale_equal_torch_autograd(backend, rng):
    def forward(torch, p, s, X):
        c = (torch.tanh(X @ p["W1"] + p["b1"]) - s["center1"]) / s["scale1"]
        a = c / torch.sqrt(1 + (c / 1.5) ** 2)
        e = torch.clamp((a[:, :, None] - s["lower1"]) / s["width1"], 0, 1).reshape(len(X), 12)
        return (e @ p["W2"] + p["b2"]) * s["scale2"] + s["mean1"]

    X, Y = rng.standard_normal((7, 3)) * 2, rng.standard_normal((7, 2)) * [4, 0.25] + [10, -3]
    assert_equals_torch_autograd(network_with_both(), X, Y, forward)


def test_layer_arguments_are_checked():
    with pytest.raises(ValueError, match="clip must be a positive finite number"):
        RobustScale(3, clip=float("nan"))
    with pytest.raises(ValueError, match="clip must be a positive finite number"):
        RobustScale(3, clip=True)
    for standardize in ("quantile", ["robust"], 1):
        with pytest.raises(ValueError, match="standardize must be True, False or one of standard, robust"):
            ab.MLP([3, 2], standardize=standardize)
    with pytest.raises(ValueError, match="target_scale must be True"):
        ab.MLP([3, 2], output="softmax", target_scale=True)


# --- TabularModel: the target standardised, saved and exported ------------------------------------


def regression_table(rng, m=400):
    x1, x2 = rng.standard_normal(m), rng.uniform(0, 50, m)
    columns = {"a": x1, "b": x2, "kind": np.array(["u", "v"] * (m // 2), dtype=object)}
    y = 5000.0 + 3000.0 * np.tanh(x1) + 40.0 * x2 + 500.0 * (columns["kind"] == "v")
    return columns, y


def test_a_target_in_the_thousands_is_learned_in_few_epochs(rng):
    """Before target scaling, 30 epochs on a target in the thousands ended far below R^2 0."""
    columns, y = regression_table(rng)
    model = TabularModel([32], seed=0)
    model.fit(columns, y, epochs=30, optimizer="adam", verbose=False)
    assert model.score(columns, y) > 0.95
    predicted = model.predict(columns)
    assert abs(predicted.mean() - y.mean()) < 0.05 * y.std()  # in the target's units
    kinds = [layer.kind for layer in model.network.layers]
    assert kinds[-1] == "target_scale"
    np.testing.assert_allclose(ab.to_numpy(model.network.state["scale2"]), [y.std()], rtol=1e-5)


def test_unscaled_regression_target_warns(rng):
    columns, y = regression_table(rng, 64)
    model = TabularModel([8], scale_target=False, seed=0)
    with pytest.warns(UserWarning, match="far from unit scale"):
        model.fit(columns, y, epochs=1, verbose=False)
    assert "target_scale" not in [layer.kind for layer in model.network.layers]


def test_scaled_model_saves_loads_and_exports_in_the_targets_units(rng, tmp_path):
    columns, y = regression_table(rng, 200)
    model = TabularModel([16], standardize="robust", bins=4, seed=0)
    model.fit(columns, y, epochs=5, optimizer="adam", verbose=False)
    ab.save(model, tmp_path / "m.npz")
    loaded = ab.load(tmp_path / "m.npz")
    kinds = [layer.kind for layer in loaded.network.layers]
    assert kinds[:2] == ["robust_scale", "piecewise_linear"] and kinds[-1] == "target_scale"
    # the bins encode the numeric columns a and b; the text column's two one-hot features pass through
    assert loaded.network.layers[1].features == (0, 1) and loaded.network.layers[1].n_out == 2 * 4 + 2
    np.testing.assert_allclose(loaded.predict(columns), model.predict(columns), rtol=1e-6)
    onnx_and_runtime()
    ab.export_onnx(loaded, tmp_path / "m.onnx")
    out = run_onnx(tmp_path / "m.onnx", model.encode(columns))["prediction"]
    np.testing.assert_allclose(out[:, 0], model.predict(columns), rtol=1e-4)


def test_a_loaded_model_fits_again_with_the_network_it_was_saved_with(rng, tmp_path):
    columns, y = regression_table(rng, 120)
    model = TabularModel([8], bins=4, activation="tanh", dropout=0.1, seed=0)
    model.fit(columns, y, epochs=2, optimizer="adam", verbose=False)
    ab.save(model, tmp_path / "m.npz")
    loaded = ab.load(tmp_path / "m.npz")
    loaded.fit(columns, y, epochs=1, optimizer="adam", verbose=False)  # rebuilds its network
    assert loaded.network.mlp_config() == model.network.mlp_config()


def test_validation_fraction_keeps_the_file_lines_in_errors(tmp_path):
    lines = ["a,b,t"] + [f"{i % 7},{i % 3},{i % 2}" for i in range(60)]
    lines[41] = "3,,1"  # line 42 of the file: a missing value
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    columns, y = ab.datasets.load_table(tmp_path / "t.csv", target="t")
    with pytest.raises(ValueError, match=r"column .b. has a missing value in line 42 of .*t\.csv"):
        TabularModel([4], seed=0).fit(columns, y, epochs=1, validation_fraction=0.2, verbose=False)


def test_robust_scale_clip_round_trips_and_a_hostile_one_is_refused(tmp_path):
    model = ab.Sequential([RobustScale(3, clip=2.0), ab.Dense(3, 1)], head="identity")
    ab.save(model, tmp_path / "m.npz")
    assert ab.load(tmp_path / "m.npz").layers[0].clip == 2.0
    for clip in (-1.0, float("inf"), "3"):
        with pytest.raises(ValueError, match="clip must be a positive finite number"):
            ab.layers.layer_from_spec({"kind": "robust_scale", "config": {"n": 3, "clip": clip}})


# --- the validation split TabularModel holds out ----------------------------------------------------


def classification_table(rng, m=300):
    x = rng.standard_normal((m, 3))
    y = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "yes", "no").astype(object)
    return {f"x{j}": x[:, j] for j in range(3)}, y


def test_validation_fraction_keeps_the_best_epoch_of_held_out_rows(rng):
    columns, y = classification_table(rng)
    model = TabularModel([16], seed=0)
    history = model.fit(
        columns, y, epochs=12, optimizer="adam", lr=0.05, seed=1, validation_fraction=0.25, verbose=False
    )
    assert len(history.val_loss) == 12  # ran every epoch (no patience given), validated each
    assert history.best_epoch == int(np.argmin(history.val_loss)) + 1
    _, _, (held_columns, held_y) = model.hold_out(columns, y, 0.25, 1)
    assert len(held_y) == 75
    # the kept weights are the best epoch's: their loss on the held-out rows is the minimum
    X, t = model.encode(held_columns), model.encode_target(held_y)
    assert model.network.loss(X, t) == pytest.approx(min(history.val_loss), rel=1e-5)


def test_validation_fraction_stops_after_the_patience(rng):
    columns, y = classification_table(rng)
    model = TabularModel([16], seed=0)
    history = model.fit(
        columns, y, epochs=200, lr=0.5, optimizer="adam", validation_fraction=0.2, early_stopping=3, verbose=False
    )
    assert history.epochs < 200
    assert history.epochs - history.best_epoch == 3


def test_validation_fraction_is_checked_and_exclusive(rng):
    columns, y = classification_table(rng, 40)
    with pytest.raises(ValueError, match=r"validation_fraction must be in \(0, 1\)"):
        TabularModel([4]).fit(columns, y, epochs=1, validation_fraction=1.0, verbose=False)
    with pytest.raises(
        ValueError,
        match=r"the validation split of the 40 training rows \(validation_fraction=0\.01, --validation-size 0\.01\): "
        r".* 2 classes",
    ):
        TabularModel([4]).fit(columns, y, epochs=1, validation_fraction=0.01, verbose=False)
    with pytest.raises(ValueError, match="not both"):
        TabularModel([4]).fit(columns, y, epochs=1, validation_fraction=0.2, validation_data=(columns, y))


def test_small_tables_and_rare_classes_warn(rng):
    columns, y = classification_table(rng, 60)
    y[:3] = "rare"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TabularModel([4], seed=0).fit(columns, y, epochs=1, validation_fraction=0.2, verbose=False)
    messages = [str(w.message) for w in caught]
    assert any("holds out only 12 rows" in m for m in messages), messages
    assert any("'rare' (3 rows) are too rare" in m for m in messages), messages


# --- bins="auto": piecewise-linear bins kept where the validation loss says so --------------------


def stepped_table(rng, m=600):
    """A target that jumps with a numeric column (as election results move with the year), a
    smooth column and a text column: bins fit the jumps where a plain network smooths them."""
    year = rng.integers(0, 16, m).astype(float)
    x = rng.standard_normal(m)
    kind = rng.choice(["u", "v", "w"], m).astype(object)
    jumps = np.array([3, -2, 4, 0, -3, 2, 5, -4, 1, -1, 3, -5, 2, 4, -2, 0], dtype=float)
    return {"year": year, "x": x, "kind": kind}, jumps[year.astype(int)] + 0.5 * x + (kind == "v")


def losses_and_kept(model):
    without, with_bins = model.bins_choice["validation_loss"]
    return without, with_bins, model.bins_choice["bins"]


def test_bins_auto_keeps_the_bins_where_they_lower_the_validation_loss_by_the_margin(rng):
    from anybackprop.tables import BINS_CHOICE, BINS_MARGIN

    columns, y = stepped_table(rng)
    model = TabularModel([32], seed=0)  # bins="auto" is the default
    model.fit(columns, y, epochs=40, optimizer="adam", validation_fraction=0.2, verbose=False)
    without, with_bins, kept = losses_and_kept(model)
    assert with_bins < (1 - BINS_MARGIN) * without and kept == BINS_CHOICE == 32
    assert len(model.members) == 5  # 480 training rows: the default ensemble, every one with the bins
    for member in model.members:
        binner = member.layers[1]
        # the numeric columns year and x (features 0 and 1) are binned, kind's three one-hot features pass
        assert binner.kind == "piecewise_linear" and binner.features == (0, 1) and binner.n_out == 2 * 32 + 3
    assert min(model.histories[0].val_loss) == with_bins  # the first network is the one tried with bins
    fixed = TabularModel([32], seed=0, bins=32)  # the same networks as bins=32 from the start
    fixed.fit(columns, y, epochs=40, optimizer="adam", validation_fraction=0.2, verbose=False)
    for got, want in zip(model.members, fixed.members, strict=True):
        for key, value in want.params.items():
            np.testing.assert_array_equal(ab.to_numpy(got.params[key]), ab.to_numpy(value))
    np.testing.assert_array_equal(model.predict(columns), fixed.predict(columns))


def test_bins_auto_keeps_no_bins_where_they_miss_the_margin(rng, monkeypatch):
    columns, y = stepped_table(rng)
    monkeypatch.setattr(tables, "BINS_MARGIN", 1.0)  # the bins would need a loss below 0
    plain = TabularModel([32], seed=0)
    plain.fit(columns, y, epochs=40, optimizer="adam", validation_fraction=0.2, verbose=False)
    without, with_bins, kept = losses_and_kept(plain)
    assert with_bins < without and kept is None  # lower, but not by the margin
    assert all("piecewise_linear" not in [layer.kind for layer in m.layers] for m in plain.members)
    assert min(plain.histories[0].val_loss) == without


def test_bins_auto_chooses_nothing_without_validation_rows_numbers_or_room(rng, tmp_path):
    columns, y = stepped_table(rng, 200)
    text = {"year": columns["year"].astype(str).astype(object), "kind": columns["kind"]}
    cases = [
        (columns, {}),  # no validation rows to choose on
        (columns, {"validation_fraction": 0.2, "checkpoint": tmp_path / "c.ckpt"}),  # a checkpoint follows one network
        (columns, {"validation_fraction": 0.2, "callbacks": [lambda epoch, history, net: False]}),  # the same
        (text, {"validation_fraction": 0.2}),  # no numeric column
    ]
    for table, fit_options in cases:
        model = TabularModel([8], seed=0, ensemble=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(table, y, epochs=2, verbose=False, **fit_options)
        assert model.bins_choice is None and model.network.bins is None, fit_options
        said = [str(w.message) for w in caught if "does not try the bins" in str(w.message)]
        # not silent where a checkpoint is what keeps the bins from being tried
        followed = [name for name in ("checkpoint", "callbacks") if name in fit_options]
        assert said == (
            [
                f"{followed[0]} follows one network, so bins='auto' does not try the bins (it trains a second "
                "first network); bins=None (--bins 0) says so and silences this"
            ]
            if followed
            else []
        )
    wide = {f"x{j}": rng.standard_normal(200) for j in range(33)}  # 33 x 32 bins: above BINS_MAX_INPUTS
    model = TabularModel([4], seed=0, ensemble=1)
    model.fit(wide, wide["x0"], epochs=1, validation_fraction=0.2, verbose=False)
    assert model.bins_choice is None and model.network.bins is None
    big = {"x": rng.standard_normal(6_700)}  # 6,030 training rows: above ENSEMBLE_ROWS // 2
    model = TabularModel([4], seed=0, ensemble=1)
    model.fit(big, big["x"], epochs=1, validation_fraction=0.1, verbose=False)
    assert model.bins_choice is None and model.network.bins is None
    for bins in ("some", 0, -1, 2.5, True):
        with pytest.raises(ValueError, match="bins must be a positive int, 'auto' or None"):
            TabularModel([4], bins=bins)
    fixed = TabularModel([4], seed=0, bins=4, ensemble=1)
    fixed.fit(columns, y, epochs=1, validation_fraction=0.2, verbose=False)
    assert fixed.bins_choice is None and fixed.network.bins == 4


def test_a_loaded_model_chooses_the_bins_again_and_bins_its_new_tables_numeric_columns(rng, tmp_path):
    columns, y = stepped_table(rng, 300)
    chosen = TabularModel([8], seed=0, ensemble=1)
    chosen.fit(columns, y, epochs=20, optimizer="adam", validation_fraction=0.2, verbose=False)
    ab.save(chosen, tmp_path / "auto.npz")
    loaded = ab.load(tmp_path / "auto.npz")
    np.testing.assert_array_equal(loaded.predict(columns), chosen.predict(columns))  # what was chosen
    numbers = {"a": rng.standard_normal(300), "b": rng.standard_normal(300), "c": rng.standard_normal(300)}
    loaded.fit(numbers, numbers["a"], epochs=20, optimizer="adam", validation_fraction=0.2, verbose=False)
    assert loaded.bins_choice is not None  # it chose again, for this table
    if loaded.network.bins:
        assert loaded.network.layers[1].features is None  # every column numeric: all binned

    fixed = TabularModel([8], seed=0, ensemble=1, bins=4)
    fixed.fit(columns, y, epochs=1, verbose=False)
    assert fixed.network.bin_features == [0, 1]
    ab.save(fixed, tmp_path / "fixed.npz")
    again = ab.load(tmp_path / "fixed.npz")
    again.fit(numbers, numbers["a"], epochs=1, verbose=False)  # the new table's numeric columns: all three
    assert again.network.bins == 4 and again.network.layers[1].features is None
    assert again.network.layers[1].n_out == 3 * 4 and again.bins_choice is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again.fit({"kind": columns["kind"]}, y, epochs=1, verbose=False)  # no numeric column: no bins
    assert again.network.bins is None


def test_a_model_file_whose_bins_setting_is_not_auto_is_refused(rng, tmp_path):
    columns, y = stepped_table(rng, 100)
    model = TabularModel([4], seed=0, ensemble=1)
    model.fit(columns, y, epochs=1, verbose=False)
    ab.save(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        arrays = dict(archive)
    key = "__anybackprop__"  # the metadata's JSON
    meta = json.loads(str(arrays[key]))
    assert meta["table"]["bins"] == "auto"
    meta["table"]["bins"] = 7
    arrays[key] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="its table section's bins is 7; expected 'auto' or none"):
        ab.load(tmp_path / "bad.npz")


def test_bins_of_columns_that_are_not_a_leading_block_export_to_onnx(rng, tmp_path):
    m = 200
    columns = {"a": rng.standard_normal(m), "kind": rng.choice(["u", "v"], m).astype(object), "b": rng.uniform(0, 9, m)}
    y = np.where(columns["a"] + (columns["kind"] == "v") > columns["b"] / 9, "yes", "no").astype(object)
    model = TabularModel([8], seed=0, ensemble=1, bins=4)
    model.fit(columns, y, epochs=3, verbose=False)
    binner = model.network.layers[1]
    assert binner.features == (0, 3) and binner.rest == (1, 2)  # a and b binned, kind's one-hot passed through
    onnx_and_runtime()
    ab.export_onnx(model, tmp_path / "m.onnx")
    out = run_onnx(tmp_path / "m.onnx", model.encode(columns))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(columns), rtol=1e-5, atol=1e-6)


# --- the command line ---------------------------------------------------------------------------


def write_table(path, columns, y):
    names = [*columns, "y"]
    rows = zip(*(columns[n] for n in columns), y, strict=True)
    path.write_text(",".join(names) + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))


def test_cli_defaults_scale_the_target_and_pick_the_epoch_on_held_out_training_rows(rng, tmp_path, capsys):
    from anybackprop.cli import main

    columns, y = regression_table(rng, 400)
    data, saved = str(tmp_path / "t.csv"), str(tmp_path / "m.npz")
    write_table(tmp_path / "t.csv", columns, y)
    assert main(["train", "--data", data, "--target", "y", "--json", "--save", saved]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test"]["r2"] > 0.9
    assert result["history"]["best_epoch"] is not None
    model = ab.load(saved)
    assert model.info["training"]["validation_size"] == 0.1 and model.info["training"]["early_stopping"] == 20
    assert model.network.layers[-1].kind == "target_scale"

    argv = ["train", "--data", data, "--target", "y", "--quiet", "--no-target-scaling"]
    assert main([*argv, "--scaling", "none", "--validation-size", "0", "--epochs", "2"]) == 0
    assert "far from unit scale" in capsys.readouterr().err


def test_cli_chooses_the_bins_by_default_says_what_it_kept_and_takes_0_for_none(rng, tmp_path, capsys):
    from anybackprop.cli import main

    columns, y = stepped_table(rng)
    data = str(tmp_path / "t.csv")
    write_table(tmp_path / "t.csv", columns, y)
    assert main(["train", "--data", data, "--target", "y", "--epochs", "30", "--save", str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert "network 1 of 5 (seed 0) without bins" in out and "network 1 of 5 (seed 0) with 32 bins" in out
    assert "bins: 32 kept (validation loss" in out and "kept where 15% lower)" in out
    assert "test r2: " in out and "(32 bins, 5 networks averaged, " in out
    saved = ab.load(tmp_path / "m.npz")
    assert saved.info["training"]["bins"] == 32 and len(saved.info["training"]["bins_choice"]) == 2
    assert all(member.bins == 32 and member.bin_features == [0, 1] for member in saved.members)

    assert main(["train", "--data", data, "--target", "y", "--epochs", "2", "--bins", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bins"] == 0 and "bins_choice" not in result


@pytest.mark.parametrize(
    "layer,key", [(RobustScale(2), "scale1"), (TargetScale(2), "scale1"), (PiecewiseLinear(2, 1), "width1")]
)
def test_a_model_file_with_a_scale_that_is_not_positive_is_refused(layer, key, tmp_path):
    model = ab.Sequential([layer, ab.Dense(layer.n_out, 2)], head="identity")
    ab.save(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        arrays = dict(archive)
    stored = next(k for k in arrays if k.endswith(key))
    bad = [[1.0], [0.0]] if layer.kind == "piecewise_linear" else [1.0, -2.0]
    arrays[stored] = np.array(bad, dtype=arrays[stored].dtype)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=f"state '{key[:-1]}' must be positive"):
        ab.load(tmp_path / "bad.npz")


def test_the_backward_pass_ends_at_the_first_layer_with_parameters(backend, rng):
    """A leading scaling layer has no parameters: the backward pass asks neither it for a
    gradient nor the first dense layer for ``dA_prev``; the gradients are still exact."""
    model = ab.Sequential(
        [RobustScale(3, clip=2.0), ab.Dense(3, 4, "tanh"), ab.Dense(4, 2)], head="softmax", dtype="float64"
    )
    asked = []
    for layer in model.layers:
        layer.backward = lambda *args, _layer=layer, _backward=layer.backward: (
            asked.append((_layer.kind, args[-1])) or _backward(*args)
        )
    X, Y = rng.standard_normal((8, 3)), targets("softmax", 2, 8, rng)
    model.state["center1"] = model.backend.asarray([0.5, -0.2, 0.1], model.dtype)  # clipping bites somewhere
    assert set(model.params) == {"W1", "b1", "W2", "b2"}
    assert_gradients_match(model, X, Y)  # every parameter's gradient, each key and shape
    assert set(asked) == {("dense", True), ("dense", False)}  # the top dense wants dA_prev, the first none
    assert asked[:2] == [("dense", True), ("dense", False)]


@pytest.mark.parametrize("scaling", [RobustScale, ab.layers.Standardize])
def test_fit_runs_a_leading_scaling_once_with_the_same_result(backend, rng, scaling):
    """A leading layer without parameters that maps rows the same way in training (a scaling) is
    run once over the training rows and once over the validation rows, not once per batch and
    epoch; the fit ends with the same parameters and history as one that runs it every pass."""
    X, y = rng.standard_normal((90, 3)) * [1.0, 10.0, 0.1] + 5.0, rng.integers(0, 3, 90)
    runs = []
    for fixed in (True, False):
        model = ab.Sequential([scaling(3), ab.Dense(3, 8, "relu"), ab.Dense(8, 3)], dtype="float64")
        assert model.fixed_prefix == 1
        if not fixed:
            model.fixed_prefix = 0  # every pass runs the scaling, as before
        calls = []
        layer = model.layers[0]
        layer.forward = lambda *args, _forward=layer.forward, _calls=calls: (
            _calls.append(args[-1].shape[0]) or _forward(*args)
        )
        history = model.fit(
            X[:70], y[:70], epochs=3, batch_size=16, optimizer="adam", validation_data=(X[70:], y[70:]), verbose=False
        )
        runs.append(({k: ab.to_numpy(v) for k, v in model.params.items()}, history.loss, history.val_loss))
        if fixed:  # learning its state, then the training rows, then the validation rows
            assert calls == [70, 70, 20]
        else:
            assert len(calls) == 1 + 3 * (5 + 1)  # learning, then every batch and the validation rows, 3 epochs
    for key in runs[0][0]:
        np.testing.assert_array_equal(runs[0][0][key], runs[1][0][key])
    assert runs[0][1:] == runs[1][1:]
    assert ab.Sequential([ab.Dense(3, 2), RobustScale(2)]).fixed_prefix == 0  # only a leading one


def test_a_leading_scaling_run_once_uses_the_state_a_resumed_run_restores(rng, tmp_path):
    """Resuming restores the scaling's state from the checkpoint (after ``fit`` learned it from
    the rows it was given): the scaling run once must use the restored state, as every pass did."""
    X, y = rng.standard_normal((60, 3)), rng.integers(0, 3, 60)
    first = ab.Sequential([RobustScale(3), ab.Dense(3, 6, "relu"), ab.Dense(6, 3)], dtype="float64")
    first.fit(X, y, epochs=2, batch_size=16, optimizer="adam", checkpoint=tmp_path / "c.npz", verbose=False)
    runs = []
    for fixed in (True, False):
        model = ab.Sequential([RobustScale(3), ab.Dense(3, 6, "relu"), ab.Dense(6, 3)], dtype="float64")
        if not fixed:
            model.fixed_prefix = 0
        other = X * 4.0 + 2.0  # other rows: the state fit learns from them is not the checkpoint's
        history = model.fit(
            other, y, epochs=4, batch_size=16, optimizer="adam", resume=tmp_path / "c.npz", verbose=False
        )
        runs.append(({k: ab.to_numpy(v) for k, v in model.params.items()}, history.loss))
    for key in runs[0][0]:
        np.testing.assert_array_equal(runs[0][0][key], runs[1][0][key])
    assert runs[0][1] == runs[1][1]
