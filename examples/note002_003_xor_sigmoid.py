"""Notes 002 and 003: small sigmoid networks with squared error, the output delta through the
general chain rule sigma'(z) (a - y) (not the fused A - Y).

Note 002's 2-2-1 network: every partial derivative written out by hand, printed beside the
library's. Note 003's 2-3-1 network (J = 1/(2N) sum (t - z)^2) learns XOR.

    python examples/note002_003_xor_sigmoid.py [--epochs 2000]
"""

import argparse
import math

import numpy as np

import anybackprop as ab
from anybackprop import datasets


def sig(x):
    return 1 / (1 + math.exp(-x))


def note002_partials() -> float:
    w = [0.15, 0.2, 0.25, 0.3, 0.4, 0.45]
    b = [0.35, 0.35, 0.6]
    x0, x1, y = 0.05, 0.1, 0.01
    a0, a1 = sig(w[0] * x0 + w[1] * x1 + b[0]), sig(w[2] * x0 + w[3] * x1 + b[1])
    a2 = sig(w[4] * a0 + w[5] * a1 + b[2])
    d2 = (a2 - y) * a2 * (1 - a2)
    d0, d1 = d2 * w[4] * a0 * (1 - a0), d2 * w[5] * a1 * (1 - a1)
    by_hand = {
        "w0": d0 * x0,
        "w1": d0 * x1,
        "w2": d1 * x0,
        "w3": d1 * x1,
        "w4": d2 * a0,
        "w5": d2 * a1,
        "b0": d0,
        "b1": d1,
        "b2": d2,
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
    _, g = model.loss_and_grads(np.array([[x0, x1]]), np.array([y]))
    g = {k: ab.to_numpy(v) for k, v in g.items()}
    library = {
        "w0": g["W1"][0, 0],
        "w1": g["W1"][1, 0],
        "w2": g["W1"][0, 1],
        "w3": g["W1"][1, 1],
        "w4": g["W2"][0, 0],
        "w5": g["W2"][1, 0],
        "b0": g["b1"][0],
        "b1": g["b1"][1],
        "b2": g["b2"][0],
    }
    print("note 002, 2-2-1 sigmoid net: dL/dparam by hand vs backprop")
    for name in by_hand:
        print(f"  {name}: {by_hand[name]: .10f}  {library[name]: .10f}")
    return max(abs(by_hand[k] - library[k]) for k in by_hand)


def main(epochs: int = 2000) -> float:
    note002_partials()
    X, y = datasets.xor(4, noise=0.0)
    model = ab.MLP([2, 3, 1], activation="sigmoid", output="sigmoid", loss="mse", seed=3)
    history = model.fit(X, y, epochs=epochs, batch_size=4, optimizer="sgd", lr=2.0, verbose=False)
    outputs = ab.to_numpy(model.forward(X))[:, 0]
    print(f"note 003, 2-3-1 sigmoid net on XOR: J = {history.loss[-1]:.4f} after {epochs} epochs")
    for x, t, z in zip(X, y, outputs, strict=True):
        print(f"  x = {x.astype(int)}  t = {t}  z = {z:.3f}")
    return model.score(X, y)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2000)
    main(parser.parse_args().epochs)
