"""Datasets as NumPy arrays on the host (they enter a backend once, in ``fit``).

Generated, no download: the planar "flower" of note 000's course, XOR, two spirals, moons.
Bundled: the handwritten digits, ``anybackprop/data/digits.csv.gz`` (the UCI "Optical Recognition of
Handwritten Digits" data, CC BY 4.0; see ``anybackprop/data/README.md``), read with NumPy alone.
Helpers: a stratified train/test split, standardisation with train statistics, one-hot.
Your own files: :func:`load_table` (CSV, Parquet, ``.npz``; see :mod:`anybackprop.tables`).
All random draws come from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from importlib import resources

import numpy as np

from .splits import split_rows, train_test_split
from .tablefiles import Table
from .tables import load_table, read_table
from .validation import check_positive_int

__all__ = [
    "DATASETS",
    "digits",
    "flower",
    "load",
    "load_table",
    "moons",
    "one_hot",
    "read_table",
    "spirals",
    "split_rows",
    "split_table",
    "standardize",
    "train_test_split",
    "xor",
]

DATASETS = ("digits", "flower", "xor", "spirals", "moons")


def flower(n: int = 400, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two-class planar "flower": ``n`` points in 2-D on petals ``r = 4 sin(4 t)`` with noise;
    labels 0/1 alternate between petals. Returns ``X (n, 2)``, ``y (n,)`` int."""
    check_positive_int(n, "n", 2)
    rng = np.random.default_rng(seed)
    half = n // 2
    X, y = np.zeros((n, 2)), np.zeros(n, dtype=np.int64)
    for label, (start, stop) in enumerate(((0, half), (half, n))):
        count = stop - start
        t = np.linspace(label * 3.12, (label + 1) * 3.12, count) + rng.standard_normal(count) * 0.2
        r = 4 * np.sin(4 * t) + rng.standard_normal(count) * 0.2
        X[start:stop] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[start:stop] = label
    return X, y


def xor(n: int = 200, noise: float = 0.1, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """The XOR problem: the four corners of the unit square (label ``x0 xor x1``), ``n`` noisy
    copies. Returns ``X (n, 2)``, ``y (n,)`` int."""
    check_positive_int(n, "n", 4)
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, (n, 2))
    corners[:4] = [[0, 0], [0, 1], [1, 0], [1, 1]]
    return corners + rng.standard_normal((n, 2)) * noise, corners[:, 0] ^ corners[:, 1]


def spirals(
    n: int = 400, noise: float = 0.2, turns: float = 1.5, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals, ``n - n // 2`` and ``n // 2`` points (the second arm mirrors the
    first). Returns ``X (n, 2)``, ``y (n,)`` int."""
    check_positive_int(n, "n", 2)
    rng = np.random.default_rng(seed)
    half = n // 2
    t = np.sqrt(rng.uniform(0, 1, n - half)) * turns * 2 * np.pi
    arm = np.c_[t * np.cos(t), t * np.sin(t)]
    X = np.r_[arm, -arm[:half]] + rng.standard_normal((n, 2)) * noise
    y = np.r_[np.zeros(n - half, np.int64), np.ones(half, np.int64)]
    return X, y


def moons(n: int = 400, noise: float = 0.1, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles. Returns ``X (n, 2)``, ``y (n,)`` int."""
    check_positive_int(n, "n", 2)
    rng = np.random.default_rng(seed)
    half = n // 2
    t_out, t_in = np.linspace(0, np.pi, n - half), np.linspace(0, np.pi, half)
    X = np.r_[np.c_[np.cos(t_out), np.sin(t_out)], np.c_[1 - np.cos(t_in), 0.5 - np.sin(t_in)]]
    y = np.r_[np.zeros(n - half, np.int64), np.ones(half, np.int64)]
    return X + rng.standard_normal(X.shape) * noise, y


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 handwritten digits (pixel values 0..16) shipped in the package: the UCI
    "Optical Recognition of Handwritten Digits" data (Alpaydin and Kaynak, 1998), licensed
    CC BY 4.0. Returns ``X (1797, 64)`` float64, ``y (1797,)`` int."""
    with resources.files("anybackprop.data").joinpath("digits.csv.gz").open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def load(name: str, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dataset by name: one of :data:`DATASETS`."""
    if name == "digits":
        return digits()
    makers: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
        "flower": flower,
        "xor": xor,
        "spirals": spirals,
        "moons": moons,
    }
    if not isinstance(name, str) or name not in makers:
        raise ValueError(f"unknown dataset {name!r}; accepted values: {', '.join(DATASETS)}")
    return makers[name](seed=seed)


def split_table(
    columns: dict[str, np.ndarray], y: np.ndarray, test_size: float = 0.2, seed: int | None = 0, stratify: bool = True
) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """``train_columns, test_columns, y_train, y_test``: the rows split as
    :func:`train_test_split` does, stratified by ``y`` as class labels when ``stratify`` (whatever
    their dtype: labels read from a file may be floats). A :class:`~anybackprop.tablefiles.Table`
    stays one, so that errors still name rows by their place in the file."""
    y = np.asarray(y)
    train, test = split_rows(y if stratify else None, len(y), test_size, seed)
    if isinstance(columns, Table):
        return columns.take(train), columns.take(test), y[train], y[test]
    return (
        {k: np.asarray(v)[train] for k, v in columns.items()},
        {k: np.asarray(v)[test] for k, v in columns.items()},
        y[train],
        y[test],
    )


def standardize(X_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(X - mean) / std`` with the train statistics, computed in float64 (constant columns are
    only centred); the results are float64."""
    mean = np.mean(X_train, axis=0, dtype=np.float64)
    std = np.std(X_train, axis=0, dtype=np.float64)
    std[std == 0] = 1.0
    return tuple((X - mean) / std for X in (X_train, *others))


def one_hot(y: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Integer labels ``(m,)`` as one-hot rows ``(m, C)`` (float64).

    >>> one_hot(np.array([0, 2, 1]))
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]])
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"y must be 1-D integer labels, got shape {y.shape} dtype {y.dtype}")
    if n_classes is None:
        if not y.size:
            raise ValueError("y has no labels, so the number of classes is unknown; pass n_classes")
        n_classes = int(y.max()) + 1
    n_classes = check_positive_int(n_classes, "n_classes")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y has labels in [{y.min()}, {y.max()}]; expected integers in [0, {n_classes - 1}]")
    return np.eye(n_classes)[y]
