"""Layers: each one file with its forward and its whole backward (see :mod:`.base` for the
protocol). :data:`LAYERS` maps a layer's ``kind`` to its class, so that a saved model's layer
list (``kind`` + ``config()``) rebuilds it; :func:`register_layer` adds a user's own kind."""

from __future__ import annotations

from typing import Any

from .activation import ActivationLayer
from .base import Layer, LayerBase, Pass
from .dense import INIT_SCHEMES, Dense, affine, bias_grad
from .dropout import Dropout
from .norm import BatchNorm, LayerNorm
from .piecewise_linear import PiecewiseLinear
from .robust_scale import RobustScale
from .scaled_dense import ScaledDense
from .standardize import Standardize
from .target_scale import TargetScale

LAYERS: dict[str, type] = {
    cls.kind: cls
    for cls in (
        Dense,
        ActivationLayer,
        Dropout,
        BatchNorm,
        LayerNorm,
        Standardize,
        RobustScale,
        TargetScale,
        PiecewiseLinear,
        ScaledDense,
    )
}
NORMS = {"batch": BatchNorm, "layer": LayerNorm}
SCALERS = {"standard": Standardize, "robust": RobustScale}
"""Input scalings by name (``MLP(standardize=...)``): True means "standard"."""


def register_layer(cls: type) -> type:
    """Register a layer class under its ``kind`` (usable as a decorator) so models holding it can
    be saved and loaded."""
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"a layer class needs a string attribute 'kind' to be registered, {cls!r} has {kind!r}")
    LAYERS[kind] = cls
    return cls


def layer_from_spec(spec: Any) -> Any:
    """The layer described by ``{"kind": ..., "config": {...}}`` (see :data:`LAYERS`)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"a layer spec is {{'kind': str, 'config': dict}}, got {spec!r}")
    if spec["kind"] not in LAYERS:
        raise ValueError(
            f"unknown layer kind {spec['kind']!r}; known kinds: {', '.join(LAYERS)} (register_layer adds one)"
        )
    return LAYERS[spec["kind"]](**spec["config"])


__all__ = [
    "INIT_SCHEMES",
    "LAYERS",
    "NORMS",
    "SCALERS",
    "ActivationLayer",
    "BatchNorm",
    "Dense",
    "Dropout",
    "Layer",
    "LayerBase",
    "LayerNorm",
    "Pass",
    "PiecewiseLinear",
    "RobustScale",
    "ScaledDense",
    "Standardize",
    "TargetScale",
    "affine",
    "bias_grad",
    "layer_from_spec",
    "register_layer",
]
