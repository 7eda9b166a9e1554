"""Your own tables, on the host (NumPy): read a CSV, Parquet or ``.npz`` file, encode its columns,
and a :class:`TabularModel` that carries that encoding, its class labels and a network together.

* :func:`load_table` reads the feature columns and the target column through
  :mod:`anybackprop.tablefiles` (pyarrow or the standard library for CSV, with the same results
  and errors; int64, float64 or text columns; ``encoding``, ``delimiter``). The columns come as a
  :class:`~anybackprop.tablefiles.Table`, which remembers each row's line in the file, also after
  :func:`~anybackprop.datasets.split_table`, so that any later error names that line.
* :class:`TableEncoder` learns from the training rows, per column, either its fill value
  (numeric) or its categories (text, one-hot encoded; at most ``max_categories`` features, rare
  categories grouped as ``<other>`` with a warning naming the column and its number of values;
  an unseen category joins ``<other>``, or encodes as all zeros with a warning that names it).
  It matches columns by name, so a file with its columns in another order works and one that
  lacks a column is refused naming it. A missing value (NaN, None, ``pd.NA``, an empty field) is
  an error naming the column and the row, unless ``impute`` is "mean", "median" or
  "most_frequent" (numeric columns; text columns take their most frequent category); a row with
  no value at all gets a warning.
* :class:`TabularModel` = encoder + target name + task + class labels (their original values and
  dtype; a missing label is an error) + an :class:`~anybackprop.MLP` whose first layer scales
  the inputs (statistics learned by ``fit``, saved as layer state) and, for regression, whose last
  layer maps the standardised target back to its units. It takes a dict of
  columns, a DataFrame or a 2-D array in the training column order; ``predict`` returns the
  original labels, ``predict_proba`` has one column per class in :attr:`TabularModel.classes`
  order, ``evaluate`` adds per-class precision, recall, F1 and support (classification) or MAE
  and RMSE (regression), ``summary`` shows the encoding and the layers. A checkpoint of its
  ``fit`` holds a fingerprint of the run, which ``resume`` checks.
  :func:`anybackprop.save` writes all of it; :func:`anybackprop.load` gives it back.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import numbers
import os
import warnings
from typing import Any

import numpy as np

from .backend import check_seed, to_numpy
from .checkpoint import check_fingerprint
from .ensemble import MAX_MEMBERS, Ensemble
from .layers.target_scale import target_state
from .network import MLP, Sequential
from .optim import Adam, Optimizer
from .splits import split_rows
from .tablefiles import MISSING, Table, as_columns, columns_from_frame, is_missing, read_table, where
from .training import Checkpoint
from .validation import check_positive_int

__all__ = [
    "IMPUTE",
    "MISSING",
    "TASKS",
    "Table",
    "TableEncoder",
    "TabularModel",
    "auto_batch_size",
    "auto_ensemble",
    "auto_patience",
    "check_complete",
    "class_labels",
    "columns_from_frame",
    "infer_task",
    "load_table",
    "read_table",
]

TASKS = ("classification", "regression")
IMPUTE = ("mean", "median", "most_frequent")
MIN_VALIDATION_ROWS = 30
"""Fewer validation rows than this draw a warning: the best epoch would be chosen on noise."""
TARGET_SCALE_WARNING = 10.0
"""A regression target whose mean or standard deviation is this far from 0 and 1 (above the
factor, or its standard deviation below its inverse) draws a warning when it is not scaled."""
MAX_CLASSES_INFERRED = 20
"""A numeric target of integers with at most this many distinct values is taken as class labels."""
MAX_CATEGORIES = 256
"""Default cap on the one-hot features of one text column (the most frequent categories, the rest
grouped as ``<other>``): it keeps an identifier column from blowing up the first layer. Raised from
100 in the benchmark's seventh round, where grouping cost two tuning tables (``SumHes``: 125
countries, R^2 0.891 against 0.993 with every one; ``GaltonFamilies``: 205 families, 0.802
against 0.821)."""
OTHER = "<other>"
ENSEMBLE_MAX = 5
"""The most networks ``ensemble=None`` (the default) trains for regression."""
ENSEMBLE_CLASSIFICATION = 3
"""The most networks ``ensemble=None`` trains for classification. Chosen on the benchmark's eight
tuning classification tables (6 seeds): 2, 3 and 5 networks gave mean accuracy +0.0002, +0.0034
and +0.0024 over one (the gains on the five tables with room: 0.003-0.013 on four of them)."""
ENSEMBLE_ROWS = 12_000
"""``ensemble=None`` trains at most this many rows' worth of networks (rows x networks), so that a
large table's training time does not grow with the ensemble: one network above 6,000 training rows
(a 10,000-row table's 6,750 after the test and validation splits)."""
FEATURE_SCALE = 10.0
"""The gain of the scale per input (:class:`~anybackprop.layers.ScaledDense`) that regression
networks trained with Adam (``anybackprop train``'s optimizer) learn by default
(``feature_scale="auto"``); classification learns none, nor does another optimizer (the gain
multiplies Adam's steps on the scales; SGD's it would multiply by its square). Chosen on the
benchmark's tuning tables: gains 1, 3, 6, 10, 20 gave mean R^2 +0.002, +0.005, +0.009, +0.011,
+0.013 over none, and mean accuracy -0.002 each."""
BATCH_SIZE = 128
"""Rows per step of ``batch_size="auto"`` (``train``'s default) up to ``BATCH_SIZE x BATCH_STEPS`` training rows."""
BATCH_STEPS = 32
"""Above ``BATCH_SIZE x BATCH_STEPS`` training rows ``batch_size="auto"`` grows the batch so that an
epoch takes this many steps (up to :data:`BATCH_MAX` rows): a large table's epoch costs fewer steps."""
BATCH_MAX = 256
"""The largest batch of ``batch_size="auto"``."""
PATIENCE = 20
"""Epochs without a better validation loss after which ``early_stopping="auto"`` (``train``'s
default with a validation split) stops, up to ``PATIENCE_ROWS // PATIENCE`` training rows."""
PATIENCE_ROWS = 60_000
"""Above ``PATIENCE_ROWS // PATIENCE`` training rows ``early_stopping="auto"`` waits
``PATIENCE_ROWS // rows`` epochs (at least :data:`PATIENCE_MIN`): about as many rows seen without
improvement, not as many epochs, so that a large table does not run 20 long epochs past its best."""
PATIENCE_MIN = 5
"""The shortest patience of ``early_stopping="auto"`` (from 12,000 training rows)."""
AUTO = "auto"
BINS_CHOICE = 32
"""The piecewise-linear bins of the numeric columns that ``bins="auto"`` (the default) tries against
none: the first network is trained both ways and the bins are kept where they lower the
validation loss of its kept weights by :data:`BINS_MARGIN`. Tried where there are validation
rows, 1 to 32 numeric columns (:data:`BINS_MAX_INPUTS`) and at most ``ENSEMBLE_ROWS // 2``
training rows (where the default ensemble trains two networks or more, so that the extra one is
a modest cost). Chosen on the benchmark's fifteen tuning tables (3 seeds): bins on every table
lost up to 0.047 on six of them; chosen this way none loses more than 0.002, and one table whose
target moves unevenly with a numeric column (election results by year) gains 0.29 R^2."""
BINS_MAX_INPUTS = 1024
"""``bins="auto"`` tries the bins where they give at most this many inputs (32 numeric columns):
the bins' first layer grows with them, and a table of many numeric columns, such as the bundled
digits' 64 pixels, would pay many times its training time for the try."""
BINS_MARGIN = 0.15
"""How much lower (a share) the bins' best validation loss must be for ``bins="auto"`` to keep
them: on the tuning tables a margin of 0 kept them in 28 of 45 runs and lost 0.026 and 0.045 R^2
on two small tables, whose few validation rows chose on noise; 0.15 kept them in 8."""


def _is_auto(value: Any) -> bool:
    """Whether an option is :data:`AUTO` (the library chooses: a number or None is the user's)."""
    return isinstance(value, str) and value == AUTO


def auto_ensemble(task: str, rows: int) -> int:
    """The networks ``ensemble=None`` trains for ``rows`` training rows: ``ENSEMBLE_ROWS // rows``,
    from 1 to :data:`ENSEMBLE_CLASSIFICATION` for classification (on the tuning tables 3 networks
    raised the mean accuracy by about 0.003) and to :data:`ENSEMBLE_MAX` for regression (5 networks
    raised the mean R^2 by about 0.03)."""
    most = ENSEMBLE_CLASSIFICATION if task == "classification" else ENSEMBLE_MAX
    return max(1, min(most, ENSEMBLE_ROWS // max(rows, 1)))


def warn_one_network(followed: str, task: str, rows: int) -> None:
    """Warn that ``followed`` (a checkpoint, resume or callbacks, which follow one network) makes
    ``ensemble=None`` train one network where :func:`auto_ensemble` would train more."""
    networks = auto_ensemble(task, rows)
    if networks > 1:
        warnings.warn(
            f"{followed} follows one network, so this trains one where the default would average {networks} "
            "(ensemble=1, --ensemble 1 on the command line, says so and silences this)",
            UserWarning,
            stacklevel=3,
        )


def auto_batch_size(rows: int) -> int:
    """``batch_size="auto"`` for ``rows`` training rows: :data:`BATCH_SIZE` (chosen on the tuning
    tables), or ``ceil(rows / BATCH_STEPS)`` rows on a larger table, at most :data:`BATCH_MAX`."""
    return min(BATCH_MAX, max(BATCH_SIZE, -(-rows // BATCH_STEPS)))


def auto_patience(rows: int) -> int:
    """``early_stopping="auto"`` for ``rows`` training rows: :data:`PATIENCE` epochs (chosen on the
    tuning tables), or ``PATIENCE_ROWS // rows`` on a larger table, at least :data:`PATIENCE_MIN`."""
    return max(PATIENCE_MIN, min(PATIENCE, PATIENCE_ROWS // max(rows, 1)))


def _standard(t: np.ndarray, stats: dict) -> np.ndarray:
    """Regression targets ``t`` standardised by the ``{"mean", "scale"}`` of the training rows."""
    return (t.reshape(len(t), -1) - stats["mean"]) / stats["scale"]


def _warn_unscaled(t: np.ndarray) -> None:
    """A warning when the regression targets ``t`` are far from unit scale (target scaling off)."""
    mean, std = float(np.mean(t)), float(np.std(t))
    if abs(mean) > TARGET_SCALE_WARNING or std > TARGET_SCALE_WARNING or 0 < std < 1 / TARGET_SCALE_WARNING:
        warnings.warn(
            f"the target has mean {mean:.4g} and standard deviation {std:.4g}, far from unit scale, and "
            "scale_target=False (--no-target-scaling): the network must learn that scale itself, which takes "
            "many epochs; scale the target (the default) unless its units matter to the loss",
            UserWarning,
            stacklevel=3,
        )


def load_table(
    path: str | os.PathLike,
    target: str | None = None,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    reader: str | None = None,
) -> tuple[Table, np.ndarray]:
    """``(features, y)``: the feature columns (a :class:`~anybackprop.tablefiles.Table`, which
    remembers each row's place in the file) and the ``target`` column (``"y"`` by default for an
    ``.npz`` file); a missing target value is an error naming its line. ``encoding``,
    ``delimiter`` and ``reader`` are :func:`read_table`'s."""
    columns = read_table(path, encoding=encoding, delimiter=delimiter, reader=reader)
    if target is None:
        if "y" not in columns or not os.fspath(path).endswith(".npz"):
            raise ValueError("target is required: the name of the column to predict")
        target = "y"
    if target not in columns:
        raise ValueError(f"target column {target!r} is not in {os.fspath(path)}; its columns are {', '.join(columns)}")
    y = columns.pop(target)
    check_target(y, target, columns)
    return columns, y


def check_target(y: np.ndarray, name: str | None, columns: Any = None) -> None:
    """A missing target value is an error naming the first one's row (a label cannot be imputed)."""
    mask = is_missing(y)
    if mask.any():
        first = int(np.argmax(mask))
        raise ValueError(
            f"target {name or 'y'!r} has a missing value in {where(columns, first)} ({int(mask.sum())} in all); "
            "a label cannot be imputed: drop those rows or fill them in"
        )


def check_complete(
    columns: dict[str, np.ndarray], hint: str = "fill it in or impute (impute='mean', --impute mean)"
) -> None:
    """A ValueError naming the first column with a missing value and its first such row (its
    line in the file for a table read from one)."""
    for name, values in columns.items():
        mask = is_missing(np.asarray(values))
        if mask.any():
            raise ValueError(
                f"column {name!r} has a missing value in {where(columns, int(np.argmax(mask)))} "
                f"({int(mask.sum())} in all); {hint}"
            )


def infer_task(y: np.ndarray) -> str:
    """ "classification" for strings, or integers with at most :data:`MAX_CLASSES_INFERRED`
    distinct values; "regression" otherwise."""
    y = np.asarray(y)
    if y.dtype.kind in "OUSb":
        return "classification"
    integral = bool(np.all(np.mod(y, 1) == 0))
    return "classification" if integral and len(np.unique(y)) <= MAX_CLASSES_INFERRED else "regression"


def class_labels(y: np.ndarray) -> np.ndarray:
    """The sorted distinct labels of ``y`` in their natural dtype: str, int64 for whole numbers
    held as floats (exactly representable ones), else the values as they are (int64 and uint64
    labels keep every digit)."""
    y = np.asarray(y)
    if y.dtype == object or y.dtype.kind in "US":
        return np.unique(y.astype(str))
    if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0) and np.all(np.abs(y) <= 2.0**53):
        return np.unique(y).astype(np.int64)
    return np.unique(y)


def _mode(values: np.ndarray) -> Any:
    """The most frequent of ``values`` (the smallest among ties)."""
    distinct, counts = np.unique(values, return_counts=True)
    return distinct[int(np.argmax(counts))]


class TableEncoder:
    """Numeric columns as they are and text columns one-hot, in the training order; see the
    module docstring. ``impute`` is None (a missing value is an error), "mean", "median" or
    "most_frequent" (numeric columns; text columns always take their most frequent category).
    A text column keeps at most ``max_categories`` one-hot features: its most frequent categories
    (at least ``min_frequency`` rows each: a count, or a share of the rows when a float below 1)
    and one ``<other>`` feature for the rest, as scikit-learn's ``OneHotEncoder`` groups
    infrequent categories; capping a column warns, naming it and its number of distinct values."""

    def __init__(
        self, impute: str | None = None, max_categories: int | None = MAX_CATEGORIES, min_frequency: Any = None
    ) -> None:
        if impute is not None and impute not in IMPUTE:
            raise ValueError(f"unknown impute {impute!r}; accepted values: {', '.join(IMPUTE)} or None")
        if max_categories is not None and (
            isinstance(max_categories, bool) or not isinstance(max_categories, int) or max_categories < 2
        ):
            raise ValueError(f"max_categories must be an int >= 2 or None, got {max_categories!r}")
        if min_frequency is not None and (
            isinstance(min_frequency, bool)
            or not isinstance(min_frequency, (int, float))
            or not (min_frequency >= 1 if isinstance(min_frequency, int) else 0 < min_frequency < 1)
        ):
            raise ValueError(f"min_frequency must be a count >= 1, a share in (0, 1) or None, got {min_frequency!r}")
        self.impute, self.max_categories, self.min_frequency = impute, max_categories, min_frequency
        self.columns: list[dict] | None = None
        self.filled: dict[str, int] = {}
        """How many missing values the last :meth:`transform` filled, per column."""

    def fit(self, columns: Any) -> TableEncoder:
        """Learn each column's kind, its categories (text) and its fill value (with ``impute``)."""
        if not isinstance(columns, dict) and not hasattr(columns, "iloc"):
            raise TypeError(f"columns must be a non-empty dict {{name: values}}, got {type(columns).__name__}")
        columns = as_columns(columns)
        masks = {name: is_missing(np.asarray(values)) for name, values in columns.items()}  # once per column
        if self.impute is None and any(mask.any() for mask in masks.values()):
            check_complete(columns)
        self.columns = [self._learn(name, np.asarray(values), masks[name]) for name, values in columns.items()]
        return self

    def _learn(self, name: str, values: np.ndarray, missing: np.ndarray) -> dict:
        present = values[~missing]
        if values.dtype.kind in "fiub":
            present = present.astype(np.float64)
            if not present.size:
                fill = 0.0
            elif self.impute == "median":
                fill = float(np.median(present))
            elif self.impute == "most_frequent":
                fill = float(_mode(present))
            else:
                fill = float(np.mean(present))
            return {"name": name, "kind": "numeric", "fill": fill}
        distinct, counts = np.unique(np.array([str(v) for v in present], dtype=str), return_counts=True)
        order = np.lexsort((distinct, -counts))  # most frequent first, then by name
        keep = order
        if self.min_frequency is not None:
            least = self.min_frequency if isinstance(self.min_frequency, int) else self.min_frequency * len(values)
            keep = keep[counts[keep] >= least]
        if self.max_categories is not None and len(keep) > self.max_categories:
            keep = keep[: self.max_categories - 1]
        spec: dict[str, Any] = {"name": name, "kind": "categorical", "categories": sorted(distinct[keep].tolist())}
        if len(keep) < len(distinct):
            spec["other"] = True
            warnings.warn(
                f"column {name!r} has {len(distinct)} distinct values in {len(values)} rows: kept the "
                f"{len(keep)} most frequent as categories and grouped the other {len(distinct) - len(keep)} as "
                f"{OTHER!r} (max_categories={self.max_categories}, min_frequency={self.min_frequency}); "
                "an identifier column is better left out",
                UserWarning,
                stacklevel=4,
            )
        if self.impute is not None and present.size:
            spec["fill"] = str(distinct[order[0]])
        return spec

    @property
    def feature_names(self) -> list[str]:
        """The encoded features: numeric column names, and ``column=category`` per category
        (``column=<other>`` for a capped column's grouped categories)."""
        self._check_fitted()
        return [
            c["name"] if c["kind"] == "numeric" else f"{c['name']}={cat}"
            for c in self.columns
            for cat in _encoded_as(c)
        ]

    @property
    def numeric_features(self) -> list[int]:
        """The positions of the numeric columns among :attr:`feature_names`."""
        self._check_fitted()
        columns = self.columns or []
        starts = np.cumsum([0, *(len(_encoded_as(c)) for c in columns[:-1])])
        return [int(i) for i, c in zip(starts, columns, strict=True) if c["kind"] == "numeric"]

    def _check_fitted(self) -> None:
        if self.columns is None:
            raise ValueError("this TableEncoder is not fitted yet: call fit(columns) first")

    def transform(self, columns: Any) -> np.ndarray:
        """The encoded ``(m, n_features)`` float64 matrix of raw ``columns``: a dict or a
        DataFrame (matched by name) or a 2-D array of the training columns in order."""
        self._check_fitted()
        names = [c["name"] for c in self.columns]
        columns = as_columns(columns, names, "the data")
        absent = [n for n in names if n not in columns]
        if absent:
            raise ValueError(
                f"the data lacks the column(s) {', '.join(map(repr, absent))} that the model was trained with"
            )
        masks = {n: is_missing(np.asarray(columns[n])) for n in names}  # once per column
        if self.impute is None and any(mask.any() for mask in masks.values()):
            check_complete(
                Table({n: columns[n] for n in names}, *_origin(columns)),
                "fill it in (the model was trained without impute)",
            )
        parts, unknown, filled = [], {}, {}
        missing_all = None
        for c in self.columns:
            name = c["name"]
            values = np.asarray(columns[name])
            missing = masks[name]
            missing_all = missing if missing_all is None else missing_all & missing
            if missing.any():
                filled[name] = int(missing.sum())
            if c["kind"] == "numeric":
                numbers = _numbers(name, values, missing, columns)
                parts.append(np.where(missing, c["fill"], numbers)[:, None])
                continue
            text = np.array(["" if m else str(v) for v, m in zip(values, missing, strict=True)], dtype=object)
            if "fill" in c:
                text[missing] = c["fill"]
            cats = np.array(c["categories"], dtype=object)
            onehot = (text[:, None] == cats[None, :]).astype(np.float64)
            rest = ~onehot.any(axis=1) & (text != "")
            if c.get("other"):
                onehot = np.concatenate([onehot, rest[:, None].astype(np.float64)], axis=1)
            elif rest.any():
                unknown[name] = (int(rest.sum()), sorted(set(text[rest].tolist())))
            parts.append(onehot)
        self.filled = filled
        if unknown:
            counts = "; ".join(
                f"{n!r}: {k} rows: {', '.join(map(repr, seen[:5]))}{', ...' if len(seen) > 5 else ''}"
                for n, (k, seen) in unknown.items()
            )
            warnings.warn(f"categories not seen in training encode as all zeros ({counts})", UserWarning, stacklevel=3)
        if missing_all is not None and missing_all.any():
            first = int(np.argmax(missing_all))
            warnings.warn(
                f"{int(missing_all.sum())} row(s) have no value in any column (the first in {where(columns, first)}); "
                "their predictions come from the imputed values alone",
                UserWarning,
                stacklevel=3,
            )
        return np.concatenate(parts, axis=1)

    def describe_filled(self) -> str:
        """What the last :meth:`transform` filled, per column, in words ("" if nothing)."""
        if not self.filled:
            return ""
        fills = {c["name"]: c.get("fill") for c in self.columns or ()}
        shown = {
            name: "zeros" if v is None else f"{v:.6g}" if isinstance(v, float) else repr(v) for name, v in fills.items()
        }
        parts = [f"{k} in {name!r} (with {shown[name]})" for name, k in self.filled.items()]
        return f"impute {self.impute}: filled {sum(self.filled.values())} missing values: {', '.join(parts)}"

    def config(self) -> dict:
        """The JSON-able description (columns, kinds, categories) that :meth:`from_config` reads."""
        self._check_fitted()
        return {
            "impute": self.impute,
            "max_categories": self.max_categories,
            "min_frequency": self.min_frequency,
            "columns": self.columns,
        }

    @classmethod
    def from_config(cls, config: dict) -> TableEncoder:
        """The encoder :meth:`config` described, checked (a model file's table section)."""
        impute = config.get("impute")
        if impute is not None and impute not in IMPUTE:
            raise ValueError(f"its table encoder names an unknown impute {impute!r}")
        encoder = cls(impute, config.get("max_categories", MAX_CATEGORIES), config.get("min_frequency"))
        columns = config.get("columns")
        if not isinstance(columns, list) or not all(_valid_column(c) for c in columns):
            raise ValueError(
                "its table encoder has no valid 'columns' list (each a name and a numeric fill or string categories)"
            )
        encoder.columns = columns
        return encoder


def _encoded_as(column: dict) -> tuple:
    """What each of a column's encoded features stands for: ``(None,)`` for a numeric column (its
    value), its categories, then ``<other>`` for a capped one, for a text column."""
    return (*column.get("categories", [None]), *([OTHER] if column.get("other") else []))


def _origin(columns: Any) -> tuple:
    """What a :class:`Table` made from ``columns`` needs to keep naming rows as ``columns`` does."""
    if isinstance(columns, Table):
        return columns.source, columns.records, columns._locate
    return ()


def _numbers(name: str, values: np.ndarray, missing: np.ndarray, columns: Any) -> np.ndarray:
    """A numeric column's values as float64 (anything at missing places): text that holds
    numbers is read as numbers; other text, and infinity, is an error naming the row."""
    if values.dtype.kind not in "fiub":
        numbers = np.zeros(len(values))
        for i, (v, m) in enumerate(zip(values, missing, strict=True)):
            if m:
                continue
            try:
                numbers[i] = float(v)
            except (TypeError, ValueError):
                raise ValueError(
                    f"column {name!r} was numeric in training but holds {v!r} in {where(columns, i)}"
                ) from None
        values = numbers
    values = values.astype(np.float64)
    infinite = np.isinf(values)
    if infinite.any():
        i = int(np.argmax(infinite))
        raise ValueError(
            f"column {name!r} holds {float(values[i])!r} (infinity) in {where(columns, i)}; expected finite numbers"
        )
    return values


def _valid_column(column: Any) -> bool:
    """A saved column spec: a string name, and a finite numeric ``fill`` or a list of string
    ``categories`` with an optional string ``fill`` and bool ``other`` (a file is untrusted input:
    predict must not meet a KeyError later)."""
    if not isinstance(column, dict) or not isinstance(column.get("name"), str):
        return False
    if column.get("kind") == "numeric":
        fill = column.get("fill")
        return isinstance(fill, (int, float)) and not isinstance(fill, bool) and math.isfinite(fill)
    categories = column.get("categories")
    return (
        column.get("kind") == "categorical"
        and isinstance(categories, list)
        and all(isinstance(c, str) for c in categories)
        and isinstance(column.get("fill", ""), str)
        and isinstance(column.get("other", False), bool)
    )


class TabularModel:
    """A network that takes raw table columns: see the module docstring. The network is an
    :class:`~anybackprop.MLP` ``[n_features, *hidden, n_outputs]`` with ``standardize`` (default
    "robust": median/quartile scaling with smooth clipping; True for mean and standard deviation,
    False for none) and the other keywords (``activation``, ``dropout``, ``norm``, ``seed``,
    ``dtype``, ``backend``...) as :class:`~anybackprop.MLP` takes them; it is built by
    :meth:`fit` once the encoded width and the classes are known. ``task`` is "classification",
    "regression" or None (inferred from the target by :func:`infer_task`); ``impute``,
    ``max_categories`` and ``min_frequency`` are :class:`TableEncoder`'s. ``scale_target``
    (default True; regression only): the network is trained on the standardised target (mean and
    standard deviation of the training rows; the history's losses are in those units) and ends
    with a :class:`~anybackprop.layers.TargetScale` layer that maps its output back to the
    target's units, saved and exported with it. ``bins`` (an int: that many piecewise-linear
    quantile bins of every numeric column; None: none; "auto", the default: :data:`BINS_CHOICE`
    bins where they lower the first network's validation loss by :data:`BINS_MARGIN`, see
    :attr:`bins_choice`). ``ensemble`` (an int from 1 to 64, or None: the
    default, :func:`auto_ensemble`'s count, up to 3 for classification and 5 for regression) is the
    number of networks :meth:`fit` trains, from seeds ``seed, seed+1, ...``; they predict together
    (their logits averaged, :meth:`predictor`), are all saved in one file and exported in one graph.

    Once fitted it is used like any model: :meth:`predict`, :meth:`predict_proba`,
    :meth:`evaluate` and :meth:`forward` take a dict of columns or a DataFrame (matched by name)
    or a 2-D array of the training columns in their order (:attr:`columns`); :attr:`params`,
    :attr:`state`, :attr:`layers`, :attr:`layer_sizes` and :attr:`network` are the network's;
    :meth:`summary` shows the encoding in front of the layers. :meth:`encode` gives the network's
    input (what the ONNX graph of :func:`anybackprop.export_onnx` takes)."""

    def __init__(
        self,
        hidden: list[int] | tuple[int, ...] = (128, 64),
        *,
        task: str | None = None,
        impute: str | None = None,
        standardize: bool | str = "robust",
        output: str | None = None,
        max_categories: int | None = MAX_CATEGORIES,
        min_frequency: Any = None,
        scale_target: bool = True,
        ensemble: int | None = None,
        bins: int | str | None = AUTO,
        **mlp_options: Any,
    ) -> None:
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown task {task!r}; accepted values: {', '.join(TASKS)} or None (inferred)")
        if output not in (None, "softmax", "sigmoid", "identity"):
            raise ValueError(
                f"unknown output {output!r}; accepted values: softmax, sigmoid (two classes), identity "
                "(regression) or None"
            )
        self.hidden, self.task, self.standardize, self.output, self.mlp_options = (
            list(hidden),
            task,
            standardize,
            output,
            mlp_options,
        )
        if not isinstance(scale_target, bool):
            raise TypeError(f"scale_target must be True or False, got {scale_target!r}")
        self.scale_target = scale_target
        if ensemble is not None and (
            isinstance(ensemble, bool) or not isinstance(ensemble, numbers.Integral) or not 1 <= ensemble <= MAX_MEMBERS
        ):
            raise ValueError(
                f"ensemble must be an int from 1 to {MAX_MEMBERS} (networks averaged) or None (auto), got {ensemble!r}"
            )
        self.ensemble = None if ensemble is None else int(ensemble)
        if not (
            bins is None
            or _is_auto(bins)
            or (isinstance(bins, numbers.Integral) and not isinstance(bins, bool) and bins >= 1)
        ):
            raise ValueError(f"bins must be a positive int, 'auto' or None, got {bins!r}")
        self.choose_bins = _is_auto(bins)
        if bins is not None and not self.choose_bins:
            self.mlp_options["bins"] = int(bins)
        self.bins_choice: dict | None = None
        """What ``bins="auto"`` chose in the last :meth:`fit`: ``{"bins": 32 or None,
        "validation_loss": (without, with)}`` (None where it did not choose)."""
        self.members: list[Sequential] = []
        """The trained networks (``ensemble`` of them, or :func:`auto_ensemble`'s count; the first is
        :attr:`network`)."""
        self.encoder = TableEncoder(impute, max_categories, min_frequency)
        self.network: Sequential | None = None
        self.target: str | None = None
        self.classes: np.ndarray | None = None
        self.info: dict = {}
        self._one_network = False  # ensemble=None trains one network where a checkpoint or callbacks follow it
        self.histories: list = []
        """Each member's :class:`~anybackprop.training.History` from the last :meth:`fit`."""

    # --- fitting ---------------------------------------------------------------------------------

    def prepare(
        self, columns: Any, y: np.ndarray, target: str | None = None, optimizer: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Learn the encoding, the task and the labels from ``(columns, y)`` and build the
        network (untrained); returns the encoded ``(X, targets)``. :meth:`fit` starts here.
        ``optimizer``: the one :meth:`fit` trains with (a name or an optimizer; None: fit's
        default, "sgd"), for ``feature_scale="auto"``."""
        columns = as_columns(columns)
        y = np.asarray(y)
        rows = len(next(iter(columns.values())))
        if y.ndim != 1 or len(y) != rows:
            raise ValueError(f"y has shape {y.shape}; expected ({rows},), one target value per row of the columns")
        self.target = target if target is not None else self.target
        check_target(y, self.target, columns)
        self.task = self.task or infer_task(y)
        X = self.encoder.fit(columns).transform(columns)
        if self.task == "classification":
            self.classes = class_labels(y)
            if len(self.classes) < 2:
                raise ValueError(f"the target has a single class {self.classes[0]!r}; classification needs at least 2")
            output = self.output or ("sigmoid" if len(self.classes) == 2 else "softmax")
            if output == "identity" or (output == "sigmoid" and len(self.classes) > 2):
                raise ValueError(
                    f"output={output!r} does not fit {len(self.classes)} classes; use softmax (or sigmoid for two)"
                )
            n_out = 1 if output == "sigmoid" else len(self.classes)
        else:
            if y.dtype.kind not in "fiub":
                raise ValueError("task='regression' needs a numeric target")
            if self.output not in (None, "identity"):
                raise ValueError(f"output={self.output!r} is for classification; regression uses identity")
            n_out, output = 1, "identity"
        options = {**self.mlp_options}
        if _is_auto(options.get("feature_scale", AUTO)):  # regression with Adam: the gain is a factor on Adam's steps
            adam = optimizer == "adam" or isinstance(optimizer, Adam)
            options["feature_scale"] = FEATURE_SCALE if self.task == "regression" and adam else None
        numeric = self.encoder.numeric_features
        self._bin_features = {} if len(numeric) == X.shape[1] else {"bin_features": numeric}
        options.pop("bin_features", None)  # a loaded model's: this table's numeric columns are binned
        if options.get("bins") is not None:  # bins encode the numeric columns (one-hot ones gain nothing)
            if not numeric:
                warnings.warn(
                    "bins encode numeric columns and this table has none: it trains without bins",
                    UserWarning,
                    stacklevel=3,
                )
                options.pop("bins")
            else:
                options.update(self._bin_features)
        self._plan = {
            "layer_sizes": [X.shape[1], *self.hidden, n_out],
            "output": output,
            "standardize": self.standardize,
            "target_scale": self.scale_target and self.task == "regression",
            **options,
        }
        count = self.ensemble or (1 if self._one_network else auto_ensemble(self.task, len(y)))
        self.members = [self._member(k) for k in range(count)]
        self.network = self.members[0]
        return X, self.encode_target(y)

    def _member(self, k: int, **changes: Any) -> MLP:
        """Network ``k`` as :meth:`prepare` planned it (seed ``seed + k``), with ``changes``."""
        plan = {**self._plan, **changes}
        return MLP(**{**plan, "seed": _member_seed(plan.get("seed", 0), k)})

    def fit(
        self,
        columns: Any,
        y: np.ndarray,
        *,
        target: str | None = None,
        validation_data: tuple | None = None,
        validation_fraction: float | None = None,
        **fit_options: Any,
    ) -> Any:
        """:meth:`prepare`, then train the network (:func:`anybackprop.training.fit` options;
        ``validation_data`` as raw ``(columns, y)``). Returns the :class:`~anybackprop.training.History`
        (the first network's; :attr:`histories` holds each one's). Network ``k`` of an ensemble
        starts from the model's ``seed + k`` and shuffles from ``seed + k`` (the fit option), on the
        same training and validation rows; a ``checkpoint``, ``resume`` or ``callbacks`` need one
        network (``ensemble=None`` then trains one, with a warning where it would train more).

        ``validation_fraction`` (in (0, 1)) instead holds out that share of the rows given
        (stratified by class, drawn from ``seed``) as the validation data, and the network keeps
        the weights of the epoch with the best validation loss: training stops after
        ``early_stopping`` epochs without improvement (default: it runs every epoch). A warning
        says when the held-out part is small or misses a class.
        ``batch_size="auto"`` and ``early_stopping="auto"`` (``anybackprop train``'s defaults) take
        :func:`auto_batch_size` and :func:`auto_patience` of the training rows (after the
        validation split; ``early_stopping="auto"`` without validation data stops nothing).
        A ``checkpoint`` records a fingerprint of the run (:meth:`fingerprint`); ``resume`` refuses
        a checkpoint whose fingerprint differs, naming what differs."""
        if validation_fraction is not None:
            if validation_data is not None:
                raise ValueError("give validation_data or validation_fraction, not both")
            columns, y, validation_data = self.hold_out(columns, y, validation_fraction, fit_options.get("seed", 0))
            fit_options.setdefault("early_stopping", None)
            if fit_options["early_stopping"] is None:
                fit_options["early_stopping"] = check_positive_int(fit_options.get("epochs", 30), "epochs")
        followed = [name for name in ("checkpoint", "resume", "callbacks") if fit_options.get(name)]
        self._one_network = bool(followed)
        if followed and (self.ensemble or 1) > 1:
            raise ValueError(
                f"{' and '.join(followed)} {'follow' if len(followed) > 1 else 'follows'} one network; this "
                f"model trains ensemble={self.ensemble} "
                "(ensemble=1, --ensemble 1 on the command line, to use them)"
            )
        X, t = self.prepare(columns, y, target, fit_options.get("optimizer"))  # checks y's shape first
        if followed and self.ensemble is None and self.task is not None:  # prepare set the task
            warn_one_network(" and ".join(followed), self.task, len(t))
        if fit_options.get("batch_size") == AUTO:
            fit_options["batch_size"] = auto_batch_size(X.shape[0])
        if fit_options.get("early_stopping") == AUTO:
            fit_options["early_stopping"] = auto_patience(X.shape[0]) if validation_data is not None else None
        if validation_data is not None:
            validation_data = (self.encode(validation_data[0]), self.encode_target(validation_data[1]))
        if fit_options.get("checkpoint") is not None or fit_options.get("resume") is not None:
            stamp = self.fingerprint(X, t, fit_options)
            hook = fit_options.get("checkpoint")
            if isinstance(hook, Checkpoint):
                hook.fingerprint = stamp
            elif hook is not None:
                fit_options["checkpoint"] = Checkpoint(hook, fingerprint=stamp)
            if fit_options.get("resume") is not None:
                epoch = check_fingerprint(fit_options["resume"], stamp)
                if fit_options.get("verbose", True):
                    print(f"resumed from {os.fspath(fit_options['resume'])} at epoch {epoch}")
        stats = None
        if self.task == "regression" and not self.scale_target:
            _warn_unscaled(t)
        elif self.task == "regression":
            stats = target_state(np, t.reshape(len(t), -1))
            t = _standard(t, stats)
            if validation_data is not None:
                validation_data = (validation_data[0], _standard(validation_data[1], stats))
        optimizer = fit_options.get("optimizer")
        pristine = copy.deepcopy(optimizer) if isinstance(optimizer, Optimizer) else None  # before any training
        comm = fit_options.get("comm")
        chatty = fit_options.get("verbose", True) and (comm is None or comm.rank == 0)
        self.histories, self.bins_choice = [], None
        if (
            self.choose_bins
            and validation_data is not None
            and 0 < len(self.encoder.numeric_features) * BINS_CHOICE <= BINS_MAX_INPUTS
            and 2 * len(t) <= ENSEMBLE_ROWS
        ):
            if followed:
                warnings.warn(
                    f"{' and '.join(followed)} follow{'' if len(followed) > 1 else 's'} one network, so bins='auto' "
                    "does not try the bins (it trains a second first network); bins=None (--bins 0) says so and "
                    "silences this",
                    UserWarning,
                    stacklevel=2,
                )
            else:
                self._choose_bins((X, t, validation_data), fit_options, pristine, chatty)
        for k, member in enumerate(self.members):  # member k shuffles (and drops out) from seed + k
            if k >= len(self.histories):  # (the first is trained already where the bins were chosen)
                data = (X, t, validation_data)
                self.histories.append(self._train(k, member, data, fit_options, pristine if k else None, chatty))
            if stats is not None:
                member.set_layer_state(len(member.layers) - 1, stats)
        return self.histories[0]

    def _train(
        self, k: int, network: Sequential, data: tuple, fit_options: dict, pristine: Any, chatty: bool, what: str = ""
    ) -> Any:
        """Train ``network`` as member ``k`` on ``data`` ``(X, t, validation_data)``: from seed
        ``seed + k``, and with its own copy of ``pristine`` (an optimizer object no network has
        trained with) where given, so that no optimizer slots carry over."""
        X, t, validation_data = data
        options = fit_options if k == 0 else {**fit_options, "seed": _member_seed(fit_options.get("seed", 0), k)}
        if pristine is not None:
            options = {**options, "optimizer": copy.deepcopy(pristine)}
        if chatty and (len(self.members) > 1 or what):
            print(f"network {k + 1} of {len(self.members)} (seed {options.get('seed', 0)}){what}")
        return network.fit(X, t, validation_data=validation_data, **options)

    def _choose_bins(self, data: tuple, fit_options: dict, pristine: Any, chatty: bool) -> None:
        """``bins="auto"``: train the first network on ``data`` without bins and with
        :data:`BINS_CHOICE` (on the numeric columns), keep the bins where the validation loss of
        the weights kept is at least :data:`BINS_MARGIN` lower, and plan the other members like
        the one kept."""
        binned = {"bins": BINS_CHOICE, **self._bin_features}
        candidates = [self.members[0], self._member(0, **binned)]
        histories = [
            self._train(0, candidates[0], data, fit_options, None, chatty, " without bins"),
            self._train(0, candidates[1], data, fit_options, pristine, chatty, f" with {BINS_CHOICE} bins"),
        ]
        # the loss of the weights each one keeps: the best epoch's where early stopping restored it
        losses = [h.val_loss[h.best_epoch - 1] if h.best_epoch else h.val_loss[-1] for h in histories]
        kept = losses[1] < (1 - BINS_MARGIN) * losses[0]
        if fit_options.get("comm") is not None:  # every process keeps what rank 0 keeps (as its early stopping)
            kept = fit_options["comm"].broadcast_value(kept)
        self.histories = [histories[kept]]
        if kept:
            self._plan.update(binned)
            self.members = [candidates[1], *(self._member(k) for k in range(1, len(self.members)))]
            self.network = self.members[0]
        self.bins_choice = {"bins": BINS_CHOICE if kept else None, "validation_loss": (losses[0], losses[1])}
        if chatty:
            print(
                f"bins: {f'{BINS_CHOICE} kept' if kept else 'none kept'} (validation loss {losses[1]:.4g} with "
                f"{BINS_CHOICE}, {losses[0]:.4g} without; kept where {BINS_MARGIN:.0%} lower)"
            )

    def hold_out(
        self, columns: Any, y: np.ndarray, fraction: float, seed: int | None
    ) -> tuple[dict, np.ndarray, tuple]:
        """``(training columns, training y, (validation columns, validation y))``: ``fraction``
        of the rows held out, stratified by class for classification, with a warning where the
        validation rows are too few to choose an epoch on (``fit(validation_fraction=...)`` and
        ``train --validation-size`` both split here)."""
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
        columns, y = as_columns(columns), np.asarray(y)
        classify = (self.task or infer_task(y)) == "classification"
        try:
            train, held = split_rows(y.astype(str) if classify else None, len(y), fraction, seed)
        except ValueError as exc:
            raise ValueError(
                f"the validation split of the {len(y)} training rows (validation_fraction={fraction:g}, "
                f"--validation-size {fraction:g}): {exc}; --validation-size 0 (validation_fraction=None) trains "
                "without one"
            ) from None
        if len(held) < MIN_VALIDATION_ROWS:
            warnings.warn(
                f"validation_fraction={fraction:g} of {len(y)} rows holds out only {len(held)} rows: the best epoch "
                f"is chosen on noise; train on more rows, raise it, or fix the epochs without one "
                f"(--validation-size 0)",
                UserWarning,
                stacklevel=3,
            )
        if classify:
            labels, counts = np.unique(y.astype(str), return_counts=True)
            missed = [
                f"{str(label)!r} ({n} rows)" for label, n in zip(labels, counts, strict=True) if round(n * fraction) < 2
            ]
            if missed:
                warnings.warn(
                    f"the class(es) {', '.join(missed[:5])} are too rare for validation_fraction={fraction:g}: "
                    "the validation rows hold at most one row of each, so the best epoch hardly sees them",
                    UserWarning,
                    stacklevel=3,
                )
        if isinstance(columns, Table):  # errors in either part still name the file's lines
            return columns.take(train), y[train], (columns.take(held), y[held])
        train_columns = {k: np.asarray(v)[train] for k, v in columns.items()}
        held_columns = {k: np.asarray(v)[held] for k, v in columns.items()}
        return train_columns, y[train], (held_columns, y[held])

    def fingerprint(self, X: np.ndarray, t: np.ndarray, fit_options: dict) -> dict:
        """What a resumed run must share with the checkpoint's: the columns and their encoding,
        the number of training rows and a hash of the encoded rows and targets, the network's
        settings and the training settings (all but ``epochs`` and the output options)."""
        settings = {k: _setting(v) for k, v in sorted(fit_options.items()) if k not in _NOT_SETTINGS}
        encoding = json.dumps(self.encoder.config(), sort_keys=True).encode()
        data = hashlib.sha256(np.ascontiguousarray(X, dtype=np.float64).tobytes())
        data.update(np.ascontiguousarray(t).tobytes())
        return {
            "columns": [f"{c['name']} ({c['kind']})" for c in self.encoder.columns],
            "encoding": hashlib.sha256(encoding).hexdigest()[:16],
            "rows": int(X.shape[0]),
            "data": data.hexdigest()[:16],
            "model": json.loads(json.dumps(self.network.mlp_config())),
            "settings": settings,
        }

    def _check_fitted(self) -> Sequential:
        if self.network is None:
            raise ValueError("this TabularModel is not fitted yet: call fit(columns, y) first")
        return self.network

    def predictor(self) -> Sequential:
        """What predicts: :attr:`network`, or an :class:`~anybackprop.ensemble.Ensemble` of the
        :attr:`members` (their logits averaged) when there are several."""
        network = self._check_fitted()
        return Ensemble(self.members) if len(self.members) > 1 else network

    def encode(self, columns: Any) -> np.ndarray:
        """The network's input ``(m, n_features)`` for raw ``columns`` (the encoded table that
        the ONNX graph takes; :attr:`feature_names` names its columns)."""
        self._check_fitted()
        return self.encoder.transform(columns)

    def encode_target(self, y: np.ndarray) -> np.ndarray:
        """Class indices into :attr:`classes` (classification) or float values (regression)."""
        y = np.asarray(y)
        if self.classes is None:
            return y.astype(np.float64)
        check_target(y, self.target)
        classes = self.classes.tolist()
        try:
            values = y.astype(str) if self.classes.dtype.kind == "U" else y.astype(self.classes.dtype)
        except (ValueError, TypeError, OverflowError):
            bad = next(v for v in y.tolist() if _not_label(v, self.classes.dtype))
            raise ValueError(f"the target holds {bad!r}, which is not one of the classes {classes}") from None
        index = np.minimum(np.searchsorted(self.classes, values), len(self.classes) - 1)
        unknown = self.classes[index] != values
        if y.dtype.kind == "f" and values.dtype.kind in "iu":  # 1.5 must not pass as class 1
            unknown |= values != y
        if unknown.any():
            raise ValueError(f"the target holds {y[unknown][0].item()!r}, which is not one of the classes {classes}")
        return index

    # --- the network's parts ---------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        """The training columns, in the order a 2-D array's columns are read."""
        self._check_fitted()
        return [c["name"] for c in self.encoder.columns]

    @property
    def feature_names(self) -> list[str]:
        """The network's input features (:meth:`encode`'s columns)."""
        return self.encoder.feature_names

    @property
    def params(self) -> dict:
        """The network's parameters, ``{"W1": (n_features, h1), "b1": (h1,), ...}`` on its backend."""
        return self._check_fitted().params

    @property
    def state(self) -> dict:
        """The network's state (batch norm's running averages); empty for a plain MLP."""
        return self._check_fitted().state

    @property
    def layers(self) -> list:
        """The network's layers, the first one taking :meth:`encode`'s output."""
        return self._check_fitted().layers

    @property
    def layer_sizes(self) -> list[int]:
        """``[n_features, hidden..., n_outputs]`` of the network (an MLP)."""
        network = self._check_fitted()
        if not isinstance(network, MLP):
            raise AttributeError(f"layer_sizes: this model's network is a {type(network).__name__}; see .layers")
        return network.layer_sizes

    @property
    def backend(self) -> Any:
        """The backend the network's arrays live on."""
        return self._check_fitted().backend

    def forward(self, columns: Any) -> Any:
        """The network's output (the members' mean logits under the head, on its backend) for raw ``columns``."""
        return self.predictor().forward(self.encode(columns))

    def summary(self) -> str:
        """The encoding in front of the network's :meth:`~anybackprop.network.Sequential.summary`."""
        network = self._check_fitted()
        columns = self.encoder.columns or []
        kinds = [
            f"  {c['name']}: "
            + (
                "number"
                if c["kind"] == "numeric"
                else f"text, {len(_encoded_as(c))} one-hot features"
                + (f" (rare ones as {OTHER!r})" if c.get("other") else "")
            )
            for c in columns
        ]
        task = self.task if self.classes is None else f"{self.task} of {len(self.classes)} classes"
        impute = "missing values refused" if self.encoder.impute is None else f"impute {self.encoder.impute}"
        head = [
            f"TabularModel: target {self.target!r}, {task}",
            f"{len(columns)} columns -> {network.n_features} features ({impute}):",
            *kinds,
        ]
        return "\n".join([*head, self.predictor().summary()])

    # --- using it --------------------------------------------------------------------------------

    def predict_proba(self, columns: Any) -> np.ndarray:
        """``(m, n_classes)`` probabilities, columns in :attr:`classes` order (NumPy)."""
        if self.classes is None:
            raise ValueError("predict_proba is for classifiers; this model does regression")
        return to_numpy(self.predictor().predict_proba(self.encode(columns)))

    def predict(self, columns: Any) -> np.ndarray:
        """The original class labels, or the predicted values (regression), as NumPy ``(m,)``."""
        out = to_numpy(self.predictor().predict(self.encode(columns)))
        return out if self.classes is None else self.classes[out]

    def evaluate(self, columns: Any, y: np.ndarray) -> dict:
        """``{"metric": "accuracy" or "r2", <metric>: value, "loss": mean loss, "rows": m}``;
        for classification ``"classes"``, ``"confusion"`` (rows: true class, columns:
        predicted, both in :attr:`classes` order) and ``"per_class"`` (precision, recall, F1 and
        support of each class, 0 where undefined as scikit-learn's ``zero_division=0``); for
        regression ``"mae"`` and ``"rmse"``."""
        network = self.predictor()
        X, t = self.encode(columns), self.encode_target(y)
        name = network.head.metric_name
        result = {"metric": name, name: network.score(X, t), "loss": network.loss(X, t), "rows": len(t)}
        predicted = to_numpy(network.predict(X))
        if self.classes is not None:
            confusion = np.zeros((len(self.classes), len(self.classes)), dtype=np.int64)
            np.add.at(confusion, (t, predicted), 1)
            result.update(
                classes=self.classes.tolist(),
                confusion=confusion.tolist(),
                per_class=_per_class(confusion, self.classes),
            )
        else:
            error = np.asarray(predicted, dtype=np.float64).reshape(-1) - t
            result.update(mae=float(np.mean(np.abs(error))), rmse=float(np.sqrt(np.mean(error**2))))
        return result

    def score(self, columns: Any, y: np.ndarray) -> float:
        """Accuracy or R^2 on raw ``columns`` and original targets ``y``."""
        return self.evaluate(columns, y)[self._check_fitted().head.metric_name]

    # --- saving ----------------------------------------------------------------------------------

    def table_config(self) -> dict:
        """What :func:`anybackprop.save` keeps beside the network (JSON-able)."""
        self._check_fitted()
        classes = None if self.classes is None else {"values": self.classes.tolist(), "dtype": self.classes.dtype.str}
        config: dict[str, Any] = {
            "target": self.target,
            "task": self.task,
            "encoder": self.encoder.config(),
            "classes": classes,
        }
        if len(self.members) > 1:  # the file holds the other members' arrays too (anybackprop.io)
            config["ensemble"] = len(self.members)
        if _is_auto(self.mlp_options.get("feature_scale", AUTO)):  # a later fit resolves it again (task, optimizer)
            config["feature_scale"] = AUTO
        if self.choose_bins:  # a later fit chooses again
            config["bins"] = AUTO
        return config

    @classmethod
    def from_saved(
        cls, network: Sequential, config: dict, info: dict | None = None, members: list | None = None
    ) -> TabularModel:
        """The model :meth:`table_config` described, around a loaded ``network`` (and the
        ensemble's ``members``, ``network`` first, when it has several)."""
        if not isinstance(config, dict) or config.get("task") not in TASKS:
            raise ValueError("its table section has no valid task")
        members = members or [network]
        model = cls(
            task=config["task"],
            standardize=getattr(network, "standardize", False),
            scale_target=getattr(network, "target_scale", False),
            ensemble=len(members),
            bins=None,  # the network keeps the bins it was saved with
        )
        model.members = list(members)
        model.network, model.target, model.info = network, config.get("target"), dict(info or {})
        model.hidden = list(getattr(network, "layer_sizes", [0, 0])[1:-1])
        if isinstance(network, MLP):  # a later fit rebuilds the same network (activation, bins, dropout, ...)
            built_by_table = ("layer_sizes", "output", "standardize", "target_scale")
            model.mlp_options = {k: v for k, v in network.mlp_config().items() if k not in built_by_table}
            scale = config.get("feature_scale")
            if scale is not None and not _is_auto(scale):
                raise ValueError(f"its table section's feature_scale is {scale!r}; expected {AUTO!r} or none")
            # "auto" saved: a later fit resolves it again; none saved: the network's own setting
            model.mlp_options["feature_scale"] = AUTO if scale is not None else model.mlp_options.get("feature_scale")
            bins = config.get("bins")
            if bins is not None and not _is_auto(bins):
                raise ValueError(f"its table section's bins is {bins!r}; expected {AUTO!r} or none")
            if bins is not None:  # a later fit chooses again; the loaded networks keep what was chosen
                model.choose_bins = True
                model.mlp_options = {k: v for k, v in model.mlp_options.items() if k not in ("bins", "bin_features")}
        model.encoder = TableEncoder.from_config(config.get("encoder") or {})
        classes = config.get("classes")
        model.classes = None if classes is None else np.array(classes["values"], dtype=np.dtype(classes["dtype"]))
        width = len(model.encoder.feature_names)
        if width != network.n_features:
            raise ValueError(f"its encoder gives {width} features but the network takes {network.n_features}")
        return model

    def __repr__(self) -> str:
        if self.network is None:
            return f"TabularModel(hidden={self.hidden}, task={self.task!r}, not fitted)"
        labels = "" if self.classes is None else f", classes={self.classes.tolist()!r}"
        if len(self.members) > 1:
            labels += f", ensemble={len(self.members)}"
        return f"TabularModel(target={self.target!r}, task={self.task!r}{labels}, network={self.network!r})"


def _member_seed(seed: Any, k: int) -> int | None:
    """Member ``k``'s seed: ``seed + k`` (None stays None); ``seed`` is checked first."""
    seed = check_seed(seed)
    return None if seed is None else seed + k


def _setting(value: Any) -> Any:
    """A fit option as the fingerprint keeps it: plain values as they are, arrays (sample
    weights) as a hash of their bytes, anything else as its ``repr``."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (np.ndarray, list, tuple)):
        array = np.ascontiguousarray(np.asarray(value))
        return f"array {array.shape} sha256 {hashlib.sha256(array.tobytes()).hexdigest()[:16]}"
    return repr(value)


def _not_label(value: Any, dtype: np.dtype) -> bool:
    """Whether ``value`` cannot be converted to a label of ``dtype``."""
    try:
        np.array([value]).astype(dtype)
    except (ValueError, TypeError, OverflowError):
        return True
    return False


_NOT_SETTINGS = frozenset({"epochs", "verbose", "checkpoint", "resume", "callbacks", "comm", "num_threads"})
"""Fit options that a resumed run may change (more epochs, other output)."""


def _per_class(confusion: np.ndarray, classes: np.ndarray) -> dict:
    """``{label: {"precision", "recall", "f1", "support"}}`` from a confusion matrix (rows: true)."""
    hits = np.diag(confusion).astype(np.float64)
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    return {
        str(c): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, p, r, f, s in zip(classes.tolist(), precision, recall, f1, support, strict=True)
    }
