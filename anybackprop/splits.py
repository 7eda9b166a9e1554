"""Splitting rows on the host: :func:`train_test_split`, shared by :mod:`anybackprop.datasets` (the
test split) and :class:`~anybackprop.tables.TabularModel` (the validation split it holds out)."""

from __future__ import annotations

import numpy as np


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_size: float = 0.2, seed: int | None = 0, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X_train, X_test, y_train, y_test``; with ``stratify`` each class keeps its share in both
    parts (for class labels: integer, bool or string ``y``; a float target, a regression, is split
    without strata). A split that would leave a part empty is an error."""
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}; expected one label per row")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    rng = np.random.default_rng(seed)
    if stratify and y.dtype.kind in "iubUSO":
        groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    else:
        groups = [np.arange(len(y))]
    test = np.concatenate([rng.permutation(g)[: round(len(g) * test_size)] for g in groups])
    if not 0 < len(test) < len(y):
        part = "test" if len(test) == 0 else "training"
        raise ValueError(
            f"test_size={test_size!r} of {len(y)} rows leaves the {part} part empty; use more rows or another test_size"
        )
    mask = np.zeros(len(y), dtype=bool)
    mask[test] = True
    train_idx, test_idx = rng.permutation(np.flatnonzero(~mask)), rng.permutation(np.flatnonzero(mask))
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]
