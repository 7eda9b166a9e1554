"""The training step as a pure function (anybackprop/compiled.py) on every backend, and fit's
compiled epochs on JAX against NumPy: same results, seeded dropout, resume, the compiled
functions reused by the next fit, and the eager fallback for a layer that cannot be traced."""

import warnings

import numpy as np
import pytest

import anybackprop as ab
from anybackprop import compiled
from anybackprop.backend import host_rng
from anybackprop.layers import Dense, LayerBase
from anybackprop.optim import get_optimizer
from anybackprop.training import Trainer

jax_only = pytest.mark.skipif("jax" not in ab.available_backends(), reason="jax is not installed")


@pytest.fixture
def compile_all(monkeypatch):
    """Every fit on JAX compiled, however short (the tests' fits are)."""
    monkeypatch.setattr(compiled, "MIN_STEPS", 1)


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((45, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5), rng.uniform(0.5, 2.0, 45)


def _host(arrays):
    return {k: ab.to_numpy(v).copy() for k, v in arrays.items()}


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_pure_step_equals_the_trainers_step_and_writes_nothing(backend, data, optimizer):
    X, y, w = data
    model = ab.MLP([4, 8, 6, 3], dropout=0.3, norm="batch", dtype="float64", seed=2)
    opt = get_optimizer(optimizer, 0.05, weight_decay=1e-2)
    trainer = Trainer(model, opt)
    with model.backend.activate():  # formulas called directly: on the model's device
        x, yd, wd = model.check_data(X, y, w)
        for _ in range(2):  # the second step starts from non-zero slots
            params, state = dict(model.params), dict(model.state)
            slots = {s: dict(a) for s, a in opt.state.items()}
            before = (_host(params), _host(state), {s: _host(a) for s, a in slots.items()})
            t = opt.t + 1 if optimizer == "adam" else 0
            new = compiled.pure_step(model, opt, params, state, slots, opt.lr, t, x, yd, wd, host_rng(9))
            for k, v in {**before[0], **before[1]}.items():  # pure_step wrote into none of its inputs
                np.testing.assert_array_equal(ab.to_numpy({**params, **state}[k]), v)
            for s, arrays in before[2].items():
                for k, v in arrays.items():
                    np.testing.assert_array_equal(ab.to_numpy(slots[s][k]), v)
            logits = trainer.step(x, yd, wd, host_rng(9))
            np.testing.assert_allclose(ab.to_numpy(new[3]), ab.to_numpy(logits), rtol=1e-12)
            for got, want in ((new[0], model.params), (new[1], model.state)):
                assert list(got) == list(want)
                for k in want:
                    np.testing.assert_allclose(ab.to_numpy(got[k]), ab.to_numpy(want[k]), rtol=1e-12, atol=1e-15)
            for s in opt.state:
                for k in opt.state[s]:
                    np.testing.assert_allclose(ab.to_numpy(new[2][s][k]), ab.to_numpy(opt.state[s][k]), rtol=1e-12)


def _fit(backend, X, y, w, **kwargs):
    with ab.use_backend(backend):
        model = ab.MLP([4, 8, 6, 3], norm="batch", standardize=True, dtype="float64", seed=1)
        kwargs = {"epochs": 4, **kwargs}
        history = model.fit(
            X, y, sample_weight=w, batch_size=8, optimizer="adam", lr=0.01, seed=4, verbose=False, **kwargs
        )
    return model, history


@jax_only
@pytest.mark.parametrize("shuffle", [True, False])
def test_compiled_fit_on_jax_equals_numpy(compile_all, data, shuffle):
    X, y, w = data  # 45 rows in batches of 8: five scanned steps and a short last one per epoch
    want, want_history = _fit("numpy", X, y, w, validation_data=(X[:9], y[:9]), shuffle=shuffle)
    got, history = _fit("jax", X, y, w, validation_data=(X[:9], y[:9]), shuffle=shuffle)
    assert list(got.params) == list(want.params) and list(got.state) == list(want.state)
    for k in want.params:
        np.testing.assert_allclose(ab.to_numpy(got.params[k]), ab.to_numpy(want.params[k]), rtol=1e-10, atol=1e-9)
    for k in want.state:
        np.testing.assert_allclose(ab.to_numpy(got.state[k]), ab.to_numpy(want.state[k]), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(history.loss, want_history.loss, rtol=1e-10)
    np.testing.assert_allclose(history.val_loss, want_history.val_loss, rtol=1e-9)
    np.testing.assert_allclose(ab.to_numpy(got.predict_proba(X)), ab.to_numpy(want.predict_proba(X)), rtol=1e-9)


@jax_only
def test_compiled_early_stopping_stops_and_restores_as_on_numpy(compile_all, data):
    X, y, _ = data  # the validation rows are the training rows reversed: its loss turns up within 40 epochs
    kwargs = dict(validation_data=(X[::-1][:12], y[:12]), early_stopping=2, epochs=40)
    want, want_history = _fit("numpy", X, y, None, **kwargs)
    got, history = _fit("jax", X, y, None, **kwargs)
    assert history.epochs == want_history.epochs < 40 and history.best_epoch == want_history.best_epoch
    np.testing.assert_allclose(history.val_loss, want_history.val_loss, rtol=1e-9)
    for k in want.params:  # the best epoch's parameters, put back
        np.testing.assert_allclose(ab.to_numpy(got.params[k]), ab.to_numpy(want.params[k]), rtol=1e-8, atol=1e-8)


def _order_of_calls(monkeypatch):
    """Records ``("launch", epoch)`` and ``("finish", epoch)`` as the compiled trainer makes them."""
    calls = []
    launch, finish = compiled.CompiledTrainer._launch, compiled.CompiledTrainer._finish

    def spy_launch(self, epoch, *args, **kwargs):
        calls.append(("launch", epoch))
        return launch(self, epoch, *args, **kwargs)

    def spy_finish(self, launched, *args):
        calls.append(("finish", launched.epoch))
        return finish(self, launched, *args)

    monkeypatch.setattr(compiled.CompiledTrainer, "_launch", spy_launch)
    monkeypatch.setattr(compiled.CompiledTrainer, "_finish", spy_finish)
    return calls


@jax_only
def test_without_callbacks_the_next_compiled_epoch_starts_before_the_last_is_read_with_the_same_results(
    compile_all, data, monkeypatch
):
    X, y, w = data
    calls = _order_of_calls(monkeypatch)
    runs = []
    for callbacks in (None, [lambda epoch, history, model: None]):  # a callback looks between epochs
        scheduled = []

        def schedule(epoch, epochs, scheduled=scheduled):
            scheduled.append(epoch)
            return 1.0 / (1 + epoch)

        calls.clear()
        with ab.use_backend("jax"):
            model = ab.MLP([4, 8, 6, 3], norm="batch", dropout=0.2, dtype="float64", seed=1)
            history = model.fit(
                X, y, sample_weight=w, validation_data=(X[:9], y[:9]), epochs=4, batch_size=8, optimizer="adam",
                lr=0.01, schedule=schedule, seed=4, verbose=False, callbacks=callbacks,
            )  # fmt: skip
        runs.append((model, history, list(calls), scheduled))
    (ahead, history, order, scheduled), (one_by_one, want, want_order, want_scheduled) = runs
    expected = [("launch", 1), ("launch", 2), ("finish", 1), ("launch", 3), ("finish", 2), ("launch", 4)]
    assert order == [*expected, ("finish", 3), ("finish", 4)]
    assert want_order == [(step, e) for e in range(1, 5) for step in ("launch", "finish")]
    assert scheduled == want_scheduled == [0, 1, 2, 3]  # the schedule asked once per epoch, in order
    assert history.to_dict() | {"seconds": 0} == want.to_dict() | {"seconds": 0}
    for got, expected in ((ahead.params, one_by_one.params), (ahead.state, one_by_one.state)):
        assert list(got) == list(expected)
        for k in expected:
            np.testing.assert_array_equal(ab.to_numpy(got[k]), ab.to_numpy(expected[k]))


@jax_only
def test_a_compiled_epoch_read_after_the_next_was_launched_diverges_as_one_read_at_once(compile_all, monkeypatch):
    calls = _order_of_calls(monkeypatch)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    Y = X @ np.ones(3) * 1e3  # the steps grow until the loss overflows, a few epochs in
    found = []
    for callbacks in (None, [lambda epoch, history, model: None]):
        calls.clear()
        model = ab.MLP([3, 16, 1], output="identity", dtype="float64", seed=0, backend="jax")
        opt = get_optimizer("sgd", 0.05, momentum=0.9)
        with np.errstate(all="ignore"), pytest.raises(ValueError, match="the loss is ") as caught:
            model.fit(X, Y, epochs=6, batch_size=8, optimizer=opt, verbose=False, callbacks=callbacks)
        # the optimizer's slots are arrays still (those of the launched epoch that took the donated ones)
        slots = {k: np.asarray(ab.to_numpy(v)) for k, v in opt.state["velocity"].items()}
        assert list(slots) == list(model.params)
        found.append((str(caught.value), {k: ab.to_numpy(v) for k, v in model.params.items()}, list(calls)))
    (message, params, order), (want_message, want_params, want_order) = found
    assert "parameters from after epoch" in message and message == want_message
    assert order[:3] == [("launch", 1), ("launch", 2), ("finish", 1)] and want_order[:2] == [
        ("launch", 1),
        ("finish", 1),
    ]
    for k, v in want_params.items():  # the last good epoch's, read back before the next was launched or after
        assert np.isfinite(v).all()
        np.testing.assert_array_equal(params[k], v)


@jax_only
def test_a_schedule_that_raises_for_the_next_epoch_leaves_what_one_at_a_time_leaves(compile_all, data, monkeypatch):
    X, y, _ = data
    calls = _order_of_calls(monkeypatch)
    found = []
    for callbacks in (None, [lambda epoch, history, model: None]):
        calls.clear()
        model = ab.MLP([4, 8, 3], dtype="float64", seed=0, backend="jax")
        opt = get_optimizer("adam", 0.01, schedule=lambda e, n: float("nan") if e == 2 else 1.0)
        with pytest.raises(ValueError, match="schedule returned nan for epoch 2"):
            model.fit(X, y, epochs=5, batch_size=8, optimizer=opt, seed=1, verbose=False, callbacks=callbacks)
        slots = {s: {k: ab.to_numpy(v) for k, v in a.items()} for s, a in opt.state.items()}
        found.append(({k: ab.to_numpy(v) for k, v in model.params.items()}, opt.t, slots, list(calls)))
    (params, t, slots, order), (want_params, want_t, want_slots, want_order) = found
    assert t == want_t == 2 * 6  # two epochs of six steps each, read and kept
    assert order == [("launch", 1), ("launch", 2), ("finish", 1), ("finish", 2)] and order != want_order
    for k, v in want_params.items():
        np.testing.assert_array_equal(params[k], v)
    for s, arrays in want_slots.items():
        for k, v in arrays.items():
            np.testing.assert_array_equal(slots[s][k], v)


def _diverge(backend, case):
    """A fit that diverges (``case``: in the loss at a later epoch, in the last update's parameters,
    in the validation loss only): its error, the epochs the callbacks saw, and the parameters left."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    seen = []
    kwargs = dict(epochs=6, batch_size=8, optimizer="sgd", verbose=False, callbacks=[lambda e, h, m: seen.append(e)])
    if case == "loss":  # a regression whose steps grow until the loss overflows, a few epochs in
        model = ab.MLP([3, 16, 1], output="identity", dtype="float64", seed=0, backend=backend)
        Y, kwargs["lr"] = X @ np.ones(3) * 1e3, 0.05
    else:
        Y = np.arange(40) % 2
        if case == "largest parameter":  # the last epoch's rate is near float64's largest: only its update blows up
            model = ab.MLP([3, 4, 2], dtype="float64", seed=0, backend=backend)
            kwargs.update(lr=100.0, schedule=lambda e, n: 1e306 if e == 2 else 1.0, epochs=3, batch_size=40)
        else:  # finite float32 parameters whose validation logits overflow
            model = ab.MLP([3, 4, 2], seed=0, backend=backend)
            kwargs["validation_data"] = (np.full((2, 3), 3e38), [0, 1])
    with np.errstate(all="ignore"), pytest.raises(ValueError) as caught:  # the overflow is the point
        model.fit(X, Y, **kwargs)
    return str(caught.value), seen, {k: ab.to_numpy(v) for k, v in model.params.items()}


@jax_only
@pytest.mark.parametrize("case", ["loss", "largest parameter", "val_loss"])
def test_a_compiled_epoch_that_diverges_raises_the_guards_error_and_keeps_the_last_good_parameters(compile_all, case):
    want, got = _diverge("numpy", case), _diverge("jax", case)
    assert f"the {case} is " in want[0] and got[:2] == want[:2]  # the same message, the same epochs seen
    if case != "val_loss":  # the kept parameters are those of an epoch before (not the initial ones)
        assert want[1] and f"parameters from after epoch {want[1][-1]};" in want[0]
    for k, v in want[2].items():
        assert np.isfinite(got[2][k]).all()
        np.testing.assert_allclose(got[2][k], v, rtol=1e-6, atol=1e-6)


@jax_only
def test_compiled_functions_are_reused_by_the_next_fit_of_a_model_built_alike(compile_all, data):
    X, y, _ = data
    with ab.use_backend("jax"):
        for seed in (1, 2):
            model = ab.MLP([4, 8, 3], seed=seed)
            for _ in range(2):
                model.fit(X, y, epochs=2, batch_size=8, lr=0.1, seed=seed, verbose=False)
        opt = get_optimizer("sgd", 0.1)
        opt.init(model)
        functions = compiled.compiled_for(model, opt)
        assert functions.epoch._cache_size() == 1  # the whole epoch, its figures included: one program
        other = ab.MLP([4, 8, 3], activation="tanh", seed=1)
        assert compiled.compiled_for(other, opt) is not functions


@jax_only
def test_compiled_dropout_is_seeded_and_a_resumed_run_continues_it(compile_all, data, tmp_path):
    X, y, _ = data
    kwargs = dict(epochs=4, batch_size=8, optimizer="momentum", seed=3, verbose=False)

    def build():
        return ab.MLP([4, 16, 3], dropout=0.5, dtype="float64", seed=0, backend="jax")

    whole, again, other = build(), build(), build()
    full = whole.fit(X, y, **kwargs)
    assert again.fit(X, y, **kwargs).loss == full.loss
    assert other.fit(X, y, **{**kwargs, "seed": 4}).loss != full.loss  # another seed, other masks
    stopped = build()
    stopped.fit(X, y, callbacks=[lambda epoch, history, model: epoch == 2], checkpoint=tmp_path / "ck", **kwargs)
    resumed = build()
    history = resumed.fit(X, y, resume=tmp_path / "ck", **kwargs)
    np.testing.assert_allclose(history.loss, full.loss, rtol=1e-12)
    for k, v in whole.params.items():
        np.testing.assert_allclose(ab.to_numpy(resumed.params[k]), ab.to_numpy(v), rtol=1e-12, atol=1e-15)


class _Clip(LayerBase):
    """Scales its input by 1 / max|x| read on the host: a value a traced step cannot read."""

    kind = "test_host_clip"

    def __init__(self, n):
        self.n_in = self.n_out = n

    def forward(self, ctx, params, state, x):
        scale = 1.0 / max(float(ctx.xp.max(ctx.xp.abs(x))), 1.0)
        return x * scale, scale

    def backward(self, ctx, params, cache, dy, need_dx):
        return {}, dy * cache


@jax_only
def test_a_layer_that_cannot_be_traced_trains_eagerly_with_a_warning(compile_all, data):
    X, y, _ = data
    layers = [Dense(4, 8, "tanh"), _Clip(8), Dense(8, 3)]
    want = ab.Sequential(layers, seed=0, dtype="float64", backend="numpy")
    want.fit(X, y, epochs=3, batch_size=8, seed=1, verbose=False)
    model = ab.Sequential(layers, seed=0, dtype="float64", backend="jax")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y, epochs=3, batch_size=8, seed=1, verbose=False)
    said = [str(c.message) for c in caught if "cannot compile" in str(c.message)]
    assert len(said) == 1 and "so it trains eagerly" in said[0]  # once per fit, not per epoch
    for k, v in want.params.items():
        np.testing.assert_allclose(ab.to_numpy(model.params[k]), ab.to_numpy(v), rtol=1e-6)


@jax_only
def test_only_a_fit_long_enough_to_pay_for_compiling_is_compiled(data):
    X, y, _ = data  # 45 rows in batches of 9: 5 steps an epoch
    model = ab.MLP([4, 5, 3], activation="tanh", seed=0, backend="jax")
    opt = get_optimizer("sgd", 0.1)
    opt.init(model)
    key = (compiled._structure(model), compiled._settings(opt))
    model.fit(X, y, epochs=compiled.MIN_STEPS // 5, batch_size=9, lr=0.1, verbose=False)
    assert key not in compiled._COMPILED
    model.fit(X, y, epochs=-(-compiled.MIN_STEPS // 5), batch_size=9, lr=0.1, verbose=False)
    assert key in compiled._COMPILED
    wide = ab.MLP([784, 1024, 1024, 10], seed=0, backend="jax")  # 80 steps of large products: compiled
    assert compiled.compiles(wide, 2, 20_000, 512) and not compiled.compiles(model, 2, 20_000, 512)


@jax_only
def test_the_jax_backend_names_its_devices_and_keeps_float64():
    with pytest.raises(ValueError, match=r"device='tpu:0' is not a device of the jax backend: jax has no 'tpu' device"):
        ab.backend.create_backend("jax", "tpu:0")
    with pytest.raises(ValueError, match=r"device='cpu:3' is not a device of the jax backend: .* index 0\.\.0"):
        ab.backend.create_backend("jax", "cpu:3")
    model = ab.MLP([2, 3], seed=0, backend=ab.backend.create_backend("jax", "cpu:0", dtype="float64"))
    assert str(model.params["W1"].dtype) == "float64"  # jax_enable_x64: not silently float32
    host = ab.to_numpy(model.params["W1"])
    host[0, 0] = 7.0  # what leaves the backend is a writable copy
    assert float(model.params["W1"][0, 0]) != 7.0
