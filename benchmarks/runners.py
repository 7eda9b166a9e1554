"""The contestants. Each trains ``epochs`` epochs of a workload per ``run(epochs)`` call from the
same initial weights, with plain SGD (lr 0.01, no momentum, no weight decay) and a fresh shuffle
per epoch. ``sync()`` waits for queued device work so that a timing covers the work itself;
``settings()`` is the context every timing runs in (a contestant's process-wide switches)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from .workloads import LR, Workload


class Runner:
    label = "?"
    sync_fn = staticmethod(lambda: None)

    def epoch(self) -> None:
        raise NotImplementedError

    def run(self, epochs: int) -> None:
        for _ in range(epochs):
            self.epoch()

    def sync(self) -> None:
        self.sync_fn()

    def settings(self) -> contextlib.AbstractContextManager:
        """The process-wide settings this contestant is timed with, restored after."""
        return contextlib.nullcontext()


class Anybackprop(Runner):
    """``MLP.fit`` on an anybackprop backend (data already on the backend's device): one call
    per timing, for all its epochs, as a user would call it."""

    def __init__(
        self, workload: Workload, X: np.ndarray, y: np.ndarray, params: dict, backend: str, tf32: bool = False
    ) -> None:
        import anybackprop as ab

        self.backend = ab.backend.create_backend(backend, tf32=tf32)
        self.label = f"anybackprop[{backend}{'+tf32' if tf32 else ''}]"
        self.model = ab.MLP(list(workload.sizes), activation="relu", output="softmax", seed=0, backend=self.backend)
        self.model.set_params(params)
        self.X, self.y = self.backend.asarray(X), self.backend.asarray(y)
        self.batch = workload.batch
        self.seed = 0
        self.sync_fn = self.backend.sync

    def run(self, epochs: int) -> None:
        self.seed += 1
        self.model.fit(
            self.X, self.y, epochs=epochs, batch_size=self.batch, optimizer="sgd", lr=LR, seed=self.seed, verbose=False
        )


def _softmax_delta(xp: Any, z: Any, y_onehot: Any) -> Any:
    e = xp.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True) - y_onehot) / z.shape[0]


class HandLoop(Runner):
    """The floor without abstraction: a hand-written loop in NumPy (or CuPy on the GPU):
    forward, fused softmax delta, backward, ``W -= lr * dW`` in place."""

    def __init__(self, workload: Workload, X: np.ndarray, y: np.ndarray, params: dict, xp: Any = np) -> None:
        self.xp = xp
        self.label = "numpy-loop" if xp is np else "cupy-loop"
        self.W = [xp.asarray(params[f"W{i}"]) for i in range(1, len(workload.sizes))]
        self.b = [xp.asarray(params[f"b{i}"]) for i in range(1, len(workload.sizes))]
        self.X = xp.asarray(X)
        self.Y = xp.asarray(np.eye(workload.sizes[-1], dtype=np.float32)[y])
        self.batch = workload.batch
        self.rng = np.random.default_rng(0)
        if xp is not np:
            self.sync_fn = xp.cuda.get_current_stream().synchronize

    def epoch(self) -> None:
        xp, W, b = self.xp, self.W, self.b
        order = xp.asarray(self.rng.permutation(len(self.X)))
        X, Y = self.X[order], self.Y[order]
        for start in range(0, len(X), self.batch):
            acts = [X[start : start + self.batch]]
            for i in range(len(W)):
                z = acts[-1] @ W[i] + b[i]
                acts.append(xp.maximum(z, 0) if i < len(W) - 1 else z)
            dz = _softmax_delta(xp, acts[-1], Y[start : start + self.batch])
            for i in range(len(W) - 1, -1, -1):
                dw, db = acts[i].T @ dz, dz.sum(axis=0)
                if i:
                    dz = (dz @ W[i].T) * (acts[i] > 0)
                W[i] -= LR * dw
                b[i] -= LR * db


class GemmFloor(Runner):
    """Only the matrix products of an epoch: per step and layer the forward ``A @ W``, ``dW =
    A.T @ dZ`` and ``dA = dZ @ W.T`` (none for the first layer), into preallocated outputs."""

    def __init__(self, workload: Workload, X: np.ndarray, y: np.ndarray, params: dict, xp: Any = np) -> None:
        self.xp = xp
        self.label = "gemm-floor" if xp is np else "gemm-floor[cupy]"
        m, sizes = workload.batch, workload.sizes
        self.steps = workload.steps
        self.W = [xp.asarray(params[f"W{i}"]) for i in range(1, len(sizes))]
        self.A = [
            xp.asarray(np.random.default_rng(i).standard_normal((m, n), dtype=np.float32)) for i, n in enumerate(sizes)
        ]
        self.dW = [xp.empty_like(w) for w in self.W]
        if xp is not np:
            self.sync_fn = xp.cuda.get_current_stream().synchronize

    def epoch(self) -> None:
        xp, A, W, dW = self.xp, self.A, self.W, self.dW
        for _ in range(self.steps):
            for i in range(len(W)):
                xp.matmul(A[i], W[i], out=A[i + 1])
            for i in range(len(W) - 1, -1, -1):
                xp.matmul(A[i].T, A[i + 1], out=dW[i])
                if i:
                    xp.matmul(A[i + 1], W[i].T, out=A[i])


class Sklearn(Runner):
    """scikit-learn's MLPClassifier, solver "sgd", no momentum, no L2; one partial_fit = one epoch."""

    label = "scikit-learn"

    def __init__(self, workload: Workload, X: np.ndarray, y: np.ndarray, params: dict) -> None:
        from sklearn.neural_network import MLPClassifier

        self.X, self.y = X, y
        self.clf = MLPClassifier(
            hidden_layer_sizes=workload.sizes[1:-1],
            activation="relu",
            solver="sgd",
            momentum=0.0,
            alpha=0.0,
            batch_size=workload.batch,
            learning_rate_init=LR,
            shuffle=True,
            random_state=0,
        )
        classes = np.arange(workload.sizes[-1])
        self.clf.partial_fit(X[: workload.batch], y[: workload.batch], classes=classes)
        n = len(workload.sizes) - 1
        self.clf.coefs_ = [params[f"W{i}"].copy() for i in range(1, n + 1)]
        self.clf.intercepts_ = [params[f"b{i}"].copy() for i in range(1, n + 1)]

    def epoch(self) -> None:
        self.clf.partial_fit(self.X, self.y)


class Torch(Runner):
    """PyTorch eager: nn.Linear + ReLU, CrossEntropyLoss, optim.SGD, same initial weights. On
    CUDA, TF32 matrix products are PyTorch's process-wide switch: :meth:`settings` sets it for
    this contestant's timings only (on for ``tf32``, off otherwise) and restores it after."""

    def __init__(
        self, workload: Workload, X: np.ndarray, y: np.ndarray, params: dict, device: str = "cpu", tf32: bool = False
    ) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.label = f"torch[{device}{'+tf32' if tf32 else ''}]"
        self.tf32 = tf32
        if self.device.type == "cuda":
            self.sync_fn = torch.cuda.synchronize
        layers = []
        n = len(workload.sizes) - 1
        for i in range(1, n + 1):
            linear = torch.nn.Linear(*params[f"W{i}"].shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(params[f"W{i}"].T.copy()))
                linear.bias.copy_(torch.from_numpy(params[f"b{i}"]))
            layers += [linear, torch.nn.ReLU()] if i < n else [linear]
        self.net = torch.nn.Sequential(*layers).to(self.device)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=LR)
        self.loss = torch.nn.CrossEntropyLoss()
        self.X = torch.from_numpy(X).to(self.device)
        self.y = torch.from_numpy(y.astype(np.int64)).to(self.device)
        self.batch = workload.batch
        self.rng = np.random.default_rng(0)

    @contextlib.contextmanager
    def settings(self):
        matmul = self.torch.backends.cuda.matmul
        before = matmul.allow_tf32
        matmul.allow_tf32 = self.tf32  # acts on CUDA matrix products only
        try:
            yield
        finally:
            matmul.allow_tf32 = before

    def epoch(self) -> None:
        order = self.torch.from_numpy(self.rng.permutation(len(self.X))).to(self.device)
        X, y = self.X[order], self.y[order]
        for start in range(0, len(X), self.batch):
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.net(X[start : start + self.batch]), y[start : start + self.batch]).backward()
            self.opt.step()


class JaxJit(Runner):
    """The anchor for ``anybackprop[jax]``: the hand loop's step written in ``jax.numpy`` and
    compiled by ``jax.jit``, an epoch as one ``jax.lax.scan`` over its full minibatches (rows
    gathered on the device from a host permutation) plus one jitted step for a short last batch,
    parameters donated to the call that replaces them."""

    label = "jax-jit"

    def __init__(self, workload: Workload, X: np.ndarray, y: np.ndarray, params: dict) -> None:
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        n = len(workload.sizes) - 1
        self.params = (
            [jnp.asarray(params[f"W{i}"]) for i in range(1, n + 1)],
            [jnp.asarray(params[f"b{i}"]) for i in range(1, n + 1)],
        )
        self.X = jnp.asarray(X)
        self.Y = jnp.asarray(np.eye(workload.sizes[-1], dtype=np.float32)[y])
        self.batch = workload.batch
        self.rng = np.random.default_rng(0)

        def step(params, xb, yb):
            W, b = params
            acts = [xb]
            for i in range(n):
                z = acts[-1] @ W[i] + b[i]
                acts.append(jnp.maximum(z, 0) if i < n - 1 else z)
            dz = _softmax_delta(jnp, acts[-1], yb)
            new_W, new_b = list(W), list(b)
            for i in range(n - 1, -1, -1):
                new_W[i], new_b[i] = W[i] - LR * (acts[i].T @ dz), b[i] - LR * dz.sum(axis=0)
                if i:
                    dz = (dz @ W[i].T) * (acts[i] > 0)
            return new_W, new_b

        def epoch(params, X, Y, rows):
            return jax.lax.scan(lambda p, index: (step(p, X[index], Y[index]), None), params, rows)[0]

        self.step = jax.jit(step, donate_argnums=0)
        self.scan = jax.jit(epoch, donate_argnums=0)

    def epoch(self) -> None:
        order = self.rng.permutation(len(self.X))
        full = len(order) - len(order) % self.batch
        if full:
            rows = self.jnp.asarray(order[:full].reshape(-1, self.batch))
            self.params = self.scan(self.params, self.X, self.Y, rows)
        if full < len(order):
            rest = self.jnp.asarray(order[full:])
            self.params = self.step(self.params, self.X[rest], self.Y[rest])

    def sync(self) -> None:
        self.jax.block_until_ready(self.params)
