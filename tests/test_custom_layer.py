"""A user's own layers, written here with the array API only: one subclassing ab.LayerBase (PReLU)
and one that only has the protocol's attributes (a learnable elementwise scale). Both gradcheck,
train with fit inside ab.Sequential and round-trip through save/load, on every backend."""

from typing import Any, NamedTuple

import numpy as np
import pytest

import anybackprop as ab


class XCache(NamedTuple):
    x: Any


@ab.register_layer
class TestPReLU(ab.LayerBase):
    """Y = X where X > 0, a * X elsewhere (a: one slope per unit);
    dX = dY where X > 0, a * dY elsewhere; da = sum_rows(dY * X where X <= 0)."""

    __test__ = False  # not a pytest test class
    kind = "test_prelu"

    def __init__(self, n, slope=0.25):
        self.n_in = self.n_out = n
        self.slope = slope

    def config(self):
        return {"n": self.n_in, "slope": self.slope}

    def init_params(self, rng):
        return {"a": [self.slope] * self.n_in}

    def forward(self, ctx, params, state, x):
        return ctx.xp.where(x > 0, x, params["a"] * x), XCache(x)

    def backward(self, ctx, params, cache, dy, need_dx):
        xp, x = ctx.xp, cache.x
        grads = {"a": xp.sum(xp.where(x > 0, xp.zeros_like(x), dy * x), axis=0)}
        return grads, (xp.where(x > 0, dy, params["a"] * dy) if need_dx else None)


class Scale:
    """Duck-typed (no base class): Y = X * s, s (n,) drawn around 1; dX = dY * s, ds = sum_rows(dY * X).
    It takes weight decay on s."""

    kind = "test_scale"
    decay = ("s",)

    def __init__(self, n):
        self.n_in = self.n_out = n

    def config(self):
        return {"n": self.n_in}

    def init_params(self, rng):
        return {"s": 1.0 + 0.1 * rng.standard_normal(self.n_in)}

    def init_state(self):
        return {}

    def forward(self, ctx, params, state, x):
        return x * params["s"], XCache(x)

    def backward(self, ctx, params, cache, dy, need_dx):
        return {"s": ctx.xp.sum(dy * cache.x, axis=0)}, (dy * params["s"] if need_dx else None)


ab.register_layer(Scale)


def custom_model(dtype="float64", head="softmax", n_out=3, seed=0):
    return ab.Sequential(
        [
            Scale(4),
            ab.Dense(4, 8),
            TestPReLU(8),
            ab.Dense(8, 6, "tanh"),
            Scale(6),
            TestPReLU(6, 0.1),
            ab.Dense(6, n_out),
        ],
        head=head,
        seed=seed,
        dtype=dtype,
    )


def data(rng, m=40):
    X = rng.standard_normal((m, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] + X[:, 2] > 0.5).astype(int)
    return X, y


def test_the_layers_follow_the_protocol():
    for layer in (TestPReLU(3), Scale(3)):
        assert isinstance(layer, ab.Layer)
    assert ab.layers.LAYERS["test_prelu"] is TestPReLU and ab.layers.LAYERS["test_scale"] is Scale


def test_parameters_are_named_by_layer_and_scale_takes_decay():
    model = custom_model()
    assert sorted(model.params) == sorted(["s1", "W1", "b1", "a1", "W2", "b2", "s2", "a2", "W3", "b3"])
    assert model.decay == {"s1", "s2", "W1", "W2", "W3"}
    np.testing.assert_array_equal(ab.to_numpy(model.params["a2"]), np.full(6, 0.1))


def test_forward_equals_numpy(backend, rng):
    model = custom_model()
    X = rng.standard_normal((5, 4))
    p = {k: ab.to_numpy(v) for k, v in model.params.items()}

    def prelu(x, a):
        return np.where(x > 0, x, a * x)

    z = (
        prelu(np.tanh(prelu((X * p["s1"]) @ p["W1"] + p["b1"], p["a1"]) @ p["W2"] + p["b2"]) * p["s2"], p["a2"])
        @ p["W3"]
        + p["b3"]
    )
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(ab.to_numpy(model.forward(X)), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("head,n_out", [("softmax", 3), ("sigmoid", 1), ("identity", 2)])
def test_custom_layers_gradcheck(backend, rng, head, n_out):
    model = custom_model(head=head, n_out=n_out, seed=1)
    X = rng.standard_normal((6, 4))
    Y = {
        "softmax": rng.integers(0, 3, 6),
        "sigmoid": rng.integers(0, 2, 6).astype(float),
        "identity": rng.standard_normal((6, 2)),
    }[head]
    assert ab.gradcheck(model, X, Y) < 1e-6
    assert ab.gradcheck(model, X, Y, sample_weight=rng.uniform(0.5, 2.0, 6)) < 1e-6
    # a float32 model is checked on a float64 copy and left alone
    model32 = custom_model(dtype="float32", head=head, n_out=n_out, seed=1)
    assert ab.gradcheck(model32, X, Y) < 1e-6 and model32.dtype_name == "float32"


def test_a_wrong_backward_is_caught(backend, rng):
    class BrokenScale(Scale):
        def backward(self, ctx, params, cache, dy, need_dx):
            grads, dx = super().backward(ctx, params, cache, dy, need_dx)
            return {"s": 2.0 * grads["s"]}, dx

    model = ab.Sequential([ab.Dense(4, 5, "tanh"), BrokenScale(5), ab.Dense(5, 3)], seed=0, dtype="float64")
    X, y = data(rng, 6)
    assert ab.gradcheck(model, X, y) > 1e-2


def test_custom_layers_train_with_fit(backend, rng):
    model = custom_model(dtype="float32")
    X, y = data(rng)
    a_before = ab.to_numpy(model.params["a1"]).copy()
    history = model.fit(X, y, epochs=20, batch_size=10, optimizer="adam", lr=0.02, weight_decay=1e-4, verbose=False)
    assert history.loss[-1] < 0.7 * history.loss[0]
    assert model.score(X, y) > 0.8
    assert not np.array_equal(ab.to_numpy(model.params["a1"]), a_before)  # the slopes learn too
    assert all(v.dtype == model.dtype for v in model.params.values())


def test_custom_layers_round_trip_through_save_and_load(backend, tmp_path, rng):
    model = custom_model(dtype="float32")
    X, y = data(rng)
    model.fit(X, y, epochs=3, batch_size=10, verbose=False)
    ab.save(model, tmp_path / "custom.npz")
    loaded = ab.load(tmp_path / "custom.npz")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert loaded.config() == model.config() and loaded.backend.name == backend.name
    for key in model.params:
        np.testing.assert_array_equal(ab.to_numpy(loaded.params[key]), ab.to_numpy(model.params[key]))
    np.testing.assert_array_equal(ab.to_numpy(loaded.predict_proba(X)), ab.to_numpy(model.predict_proba(X)))


def test_an_unregistered_kind_fails_to_load_with_a_clear_error(tmp_path):
    class Unregistered(Scale):
        kind = "test_unregistered"

    ab.save(ab.Sequential([Unregistered(3), ab.Dense(3, 2)]), tmp_path / "u.npz")
    with pytest.raises(ValueError, match=r"unknown layer kind 'test_unregistered'.*register_layer"):
        ab.load(tmp_path / "u.npz")


def test_register_layer_needs_a_kind():
    class NoKind:
        pass

    with pytest.raises(ValueError, match="needs a string attribute 'kind'"):
        ab.register_layer(NoKind)


def test_an_object_that_is_not_a_layer_is_a_type_error():
    class Almost:
        n_in = n_out = 3

        def forward(self, ctx, params, state, x):
            return x, None

    with pytest.raises(
        TypeError,
        match=r"layers\[1\] \(Almost\) is not a layer: it lacks kind, decay, init_params, init_state, backward, config",
    ):
        ab.Sequential([ab.Dense(3, 3), Almost(), ab.Dense(3, 2)])
    with pytest.raises(TypeError, match=r"layers\[0\] \(str\) is not a layer: it lacks kind, n_in, n_out"):
        ab.Sequential(["dense"])


def test_mismatched_sizes_are_a_value_error():
    with pytest.raises(ValueError, match=r"layers\[1\] takes 5 inputs but layers\[0\] gives 4"):
        ab.Sequential([ab.Dense(3, 4), Scale(5), ab.Dense(5, 2)])
    with pytest.raises(ValueError, match="layers must be a non-empty list"):
        ab.Sequential([])
