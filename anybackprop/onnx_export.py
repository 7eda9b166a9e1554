"""ONNX export of a model's inference graph (needs the optional extra ``onnx``).

The graph computes in the model's dtype (float32 or float64: a float64 model with a feature of
large values, a timestamp, would lose it in float32) and takes ``input`` (that dtype,
``(m, n_features)``: the network's input, which for a
:class:`~anybackprop.tables.TabularModel` is the encoded table, numeric columns in training order
and one 0/1 column per category; the column names are in the metadata ``feature_names``) and
runs every layer in inference mode:

* :class:`~anybackprop.layers.Standardize`: ``Sub`` mean, ``Div`` scale;
* :class:`~anybackprop.layers.RobustScale`: ``C = (X - center) / scale``, then
  ``C / Sqrt(1 + (C / k)^2)``;
* :class:`~anybackprop.layers.TargetScale`: ``Mul`` scale, ``Add`` mean (the target's units);
* :class:`~anybackprop.layers.PiecewiseLinear`: ``Unsqueeze`` to ``(m, n, 1)``, ``Sub`` lower
  edges, ``Div`` widths, ``Clip`` to [0, 1], ``Reshape`` to ``(m, n T)`` (with ``features``:
  ``Gather`` those inputs first, and ``Concat`` the others, gathered, after them);
* :class:`~anybackprop.layers.Dense`: ``Gemm`` (``X W + b``) and its activation;
* activations: ``Relu``, ``Tanh``, ``Sigmoid``, ``Exp`` (Poisson), identity (no node), leaky relu as the model
  computes it, ``Where(x > 0, x, slope * x)`` with the slope in the model's dtype (``LeakyRelu``'s
  ``alpha`` is a float32 attribute, which would round a float64 model's slope);
* :class:`~anybackprop.layers.Dropout`: nothing (inference);
* :class:`~anybackprop.layers.BatchNorm`: ``BatchNormalization`` with the running averages;
* :class:`~anybackprop.layers.LayerNorm`: ``LayerNormalization`` over the features.

A :class:`~anybackprop.tables.TabularModel` with an ensemble of several networks runs each one's
layers on ``input`` and averages their last layers' outputs (``Add``, then ``Div`` by their
number) before the head (:class:`~anybackprop.ensemble.Ensemble`'s rule), all in one graph.

Outputs: a classifier gives ``probabilities`` (as ``predict_proba``: softmax rows, or
``[1 - p, p]`` for one sigmoid output) and ``label`` (int64 index into the metadata ``classes``,
by ``predict``'s rule: the first largest softmax probability, a sigmoid ``p >= 0.5``);
a regressor gives ``prediction`` ``(m, n_outputs)``. Built with ``onnx.helper`` and checked by
``onnx.checker``; opset 17.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ._version import __version__
from .backend import to_numpy
from .files import atomic_open

OPSET = 17
_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "exp": "Exp"}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "ONNX export needs the onnx package, an optional extra: pip install 'anybackprop[onnx]'"
        ) from None
    return onnx


class _Graph:
    """Nodes and initializers (floats in the model's ``dtype``), each new value named ``v{n}``."""

    def __init__(self, onnx: Any, dtype: Any) -> None:
        self.onnx, self.count = onnx, 0
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.dtype = np.dtype(dtype)
        self.elem = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)

    def name(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def const(self, value: Any, dtype: Any = None) -> str:
        name = self.name()
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        output = output or self.name()
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], **attrs))
        return output

    def activation(self, spec: Any, x: str) -> str:
        name = spec.name
        if name == "identity":
            return x
        if name == "softmax":
            return self.op("Softmax", [x], axis=1)
        if name == "leaky_relu":
            positive = self.op("Greater", [x, self.const(0.0)])
            return self.op("Where", [positive, x, self.op("Mul", [x, self.const(spec.slope)])])
        if name not in _ACTIVATIONS:
            raise ValueError(f"activation {name!r} has no ONNX export")
        return self.op(_ACTIVATIONS[name], [x])


def _layer(g: _Graph, layer: Any, params: dict, state: dict, x: str) -> str:
    kind = layer.kind
    if kind == "standardize":
        return g.op("Div", [g.op("Sub", [x, g.const(state["mean"])]), g.const(state["scale"])])
    if kind == "robust_scale":
        c = g.op("Div", [g.op("Sub", [x, g.const(state["center"])]), g.const(state["scale"])])
        d = g.op("Div", [c, g.const(layer.clip)])
        return g.op("Div", [c, g.op("Sqrt", [g.op("Add", [g.op("Mul", [d, d]), g.const(1.0)])])])
    if kind == "piecewise_linear":
        features = layer.features
        e = x if features is None else g.op("Gather", [x, g.const(list(features), np.int64)], axis=1)
        u = g.op("Unsqueeze", [e, g.const([2], np.int64)])
        u = g.op("Div", [g.op("Sub", [u, g.const(state["lower"])]), g.const(state["width"])])
        clipped = g.op("Clip", [u, g.const(0.0), g.const(1.0)])
        y = g.op("Reshape", [clipped, g.const([-1, layer.n_encoded * layer.bins], np.int64)])
        if features is None:
            return y
        return g.op("Concat", [y, g.op("Gather", [x, g.const(list(layer.rest), np.int64)], axis=1)], axis=1)
    if kind == "target_scale":
        return g.op("Add", [g.op("Mul", [x, g.const(state["scale"])]), g.const(state["mean"])])
    if kind in ("dense", "scaled_dense"):
        w = params["W"] if kind == "dense" else (layer.gain * params["p"])[:, None] * params["W"]  # W' = s W
        return g.activation(layer.activation, g.op("Gemm", [x, g.const(w), g.const(params["b"])]))
    if kind == "activation":
        return g.activation(layer.activation, x)
    if kind == "dropout":
        return x
    if kind == "batch_norm":
        from .layers.norm import EPS

        inputs = [
            x,
            g.const(params["gamma"]),
            g.const(params["beta"]),
            g.const(state["running_mean"]),
            g.const(state["running_var"]),
        ]
        return g.op("BatchNormalization", inputs, epsilon=EPS)
    if kind == "layer_norm":
        from .layers.norm import EPS

        return g.op("LayerNormalization", [x, g.const(params["gamma"]), g.const(params["beta"])], axis=-1, epsilon=EPS)
    raise ValueError(f"layer kind {kind!r} ({type(layer).__name__}) has no ONNX export")


def to_onnx(model: Any) -> Any:
    """The ``onnx.ModelProto`` of ``model`` (a network or a fitted TabularModel), checked."""
    onnx = _onnx()
    from .ensemble import Ensemble
    from .network import Sequential
    from .tables import TabularModel

    meta = {"anybackprop_version": __version__}
    network, members = model, [model]
    if isinstance(model, Ensemble):
        network, members = model.members[0], model.members
    if isinstance(model, TabularModel):
        network, members = model._check_fitted(), model.members
        meta.update(feature_names=json.dumps(model.encoder.feature_names), table=json.dumps(model.table_config()))
        if model.classes is not None:
            meta["classes"] = json.dumps(model.classes.tolist())
    if not isinstance(network, Sequential):
        raise TypeError(
            f"export_onnx expects an anybackprop model (MLP, Sequential or TabularModel), got {type(model).__name__}"
        )
    g = _Graph(onnx, network.dtype_name)
    logits = []
    for member in members:
        x = "input"
        for layer, params, state in member.layer_arrays():
            arrays = {k: to_numpy(v) for k, v in params.items()}
            x = _layer(g, layer, arrays, {k: to_numpy(v) for k, v in state.items()}, x)
        logits.append(x)
    x = logits[0]
    for other in logits[1:]:  # the mean as Add and Div (onnxruntime has no float64 Mean)
        x = g.op("Add", [x, other])
    if len(logits) > 1:
        x = g.op("Div", [x, g.const(float(len(logits)))])
    head = network.head
    float_out = onnx.helper.make_tensor_value_info
    if head.is_classifier:
        a = g.activation(head.output, x)
        if head.output.name == "sigmoid" and network.n_outputs == 1:
            proba = g.op("Concat", [g.op("Sub", [g.const(np.ones((1, 1))), a]), a], "probabilities", axis=1)
            n_cols = 2
        else:
            proba = g.op("Identity", [a], "probabilities")
            n_cols = network.n_outputs
        if head.output.name == "sigmoid":  # predict's rule, p >= 0.5 (ArgMax of [1 - p, p] says 0 at a tie)
            labels = g.op("Cast", [g.op("GreaterOrEqual", [a, g.const(0.5)])], to=onnx.TensorProto.INT64)
            if network.n_outputs > 1:
                g.op("Identity", [labels], "label")
                label_shape = ["m", network.n_outputs]
            else:
                g.op("Squeeze", [labels, g.const([1], np.int64)], "label")
                label_shape = ["m"]
        else:
            g.op("ArgMax", [proba], "label", axis=1, keepdims=0)
            label_shape = ["m"]
        outputs = [
            float_out("probabilities", g.elem, ["m", n_cols]),
            float_out("label", onnx.TensorProto.INT64, label_shape),
        ]
    else:
        g.op("Identity", [g.activation(head.output, x)], "prediction")
        outputs = [float_out("prediction", g.elem, ["m", network.n_outputs])]
    graph = onnx.helper.make_graph(
        g.nodes,
        "anybackprop",
        [float_out("input", g.elem, ["m", network.n_features])],
        outputs,
        g.initializers,
    )
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        producer_name="anybackprop",
        producer_version=__version__,
    )
    proto.ir_version = min(proto.ir_version, 8)  # readable by onnxruntime releases of the last years
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: Any, path: str | os.PathLike) -> None:
    """Write ``model``'s inference graph (see the module docstring) to ``path``, atomically."""
    proto = to_onnx(model)
    with atomic_open(path) as f:
        f.write(proto.SerializeToString())
