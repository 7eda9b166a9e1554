"""Every bad input raises before any computation, naming what was wrong and what was expected:
one table of (case, exception, message pattern), run on every backend."""

import re

import numpy as np
import pytest

import anybackprop as ab

X = np.random.default_rng(0).standard_normal((6, 4))
LABELS = np.array([0, 1, 2, 1, 0, 2])


def with_value(value, row=2, col=1):
    bad = X.copy()
    bad[row, col] = value
    return bad


def softmax_model():
    return ab.MLP([4, 5, 3], seed=0)


def sigmoid_model():
    return ab.MLP([4, 5, 1], output="sigmoid", seed=0)


def identity_model():
    return ab.MLP([4, 5, 2], output="identity", seed=0)


CASES = {
    "X 1-D": (lambda: softmax_model().forward(X[0]), ValueError, r"X must be 2-D .*got 1-D.*Reshape your data"),
    "X 3-D": (lambda: softmax_model().forward(X[None]), ValueError, r"X must be 2-D of shape \(m, 4\)"),
    "X wrong features": (
        lambda: softmax_model().forward(X[:, :3]),
        ValueError,
        r"X has 3 features, but the model is expecting 4",
    ),
    "X NaN": (
        lambda: softmax_model().loss(with_value(np.nan), LABELS),
        ValueError,
        r"X contains NaN at row 2, column 1",
    ),
    "X inf": (
        lambda: softmax_model().forward(with_value(-np.inf, 4, 3)),
        ValueError,
        r"X contains infinity at row 4, column 3",
    ),
    "X empty": (lambda: softmax_model().forward(np.zeros((0, 4))), ValueError, r"X has 0 samples"),
    "X None": (lambda: softmax_model().forward(None), ValueError, r"X is None"),
    "X complex": (lambda: softmax_model().forward(X + 1j), TypeError, r"X has dtype complex128; expected real numbers"),
    "X object": (lambda: softmax_model().forward(np.array([[{}] * 4] * 2)), TypeError, r"X has dtype object"),
    "X strings": (lambda: softmax_model().forward(np.array([["a"] * 4])), TypeError, r"X has dtype <U1"),
    "y length": (lambda: softmax_model().loss(X, LABELS[:-1]), ValueError, r"y has shape \(5,\) but X has 6 rows"),
    "y None": (lambda: softmax_model().loss(X, None), ValueError, r"y is None"),
    "label too big": (
        lambda: softmax_model().loss(X, LABELS * 2),
        ValueError,
        r"labels in \[0, 4\].*3 classes.*\[0, 2\]",
    ),
    "label negative": (lambda: softmax_model().loss(X, LABELS - 1), ValueError, r"labels in \[-1, 1\]"),
    "label not integer": (lambda: softmax_model().loss(X, LABELS + 0.5), ValueError, r"non-integer values"),
    "label NaN": (lambda: softmax_model().loss(X, np.full(6, np.nan)), ValueError, r"y contains NaN at row 0"),
    "one-hot columns": (
        lambda: softmax_model().loss(X, np.eye(4)[LABELS]),
        ValueError,
        r"y has 4 columns; the model has 3 outputs",
    ),
    "one-hot rows": (
        lambda: softmax_model().loss(X, np.eye(3)[LABELS] * 2),
        ValueError,
        r"y has values in \[0.0, 2.0\]",
    ),
    "probabilities sum": (
        lambda: softmax_model().loss(X, np.full((6, 3), 0.5)),
        ValueError,
        r"rows must be one-hot or probabilities",
    ),
    "sigmoid label 2": (
        lambda: sigmoid_model().loss(X, LABELS),
        ValueError,
        r"a sigmoid output expects targets in \[0, 1\]",
    ),
    "sigmoid 2 columns": (
        lambda: sigmoid_model().loss(X, np.zeros((6, 2))),
        ValueError,
        r"y has 2 columns; the model has 1 outputs",
    ),
    "identity 1-D for 2 outputs": (
        lambda: identity_model().loss(X, np.zeros(6)),
        ValueError,
        r"the model has 2 outputs, expected \(6, 2\)",
    ),
    "identity inf": (lambda: identity_model().loss(X, np.full((6, 2), np.inf)), ValueError, r"y contains infinity"),
    "unknown activation": (
        lambda: ab.MLP([4, 3], activation="gelu"),
        ValueError,
        r"unknown activation 'gelu'; accepted values: identity, sigmoid, tanh, relu, leaky_relu",
    ),
    "softmax hidden": (
        lambda: ab.MLP([4, 5, 3], activation="softmax"),
        ValueError,
        r"activation 'softmax' is not allowed here",
    ),
    "activation count": (
        lambda: ab.MLP([4, 5, 3], activation=["relu", "tanh"]),
        ValueError,
        r"activation lists 2 values but the model has 1 hidden",
    ),
    "unknown output": (
        lambda: ab.MLP([4, 3], output="relu"),
        ValueError,
        r"activation 'relu' is not allowed here; accepted values: softmax, sigmoid, identity",
    ),
    "unknown loss": (
        lambda: ab.MLP([4, 3], loss="hinge"),
        ValueError,
        r"unknown loss 'hinge'; accepted values: mse, binary_cross_entropy, cross_entropy",
    ),
    "unpaired loss": (
        lambda: ab.MLP([4, 3], output="softmax", loss="binary_cross_entropy"),
        ValueError,
        r"needs output 'sigmoid', got output 'softmax'",
    ),
    "layer sizes": (lambda: ab.MLP([4]), ValueError, r"layer_sizes must list at least 2 positive ints"),
    "layer size 0": (lambda: ab.MLP([4, 0, 2]), ValueError, r"layer_sizes must list"),
    "init": (
        lambda: ab.MLP([4, 3], init="zeros"),
        ValueError,
        r"unknown init 'zeros'; accepted values: auto, he, glorot",
    ),
    "dtype": (lambda: ab.MLP([4, 3], dtype="float16"), ValueError, r"dtype must be one of \('float32', 'float64'\)"),
    "seed": (lambda: ab.MLP([4, 3], seed=-1), ValueError, r"seed must be a non-negative int"),
    "leaky slope": (
        lambda: ab.MLP([4, 5, 3], activation={"name": "leaky_relu", "slope": 2}),
        ValueError,
        r"slope must be a number in \[0, 1\)",
    ),
    "backend name": (
        lambda: ab.set_backend("tensorflow"),
        ValueError,
        r"backend='tensorflow' is not a backend; accepted values: numpy, array_api_strict, cupy, torch, jax, auto",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_a_clear_error(backend, case):
    call, exception, pattern = CASES[case]
    with pytest.raises(exception, match=pattern):
        call()


def test_another_array_library_is_a_type_error_naming_both():
    import array_api_strict

    with ab.use_backend("numpy"):
        model = softmax_model()
        with pytest.raises(TypeError, match=r"X is a array_api_strict array but the current backend is 'numpy'"):
            model.forward(array_api_strict.asarray(X))


def test_another_device_is_a_value_error_naming_both():
    import array_api_strict

    with ab.use_backend("array_api_strict"):
        model = softmax_model()
        elsewhere = array_api_strict.asarray(X, device=array_api_strict.Device("device1"))
        with pytest.raises(
            ValueError, match=re.escape("is on device array_api_strict.Device('device1')") + ".*uses device"
        ):
            model.forward(elsewhere)


def test_a_model_on_a_non_default_device_keeps_its_arrays_there():
    with ab.use_backend("array_api_strict", device="device1") as backend:
        model = softmax_model()
        out = model.forward(X)
        assert out.device == backend.device
        _, grads = model.loss_and_grads(X, LABELS)
        assert all(g.device == backend.device for g in grads.values())
