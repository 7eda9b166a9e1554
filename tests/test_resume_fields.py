"""Class table: a resume is what it claims. Every field of a checkpoint is checked against what the
resuming fit implies (optimizer kind and settings, batch plan, counters, history, moments), every
refusal names the field, and a run that early stopping ended trains no further."""

import io
import json
import zipfile

import numpy as np
import pytest

import anybackprop as ab

X = np.random.default_rng(0).standard_normal((30, 3))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)


def _fit(path=None, resume=None, **kwargs):
    options = {"epochs": 3, "batch_size": 8, "optimizer": "momentum", "verbose": False, "seed": 1, **kwargs}
    model = ab.MLP([3, 4, 2], dtype="float64", seed=2)
    history = model.fit(X, Y, checkpoint=path, resume=resume, **options)
    return model, history


def _write(tmp_path, **kwargs):
    path = tmp_path / "c.ckpt"
    _fit(path, epochs=2, **{k: v for k, v in kwargs.items() if k != "epochs"})
    return path


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _rewrite(path, change_meta=None, arrays=None):
    items = _members(path)
    meta = json.loads(str(np.load(io.BytesIO(items["__meta__.npy"]))))
    if change_meta:
        change_meta(meta)
    items["__meta__.npy"] = _npy(np.array(json.dumps(meta)))
    for name, value in (arrays or {}).items():
        items[f"{name}.npy"] = _npy(value)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in items.items():
            zf.writestr(name, data)


# (id, settings the checkpoint is written with, settings of the resuming fit, the message)
MISMATCHES = [
    (
        "momentum-as-nesterov",
        {},
        {"optimizer": "nesterov"},
        r"optimizer 'momentum' \(optimizer.settings.kind\).*'nesterov'",
    ),
    (
        "sgd-as-momentum",
        {"optimizer": "sgd"},
        {"optimizer": "momentum"},
        r"optimizer 'sgd' \(optimizer.settings.kind\), this fit uses 'momentum'",
    ),
    (
        "momentum-as-sgd",
        {},
        {"optimizer": "sgd"},
        r"optimizer 'momentum' \(optimizer.settings.kind\), this fit uses 'sgd'",
    ),
    (
        "momentum-value",
        {},
        {"momentum": 0.5},
        r"momentum=0.9 \(optimizer.settings.momentum\), this fit has momentum=0.5",
    ),
    ("lr", {}, {"lr": 0.01}, r"lr=0.05 \(optimizer.settings.lr\), this fit has lr=0.01"),
    (
        "weight-decay",
        {},
        {"weight_decay": 1e-3},
        r"\(optimizer.settings.weight_decay\), this fit has weight_decay=0.001",
    ),
    ("schedule", {}, {"schedule": "cosine"}, r"schedule='constant' \(optimizer.settings.schedule\)"),
    (
        "adam-beta2",
        {"optimizer": "adam"},
        {"optimizer": "adam", "beta2": 0.99},
        r"beta2=0.999 \(optimizer.settings.beta2\), this fit has beta2=0.99",
    ),
    (
        "adam-as-sgd-class",
        {"optimizer": "adam"},
        {"optimizer": "momentum"},
        r"optimizer Adam, this fit uses SGD",
    ),
    ("batch-size", {}, {"batch_size": 10}, r"batch_size=8 \(batches.batch_size\), this fit has batch_size=10"),
    (
        "validation",
        {"validation_data": (X[:5], Y[:5])},
        {"validation_data": None},
        r"with validation data \(history.val_loss\)",
    ),
    ("no-validation", {}, {"validation_data": (X[:5], Y[:5])}, r"without validation data \(history.val_loss\)"),
]


@pytest.mark.parametrize("written,resumed,message", [pytest.param(*c[1:], id=c[0]) for c in MISMATCHES])
def test_a_resume_with_other_settings_says_what_differs(tmp_path, written, resumed, message):
    path = _write(tmp_path, **written)
    with pytest.raises(ValueError, match=rf"^resume: {path} was written .*{message}"):
        _fit(resume=path, **{**written, **resumed})


def test_a_resume_on_other_rows_names_the_rows(tmp_path):
    path = _write(tmp_path)
    model = ab.MLP([3, 4, 2], dtype="float64", seed=2)
    with pytest.raises(ValueError, match=r"rows=30 \(batches.rows\), this fit has rows=29"):
        model.fit(X[:29], Y[:29], epochs=3, batch_size=8, optimizer="momentum", resume=path, verbose=False)


def _history(meta, key, value):
    meta["history"][key] = value


# (id, optimizer, change to the metadata, replaced arrays, the field named)
TAMPERED = [
    ("history-short", "momentum", lambda m: _history(m, "loss", m["history"]["loss"][:1]), {}, r"history.loss has 1"),
    (
        "metric-short",
        "momentum",
        lambda m: m["history"]["metrics"]["accuracy"].pop(),
        {},
        r"history.metrics.accuracy has 1 entries for epoch 2",
    ),
    (
        "metric-extra",
        "momentum",
        lambda m: m["history"]["metrics"].update(r2=[0.0, 0.0]),
        {},
        r"history.metrics.r2 is not one this fit records",
    ),
    ("history-nan", "momentum", lambda m: _history(m, "loss", [1.0, float("nan")]), {}, r"history.loss has 2 entries"),
    ("best-epoch", "momentum", lambda m: _history(m, "best_epoch", 7), {}, r"history.best_epoch is 7; expected 1 to 2"),
    ("seconds", "momentum", lambda m: _history(m, "seconds", -1.0), {}, r"history.seconds is -1.0"),
    ("adam-t-negative", "adam", lambda m: m["optimizer"]["counters"].update(t=-3), {}, r"optimizer.counters.t is -3"),
    ("adam-t-short", "adam", lambda m: m["optimizer"]["counters"].update(t=5), {}, r"optimizer.counters.t is 5; .* 8"),
    ("adam-t-missing", "adam", lambda m: m["optimizer"].update(counters={}), {}, r"optimizer.counters has \[\]"),
    (
        "adam-v-negative",
        "adam",
        None,
        {"optimizer.v.W1": -np.ones((3, 4))},
        r"optimizer.v.W1 has negative entries \(smallest -1.0\)",
    ),
    ("settings-missing", "momentum", lambda m: m["optimizer"].pop("settings"), {}, r"optimizer.settings is None"),
    ("batches-missing", "momentum", lambda m: m.pop("batches"), {}, r"field batches is None"),
    (
        "epochs-below-epoch",
        "momentum",
        lambda m: m.update(epochs=1),
        {},
        r"field epochs is 1; expected an int >= epoch",
    ),
    ("epoch-negative", "momentum", lambda m: m.update(epoch=-1), {}, r"\(field epoch is '-1'\)"),
    ("counters-junk", "adam", lambda m: m["optimizer"].update(counters={"t": "x"}), {}, r"field optimizer.counters is"),
]


@pytest.mark.parametrize("optimizer,change,arrays,field", [pytest.param(*c[1:], id=c[0]) for c in TAMPERED])
def test_a_tampered_checkpoint_is_refused_naming_the_field(tmp_path, optimizer, change, arrays, field):
    path = _write(tmp_path, optimizer=optimizer)
    _rewrite(path, change, arrays)
    with pytest.raises(ValueError, match=rf"^{path} is not a valid anybackprop checkpoint file: .*{field}"):
        _fit(resume=path, optimizer=optimizer)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
def test_an_untouched_checkpoint_still_resumes_exactly(tmp_path, optimizer):
    whole, full = _fit(optimizer=optimizer)
    path = _write(tmp_path, optimizer=optimizer)
    resumed, history = _fit(resume=path, optimizer=optimizer)
    assert history.loss == full.loss
    for key, value in whole.params.items():
        assert np.array_equal(ab.to_numpy(value), ab.to_numpy(resumed.params[key])), key


def test_a_run_that_early_stopping_ended_trains_no_further(tmp_path):
    path = tmp_path / "c.ckpt"
    options = {"epochs": 40, "lr": 0.5, "early_stopping": 1, "min_delta": 10.0}  # no epoch improves by 10
    stopped, first = _fit(path, **options)
    assert first.epochs == 2 and first.best_epoch == 1  # stopped early: epoch 2 did not improve on epoch 1
    resumed, history = _fit(resume=path, **options)
    assert history.epochs == 2 and history.loss == first.loss and history.best_epoch == 1
    for key, value in stopped.params.items():  # the best epoch's parameters, as the first run ended
        assert np.array_equal(ab.to_numpy(value), ab.to_numpy(resumed.params[key])), key


def test_a_run_that_finished_trains_no_further(tmp_path):
    path = tmp_path / "c.ckpt"
    done, first = _fit(path)
    resumed, history = _fit(resume=path)
    assert history.epochs == 3 and history.loss == first.loss
    for key, value in done.params.items():
        assert np.array_equal(ab.to_numpy(value), ab.to_numpy(resumed.params[key])), key


@pytest.mark.parametrize(
    "values,arrays",
    [({"best_epoch": -2}, {}), ({"best_epoch": 0}, {}), ({"best": float("nan")}, {})],
    ids=["negative", "zero-with-parameters", "nan-best"],
)
def test_an_early_stopping_state_that_does_not_add_up_is_refused(tmp_path, values, arrays):
    path = _write(tmp_path, early_stopping=5)
    _rewrite(path, lambda m: m["callbacks"][0]["values"].update(values), arrays)
    with pytest.raises(
        ValueError, match=r"the state of callback EarlyStopping is not valid \(ValueError: field best_epoch"
    ):
        _fit(resume=path, early_stopping=5)
