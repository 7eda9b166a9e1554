"""Losses, deltas and softmax at extreme logits (|z| = 1e4) in float32 and float64: finite, and
equal to references computed here in exact closed form (reliability goal G2)."""

import math
import warnings

import numpy as np
import pytest
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import anybackprop as ab
from anybackprop import activations, fastpaths, losses

LN2, LN3 = math.log(2.0), math.log(3.0)


@pytest.fixture
def strict_fp():
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        yield


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_cross_entropy_and_delta_at_1e4(backend, dtype, strict_fp):
    with backend.activate():  # formulas run on the backend's device, as inside fit
        xp = backend.xp
        z = ab.asarray([[1e4], [-1e4], [0.0]], dtype)
        y = ab.asarray([[0.0], [1.0], [1.0]], dtype)
        a = activations.sigmoid(xp, z)
        value = float(losses.batch_mean(xp, losses.binary_cross_entropy(xp, z, a, y)))
        assert math.isclose(value, (2e4 + LN2) / 3, rel_tol=1e-6)
        delta = ab.get_head("sigmoid").delta(xp, fastpaths.NONE, z, y)
        assert_close(delta, np.array([[1 / 3], [-1 / 3], [-1 / 6]]), rtol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_and_delta_at_1e4(backend, dtype, strict_fp):
    with backend.activate():  # formulas run on the backend's device, as inside fit
        xp = backend.xp
        z = ab.asarray([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0], [-1e4, -1e4, -1e4]], dtype)
        y = ab.asarray(np.eye(3)[[2, 1, 0]], dtype)
        a = activations.softmax(xp, z)
        value = float(losses.batch_mean(xp, losses.cross_entropy(xp, z, a, y)))
        assert math.isclose(value, (2e4 + 2 * LN3) / 3, rel_tol=1e-6)
        delta = ab.get_head("softmax").delta(xp, fastpaths.NONE, z, y)
        expected = (np.array([[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3]]) - np.eye(3)[[2, 1, 0]]) / 3
        assert_close(delta, expected, rtol=1e-6, atol=1e-7)
        assert_close(xp.sum(a, axis=1), np.ones(3), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mse_at_1e4_is_exact(backend, dtype, strict_fp):
    with backend.activate():  # formulas run on the backend's device, as inside fit
        xp = backend.xp
        z = ab.asarray([[1e4], [-1e4]], dtype)
        y = ab.asarray([[0.0], [1.0]], dtype)
        value = float(losses.batch_mean(xp, losses.mse(xp, z, z, y)))
        assert math.isclose(value, (1e8 + (1e4 + 1) ** 2) / 4, rel_tol=1e-6)


def test_a_model_with_huge_logits_has_finite_loss_and_gradients(backend, strict_fp):
    model = ab.MLP([2, 3], activation=[], output="softmax", dtype="float32")
    model.set_params({"W1": np.array([[1e4, 0, -1e4], [0, 0, 0]]), "b1": np.zeros(3)})
    loss, grads = model.loss_and_grads(np.array([[1.0, 0.0]]), np.array([2]))
    assert math.isclose(loss, 2e4, rel_tol=1e-6)
    for g in grads.values():
        assert np.isfinite(ab.to_numpy(g)).all()


def test_sigmoid_saturates_without_overflow(backend, strict_fp):
    with backend.activate():
        a = ab.to_numpy(activations.sigmoid(backend.xp, ab.asarray([-1e4, -50.0, 0.0, 50.0, 1e4], "float32")))
    assert a[0] == 0.0 and a[2] == 0.5 and a[4] == 1.0
    assert 0 < a[1] < 1e-20 and a[3] == 1.0


@settings(max_examples=60, deadline=None)
@given(z=arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.floats(-1e4, 1e4)))
def test_softmax_rows_sum_to_one_and_losses_are_non_negative(z):
    for name in ab.available_backends():
        with ab.use_backend(name) as backend:
            xp = backend.xp
            zz = ab.asarray(z, "float32")
            a = activations.softmax(xp, zz)
            np.testing.assert_allclose(ab.to_numpy(xp.sum(a, axis=1)), 1.0, rtol=1e-5)
            y = ab.asarray(np.eye(z.shape[1])[np.argmin(z, axis=1)], "float32")
            assert float(xp.min(losses.cross_entropy(xp, zz, a, y))) >= 0
            yb = ab.asarray((z > 0).astype(np.float32))
            assert float(xp.min(losses.binary_cross_entropy(xp, zz, activations.sigmoid(xp, zz), yb))) >= 0
