"""Input checks at the boundary, before any computation.

Every check raises ``ValueError`` (or ``TypeError`` for data of the wrong kind or library) with a
message that names the argument, what was expected and what came. Checks that need values (NaN,
label ranges) cost one device-to-host read per call, never one per batch.
"""

from __future__ import annotations

import numbers
from typing import Any

from .backend import Backend

_RESHAPE_HINT = (
    "Reshape your data either using array.reshape(-1, 1) if your data has a single feature "
    "or array.reshape(1, -1) if it contains a single sample."
)


def _first_nonfinite(xp: Any, x: Any) -> tuple[int, ...] | None:
    """Index of the first NaN/inf entry of a 1-D or 2-D float array, or None when all are finite.
    A finite sum proves every entry finite in one cheap reduction; only otherwise (a NaN, an
    infinity, or finite values whose sum overflows) are the entries checked one by one."""
    if bool(xp.isfinite(xp.sum(x))):
        return None
    bad = xp.logical_not(xp.isfinite(x))
    if not bool(xp.any(bad)):
        return None
    if x.ndim == 1:
        return (int(xp.argmax(xp.astype(bad, xp.int32))),)
    row = int(xp.argmax(xp.astype(xp.any(bad, axis=1), xp.int32)))
    return row, int(xp.argmax(xp.astype(bad[row, :], xp.int32)))


def check_finite(xp: Any, x: Any, name: str) -> None:
    """Raise if ``x`` holds NaN or inf, naming the first place."""
    where = _first_nonfinite(xp, x)
    if where is not None:
        value = float(x[where])
        kind = "NaN" if value != value else "infinity"
        place = f"row {where[0]}" + (f", column {where[1]}" if len(where) == 2 else "")
        raise ValueError(f"{name} contains {kind} at {place}; expected finite numbers")


def check_X(backend: Backend, X: Any, n_features: int, dtype: Any, name: str = "X") -> Any:
    """``X`` as a finite ``(m, n_features)`` array of the model's dtype on the backend, m >= 1."""
    if X is None:
        raise ValueError(f"{name} is None; expected an array of shape (m, {n_features})")
    x = backend.asarray(X, name=name)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D of shape (m, {n_features}); got {x.ndim}-D shape {tuple(x.shape)}. {_RESHAPE_HINT}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} has 0 samples (shape={tuple(x.shape)}); expected at least 1 row")
    if x.shape[1] != n_features:
        raise ValueError(f"{name} has {x.shape[1]} features, but the model is expecting {n_features} features as input")
    xp = backend.xp
    if x.dtype != dtype:
        x = xp.astype(x, dtype)
    check_finite(xp, x, name)
    return x


def check_targets(backend: Backend, Y: Any, output: str, n_out: int, m: int, dtype: Any, name: str = "y") -> Any:
    """Targets as a dense ``(m, n_out)`` array of the model's dtype.

    softmax: integer labels ``(m,)`` in ``[0, n_out)`` (one-hot encoded here) or one-hot/probability
    rows ``(m, n_out)``; sigmoid: values in [0, 1], ``(m,)`` for one output or ``(m, n_out)``;
    identity: ``(m,)`` for one output or ``(m, n_out)``.
    """
    if Y is None:
        raise ValueError(f"{name} is None; this model requires targets of {m} rows")
    xp = backend.xp
    y = backend.asarray(Y, name=name)
    if y.ndim not in (1, 2) or y.shape[0] != m:
        raise ValueError(
            f"{name} has shape {tuple(y.shape)} but X has {m} rows; expected one target per row, "
            f"of shape ({m},) or ({m}, {n_out})"
        )
    if output == "softmax" and y.ndim == 1:
        return _one_hot_labels(backend, y, n_out, dtype, name)
    if y.ndim == 1:
        if n_out != 1:
            raise ValueError(f"{name} has shape {tuple(y.shape)}; the model has {n_out} outputs, expected ({m}, {n_out})")
        y = xp.reshape(y, (m, 1))
    elif y.shape[1] != n_out:
        raise ValueError(f"{name} has {y.shape[1]} columns; the model has {n_out} outputs, expected shape ({m}, {n_out})")
    y = xp.astype(y, dtype)
    check_finite(xp, y, name)
    if output in ("softmax", "sigmoid"):
        low, high = float(xp.min(y)), float(xp.max(y))
        if low < 0 or high > 1:
            raise ValueError(f"{name} has values in [{low}, {high}]; a {output} output expects targets in [0, 1]")
    if output == "softmax":
        error = float(xp.max(xp.abs(xp.sum(y, axis=1) - 1.0)))
        if error > 1e-3:
            raise ValueError(f"{name} rows must be one-hot or probabilities summing to 1; a row sums to 1 {error:+.3g} off")
    return y


def _one_hot_labels(backend: Backend, y: Any, n_classes: int, dtype: Any, name: str) -> Any:
    """One-hot rows from integer class labels, after checking every label is in range.

    The range is checked explicitly: CuPy wraps out-of-range indices around instead of raising.
    """
    xp = backend.xp
    if xp.isdtype(y.dtype, "real floating"):
        check_finite(xp, y, name)
        if not bool(xp.all(y == xp.round(y))):
            raise ValueError(f"{name} holds non-integer values; a softmax output expects integer class labels")
        y = xp.astype(y, xp.int64)
    elif not xp.isdtype(y.dtype, "integral"):
        raise ValueError(f"{name} has dtype {y.dtype}; a softmax output expects integer class labels")
    low, high = int(xp.min(y)), int(xp.max(y))
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"{name} has labels in [{low}, {high}]; the softmax output has {n_classes} classes, "
            f"expected integers in [0, {n_classes - 1}]"
        )
    classes = xp.arange(n_classes, dtype=y.dtype, device=backend.device)
    return xp.astype(xp.expand_dims(y, axis=1) == classes, dtype)


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(value: Any, name: str, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 when ``allow_zero``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value and abs(value) != float("inf")
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)
