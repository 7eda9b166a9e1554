"""Splitting rows on the host: :func:`train_test_split` and :func:`split_rows`, shared by
:mod:`anybackprop.datasets` (the test and validation splits of ``train``) and
:class:`~anybackprop.tables.TabularModel` (the validation split ``fit`` holds out), which
:mod:`anybackprop.datasets` imports."""

from __future__ import annotations

import numpy as np


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_size: float = 0.2, seed: int | None = 0, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X_train, X_test, y_train, y_test`` with scikit-learn's allocation: ``ceil(test_size * m)``
    test rows; with ``stratify`` (class labels: integer, bool or string ``y``; a float target, a
    regression, is split without strata) each class gets its share of both parts, the remainders
    going to the classes with the largest fractional parts (ties drawn at random), and a class of
    one row, or fewer rows in a part than classes, is an error as in ``StratifiedShuffleSplit``."""
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}; expected one label per row")
    train, test = split_rows(y if stratify and y.dtype.kind in "iubUSO" else None, len(y), test_size, seed)
    return X[train], X[test], y[train], y[test]


def split_rows(
    strata: np.ndarray | None, m: int, test_size: float, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices of ``m`` rows, each part shuffled: ``ceil(test_size * m)``
    test rows, allocated per class of ``strata`` (any labels; None: no strata) as
    :func:`train_test_split` describes."""
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    n_test = int(np.ceil(test_size * m))
    n_train = m - n_test
    if n_train < 1 or n_test < 1:
        part = "test" if n_test < 1 else "training"
        raise ValueError(
            f"test_size={test_size!r} of {m} rows leaves the {part} part empty; use more rows or another test_size"
        )
    rng = np.random.default_rng(seed)
    if strata is None:
        order = rng.permutation(m)
        return rng.permutation(order[n_test:]), rng.permutation(order[:n_test])
    strata = np.asarray(strata)
    labels, index = np.unique(strata.astype(str) if strata.dtype == object else strata, return_inverse=True)
    counts = np.bincount(index.reshape(-1), minlength=len(labels))
    if counts.min() < 2:
        raise ValueError(
            f"class {labels[int(np.argmin(counts))].item()!r} has a single row; a stratified split needs at least 2 "
            "rows of every class (drop it, or gather more rows)"
        )
    for part, size in (("training", n_train), ("test", n_test)):
        if size < len(labels):
            raise ValueError(
                f"test_size={test_size!r} of {m} rows gives {size} {part} rows for {len(labels)} classes; a "
                f"stratified split needs at least one row of each class in each part"
            )
    train_counts = _apportion(counts, n_train, rng)
    test_counts = _apportion(counts - train_counts, n_test, rng)
    train, test = [], []
    for k in range(len(labels)):
        rows = rng.permutation(np.flatnonzero(index == k))
        train.append(rows[: train_counts[k]])
        test.append(rows[train_counts[k] : train_counts[k] + test_counts[k]])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _apportion(counts: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """``total`` draws shared among classes of ``counts`` rows in proportion: each class gets the
    floor of its share, and the rest go one each to the largest fractional parts, a tie settled
    at random (the allocation scikit-learn's stratified splits use)."""
    share = counts * total / counts.sum()
    out = np.floor(share).astype(np.int64)
    left = total - int(out.sum())
    fraction = share - out
    for value in np.unique(fraction)[::-1]:
        if left <= 0:
            break
        tied = np.flatnonzero(fraction == value)
        chosen = rng.choice(tied, min(left, len(tied)), replace=False)
        out[chosen] += 1
        left -= len(chosen)
    return out
