"""Optimizer steps against updates computed by hand, on every backend."""

import math
from types import SimpleNamespace

import array_api_compat
import numpy as np
import pytest
from conftest import assert_close

import anybackprop as ab
from anybackprop import optim

P0 = np.array([[1.0, -2.0], [0.5, 0.0]])
G = [np.array([[0.1, 0.2], [-0.3, 0.4]]), np.array([[-0.5, 0.1], [0.2, 0.2]])]


def holder(backend, params, decay=("W1",)):
    """The parts of a model an optimizer's init reads."""
    return SimpleNamespace(
        params=params, decay=set(decay), backend=backend, dtype_name="float64", fast=ab.fastpaths.NONE
    )


def run(backend, opt, key="W1", steps=2):
    params = {key: ab.asarray(P0.copy(), "float64")}
    opt.init(holder(backend, params))
    for g in G[:steps]:
        opt.step(backend.xp, params, {key: ab.asarray(g, "float64")})
    return ab.to_numpy(params[key])


def test_sgd_is_w_minus_lr_dw(backend):
    assert_close(run(backend, optim.SGD(lr=0.1)), P0 - 0.1 * G[0] - 0.1 * G[1])


def test_momentum(backend):
    v1 = -0.1 * G[0]
    v2 = 0.9 * v1 - 0.1 * G[1]
    assert_close(run(backend, optim.SGD(lr=0.1, momentum=0.9)), P0 + v1 + v2)


def test_nesterov(backend):
    v1 = -0.1 * G[0]
    p1 = P0 + 0.9 * v1 - 0.1 * G[0]
    v2 = 0.9 * v1 - 0.1 * G[1]
    assert_close(run(backend, optim.SGD(lr=0.1, momentum=0.9, nesterov=True)), p1 + 0.9 * v2 - 0.1 * G[1])


def test_adam_bias_corrected(backend):
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    m = v = 0
    p = P0.copy()
    for t, g in enumerate(G, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    assert_close(run(backend, optim.Adam(lr=lr)), p, rtol=1e-12)
    # the first Adam step moves every entry by about lr, whatever the gradient's scale
    first = run(backend, optim.Adam(lr=lr), steps=1)
    assert_close(np.abs(first - P0), np.full((2, 2), lr), rtol=1e-5)


def test_weight_decay_applies_to_weights_only(backend):
    assert_close(run(backend, optim.SGD(lr=0.1, weight_decay=0.5), steps=1), P0 - 0.1 * (G[0] + 0.5 * P0))
    assert_close(run(backend, optim.SGD(lr=0.1, weight_decay=0.5), key="b1", steps=1), P0 - 0.1 * G[0])


def test_schedules():
    assert optim.get_schedule("constant")(7, 10) == 1.0
    assert optim.step_schedule(step_size=2, gamma=0.5)(5, 10) == 0.25  # epochs 4 and 5 are in the third step
    cosine = optim.get_schedule("cosine")
    assert cosine(0, 10) == 1.0 and math.isclose(cosine(5, 10), 0.5) and cosine(9, 10) < 0.03
    opt = optim.SGD(lr=0.2, schedule="step")
    opt.start_epoch(10, 30)
    assert math.isclose(opt.lr, 0.1)


def test_update_is_in_place_where_arrays_allow_it(backend):
    params = {"W1": ab.asarray(P0.copy(), "float64")}
    before = params["W1"]
    opt = optim.SGD(lr=0.1)
    opt.init(holder(backend, params))
    opt.step(backend.xp, params, {"W1": ab.asarray(G[0], "float64")})
    # a read-only array (numpy_readonly) is replaced, never written into
    assert (params["W1"] is before) == array_api_compat.is_writeable_array(before)
    np.testing.assert_allclose(ab.to_numpy(params["W1"]), P0 - 0.1 * G[0])


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda: optim.SGD(lr=0), r"lr must be a finite number > 0, got 0"),
        (lambda: optim.SGD(lr=float("nan")), r"lr must be a finite number > 0"),
        (lambda: optim.SGD(momentum=1.5), r"momentum must be in \[0, 1\)"),
        (lambda: optim.SGD(nesterov=True), r"nesterov=True needs momentum > 0"),
        (lambda: optim.Adam(beta1=1.0), r"beta1 must be in \[0, 1\)"),
        (
            lambda: optim.get_optimizer("rmsprop"),
            r"unknown optimizer 'rmsprop'; accepted values: sgd, momentum, nesterov, adam",
        ),
        (lambda: optim.get_schedule("linear"), r"unknown schedule 'linear'; accepted values: constant, step, cosine"),
        (lambda: optim.get_optimizer(optim.SGD(), lr=0.1), r"pass lr and other settings to the optimizer object"),
    ],
)
def test_bad_optimizer_settings(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_update_is_functional_where_arrays_are_read_only():
    with ab.use_backend("numpy") as backend:
        frozen = P0.copy()
        frozen.flags.writeable = False
        params = {"W1": frozen}
        opt = optim.SGD(lr=0.1, momentum=0.5)
        opt.init(holder(backend, params))
        opt.step(backend.xp, params, {"W1": G[0]})
        assert params["W1"] is not frozen
        np.testing.assert_array_equal(frozen, P0)
        assert_close(params["W1"], P0 - 0.1 * G[0])


def test_state_is_created_by_init_and_tied_to_one_model(backend):
    model = ab.MLP([3, 4, 2], seed=0, dtype="float64")
    opt = optim.Adam(lr=0.01)
    with pytest.raises(ValueError, match=r"Adam.step before init: call optimizer.init\(model\) first"):
        opt.step(backend.xp, model.params, model.params)
    opt.init(model)
    assert set(opt.state) == {"m", "v"} and set(opt.state["m"]) == set(model.params) and opt.t == 0
    assert all(not ab.to_numpy(v).any() for v in opt.state["m"].values())
    opt.init(model)  # the same model again: the state carries on
    other = ab.MLP([3, 5, 2], seed=0, dtype="float64")
    with pytest.raises(
        ValueError, match=r"this Adam holds state for another model .*W1\(3, 4\).* not for this one .*W1\(3, 5\)"
    ):
        other.fit(np.zeros((4, 3)), [0, 1, 0, 1], optimizer=opt, epochs=1, verbose=False)
    opt.reset()
    opt.init(other)


def test_weight_decay_follows_the_models_mask_not_the_names(backend):
    """Decay applies to what the model marks (Dense weights), not to a key starting with "W"."""
    model = ab.MLP([2, 3, 2], norm="layer", seed=0, dtype="float64")
    assert model.decay == {"W1", "W2"}
    params = {k: ab.asarray(ab.to_numpy(v).copy()) for k, v in model.params.items()}
    zero = {k: ab.asarray(np.zeros(v.shape)) for k, v in params.items()}
    opt = optim.SGD(lr=0.1, weight_decay=0.5)
    opt.init(model)
    opt.step(backend.xp, params, zero)
    for key, value in params.items():
        factor = 1 - 0.1 * 0.5 if key in ("W1", "W2") else 1.0
        assert_close(value, ab.to_numpy(model.params[key]) * factor)


@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_every_registered_optimizer_trains_with_its_recommended_rate(backend, name, rng):
    X = rng.standard_normal((60, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    model = ab.MLP([2, 8, 2], activation="tanh", seed=0)
    before = model.loss(X, y)
    opt = optim.get_optimizer(name)
    assert opt.base_lr == optim.OPTIMIZERS[name].lr
    model.fit(X, y, epochs=20, batch_size=10, optimizer=name, verbose=False)
    assert model.loss(X, y) < before
