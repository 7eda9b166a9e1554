"""A model's summary as Keras and Lightning users know it: one line per layer with its kind and
settings, its output shape, its trainable parameters and its saved state values, then the totals
and the head (output activation and loss)."""

from __future__ import annotations

import math
from typing import Any


def _settings(config: dict) -> str:
    """A layer's settings beyond its sizes, as ``key=value``."""
    return ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("n", "n_in", "n_out"))


def model_summary(model: Any) -> str:
    """The text table of a :class:`~anybackprop.network.Sequential` (see the module docstring);
    shapes are per batch of ``m`` rows."""
    rows = [("#", "layer", "output shape", "params", "state")]
    total = state_total = 0
    for i, (layer, params, state) in enumerate(model.layer_arrays()):
        count = sum(math.prod(p.shape) for p in params.values())
        kept = sum(math.prod(s.shape) for s in state.values())
        total, state_total = total + count, state_total + kept
        settings = _settings(layer.config())
        name = f"{layer.kind}({settings})" if settings else layer.kind
        rows.append((str(i), name, f"(m, {layer.n_out})", f"{count:,}", f"{kept:,}"))
    widths = [max(len(r[j]) for r in rows) for j in range(5)]
    lines = [
        "  ".join(
            cell.rjust(w) if j in (0, 3, 4) else cell.ljust(w)
            for j, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    rule = "-" * len(lines[0])
    head = model.head.spec()
    return "\n".join(
        [
            f"{type(model).__name__}: {model.n_features} inputs -> {model.n_outputs} outputs, {model.dtype_name} on "
            f"{model.backend.name}",
            rule,
            lines[0],
            rule,
            *lines[1:],
            rule,
            f"trainable parameters: {total:,}; saved state values: {state_total:,}",
            f"head: output {head['output']}, loss {head['loss']}",
        ]
    )
