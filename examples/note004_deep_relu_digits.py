"""Note 004: a deep relu network with a softmax output (Theorem 5.4 backward, Theorem 6.1 output
delta dZ = (A - Y) / m) on the handwritten digits; then the note's linear regression (identity
output + mean squared error) recovering known coefficients.

    python examples/note004_deep_relu_digits.py [--epochs 30]
"""

import argparse

import numpy as np

import anybackprop as ab
from anybackprop import datasets


def digits(epochs: int) -> float:
    X, y = datasets.digits()
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, 0.2, seed=0)
    X_train, X_test = datasets.standardize(X_train, X_test)
    model = ab.MLP([64, 128, 64, 32, 10], activation="relu", output="softmax", seed=0)
    error = ab.gradcheck(model, X_train[:16], y_train[:16], mode="directional")
    print(f"relu gradients against a central difference along a random direction (float64): relative error {error:.1e}")
    model.fit(
        X_train, y_train, epochs=epochs, batch_size=64, optimizer="adam", lr=3e-3, weight_decay=1e-3, verbose=False
    )
    accuracy = model.score(X_test, y_test)
    print(
        f"digits, 64-128-64-32-10 relu + softmax: test accuracy {accuracy:.3f} after {epochs} epochs on "
        f"{model.backend.name}"
    )
    return accuracy


def linear_regression(epochs: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (500, 3))
    y = X @ np.array([2.0, -1.0, 0.5]) + 3.0 + rng.standard_normal(500) * 0.01
    model = ab.MLP([3, 1], activation=[], output="identity", seed=0)
    model.fit(X, y, epochs=epochs, batch_size=50, optimizer="sgd", lr=0.2, verbose=False)
    W, b = ab.to_numpy(model.params["W1"])[:, 0], ab.to_numpy(model.params["b1"])
    print(
        f"linear regression y = 2 x0 - x1 + 0.5 x2 + 3: learned W = {np.round(W, 3)}, b = {np.round(b, 3)}, R^2 "
        f"= {model.score(X, y):.4f}"
    )
    return np.r_[W, b]


def main(epochs: int = 30) -> float:
    linear_regression(max(epochs, 20))
    return digits(epochs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    main(parser.parse_args().epochs)
