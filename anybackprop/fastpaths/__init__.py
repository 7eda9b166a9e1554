"""The fast-path registry: a backend's faster stand-ins for portable formulas, above the formulas.

Every formula in :mod:`anybackprop.activations`, :mod:`anybackprop.losses`,
:mod:`anybackprop.updates`, :mod:`anybackprop.layers` and ``backend.gather_rows`` is the
reference. A backend may register a :class:`FastPath` for one of them: a function with the same
signature and result (bit for bit on NumPy) that allocates less or launches fewer kernels.
``tests/test_fast_paths.py`` checks every registered path against its formula.

A fast path that writes into one of its arguments says which (``overwrites``, the index of the
argument after ``xp``). The caller decides whether it owns that argument:
``paths.get(formula, may_overwrite=True)`` returns such a path only then, and the formula
otherwise, so nothing ever overwrites an array still needed (a cache, the epoch's logits).

This package imports only the formulas and the backend; the model binds a backend's table once
(:func:`for_backend`) and its layers look formulas up through it.
"""

from __future__ import annotations

import functools

from ..backend import Backend
from .registry import NONE, FastPath, FastPaths


def for_backend(backend: Backend) -> FastPaths:
    """The fast paths of ``backend``'s library: NumPy's buffer-reusing paths, CuPy's fused
    kernels, none for the other libraries (they run the formulas)."""
    return _table(backend.name)


@functools.cache
def _table(name: str) -> FastPaths:
    """The table of backend ``name``, its module imported once (labels ask for it on every ``fit``)."""
    if name == "numpy":
        from .numpy_paths import PATHS

        return PATHS
    if name == "cupy":
        from .cupy_kernels import paths

        return paths()
    return NONE


__all__ = ["NONE", "FastPath", "FastPaths", "for_backend"]
