"""Your own tables, on the host (NumPy): read a CSV, Parquet or ``.npz`` file, encode its columns,
and a :class:`TabularModel` that carries that encoding, its class labels and a network together.

* :func:`load_table` reads ``{column name: values}`` and the target column. CSV files (a header
  row) are read with the standard library: a column whose values all parse as numbers is
  numeric (float64, NaN where missing), any other is categorical (strings). Parquet needs
  pandas and pyarrow (``pip install 'anybackprop[tables]'``). An ``.npz`` file holds ``X (m, n)``
  and ``y (m,)``: columns ``x0 .. x{n-1}`` and the target ``y``.
* :class:`TableEncoder` learns from the training rows, per column, either nothing (numeric) or
  its categories (categorical, one-hot encoded; a category unseen in training encodes as all
  zeros, with a warning that counts the rows). It matches columns by name, so a file with its
  columns in another order works and one that lacks a column is refused naming it. A missing
  value is an error naming the column and the first row, unless ``impute="mean"`` (numeric:
  the training mean; categorical: all zeros).
* :class:`TabularModel` = encoder + target name + task + class labels (their original values and
  dtype) + an :class:`~anybackprop.MLP` whose first layer scales the inputs (statistics learned by
  ``fit``, saved as layer state) and, for regression, whose last layer maps the standardised
  target back to its units. ``predict`` on raw columns returns the original labels;
  ``predict_proba`` has one column per class in :attr:`TabularModel.classes` order.
  :func:`anybackprop.save` writes all of it; :func:`anybackprop.load` gives it back.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import warnings
from typing import Any

import numpy as np

from .backend import to_numpy
from .layers.target_scale import target_state
from .network import MLP
from .splits import train_test_split
from .validation import check_positive_int

TASKS = ("classification", "regression")
IMPUTE = ("mean",)
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
MIN_VALIDATION_ROWS = 30
"""Fewer validation rows than this draw a warning: the best epoch would be chosen on noise."""
TARGET_SCALE_WARNING = 10.0
"""A regression target whose mean or standard deviation is this far from 0 and 1 (above the
factor, or its standard deviation below its inverse) draws a warning when it is not scaled."""
MAX_CLASSES_INFERRED = 20
"""A numeric target of integers with at most this many distinct values is taken as class labels."""


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


def _missing_text(value: str) -> bool:
    return value.strip().lower() in MISSING


def _column(values: list[str]) -> np.ndarray:
    """Strings from a CSV column as float64 (NaN where missing) if every present value is a
    number, else as an object array of strings (None where missing)."""
    numbers = []
    for value in values:
        if _missing_text(value):
            numbers.append(math.nan)
            continue
        try:
            numbers.append(float(value))
        except ValueError:
            return np.array([None if _missing_text(v) else v.strip() for v in values], dtype=object)
    return np.array(numbers, dtype=np.float64)


def _read_csv(path: str) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0]:
        raise ValueError(f"{path} has no header row; expected column names on the first line")
    header = [name.strip() for name in rows[0]]
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path} names the column(s) {', '.join(map(repr, duplicates))} more than once")
    body = [row for row in rows[1:] if row]
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise ValueError(f"{path}: data row {i + 1} has {len(row)} fields, the header has {len(header)}")
    return {name: _column([row[j] for row in body]) for j, name in enumerate(header)}


def _read_parquet(path: str) -> dict[str, np.ndarray]:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "reading Parquet needs pandas and pyarrow, an optional extra: pip install 'anybackprop[tables]'"
        ) from None
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise ImportError(f"reading Parquet needs pyarrow: pip install 'anybackprop[tables]' ({exc})") from None
    return columns_from_frame(frame)


def columns_from_frame(frame: Any) -> dict[str, np.ndarray]:
    """A pandas DataFrame as ``{name: values}``: numeric columns float64 (NaN where missing),
    others object arrays of strings (None where missing)."""
    import pandas as pd

    out = {}
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            out[str(name)] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            out[str(name)] = np.array([None if pd.isna(v) else str(v) for v in series], dtype=object)
    return out


def _read_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        if "X" not in archive.files:
            raise ValueError(
                f"{path} holds {archive.files}; an .npz table needs an array 'X' (m, n) and optionally 'y' (m,)"
            )
        X = np.asarray(archive["X"])
        y = np.asarray(archive["y"]) if "y" in archive.files else None
    if X.ndim != 2:
        raise ValueError(f"{path}: X has shape {X.shape}; expected (m, n_features)")
    columns = {
        f"x{j}": X[:, j].astype(np.float64) if X.dtype.kind in "fiub" else X[:, j].astype(object)
        for j in range(X.shape[1])
    }
    if y is not None:
        if y.shape != (X.shape[0],):
            raise ValueError(f"{path}: y has shape {y.shape}; expected ({X.shape[0]},), one value per row of X")
        columns["y"] = y.astype(np.float64) if y.dtype.kind in "fiub" else y.astype(str).astype(object)
    return columns


def read_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every column of a ``.csv``, ``.parquet`` or ``.npz`` file as ``{name: 1-D array}`` in the
    file's order (see the module docstring for the types)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    readers = {".csv": _read_csv, ".parquet": _read_parquet, ".pq": _read_parquet, ".npz": _read_npz}
    if ext not in readers:
        raise ValueError(f"cannot read {path!r}: expected a .csv, .parquet or .npz file")
    return readers[ext](path)


def load_table(path: str | os.PathLike, target: str | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``(features, y)``: the feature columns ``{name: values}`` and the ``target`` column
    (``"y"`` by default for an ``.npz`` file)."""
    columns = read_table(path)
    if target is None:
        if "y" not in columns or not os.fspath(path).endswith(".npz"):
            raise ValueError("target is required: the name of the column to predict")
        target = "y"
    if target not in columns:
        raise ValueError(f"target column {target!r} is not in {os.fspath(path)}; its columns are {', '.join(columns)}")
    y = columns.pop(target)
    _first_missing(target, y, "the target cannot be imputed")
    return columns, y


def _missing_mask(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.array([v is None for v in values], dtype=bool)
    return np.isnan(values)


def _first_missing(name: str, values: np.ndarray, hint: str) -> None:
    mask = _missing_mask(values)
    if mask.any():
        raise ValueError(
            f"column {name!r} has a missing value in data row {int(np.argmax(mask)) + 1} "
            f"({int(mask.sum())} in all); {hint}"
        )


def check_complete(
    columns: dict[str, np.ndarray], hint: str = "fill it in or impute (impute='mean', --impute mean)"
) -> None:
    """A ValueError naming the first column with a missing value and its first such row (1-based)."""
    for name, values in columns.items():
        _first_missing(name, np.asarray(values), hint)


def infer_task(y: np.ndarray) -> str:
    """ "classification" for strings, or integers with at most :data:`MAX_CLASSES_INFERRED`
    distinct values; "regression" otherwise."""
    y = np.asarray(y)
    if y.dtype.kind in "OUSb":
        return "classification"
    integral = bool(np.all(np.mod(y, 1) == 0))
    return "classification" if integral and len(np.unique(y)) <= MAX_CLASSES_INFERRED else "regression"


def class_labels(y: np.ndarray) -> np.ndarray:
    """The sorted distinct labels of ``y`` in their natural dtype: str, or int64 for whole
    numbers (CSV reads them as floats), else the values as they are."""
    y = np.asarray(y)
    if y.dtype == object or y.dtype.kind in "US":
        return np.unique(y.astype(str))
    if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
        return np.unique(y).astype(np.int64)
    return np.unique(y)


class TableEncoder:
    """Numeric columns as they are and categorical columns one-hot, in the training order;
    see the module docstring. ``impute`` is None (a missing value is an error) or "mean"."""

    def __init__(self, impute: str | None = None) -> None:
        if impute is not None and impute not in IMPUTE:
            raise ValueError(f"unknown impute {impute!r}; accepted values: {', '.join(IMPUTE)} or None")
        self.impute = impute
        self.columns: list[dict] | None = None

    def fit(self, columns: dict[str, np.ndarray]) -> TableEncoder:
        """Learn each column's kind, its categories (categorical) and its mean (numeric)."""
        if not isinstance(columns, dict) or not columns:
            raise TypeError(f"columns must be a non-empty dict {{name: values}}, got {type(columns).__name__}")
        if self.impute is None:
            check_complete(columns)
        spec = []
        for name, values in columns.items():
            values = np.asarray(values)
            if values.dtype.kind in "fiub":
                values = values.astype(np.float64)
                present = values[~np.isnan(values)]
                spec.append({"name": name, "kind": "numeric", "fill": float(present.mean()) if present.size else 0.0})
            else:
                present = [str(v) for v in values if v is not None]
                spec.append({"name": name, "kind": "categorical", "categories": sorted(set(present))})
        self.columns = spec
        return self

    @property
    def feature_names(self) -> list[str]:
        """The encoded features: numeric column names, and ``column=category`` per category."""
        self._check_fitted()
        return [
            c["name"] if c["kind"] == "numeric" else f"{c['name']}={cat}"
            for c in self.columns
            for cat in c.get("categories", [None])
        ]

    def _check_fitted(self) -> None:
        if self.columns is None:
            raise ValueError("this TableEncoder is not fitted yet: call fit(columns) first")

    def transform(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """The encoded ``(m, n_features)`` float64 matrix of raw ``columns`` (matched by name)."""
        self._check_fitted()
        absent = [c["name"] for c in self.columns if c["name"] not in columns]
        if absent:
            raise ValueError(
                f"the data lacks the column(s) {', '.join(map(repr, absent))} that the model was trained with"
            )
        if self.impute is None:
            check_complete(
                {c["name"]: columns[c["name"]] for c in self.columns},
                "fill it in (the model was trained without impute)",
            )
        parts, unknown = [], {}
        for c in self.columns:
            name = c["name"]
            values = np.asarray(columns[name])
            if c["kind"] == "numeric":
                if values.dtype.kind not in "fiub":
                    bad = next(v for v in values if v is not None)
                    raise ValueError(f"column {name!r} was numeric in training but holds {bad!r} here")
                values = values.astype(np.float64)
                parts.append(np.where(np.isnan(values), c["fill"], values)[:, None])
            else:
                text = np.array(["" if v is None else str(v) for v in values], dtype=object)
                cats = np.array(c["categories"], dtype=object)
                onehot = (text[:, None] == cats[None, :]).astype(np.float64)
                seen = onehot.any(axis=1) | _missing_mask(values)
                if not seen.all():
                    unknown[name] = int((~seen).sum())
                parts.append(onehot)
        if unknown:
            counts = ", ".join(f"{n!r}: {k} rows" for n, k in unknown.items())
            warnings.warn(f"categories not seen in training encode as all zeros ({counts})", UserWarning, stacklevel=3)
        return np.concatenate(parts, axis=1)

    def config(self) -> dict:
        self._check_fitted()
        return {"impute": self.impute, "columns": self.columns}

    @classmethod
    def from_config(cls, config: dict) -> TableEncoder:
        encoder = cls(config.get("impute"))
        columns = config.get("columns")
        if not isinstance(columns, list) or not all(_valid_column(c) for c in columns):
            raise ValueError(
                "its table encoder has no valid 'columns' list (each a name and a numeric fill or string categories)"
            )
        encoder.columns = columns
        return encoder


def _valid_column(column: Any) -> bool:
    """A saved column spec: a string name, and a finite numeric ``fill`` or a list of string
    ``categories`` (a file is untrusted input: predict must not meet a KeyError later)."""
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
    )


class TabularModel:
    """A network that takes raw table columns: see the module docstring. The network is an
    :class:`~anybackprop.MLP` ``[n_features, *hidden, n_outputs]`` with ``standardize`` (default
    "robust": median/quartile scaling with smooth clipping; True for mean and standard deviation,
    False for none) and the other keywords (``activation``, ``dropout``, ``norm``, ``bins``,
    ``seed``, ``dtype``, ``backend``...) as :class:`~anybackprop.MLP` takes them; it is built by
    :meth:`fit` once the encoded width and the classes are known. ``task`` is "classification",
    "regression" or None (inferred from the target by :func:`infer_task`). ``scale_target``
    (default True; regression only): the network is trained on the standardised target (mean and
    standard deviation of the training rows; the history's losses are in those units) and ends
    with a :class:`~anybackprop.layers.TargetScale` layer that maps its output back to the
    target's units, saved and exported with it."""

    def __init__(
        self,
        hidden: list[int] | tuple[int, ...] = (128, 64),
        *,
        task: str | None = None,
        impute: str | None = None,
        standardize: bool | str = "robust",
        output: str | None = None,
        scale_target: bool = True,
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
        self.encoder = TableEncoder(impute)
        self.network: MLP | None = None
        self.target: str | None = None
        self.classes: np.ndarray | None = None
        self.info: dict = {}

    # --- fitting ---------------------------------------------------------------------------------

    def prepare(
        self, columns: dict[str, np.ndarray], y: np.ndarray, target: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Learn the encoding, the task and the labels from ``(columns, y)`` and build the
        network (untrained); returns the encoded ``(X, targets)``. :meth:`fit` starts here."""
        y = np.asarray(y)
        self.target = target if target is not None else self.target
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
        self.network = MLP(
            [X.shape[1], *self.hidden, n_out],
            output=output,
            standardize=self.standardize,
            target_scale=self.scale_target and self.task == "regression",
            **self.mlp_options,
        )
        return X, self.encode_target(y)

    def fit(
        self,
        columns: dict[str, np.ndarray],
        y: np.ndarray,
        *,
        target: str | None = None,
        validation_data: tuple | None = None,
        validation_fraction: float | None = None,
        **fit_options: Any,
    ) -> Any:
        """:meth:`prepare`, then train the network (:func:`anybackprop.training.fit` options;
        ``validation_data`` as raw ``(columns, y)``). Returns the :class:`~anybackprop.training.History`.

        ``validation_fraction`` (in (0, 1)) instead holds out that share of the rows given
        (stratified by class, drawn from ``seed``) as the validation data, and the network keeps
        the weights of the epoch with the best validation loss: training stops after
        ``early_stopping`` epochs without improvement (default: it runs every epoch). A warning
        says when the held-out part is small or misses a class."""
        if validation_fraction is not None:
            if validation_data is not None:
                raise ValueError("give validation_data or validation_fraction, not both")
            columns, y, validation_data = self._hold_out(columns, y, validation_fraction, fit_options.get("seed", 0))
            fit_options.setdefault("early_stopping", None)
            if fit_options["early_stopping"] is None:
                fit_options["early_stopping"] = check_positive_int(fit_options.get("epochs", 30), "epochs")
        X, t = self.prepare(columns, y, target)
        if validation_data is not None:
            validation_data = (self.encode(validation_data[0]), self.encode_target(validation_data[1]))
        if self.task != "regression":
            return self.network.fit(X, t, validation_data=validation_data, **fit_options)
        if not self.scale_target:
            _warn_unscaled(t)
            return self.network.fit(X, t, validation_data=validation_data, **fit_options)
        stats = target_state(np, t.reshape(len(t), -1))
        if validation_data is not None:
            validation_data = (validation_data[0], _standard(validation_data[1], stats))
        history = self.network.fit(X, _standard(t, stats), validation_data=validation_data, **fit_options)
        self.network.set_layer_state(len(self.network.layers) - 1, stats)
        return history

    def _hold_out(
        self, columns: dict[str, np.ndarray], y: np.ndarray, fraction: float, seed: int | None
    ) -> tuple[dict, np.ndarray, tuple]:
        """``(training columns, training y, (validation columns, validation y))``: ``fraction``
        of the rows held out, stratified by class for classification."""
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
        y = np.asarray(y)
        classify = (self.task or infer_task(y)) == "classification"
        strata = np.unique(y.astype(str), return_inverse=True)[1] if classify else y
        try:
            train, held, _, _ = train_test_split(np.arange(len(y)), strata, fraction, seed=seed, stratify=classify)
        except ValueError:
            raise ValueError(
                f"validation_fraction={fraction:g} of {len(y)} rows leaves no validation rows; train on more rows or "
                "without a validation split (validation_fraction=None, --validation-fraction 0)"
            ) from None
        if len(held) < MIN_VALIDATION_ROWS:
            warnings.warn(
                f"validation_fraction={fraction:g} of {len(y)} rows holds out only {len(held)} rows: the best epoch "
                f"is chosen on noise; train on more rows, raise it, or fix the epochs without one "
                f"(--validation-fraction 0)",
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
        train_columns = {k: np.asarray(v)[train] for k, v in columns.items()}
        held_columns = {k: np.asarray(v)[held] for k, v in columns.items()}
        return train_columns, y[train], (held_columns, y[held])

    def _check_fitted(self) -> MLP:
        if self.network is None:
            raise ValueError("this TabularModel is not fitted yet: call fit(columns, y) first")
        return self.network

    def encode(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """The network's input for raw ``columns``."""
        self._check_fitted()
        return self.encoder.transform(columns)

    def encode_target(self, y: np.ndarray) -> np.ndarray:
        """Class indices into :attr:`classes` (classification) or float values (regression)."""
        y = np.asarray(y)
        if self.classes is None:
            return y.astype(np.float64)
        values = y.astype(str) if self.classes.dtype.kind == "U" else y.astype(self.classes.dtype)
        index = np.searchsorted(self.classes, values)
        index = np.minimum(index, len(self.classes) - 1)
        unknown = self.classes[index] != values
        if unknown.any():
            raise ValueError(
                f"the target holds {values[unknown][0]!r}, which is not one of the classes {self.classes.tolist()}"
            )
        return index

    # --- using it --------------------------------------------------------------------------------

    def predict_proba(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """``(m, n_classes)`` probabilities, columns in :attr:`classes` order (NumPy)."""
        if self.classes is None:
            raise ValueError("predict_proba is for classifiers; this model does regression")
        return to_numpy(self._check_fitted().predict_proba(self.encode(columns)))

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """The original class labels, or the predicted values (regression), as NumPy ``(m,)``."""
        out = to_numpy(self._check_fitted().predict(self.encode(columns)))
        return out if self.classes is None else self.classes[out]

    def evaluate(self, columns: dict[str, np.ndarray], y: np.ndarray) -> dict:
        """``{"metric": "accuracy" or "r2", <metric>: value, "loss": mean loss, "rows": m}``, and
        for classification ``"classes"`` and ``"confusion"`` (rows: true class, columns:
        predicted, both in :attr:`classes` order)."""
        network = self._check_fitted()
        X, t = self.encode(columns), self.encode_target(y)
        name = network.head.metric_name
        result = {"metric": name, name: network.score(X, t), "loss": network.loss(X, t), "rows": len(t)}
        if self.classes is not None:
            predicted = to_numpy(network.predict(X))
            confusion = np.zeros((len(self.classes), len(self.classes)), dtype=np.int64)
            np.add.at(confusion, (t, predicted), 1)
            result.update(classes=self.classes.tolist(), confusion=confusion.tolist())
        return result

    def score(self, columns: dict[str, np.ndarray], y: np.ndarray) -> float:
        """Accuracy or R^2 on raw ``columns`` and original targets ``y``."""
        return self.evaluate(columns, y)[self._check_fitted().head.metric_name]

    # --- saving ----------------------------------------------------------------------------------

    def table_config(self) -> dict:
        """What :func:`anybackprop.save` keeps beside the network (JSON-able)."""
        self._check_fitted()
        classes = None if self.classes is None else {"values": self.classes.tolist(), "dtype": self.classes.dtype.str}
        return {"target": self.target, "task": self.task, "encoder": self.encoder.config(), "classes": classes}

    @classmethod
    def from_saved(cls, network: MLP, config: dict, info: dict | None = None) -> TabularModel:
        """The model :meth:`table_config` described, around a loaded ``network``."""
        if not isinstance(config, dict) or config.get("task") not in TASKS:
            raise ValueError("its table section has no valid task")
        model = cls(
            task=config["task"],
            standardize=getattr(network, "standardize", False),
            scale_target=getattr(network, "target_scale", False),
        )
        model.network, model.target, model.info = network, config.get("target"), dict(info or {})
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
        return f"TabularModel(target={self.target!r}, task={self.task!r}{labels}, network={self.network!r})"
