"""Note 001: one hidden tanh layer, softmax output, categorical cross-entropy; one sample as a
column vector: delta1 = y_hat - y, delta2 = (1 - tanh^2(z1)) * (W2^T delta1), dW2 = delta1 a1^T,
dW1 = delta2 x^T.

It shows that the mean of the per-sample column formulas equals the batched row-major gradient
the library computes, then trains the network on three-class spirals.

    python examples/note001_tanh_softmax.py [--epochs 200]
"""

import argparse

import numpy as np

import anybackprop as ab


def three_spirals(n_per_class: int = 100, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.2, 1, n_per_class)
    X = np.concatenate([np.c_[t * np.sin(4 * t + 2.1 * k), t * np.cos(4 * t + 2.1 * k)] for k in range(3)])
    return X + rng.standard_normal(X.shape) * 0.03, np.repeat(np.arange(3), n_per_class)


def main(epochs: int = 200) -> float:
    X, y = three_spirals()
    model = ab.MLP([2, 32, 3], activation="tanh", output="softmax", seed=0, dtype="float64")
    W1, b1 = ab.to_numpy(model.params["W1"]).T, ab.to_numpy(model.params["b1"])[:, None]
    W2, b2 = ab.to_numpy(model.params["W2"]).T, ab.to_numpy(model.params["b2"])[:, None]
    dW1 = np.zeros_like(W1)
    for x, label in zip(X, y, strict=True):
        x = x[:, None]
        z1 = W1 @ x + b1
        z2 = W2 @ np.tanh(z1) + b2
        y_hat = np.exp(z2 - z2.max()) / np.exp(z2 - z2.max()).sum()
        delta1 = y_hat - np.eye(3)[:, [label]]
        delta2 = (1 - np.tanh(z1) ** 2) * (W2.T @ delta1)
        dW1 += delta2 @ x.T / len(X)
    _, grads = model.loss_and_grads(X, y)
    print(
        "per-sample column formulas vs batched rows: max |dW1 difference| "
        f"{np.abs(dW1.T - ab.to_numpy(grads['W1'])).max():.2e}"
    )

    model.fit(X, y, epochs=epochs, batch_size=16, optimizer="adam", lr=0.01, verbose=False)
    accuracy = model.score(X, y)
    print(f"three spirals: training accuracy {accuracy:.3f} after {epochs} epochs on {model.backend.name}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    main(parser.parse_args().epochs)
