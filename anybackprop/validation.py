"""Input checks at the boundary, before any computation.

Every check raises ``ValueError`` (or ``TypeError`` for data of the wrong kind or library) with a
message that names the argument, what was expected and what came. Checks that need values (NaN,
label ranges) cost one device-to-host read per call, never one per batch.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any

from .backend import Backend, host_namespace, wider_host_floats

_RESHAPE_HINT = (
    "Reshape your data either using array.reshape(-1, 1) if your data has a single feature "
    "or array.reshape(1, -1) if it contains a single sample."
)


_SMALL = 4096  # entries: below this a boolean temporary costs less than two reductions' calls


@functools.lru_cache(maxsize=64)
def is_kind(xp: Any, dtype: Any, kind: str) -> bool:
    """``xp.isdtype(dtype, kind)``, asked once per namespace, dtype and kind (NumPy's isdtype
    costs more than the checks of a small batch of labels it guards)."""
    return bool(xp.isdtype(dtype, kind))


def _first_nonfinite(xp: Any, x: Any) -> tuple[int, ...] | None:
    """Index of the first NaN/inf entry of a 1-D or 2-D float array, or None when all are finite.
    A finite maximum and minimum prove every entry finite in two cheap reductions that cannot
    overflow (NaN propagates through both), with no temporary the size of ``x``; a small ``x``
    (a row to predict) is checked in one call; only otherwise are the entries checked one by one."""
    size = math.prod(x.shape)  # torch's .size is a method
    if size == 0:
        return None
    if size <= _SMALL:
        if bool(xp.all(xp.isfinite(x))):
            return None
    elif bool(xp.isfinite(xp.max(x))) and bool(xp.isfinite(xp.min(x))):
        return None
    return _first_true(xp, xp.logical_not(xp.isfinite(x)))


def _first_true(xp: Any, mask: Any) -> tuple[int, ...] | None:
    """Index of the first True of a 1-D or 2-D boolean array, or None."""
    if not bool(xp.any(mask)):
        return None
    if mask.ndim == 1:
        return (int(xp.argmax(xp.astype(mask, xp.int32))),)
    row = int(xp.argmax(xp.astype(xp.any(mask, axis=1), xp.int32)))
    return row, int(xp.argmax(xp.astype(mask[row, :], xp.int32)))


def _place(where: tuple[int, ...] | None) -> str:
    assert where is not None  # the caller found a value to place
    return f"row {where[0]}" + (f", column {where[1]}" if len(where) == 2 else "")


def check_finite(xp: Any, x: Any, name: str) -> None:
    """Raise if ``x`` holds NaN or inf, naming the first place."""
    where = _first_nonfinite(xp, x)
    if where is not None:
        value = float(x[where])
        kind = "NaN" if value != value else "infinity"
        raise ValueError(f"{name} contains {kind} at {_place(where)}; expected finite numbers")


def check_fits(xp: Any, x: Any, dtype: Any, name: str) -> None:
    """Raise if a finite float ``x`` holds a value that would overflow ``dtype`` (1e39 in float32)."""
    limit, kind = float(xp.finfo(dtype).max), "float64" if "64" in str(dtype) else "float32"
    if float(xp.max(x)) <= limit and float(xp.min(x)) >= -limit:
        return
    where = _first_true(xp, xp.abs(x) > limit)
    raise ValueError(
        f"{name} has the value {float(x[where]):g} at {_place(where)}, beyond the largest {kind} ({limit:g}); "
        f"scale the data or use a float64 model"
    )


def to_backend(backend: Backend, X: Any, name: str, dtype: Any = None) -> Any:
    """``X`` on ``backend`` (:meth:`Backend.asarray`). Host float data wider than what it becomes
    on the device is checked (finite, within range) and cast on the host first: float64 for a
    device that holds no float64 (to float32), and wider floats than ``dtype`` for a device off
    the host (half the bytes move)."""
    host = backend.host_float64(X)
    if host is not None:
        X = as_finite(host[0], host[1], host[0].float32, name)
    elif dtype is not None and not backend.adapter.host and wider_host_floats(X, dtype) and X.size > 0:
        xp = host_namespace()
        X = as_finite(xp, X, getattr(xp, "float64" if "64" in str(dtype) else "float32"), name)
    return backend.asarray(X, name=name)


def check_X(backend: Backend, X: Any, n_features: int, dtype: Any, name: str = "X") -> Any:
    """``X`` as a finite ``(m, n_features)`` array of the model's dtype on the backend, m >= 1."""
    if X is None:
        raise ValueError(f"{name} is None; expected an array of shape (m, {n_features})")
    if backend.adapter.ready_rows(X, n_features, dtype, _SMALL):  # a row to predict: the checks below in one
        return X
    x = to_backend(backend, X, name, dtype)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D of shape (m, {n_features}); got {x.ndim}-D shape {tuple(x.shape)}. {_RESHAPE_HINT}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} has 0 samples (shape={tuple(x.shape)}); expected at least 1 row")
    if x.shape[1] != n_features:
        raise ValueError(f"{name} has {x.shape[1]} features, but the model is expecting {n_features} features as input")
    return as_finite(backend.xp, x, dtype, name)


def as_finite(xp: Any, x: Any, dtype: Any, name: str) -> Any:
    """``x`` in the float ``dtype``, after checking that it is finite and fits that dtype."""
    if is_kind(xp, x.dtype, "real floating"):
        check_finite(xp, x, name)
        if x.dtype != dtype:
            check_fits(xp, x, dtype, name)
    return x if x.dtype == dtype else xp.astype(x, dtype)


def check_sample_weight(backend: Backend, sample_weight: Any, m: int, dtype: Any, name: str = "sample_weight") -> Any:
    """Row weights as a finite, non-negative ``(m,)`` array of the model's dtype with a positive sum
    (None stays None: every row weighs the same)."""
    if sample_weight is None:
        return None
    xp = backend.xp
    w = to_backend(backend, sample_weight, name)
    if w.ndim != 1 or w.shape[0] != m:
        raise ValueError(f"{name} has shape {tuple(w.shape)}; expected one weight per row, shape ({m},)")
    w = as_finite(xp, w, dtype, name)
    if bool(xp.any(w < 0)):
        raise ValueError(f"{name} has negative values (the smallest is {float(xp.min(w))}); expected weights >= 0")
    if not float(xp.sum(w)) > 0:
        raise ValueError(f"{name} sums to 0; expected at least one positive weight")
    return w


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (bools rejected)."""
    integral = type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))
    if not integral or value < minimum:  # a plain int takes one test, not the ABC's
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(value: Any, name: str, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 when ``allow_zero``)."""
    kind = type(value)  # a plain float or int takes one test, not the ABC's
    ok = (
        (kind is float or kind is int or (isinstance(value, numbers.Real) and not isinstance(value, bool)))
        and value == value
        and abs(value) != float("inf")
    )
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)
