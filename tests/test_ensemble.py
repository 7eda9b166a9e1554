"""An ensemble of networks trained from different seeds (issue 19): TabularModel(ensemble=N) and
``train --ensemble N`` average the members' logits (anybackprop.ensemble.Ensemble), and save them
in one file (hostile-file rules) and export them as one ONNX graph."""

import json
import warnings

import numpy as np
import pytest
from onnx_run import onnx_and_runtime, run_onnx

import anybackprop as ab
from anybackprop.ensemble import MAX_MEMBERS, Ensemble
from anybackprop.optim import Adam
from anybackprop.tables import TabularModel, auto_ensemble


def regression_table(rng, m=200):
    x = rng.standard_normal((m, 2))
    kind = np.array(["u", "v"] * (m // 2), dtype=object)
    return {"a": x[:, 0], "b": x[:, 1], "kind": kind}, 300.0 + 100.0 * np.tanh(x[:, 0]) + 40.0 * x[:, 1] * (kind == "v")


def classification_table(rng, m=240, classes=("no", "yes", "maybe")):
    x = rng.standard_normal((m, 3))
    y = np.array(classes, dtype=object)[np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.4, 0.4]) % len(classes)]
    return {f"x{j}": x[:, j] for j in range(3)}, y


def test_an_ensemble_predicts_from_its_members_mean_logits(backend, rng):
    X = rng.standard_normal((7, 3))
    members = [ab.MLP([3, 5, 4], seed=k, dtype="float64") for k in range(3)]
    ensemble = Ensemble(members)
    with ensemble.backend.activate():  # the members' own logits, each on the device
        mean = sum(ab.to_numpy(m.forward_pass(m.backend.asarray(X, m.dtype)).logits) for m in members) / 3
    expected = np.exp(mean - mean.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ab.to_numpy(ensemble.predict_proba(X)), expected, rtol=1e-12)
    np.testing.assert_array_equal(ab.to_numpy(ensemble.predict(X)), expected.argmax(axis=1))
    y = rng.integers(0, 4, 7)
    assert ensemble.score(X, y) == pytest.approx(np.mean(expected.argmax(axis=1) == y))
    assert ensemble.loss(X, y) == pytest.approx(-np.mean(np.log(expected[np.arange(7), y])), rel=1e-10)
    assert "Ensemble of 3 members" in ensemble.summary()


def test_an_ensemble_is_checked_and_does_not_train(rng):
    with pytest.raises(ValueError, match=f"a list of 1 to {MAX_MEMBERS} networks"):
        Ensemble([])
    with pytest.raises(TypeError, match=r"members\[1\] must be a network"):
        Ensemble([ab.MLP([3, 2]), "net"])
    with pytest.raises(ValueError, match=r"members\[1\] has 4 inputs.*members must agree"):
        Ensemble([ab.MLP([3, 2]), ab.MLP([4, 2])])
    ensemble = Ensemble([ab.MLP([3, 2], seed=0), ab.MLP([3, 2], seed=1)])
    with pytest.raises(TypeError, match="train each of its members"):
        ensemble.fit(rng.standard_normal((4, 3)), [0, 1, 0, 1])
    with pytest.raises(TypeError, match="train each of its members"):
        ensemble.loss_and_grads(rng.standard_normal((4, 3)), [0, 1, 0, 1])


def test_tabular_ensemble_trains_members_from_successive_seeds_and_averages_them(rng):
    columns, y = regression_table(rng)
    model = TabularModel([8], ensemble=3, seed=5)
    model.fit(columns, y, epochs=3, optimizer="adam", seed=2, verbose=False)
    assert len(model.members) == 3 and model.members[0] is model.network and len(model.histories) == 3
    firsts = [ab.to_numpy(m.params["W2"]) for m in model.members]
    assert not np.allclose(firsts[0], firsts[1]) and not np.allclose(firsts[1], firsts[2])
    np.testing.assert_array_equal(ab.to_numpy(model.members[1].params["W2"]), firsts[1])
    alone = TabularModel(
        [8], ensemble=1, seed=6
    )  # member 1 is what one network from seed 6, shuffled from seed 3, learns
    alone.fit(columns, y, epochs=3, optimizer="adam", seed=3, verbose=False)
    X = model.encode(columns)
    np.testing.assert_allclose(ab.to_numpy(model.members[1].predict(X)), alone.predict(columns), rtol=1e-5)
    each = np.stack([ab.to_numpy(m.predict(X)).reshape(-1) for m in model.members])
    np.testing.assert_allclose(model.predict(columns), each.mean(axis=0), rtol=1e-5)
    assert model.predict(columns).mean() == pytest.approx(y.mean(), rel=0.2)  # in the target's units
    assert model.score(columns, y) == pytest.approx(1 - np.sum((each.mean(0) - y) ** 2) / np.sum((y - y.mean()) ** 2))
    assert "Ensemble of 3 members" in model.summary()


def test_by_default_regression_averages_up_to_five_networks_and_classification_up_to_three(rng, tmp_path):
    # one network from 6,000 training rows: a 10,000-row table (6,750 after the splits) trains one
    assert [auto_ensemble("regression", rows) for rows in (100, 2400, 4000, 6000, 6750, 30_000)] == [5, 5, 3, 2, 1, 1]
    assert [auto_ensemble("classification", rows) for rows in (100, 4000, 4001, 6000, 6001)] == [3, 3, 2, 2, 1]
    columns, y = regression_table(rng, 200)
    model = TabularModel([4], seed=0)
    model.fit(columns, y, epochs=1, verbose=False)
    assert len(model.members) == 5
    with pytest.warns(
        UserWarning, match="checkpoint follows one network, so this trains one where the default would av"
    ):
        model.fit(columns, y, epochs=1, checkpoint=tmp_path / "c.npz", verbose=False)
    assert len(model.members) == 1
    columns, y = classification_table(rng, 60)
    model = TabularModel([4], seed=0)
    model.fit(columns, y, epochs=1, verbose=False)
    assert len(model.members) == 3
    with pytest.warns(UserWarning, match="the default would average 3"):
        model.fit(columns, y, epochs=1, checkpoint=tmp_path / "d.npz", verbose=False)
    assert len(model.members) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one network asked for: nothing to say
        TabularModel([4], seed=0, ensemble=1).fit(columns, y, epochs=1, checkpoint=tmp_path / "e.npz", verbose=False)


def test_ensemble_is_checked_and_refuses_a_checkpoint(rng, tmp_path):
    for bad in (0, MAX_MEMBERS + 1, 2.0, True):
        with pytest.raises(ValueError, match=f"ensemble must be an int from 1 to {MAX_MEMBERS}"):
            TabularModel([4], ensemble=bad)
    columns, y = classification_table(rng, 60)
    with pytest.raises(ValueError, match=r"checkpoint follows one network.*ensemble=2"):
        TabularModel([4], ensemble=2).fit(columns, y, epochs=1, checkpoint=tmp_path / "c.npz", verbose=False)


@pytest.mark.parametrize("classes", [("no", "yes"), ("no", "yes", "maybe")])
def test_an_ensemble_saves_loads_and_exports_as_one_graph(rng, tmp_path, classes):
    columns, y = classification_table(rng, classes=classes)
    model = TabularModel([8], ensemble=3, seed=0, dtype="float64")
    model.fit(columns, y, epochs=3, optimizer="adam", verbose=False)
    ab.save(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        assert {"W1", "member2.W1", "member3.state.center1"} <= set(archive.files)
    loaded = ab.load(tmp_path / "m.npz")
    assert len(loaded.members) == 3 and loaded.ensemble == 3
    np.testing.assert_array_equal(loaded.predict_proba(columns), model.predict_proba(columns))
    one = TabularModel([8], ensemble=1, seed=0, dtype="float64")
    one.fit(columns, y, epochs=3, optimizer="adam", verbose=False)
    assert not np.allclose(one.predict_proba(columns), model.predict_proba(columns))
    onnx_and_runtime()
    ab.export_onnx(loaded, tmp_path / "m.onnx")
    out = run_onnx(tmp_path / "m.onnx", model.encode(columns))
    proba, label = out["probabilities"], out["label"]
    np.testing.assert_allclose(proba, model.predict_proba(columns), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(model.classes[label], model.predict(columns))


def test_a_regression_ensemble_exports_its_mean_in_the_targets_units(rng, tmp_path):
    columns, y = regression_table(rng)
    model = TabularModel([8], ensemble=2, seed=0)
    model.fit(columns, y, epochs=3, optimizer="adam", verbose=False)
    onnx_and_runtime()
    ab.export_onnx(model, tmp_path / "m.onnx")
    out = run_onnx(tmp_path / "m.onnx", model.encode(columns))["prediction"]
    np.testing.assert_allclose(out[:, 0], model.predict(columns), rtol=1e-5)


def _rewrite(path, out, meta_change=None, drop=None):
    with np.load(path) as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays["__anybackprop__"]))
    if meta_change:
        meta_change(meta)
    arrays["__anybackprop__"] = np.array(json.dumps(meta))
    if drop:
        del arrays[drop]
    np.savez(out, **arrays)


@pytest.mark.parametrize(
    "change,drop,message",
    [
        (lambda m: m["table"].update(ensemble=0), None, "ensemble 0 is not a count of networks"),
        (lambda m: m["table"].update(ensemble="2"), None, "ensemble '2' is not a count of networks"),
        (lambda m: m["table"].update(ensemble=MAX_MEMBERS + 1), None, "is not a count of networks from 1 to"),
        (lambda m: m["table"].update(ensemble=40), None, "more than its .* bytes can hold"),
        (lambda m: m["table"].update(ensemble=3), None, r"missing \['member3.W1'"),
        (None, "member2.b2", r"missing \['member2.b2'\]"),
        (lambda m: m["table"].pop("ensemble"), None, "member2"),
    ],
)
def test_a_hostile_ensemble_file_is_refused(rng, tmp_path, change, drop, message):
    columns, y = classification_table(rng, 80)
    model = TabularModel([64], ensemble=2, seed=0)
    model.fit(columns, y, epochs=1, verbose=False)
    ab.save(model, tmp_path / "m.npz")
    _rewrite(tmp_path / "m.npz", tmp_path / "bad.npz", change, drop)
    with pytest.raises(ValueError, match=f"is not a valid anybackprop model file: .*{message}"):
        ab.load(tmp_path / "bad.npz")


def test_cli_ensemble_flag(rng, tmp_path, capsys):
    from anybackprop.cli import main

    columns, y = regression_table(rng, 200)
    names = [*columns, "y"]
    rows = zip(*(columns[n] for n in columns), y, strict=True)
    (tmp_path / "t.csv").write_text(",".join(names) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    argv = ["train", "--data", str(tmp_path / "t.csv"), "--target", "y", "--epochs", "3"]
    assert main([*argv, "--ensemble", "2", "--json", "--save", str(tmp_path / "m.npz")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ensemble"] == 2 and result["member_epochs"] == [3, 3]
    model = ab.load(tmp_path / "m.npz")
    assert len(model.members) == 2 and model.info["training"]["ensemble"] == 2
    assert main(argv) == 0  # the default for regression: 12,000 // 144 training rows, at most 5
    out = capsys.readouterr().out
    assert "144 training, 16 validation and 40 test rows; 5 x MLP(" in out and "network 5 of 5 (seed 4)" in out
    assert "5 networks averaged, 3/3/3/3/3 epochs in" in out  # (after the bins it kept or not)
    assert main([*argv, "--checkpoint", str(tmp_path / "c.ckpt")]) == 0  # a checkpoint follows one network
    out, err = capsys.readouterr()
    assert "test rows; MLP(" in out and "network 1 of" not in out and "(3 epochs in" in out
    assert "warning: --checkpoint follows one network, so this trains one where the default would average 5" in err
    with pytest.raises(SystemExit):
        main([*argv, "--ensemble", "0"])
    assert "--ensemble: expected a count of networks from 1 to" in capsys.readouterr().err
    assert model.info["member_epochs"] == [3, 3]  # the saved file says what each network trained


def test_each_member_trains_with_its_own_optimizer_and_callbacks_follow_one_network(rng):
    columns, y = regression_table(rng)
    model = TabularModel([8], ensemble=2, seed=5)
    model.fit(columns, y, epochs=3, optimizer=Adam(lr=0.01), seed=2, verbose=False)
    alone = TabularModel([8], ensemble=1, seed=6)  # member 1, with a fresh Adam: no moments carried over
    alone.fit(columns, y, epochs=3, optimizer=Adam(lr=0.01), seed=3, verbose=False)
    X = model.encode(columns)
    np.testing.assert_array_equal(ab.to_numpy(model.members[1].predict(X)), alone.predict(columns))
    stopper = ab.EarlyStopping(100)
    auto = TabularModel([4], seed=0)  # regression would average 5 networks; callbacks follow one
    with pytest.warns(UserWarning, match="callbacks follows one network, so this trains one where the default would"):
        auto.fit(columns, y, epochs=2, callbacks=[stopper], verbose=False)
    assert len(auto.members) == 1
    with pytest.raises(ValueError, match=r"callbacks follows one network.*ensemble=3"):
        TabularModel([4], ensemble=3).fit(columns, y, epochs=1, callbacks=[stopper], verbose=False)


@pytest.mark.parametrize("seed", [True, "x", -1, 1.5])
def test_a_bad_seed_is_refused_before_members_are_seeded(rng, seed):
    columns, y = regression_table(rng, 40)
    with pytest.raises(ValueError, match=r"seed must be .*got"):
        TabularModel([4], ensemble=2, seed=seed).fit(columns, y, epochs=1, verbose=False)
    with pytest.raises(ValueError, match=r"seed must be .*got"):
        TabularModel([4], ensemble=2).fit(columns, y, epochs=1, seed=seed, verbose=False)


def test_an_ensemble_copies_exports_and_is_saved_by_its_tabular_model(rng, tmp_path):
    X = rng.standard_normal((6, 3))
    ensemble = Ensemble([ab.MLP([3, 5, 4], seed=k, dtype="float64") for k in range(2)])
    clone = ensemble.copy(dtype="float32")
    assert isinstance(clone, Ensemble) and clone.dtype_name == "float32" and len(clone.members) == 2
    np.testing.assert_allclose(ab.to_numpy(clone.predict_proba(X)), ab.to_numpy(ensemble.predict_proba(X)), rtol=1e-5)
    with pytest.raises(TypeError, match="save takes an Ensemble's TabularModel"):
        ab.save(ensemble, tmp_path / "e.npz")
    onnx_and_runtime()
    ab.export_onnx(ensemble, tmp_path / "e.onnx")
    proba = run_onnx(tmp_path / "e.onnx", X)["probabilities"]
    np.testing.assert_allclose(proba, ab.to_numpy(ensemble.predict_proba(X)), rtol=1e-9, atol=1e-12)
