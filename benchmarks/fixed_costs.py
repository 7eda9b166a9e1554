"""Fixed costs a serving or small-data user pays per call, against what the same work costs by hand
(``python -m benchmarks --fixed-costs``): the import time, ``predict`` of one row and of 1,000
rows, and one ``fit`` of one epoch on 64 rows x 10 features (batch 64), beside a hand NumPy
forward pass / epoch, PyTorch and onnxruntime (the exported model). Timings interleave the
contestants (best of ``repeats`` rounds of many calls each), so a busy machine slows them alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SIZES = (10, 32, 32, 3)
ROWS = 64


def _best_per_call(functions: dict[str, Callable[[], Any]], calls: int, repeats: int) -> dict[str, float]:
    """Microseconds per call of each function: the best of ``repeats`` rounds, interleaved."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for label, f in functions.items():
            start = time.perf_counter()
            for _ in range(calls):
                f()
            best[label] = min(best[label], (time.perf_counter() - start) / calls * 1e6)
    return best


def import_times(repeats: int = 5) -> dict[str, float]:
    """Milliseconds to import each library in a fresh interpreter, less the interpreter's own start."""
    found = {}
    statements = {"python": "pass", "numpy": "import numpy", "anybackprop": "import anybackprop"}
    for name in ("torch", "onnxruntime", "jax"):
        statements[name] = f"import {name}"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for label, statement in statements.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", statement], env=env, capture_output=True)
            times.append((time.perf_counter() - start) * 1e3)
        if done.returncode == 0:
            found[label] = statistics.median(times)
    base = found.pop("python")
    return {label: ms - base for label, ms in found.items()}


def _hand_forward(W: list, b: list) -> Callable[[np.ndarray], np.ndarray]:
    def forward(x: np.ndarray) -> np.ndarray:
        a = x
        for i in range(len(W)):
            z = a @ W[i] + b[i]
            a = np.maximum(z, 0) if i < len(W) - 1 else z
        return a.argmax(axis=1)

    return forward


def _hand_epoch(W: list, b: list, X: np.ndarray, Y: np.ndarray, rng: np.random.Generator) -> Callable[[], None]:
    """One epoch of the benchmark's hand loop (one batch of all 64 rows: SGD, lr 0.01)."""

    def epoch() -> None:
        order = rng.permutation(len(X))
        acts = [X[order]]
        for i in range(len(W)):
            z = acts[-1] @ W[i] + b[i]
            acts.append(np.maximum(z, 0) if i < len(W) - 1 else z)
        e = np.exp(acts[-1] - acts[-1].max(axis=1, keepdims=True))
        dz = (e / e.sum(axis=1, keepdims=True) - Y[order]) / len(X)
        for i in range(len(W) - 1, -1, -1):
            dw, db = acts[i].T @ dz, dz.sum(axis=0)
            if i:
                dz = (dz @ W[i].T) * (acts[i] > 0)
            W[i] -= 0.01 * dw
            b[i] -= 0.01 * db

    return epoch


def measure(repeats: int = 5, quick: bool = False) -> dict:
    """Every fixed cost in microseconds (import times in milliseconds)."""
    import anybackprop as ab

    calls = 20 if quick else 300
    rng = np.random.default_rng(0)
    X = rng.standard_normal((ROWS, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], ROWS)
    big = rng.standard_normal((1000, SIZES[0])).astype(np.float32)
    model = ab.MLP(list(SIZES), seed=0, backend="numpy")
    W = [ab.to_numpy(model.params[f"W{i}"]).copy() for i in range(1, len(SIZES))]
    b = [ab.to_numpy(model.params[f"b{i}"]).copy() for i in range(1, len(SIZES))]
    hand = _hand_forward(W, b)
    report: dict[str, Any] = {"sizes": SIZES, "rows": ROWS, "predict": {}, "fit": {}}
    for rows, x in (("1 row", X[:1]), ("1000 rows", big)):
        contestants = {"anybackprop[numpy]": lambda x=x: model.predict(x), "numpy by hand": lambda x=x: hand(x)}
        contestants.update(_torch_predict(W, b, x))
        contestants.update(_onnx_predict(model, x))
        report["predict"][rows] = _best_per_call(contestants, calls if rows == "1 row" else calls // 10, repeats)
    fit_model = ab.MLP(list(SIZES), seed=0, backend="numpy")
    Y = np.eye(SIZES[-1], dtype=np.float32)[y]
    report["fit"] = _best_per_call(
        {
            "anybackprop[numpy]": lambda: fit_model.fit(X, y, epochs=1, batch_size=ROWS, lr=0.01, verbose=False),
            "numpy by hand": _hand_epoch([w.copy() for w in W], [v.copy() for v in b], X, Y, rng),
        },
        calls,
        repeats,
    )
    report["import_ms"] = import_times(3 if quick else repeats)
    return report


def _torch_predict(W: list, b: list, x: np.ndarray) -> dict[str, Callable[[], Any]]:
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(1)
    layers: list = []
    for i, (w, v) in enumerate(zip(W, b, strict=True)):
        linear = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w.T.copy()))
            linear.bias.copy_(torch.from_numpy(v))
        layers += [linear, torch.nn.ReLU()] if i < len(W) - 1 else [linear]
    net = torch.nn.Sequential(*layers).eval()

    def predict() -> Any:
        with torch.inference_mode():
            return net(torch.from_numpy(x)).argmax(dim=1).numpy()

    return {"torch (inference_mode)": predict}


def _onnx_predict(model: Any, x: np.ndarray) -> dict[str, Callable[[], Any]]:
    try:
        import onnxruntime
    except ImportError:
        return {}
    import anybackprop as ab

    path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    ab.export_onnx(model, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return {"onnxruntime": lambda: session.run(["label"], {"input": x})[0]}


def table(report: dict) -> str:
    lines = [
        f"### fixed costs: MLP {'-'.join(map(str, report['sizes']))}, float32, numpy backend",
        "",
        "| call | contestant | us per call | x numpy by hand |",
        "|---|---|---:|---:|",
    ]
    for what, rows in [*((f"predict, {k}", v) for k, v in report["predict"].items()), ("fit, 1 epoch", report["fit"])]:
        base = rows["numpy by hand"]
        for label, us in sorted(rows.items(), key=lambda kv: kv[1]):
            lines.append(f"| {what} | {label} | {us:.1f} | {us / base:.2f} |")
    overhead = report["fit"]["anybackprop[numpy]"] - report["fit"]["numpy by hand"]
    lines += [
        "",
        f"fit's per-call overhead over a hand epoch at {report['rows']} rows: {overhead:.0f} us",
        "",
        "| import | ms (less the interpreter's start) |",
        "|---|---:|",
        *(f"| {label} | {ms:.0f} |" for label, ms in report["import_ms"].items()),
    ]
    return "\n".join(lines)
