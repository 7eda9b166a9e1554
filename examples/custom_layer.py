"""Your own layer, in your own script: a PReLU (a relu whose negative slope each unit learns),
forward and backward in one class, array API only, trained with fit, checked with gradcheck,
saved and loaded.

    forward   Y = X            where X > 0,   a * X  elsewhere       a: (n,), one slope per unit
    backward  dX = dY          where X > 0,   a * dY elsewhere
              da = sum over rows of (dY * X where X <= 0)

Run: python examples/custom_layer.py
"""

import os
import sys
import tempfile
from typing import Any, NamedTuple

import anybackprop as ab
from anybackprop import datasets


class PReLUCache(NamedTuple):
    x: Any  # the input: backward needs its sign and, for da, its value


@ab.register_layer  # so that save/load can rebuild models that hold it
class PReLU(ab.LayerBase):
    kind = "prelu"

    def __init__(self, n: int, slope: float = 0.25) -> None:
        self.n_in = self.n_out = n
        self.slope = slope

    def config(self) -> dict:
        return {"n": self.n_in, "slope": self.slope}

    def init_params(self, rng) -> dict:
        return {"a": [self.slope] * self.n_in}  # stored in model.params as "a1", "a2", ...

    def forward(self, ctx, params, state, x):
        return ctx.xp.where(x > 0, x, params["a"] * x), PReLUCache(x)

    def backward(self, ctx, params, cache, dy, need_dx):
        xp, x = ctx.xp, cache.x
        grads = {"a": xp.sum(xp.where(x > 0, 0.0, dy * x), axis=0)}
        return grads, (xp.where(x > 0, dy, params["a"] * dy) if need_dx else None)


def main(epochs: int = 60) -> float:
    X, y = datasets.moons(400, noise=0.15, seed=0)
    # seed 1: the gradcheck's 16 rows keep off the PReLU's kink at 0, where central differences straddle it
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, 0.25, seed=1)
    model = ab.Sequential(
        [ab.Dense(2, 32), PReLU(32), ab.Dense(32, 32), PReLU(32), ab.Dense(32, 1)],
        head="sigmoid",
        seed=0,
    )
    print(model)
    print(
        "gradcheck (float64 central differences): max relative error "
        f"{ab.gradcheck(model, X_train[:16], y_train[:16]):.2e}"
    )
    model.fit(X_train, y_train, epochs=epochs, batch_size=32, optimizer="adam", lr=0.01, verbose=False)
    accuracy = model.score(X_test, y_test)
    print(
        f"test accuracy {accuracy:.3f}; learned slopes of the first PReLU: "
        f"{ab.to_numpy(model.params['a1'])[:4].round(3)} ..."
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "prelu.npz")
        ab.save(model, path)
        assert ab.load(path).score(X_test, y_test) == accuracy
        print("saved and loaded back: same accuracy")
    return accuracy


if __name__ == "__main__":
    sys.exit(0 if main() > 0.9 else 1)
