"""Callbacks (stop, CSV log, early stopping through the same hook), exact resume from a
checkpoint, and the standardisation layer that fit learns."""

import csv

import numpy as np
import pytest

import anybackprop as ab
from anybackprop.training import Callback, CSVLogger


@pytest.fixture
def data():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((90, 5)) * [1, 10, 100, 0.1, 3] + [0, 5, -50, 1, 2]
    y = (X[:, 0] + X[:, 1] / 10 > 0.5).astype(int) + (X[:, 2] > -50)
    return X, y


def _params(model):
    return {k: ab.to_numpy(v).copy() for k, v in model.params.items()}


@pytest.mark.parametrize("optimizer,extra", [("adam", {}), ("momentum", {"dropout": 0.2, "norm": "batch"})])
def test_a_resumed_run_ends_bitwise_equal_to_an_uninterrupted_one(data, tmp_path, optimizer, extra):
    X, y = data
    kwargs = dict(
        epochs=6,
        batch_size=16,
        optimizer=optimizer,
        seed=3,
        verbose=False,
        weight_decay=1e-3,
        validation_data=(X[:20], y[:20]),
        early_stopping=50,
        schedule="cosine",
    )

    def build():
        return ab.MLP([5, 8, 3], standardize=True, dtype="float64", **extra)

    whole = build()
    full = whole.fit(X, y, **kwargs)
    ckpt = tmp_path / "run.ckpt"
    stopped = build()
    stop_at_3 = lambda epoch, history, model: epoch == 3  # noqa: E731
    first = stopped.fit(X, y, callbacks=[stop_at_3], checkpoint=ckpt, **kwargs)
    assert first.epochs == 3
    resumed = build()  # a fresh process would start from a fresh model too
    history = resumed.fit(X, y, callbacks=[lambda *a: False], resume=ckpt, **kwargs)
    assert history.epochs == 6
    assert history.loss == full.loss and history.val_loss == full.val_loss and history.metrics == full.metrics
    for k, v in _params(whole).items():
        assert np.array_equal(v, _params(resumed)[k]), k
    for k, v in whole.state.items():
        assert np.array_equal(ab.to_numpy(v), ab.to_numpy(resumed.state[k])), k


def test_resume_refuses_another_optimizer_and_a_non_checkpoint(data, tmp_path):
    X, y = data
    ckpt = tmp_path / "c.ckpt"
    ab.MLP([5, 4, 3]).fit(X, y, epochs=1, optimizer="adam", checkpoint=ckpt, verbose=False)
    with pytest.raises(ValueError, match="written with optimizer Adam, this fit uses SGD"):
        ab.MLP([5, 4, 3]).fit(X, y, epochs=2, optimizer="sgd", resume=ckpt, checkpoint=ckpt, verbose=False)
    ab.save(ab.MLP([5, 4, 3]), tmp_path / "m.npz")
    with pytest.raises(ValueError, match="not a valid anybackprop checkpoint file"):
        ab.MLP([5, 4, 3]).fit(X, y, epochs=2, resume=tmp_path / "m.npz", verbose=False)


def test_a_callback_stops_training_and_sees_epoch_history_and_model(data):
    X, y = data
    seen = []

    class StopAtTwo(Callback):
        def on_epoch_end(self, epoch, history, model):
            seen.append((epoch, history.epochs, model))
            return epoch == 2

    model = ab.MLP([5, 4, 3])
    history = model.fit(X, y, epochs=10, callbacks=[StopAtTwo()], verbose=False)
    assert history.epochs == 2 and seen == [(1, 1, model), (2, 2, model)]
    with pytest.raises(TypeError, match="callbacks must hold Callback objects or functions"):
        model.fit(X, y, callbacks=[3], verbose=False)


def test_csv_logger_writes_one_row_per_epoch(data, tmp_path):
    X, y = data
    path = tmp_path / "log.csv"
    history = ab.MLP([5, 4, 3]).fit(X, y, epochs=3, validation_data=(X, y), callbacks=[CSVLogger(path)], verbose=False)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "val_loss", "accuracy", "val_accuracy"]
    assert [int(r[0]) for r in rows[1:]] == [1, 2, 3]
    assert [float(r[1]) for r in rows[1:]] == history.loss
    assert [float(r[4]) for r in rows[1:]] == history.metrics["val_accuracy"]


def test_fit_learns_the_standardisation_and_can_leave_it(data):
    X, y = data
    model = ab.MLP([5, 4, 3], standardize=True, dtype="float64")
    model.fit(X, y, epochs=1, verbose=False)
    np.testing.assert_allclose(ab.to_numpy(model.state["mean1"]), X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(ab.to_numpy(model.state["scale1"]), X.std(axis=0), rtol=1e-12)
    # a model on raw inputs equals a plain one on inputs standardised by hand, with the same weights
    plain = ab.MLP([5, 4, 3], dtype="float64")
    plain.set_params(model.params)
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    np.testing.assert_allclose(ab.to_numpy(model.predict_proba(X)), ab.to_numpy(plain.predict_proba(Xs)), rtol=1e-10)
    model.fit(X * 2, y, epochs=1, verbose=False, preprocess=False)  # keeps the statistics
    np.testing.assert_allclose(ab.to_numpy(model.state["mean1"]), X.mean(axis=0), rtol=1e-12)
    model.fit(X * 2, y, epochs=1, verbose=False)  # the default: learned once, then kept for the trained weights
    np.testing.assert_allclose(ab.to_numpy(model.state["mean1"]), X.mean(axis=0), rtol=1e-12)
    model.fit(X * 2, y, epochs=1, verbose=False, preprocess=True)  # asked for: learned again
    np.testing.assert_allclose(ab.to_numpy(model.state["mean1"]), 2 * X.mean(axis=0), rtol=1e-12)
    assert ab.gradcheck(model, X[:8], y[:8]) < 1e-6
