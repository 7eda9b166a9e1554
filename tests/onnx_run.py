"""Running an exported ONNX graph in the tests: onnxruntime on the CPU, or a skip where onnx or
onnxruntime is not installed (or has no wheel for this Python)."""

import os

import numpy as np
import pytest


def onnx_and_runtime():
    """onnx and onnxruntime, or a skip where onnxruntime has no wheel for this Python."""
    return pytest.importorskip("onnx"), pytest.importorskip("onnxruntime")


def run_onnx(path, X):
    """The graph's outputs by name for the input ``X``, cast to the graph's input dtype."""
    _, ort = onnx_and_runtime()
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    dtype = np.float64 if session.get_inputs()[0].type == "tensor(double)" else np.float32
    return dict(zip(names, session.run(None, {"input": np.asarray(X, dtype=dtype)}), strict=True))
