"""fit, predict, predict_proba, score and History on every backend."""

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import datasets


@pytest.fixture
def blobs(rng):
    centers = np.array([[0, 0], [3, 3], [0, 4]])
    y = rng.integers(0, 3, 150)
    return centers[y] + rng.standard_normal((150, 2)) * 0.5, y


@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.1), ("momentum", 0.05), ("nesterov", 0.05), ("adam", 0.01)])
def test_fit_lowers_the_loss(backend, blobs, optimizer, lr):
    X, y = blobs
    model = ab.MLP([2, 16, 3], activation="tanh", seed=0)
    before = model.loss(X, y)
    history = model.fit(X, y, epochs=15, batch_size=16, optimizer=optimizer, lr=lr, verbose=False)
    assert history.epochs == 15 and len(history.metrics["accuracy"]) == 15
    assert model.loss(X, y) < 0.5 * before
    assert history.loss[-1] < history.loss[0]
    assert model.score(X, y) > 0.9


def test_fit_binary_and_regression(backend, rng):
    X, y = datasets.xor(200, seed=1)
    model = ab.MLP([2, 8, 1], activation="tanh", output="sigmoid", seed=0)
    model.fit(X, y, epochs=100, batch_size=20, optimizer="adam", lr=0.05, verbose=False)
    assert model.score(X, y) == 1.0
    labels = ab.to_numpy(model.predict(X))
    assert labels.shape == (200,) and set(np.unique(labels)) <= {0, 1}
    proba = ab.to_numpy(model.predict_proba(X))
    assert proba.shape == (200, 2) and np.allclose(proba.sum(axis=1), 1)

    Xr = rng.uniform(-1, 1, (200, 3))
    yr = Xr @ np.array([1.0, -2.0, 0.5]) + 0.3
    reg = ab.MLP([3, 1], activation=[], output="identity", seed=0)
    history = reg.fit(Xr, yr, epochs=100, batch_size=20, optimizer="sgd", lr=0.1, verbose=False)
    assert reg.score(Xr, yr) > 0.999 and history.metrics["r2"][-1] > 0.99
    np.testing.assert_allclose(ab.to_numpy(reg.params["W1"])[:, 0], [1.0, -2.0, 0.5], atol=1e-2)
    assert ab.to_numpy(reg.predict(Xr)).shape == (200,)
    with pytest.raises(ValueError, match="predict_proba needs a classifier"):
        reg.predict_proba(Xr)


def test_same_seed_same_result_bitwise_on_numpy(blobs):
    X, y = blobs
    runs = []
    for _ in range(2):
        with ab.use_backend("numpy"):
            model = ab.MLP([2, 8, 3], seed=3)
            model.fit(X, y, epochs=3, batch_size=10, seed=5, verbose=False)
            runs.append({k: ab.to_numpy(v) for k, v in model.params.items()})
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    with ab.use_backend("numpy"):
        other = ab.MLP([2, 8, 3], seed=3)
        other.fit(X, y, epochs=3, batch_size=10, seed=6, verbose=False)
    assert not np.array_equal(ab.to_numpy(other.params["W1"]), runs[0]["W1"])


def test_numpy_and_strict_train_to_the_same_parameters(blobs):
    X, y = blobs
    results = []
    for name in ("numpy", "array_api_strict"):
        with ab.use_backend(name):
            model = ab.MLP([2, 8, 3], seed=3)
            model.fit(X, y, epochs=2, batch_size=32, optimizer="adam", lr=0.01, seed=1, verbose=False)
            results.append({k: ab.to_numpy(v) for k, v in model.params.items()})
    for key in results[0]:
        np.testing.assert_allclose(results[0][key], results[1][key], rtol=1e-6, atol=1e-7)


def test_epoch_loss_is_the_mean_of_the_minibatch_losses(backend, blobs):
    X, y = blobs
    model = ab.MLP([2, 8, 3], seed=0)
    twin = model.copy()
    history = model.fit(X, y, epochs=1, batch_size=50, shuffle=False, optimizer="sgd", lr=0.1, verbose=False)
    opt = ab.optim.SGD(lr=0.1)
    opt.init(twin)
    losses = []
    for start in range(0, 150, 50):
        loss, grads = twin.loss_and_grads(X[start : start + 50], y[start : start + 50])
        losses.append(loss)
        opt.step(backend.xp, twin.params, grads)
    assert history.loss[0] == pytest.approx(np.mean(losses), rel=1e-5)
    np.testing.assert_allclose(ab.to_numpy(model.params["W1"]), ab.to_numpy(twin.params["W1"]), rtol=1e-6)


def test_early_stopping_restores_the_best_weights(backend, blobs):
    X, y = blobs
    model = ab.MLP([2, 32, 3], seed=0)
    X_val, y_val = X[:20], (y[:20] + 1) % 3  # validation labels that training makes worse
    history = model.fit(
        X,
        y,
        epochs=50,
        batch_size=16,
        optimizer="adam",
        lr=0.01,
        validation_data=(X_val, y_val),
        early_stopping=3,
        verbose=False,
    )
    assert history.epochs < 50
    best = history.best_epoch
    assert history.val_loss[best - 1] == min(history.val_loss)
    assert history.epochs == best + 3
    assert model.loss(X_val, y_val) == pytest.approx(history.val_loss[best - 1], rel=1e-5)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_divergence_names_the_epoch_and_suggests_a_fix(backend, rng):
    X = rng.standard_normal((40, 3)) * 1e3
    y = X @ np.ones(3) * 1e3
    model = ab.MLP([3, 16, 1], output="identity", seed=0)
    with pytest.raises(
        ValueError, match=r"training diverged at epoch \d+: the loss is .*smaller learning rate \(lr=10.0\)"
    ):
        model.fit(X, y, epochs=20, batch_size=8, optimizer="sgd", lr=10.0, verbose=False)


@pytest.mark.parametrize("batch_size", [64, 1])  # one step an epoch; 128 steps in all (compiled on jax)
def test_a_model_without_parameters_fits(backend, rng, batch_size):
    """Nothing to train and nothing for the divergence guard to keep: the epochs still run and
    report the model's loss."""
    X, y = rng.standard_normal((64, 3)), rng.standard_normal((64, 3))
    model = ab.Sequential([ab.layers.Standardize(3)], head="identity", dtype="float64")
    history = model.fit(X, y, epochs=2, batch_size=batch_size, verbose=False)
    assert model.params == {}
    assert history.epochs == 2
    assert history.loss == pytest.approx([model.loss(X, y)] * 2, rel=1e-12)


def test_verbose_prints_one_line_per_epoch_off_a_terminal(blobs, capsys):
    X, y = blobs
    ab.MLP([2, 4, 3]).fit(X, y, epochs=3, validation_data=(X, y), verbose=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3 - loss ") and "val_accuracy" in lines[0] and "samples/s" in lines[0]
    ab.MLP([2, 4, 3]).fit(X, y, epochs=2, verbose=False)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"epochs": 0}, r"epochs must be an integer >= 1, got 0"),
        ({"batch_size": -1}, r"batch_size must be an integer >= 1"),
        ({"epochs": 2.5}, r"epochs must be an integer"),
        ({"lr": -0.1}, r"lr must be a finite number > 0"),
        ({"optimizer": "lbfgs"}, r"unknown optimizer 'lbfgs'"),
        ({"early_stopping": 0}, r"early_stopping must be an integer >= 1"),
        ({"validation_data": ([[1.0, 2.0]],)}, r"validation_data must be a tuple \(X_val, Y_val\)"),
        ({"validation_data": (np.zeros((3, 5)), np.zeros(3, int))}, r"X_val has 5 features"),
        ({"seed": "a"}, r"seed must be a non-negative int"),
    ],
)
def test_bad_hyper_parameters(blobs, kwargs, pattern):
    X, y = blobs
    with pytest.raises(ValueError, match=pattern):
        ab.MLP([2, 4, 3]).fit(X, y, verbose=False, **kwargs)


def test_history_repr(blobs):
    X, y = blobs
    history = ab.MLP([2, 4, 3]).fit(X, y, epochs=2, verbose=False)
    assert repr(history).startswith("History(2 epochs, last loss ")


def test_progress_bar_on_a_terminal(blobs, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    X, y = blobs
    ab.MLP([2, 4, 3]).fit(X, y, epochs=3, validation_data=(X, y), verbose=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.rstrip("\n").split("\r")[-1]
    assert last.startswith("epoch 3/3 ") and "loss=" in last and "val_loss=" in last and "val_acc=" in last
    assert len(last) <= 80  # the figures stay readable in an 80-column terminal
