"""Note 000 ("Backprop: a simple case"): a 2-layer network on the planar flower, rows are
samples, tanh hidden layer, sigmoid output, binary cross-entropy averaged over m.

It checks the note's closed form dW1 = (1/m) X^T (g1'(Z1) * (dZ2 W2^T)) against the library's
gradient, trains, prints the accuracy and saves the decision boundary as a picture.

    python examples/note000_planar_flower.py [--epochs 300] [--out flower.png]
"""

import argparse

import numpy as np

import anybackprop as ab
from anybackprop import datasets


def main(epochs: int = 300, out: str | None = "flower.png") -> float:
    X, y = datasets.flower(400, seed=1)
    model = ab.MLP([2, 8, 1], activation="tanh", output="sigmoid", seed=1)

    # the note's closed form, in NumPy, against the library's backward pass
    W1, b1, W2, b2 = (ab.to_numpy(model.params[k]).astype(np.float64) for k in ("W1", "b1", "W2", "b2"))
    Z1 = X @ W1 + b1
    A2 = 1 / (1 + np.exp(-(np.tanh(Z1) @ W2 + b2)))
    dZ2 = A2 - y[:, None]
    dW1 = X.T @ ((1 - np.tanh(Z1) ** 2) * (dZ2 @ W2.T)) / len(X)
    _, grads = model.copy(dtype="float64").loss_and_grads(X, y)
    print(f"closed form dW1 vs backprop: max difference {np.abs(dW1 - ab.to_numpy(grads['W1'])).max():.2e}")

    model.fit(X, y, epochs=epochs, batch_size=32, optimizer="adam", lr=0.02, verbose=False)
    accuracy = model.score(X, y)
    print(f"flower: training accuracy {accuracy:.3f} after {epochs} epochs on {model.backend.name}")
    if out:
        try:
            from anybackprop.plotting import plot_decision_boundary

            plot_decision_boundary(model, X, y, path=out)
            print(f"decision boundary saved to {out}")
        except ImportError as exc:
            print(f"no picture: {exc}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--out", default="flower.png")
    args = parser.parse_args()
    main(args.epochs, args.out)
