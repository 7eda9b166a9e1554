"""The worked examples of the five notes in shared/seeds, each against the batched row-major
gradients of anybackprop. The reference numbers are computed here, independently, from the
notes' own per-sample or closed-form formulas."""

import math

import numpy as np
from conftest import assert_close

import anybackprop as ab
from anybackprop import activations


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_note_002_two_two_one_sigmoid_scalar_partials(backend):
    """Note 002: z0 = w0 x0 + w1 x1 + b0, z1 = w2 x0 + w3 x1 + b1, z2 = w4 a0 + w5 a1 + b2,
    all sigmoid, L = 1/2 (a2 - y)^2; every partial derivative written out by hand."""
    w = [0.15, -0.2, 0.25, 0.3, -0.4, 0.45]
    b = [0.35, -0.1, 0.6]
    x0, x1, y = 0.05, 0.1, 0.01
    a0 = sig(w[0] * x0 + w[1] * x1 + b[0])
    a1 = sig(w[2] * x0 + w[3] * x1 + b[1])
    a2 = sig(w[4] * a0 + w[5] * a1 + b[2])
    d2 = (a2 - y) * a2 * (1 - a2)
    d0 = d2 * w[4] * a0 * (1 - a0)
    d1 = d2 * w[5] * a1 * (1 - a1)
    expected = {
        "W1": [[d0 * x0, d1 * x0], [d0 * x1, d1 * x1]],  # column j feeds unit j: [w0, w1] and [w2, w3]
        "b1": [d0, d1],
        "W2": [[d2 * a0], [d2 * a1]],
        "b2": [d2],
    }
    model = ab.MLP([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse", dtype="float64")
    model.set_params(
        {
            "W1": np.array([[w[0], w[2]], [w[1], w[3]]]),
            "b1": np.array(b[:2]),
            "W2": np.array([[w[4]], [w[5]]]),
            "b2": np.array(b[2:]),
        }
    )
    loss, grads = model.loss_and_grads(np.array([[x0, x1]]), np.array([y]))
    assert math.isclose(loss, 0.5 * (a2 - y) ** 2, rel_tol=1e-14)
    for key, value in expected.items():
        assert_close(grads[key], np.array(value))


def test_note_003_two_three_one_sigmoid_mse_over_N(backend, rng):
    """Note 003: 2-3-1 sigmoid network, J = 1/(2N) sum_p (t_p - z_p)^2, backprop per example
    (storing z and a in the forward pass) and averaged over the N examples."""
    W1, b1 = rng.standard_normal((2, 3)), rng.standard_normal(3)
    W2, b2 = rng.standard_normal((3, 1)), rng.standard_normal(1)
    X, T = rng.standard_normal((5, 2)), rng.uniform(0, 1, 5)
    N = len(X)
    gW1, gb1, gW2, gb2 = np.zeros((2, 3)), np.zeros(3), np.zeros((3, 1)), np.zeros(1)
    J = 0.0
    for x, t in zip(X, T, strict=True):
        h = [sig(sum(x[i] * W1[i, j] for i in range(2)) + b1[j]) for j in range(3)]
        z = sig(sum(h[j] * W2[j, 0] for j in range(3)) + b2[0])
        J += (t - z) ** 2 / (2 * N)
        dz = -(t - z) * z * (1 - z) / N
        gb2[0] += dz
        for j in range(3):
            gW2[j, 0] += dz * h[j]
            dh = dz * W2[j, 0] * h[j] * (1 - h[j])
            gb1[j] += dh
            for i in range(2):
                gW1[i, j] += dh * x[i]
    model = ab.MLP([2, 3, 1], activation="sigmoid", output="sigmoid", loss="mse", dtype="float64")
    model.set_params({"W1": W1, "b1": b1, "W2": W2, "b2": b2})
    loss, grads = model.loss_and_grads(X, T)
    assert math.isclose(loss, J, rel_tol=1e-13)
    for key, value in {"W1": gW1, "b1": gb1, "W2": gW2, "b2": gb2}.items():
        assert_close(grads[key], value, rtol=1e-11, atol=1e-15)


def test_note_001_per_sample_column_formulas_equal_batched_rows(backend, rng):
    """Note 001: one sample as a column, tanh hidden, softmax + cross-entropy:
    delta1 = y_hat - y, delta2 = (1 - tanh^2(z1)) * (W2^T delta1), dW2 = delta1 a1^T,
    dW1 = delta2 x^T; their mean over the batch equals the row-major batched gradients."""
    p, n_hidden, C, m = 4, 5, 3, 6
    model = ab.MLP([p, n_hidden, C], activation="tanh", output="softmax", seed=2, dtype="float64")
    X, labels = rng.standard_normal((m, p)), rng.integers(0, C, m)
    W1c, W2c = ab.to_numpy(model.params["W1"]).T, ab.to_numpy(model.params["W2"]).T  # (N, p), (C, N)
    b1, b2 = ab.to_numpy(model.params["b1"]), ab.to_numpy(model.params["b2"])
    sums = {"W1": 0, "b1": 0, "W2": 0, "b2": 0}
    for x, label in zip(X, labels, strict=True):
        x = x[:, None]
        z1 = W1c @ x + b1[:, None]
        a1 = np.tanh(z1)
        z2 = W2c @ a1 + b2[:, None]
        y_hat = np.exp(z2) / np.exp(z2).sum()
        delta1 = y_hat - np.eye(C)[:, [label]]
        delta2 = (1 - np.tanh(z1) ** 2) * (W2c.T @ delta1)
        sums["W2"] = sums["W2"] + delta1 @ a1.T
        sums["b2"] = sums["b2"] + delta1[:, 0]
        sums["W1"] = sums["W1"] + delta2 @ x.T
        sums["b1"] = sums["b1"] + delta2[:, 0]
    _, grads = model.loss_and_grads(X, labels)
    assert_close(grads["W1"], (sums["W1"] / m).T, rtol=1e-12, atol=1e-15)
    assert_close(grads["W2"], (sums["W2"] / m).T, rtol=1e-12, atol=1e-15)
    assert_close(grads["b1"], sums["b1"] / m, rtol=1e-12, atol=1e-15)
    assert_close(grads["b2"], sums["b2"] / m, rtol=1e-12, atol=1e-15)


def test_note_000_closed_form_first_layer_gradient(backend, rng):
    """Note 000: rows are samples, tanh hidden, sigmoid output, binary cross-entropy averaged
    over m: dZ2 = A2 - Y and dW1 = (1/m) X^T (g1'(Z1) * (dZ2 W2^T))."""
    m = 7
    model = ab.MLP([2, 4, 1], activation="tanh", output="sigmoid", seed=5, dtype="float64")
    X, Y = rng.standard_normal((m, 2)), rng.integers(0, 2, (m, 1)).astype(float)
    W1, b1 = ab.to_numpy(model.params["W1"]), ab.to_numpy(model.params["b1"])
    W2, b2 = ab.to_numpy(model.params["W2"]), ab.to_numpy(model.params["b2"])
    Z1 = X @ W1 + b1
    A2 = 1 / (1 + np.exp(-(np.tanh(Z1) @ W2 + b2)))
    dZ2 = A2 - Y
    dW1 = X.T @ ((1 - np.tanh(Z1) ** 2) * (dZ2 @ W2.T)) / m
    dW2 = np.tanh(Z1).T @ dZ2 / m
    _, grads = model.loss_and_grads(X, Y)
    assert_close(grads["W1"], dW1, rtol=1e-12, atol=1e-15)
    assert_close(grads["W2"], dW2, rtol=1e-12, atol=1e-15)


def test_note_004_softmax_jacobian_eq39_against_finite_differences(backend, rng):
    """Note 004, eq. 39: do_i/dz_j = o_i (delta_ij - o_j); softmax_backward applies it to dA."""
    xp, eps = backend.xp, 1e-6
    z = rng.standard_normal(5)
    with backend.activate():  # formulas run on the backend's device, as inside fit

        def softmax(v):
            return ab.to_numpy(activations.softmax(xp, ab.asarray(v[None, :], "float64")))[0]

        o = softmax(z)
        jacobian = np.diag(o) - np.outer(o, o)
        numeric = np.empty((5, 5))
        for j in range(5):
            step = np.zeros(5)
            step[j] = eps
            numeric[:, j] = (softmax(z + step) - softmax(z - step)) / (2 * eps)
        np.testing.assert_allclose(jacobian, numeric, atol=1e-9)
        dA = rng.standard_normal(5)
        a = ab.asarray(o[None, :], "float64")
        dZ = activations.softmax_backward(xp, None, a, ab.asarray(dA[None, :], "float64"))
        assert_close(dZ[0, :], dA @ jacobian, rtol=1e-12, atol=1e-15)


def test_note_004_fused_output_delta_is_A_minus_Y_over_m(backend, rng):
    """Theorem 6.1: for the three paired outputs, dZ_L = (A_L - Y) / m, so db_L = mean(A - Y)."""
    X = rng.standard_normal((8, 3))
    for output, Y, n_out in [
        ("softmax", np.eye(4)[rng.integers(0, 4, 8)], 4),
        ("sigmoid", rng.integers(0, 2, (8, 2)).astype(float), 2),
        ("identity", rng.standard_normal((8, 2)), 2),
    ]:
        model = ab.MLP([3, 5, n_out], activation="relu", output=output, seed=4, dtype="float64")
        _, grads = model.loss_and_grads(X, Y)
        A = ab.to_numpy(model.forward(X))
        assert_close(grads["b2"], (A - Y).mean(axis=0), rtol=1e-12, atol=1e-16)
