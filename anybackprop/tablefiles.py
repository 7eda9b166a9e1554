"""Table files and in-memory tables as :class:`Table` objects, ``{column name: 1-D NumPy array}``.

* CSV is read with pyarrow when it is installed, else with the standard library's ``csv`` module,
  with the same results and the same errors: both readers hand over the fields as text
  and one function (:func:`typed_column`) gives each column its type. Stripped of spaces, a field
  in :data:`MISSING` (case aside) is missing; a column whose present values are all integers that
  fit in int64 and that misses none is int64 (exact values); one whose present values are all
  numbers is float64 (NaN where missing); integers beyond int64 stay text, exactly as written;
  any other column is text (an object array of ``str``, None where missing). Infinity is refused,
  naming the column and the file's line. A pyarrow failure is reported by the standard reader,
  so the messages do not depend on what is installed. (pandas is not used for CSV: its reader
  pads a short row with empty fields where the others refuse it.) ``encoding`` (default UTF-8, with or
  without a byte-order mark) and ``delimiter`` (default: the most frequent of ``, ; tab |`` on the
  header line) are the user's to give.
* Parquet is read with pandas and pyarrow; ``.npz`` holds ``X (m, n)`` (columns ``x0..``) and
  optionally ``y (m,)``.
* A :class:`Table` remembers its source file and where each of its rows came from, also after
  :meth:`Table.take` (a split), so that a bad value is reported at its line of the file.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

MISSING = ("", "na", "n/a", "nan", "null", "none", "?")
"""Texts (stripped, case aside) that mean a missing value in a CSV file."""
READERS = ("pyarrow", "csv")
DELIMITERS = (",", ";", "\t", "|")


class Table(dict):
    """``{column name: 1-D values}`` that knows where its rows came from: ``source`` (a file
    name, or None) and ``records`` (each row's 0-based position among the file's data rows).
    :meth:`where` names a row as the user can find it."""

    def __init__(
        self,
        columns: Any = (),
        source: str | None = None,
        records: np.ndarray | None = None,
        locate: Callable[[int], str] | None = None,
    ) -> None:
        super().__init__(columns)
        self.source, self.records, self._locate = source, records, locate

    def take(self, index: np.ndarray) -> Table:
        """The rows ``index`` of every column, still knowing their place in the file."""
        records = None if self.records is None else self.records[index]
        return Table({k: v[index] for k, v in self.items()}, self.source, records, self._locate)

    def where(self, i: int) -> str:
        """Row ``i`` (0-based) of this table as a place in its file."""
        return where(self, i)


def where(columns: Any, i: int) -> str:
    """Row ``i`` of ``columns`` named as the user can find it: the line of its CSV file, the data
    row of another file, or the data row of an in-memory table (1-based)."""
    records = getattr(columns, "records", None)
    if records is None:
        return f"data row {i + 1}"
    record = int(records[i])
    if columns._locate is not None:
        return f"{columns._locate(record)} of {columns.source}"
    return f"data row {record + 1} of {columns.source}"


def is_missing(values: np.ndarray) -> np.ndarray:
    """Where ``values`` are missing: NaN in a float array; None, NaN, ``pd.NA`` or ``NaT`` in an
    object array; nowhere in integer, bool and string arrays."""
    values = np.asarray(values)
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind != "O":
        return np.zeros(values.shape, dtype=bool)
    return np.array([_missing_object(v) for v in values], dtype=bool)


def _missing_object(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or type(v).__name__ in ("NAType", "NaTType")


class Fields(NamedTuple):
    """One CSV column's fields, stripped of spaces, as NumPy (:func:`numpy_fields`) or pyarrow
    (:func:`arrow_fields`) computes them; :func:`typed_column` decides the type from these alone."""

    missing: np.ndarray
    """Where a field is missing (bool)."""
    numbers: Callable[[], np.ndarray]
    """The present fields as float64; ValueError if one is not a number (Python's ``float``)."""
    integers: Callable[[], np.ndarray | None]
    """The present fields as int64 if each is written as an integer, else None; OverflowError beyond int64."""
    field: Callable[[int], str]
    """The ``i``-th present field."""
    text: Callable[[], np.ndarray]
    """The fields as an object array of ``str``, None where missing."""


def numpy_fields(raw: np.ndarray) -> Fields:
    text = np.char.strip(np.asarray(raw, dtype=str))
    missing = np.isin(np.char.lower(text), MISSING)
    present = text[~missing]

    def integers() -> np.ndarray | None:
        return present.astype(np.int64) if np.all(np.char.isdigit(np.char.lstrip(present, "+-"))) else None

    def as_text() -> np.ndarray:
        out = text.astype(object)
        out[missing] = None
        return out

    return Fields(missing, lambda: present.astype(np.float64), integers, lambda i: str(present[i]), as_text)


def arrow_fields(column: Any) -> Fields:
    """:func:`numpy_fields` computed by pyarrow, 20 times faster; where pyarrow's parsers refuse a
    field (``1_000``, digits of other scripts, integers beyond int64), NumPy's (Python's) decide."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(column)
    missing_arrow = pc.is_in(pc.utf8_lower(text), value_set=pa.array(MISSING))
    missing = np.asarray(missing_arrow.to_numpy(zero_copy_only=False), dtype=bool)
    present = pc.filter(text, pc.invert(missing_arrow))

    def exact() -> np.ndarray:
        return np.asarray(present.to_numpy(zero_copy_only=False), dtype=str)

    def numbers() -> np.ndarray:
        try:
            return np.asarray(pc.cast(present, pa.float64()).to_numpy(zero_copy_only=False))
        except pa.ArrowInvalid:
            return exact().astype(np.float64)

    def integers() -> np.ndarray | None:
        if len(present) and not pc.all(pc.utf8_is_digit(pc.utf8_ltrim(present, characters="+-"))).as_py():
            return None
        try:
            return np.asarray(pc.cast(present, pa.int64()).to_numpy(zero_copy_only=False))
        except pa.ArrowInvalid:
            return exact().astype(np.int64)

    def as_text() -> np.ndarray:
        out = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
        out[missing] = None
        return out

    return Fields(missing, numbers, integers, lambda i: present[i].as_py(), as_text)


def typed_column(name: str, fields: Fields, place: Callable[[int], str]) -> np.ndarray:
    """A CSV column's :class:`Fields` as int64, float64 or text: see the module docstring.
    ``place(i)`` names row ``i`` for the error about infinity."""
    try:
        numbers = fields.numbers()
    except ValueError:
        return fields.text()
    infinite = np.flatnonzero(np.isinf(numbers))
    if infinite.size:
        row = int(np.flatnonzero(~fields.missing)[infinite[0]])
        raise ValueError(
            f"column {name!r} holds {fields.field(int(infinite[0]))!r} (infinity) in {place(row)}; "
            "expected finite numbers (leave the field empty for a missing value)"
        )
    try:
        integers = fields.integers()
    except OverflowError:  # integers beyond int64 stay exactly as written
        return fields.text()
    if integers is not None and not fields.missing.any():
        return integers
    out = np.full(len(fields.missing), np.nan)
    out[~fields.missing] = numbers
    return out


# --- CSV --------------------------------------------------------------------------------------------


def _check_file(path: str) -> None:
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; expected a .csv, .parquet or .npz file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty; expected a header row with the column names, then data rows")


def _decode_error(path: str, encoding: str | None) -> ValueError:
    """The error for a file that is not ``encoding`` text, naming the line of its first bad byte."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        raw.decode(encoding or "utf-8-sig")
        where = ""
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        where = f" (line {line} holds the byte 0x{raw[exc.start : exc.start + 1].hex()})"
    return ValueError(
        f"{path} is not {encoding or 'UTF-8'} text{where}; give the file's encoding, e.g. --encoding latin-1 or "
        "cp1252 (Python: encoding='latin-1')"
    )


def _header(path: str, encoding: str | None, delimiter: str | None) -> tuple[list[str], str]:
    """The column names and the delimiter (given, or the most frequent candidate on line 1)."""
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n'):
        raise ValueError(f"delimiter must be one character such as ',' ';' or a tab, got {delimiter!r}")
    try:
        with open(path, newline="", encoding=encoding or "utf-8-sig") as f:
            first = f.readline()
    except UnicodeDecodeError:
        raise _decode_error(path, encoding) from None
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}; e.g. utf-8, latin-1, cp1252") from None
    if delimiter is None:
        delimiter = max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","
    names = next(csv.reader([first], delimiter=delimiter), [])
    header = [name.strip() for name in names]
    if not header or header == [""]:
        raise ValueError(f"{path} has no header row; expected column names on the first line")
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path} names the column(s) {', '.join(map(repr, duplicates))} more than once")
    return header, delimiter


def _csv_records(path: str, encoding: str | None, delimiter: str) -> tuple[list[list[str]], list[int]]:
    """The data rows of a CSV file as lists of fields, and the line each starts on (1-based;
    blank lines skipped)."""
    rows, lines = [], []
    try:
        with open(path, newline="", encoding=encoding or "utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            next(reader, None)
            line = reader.line_num + 1
            for row in reader:
                if row:
                    rows.append(row)
                    lines.append(line)
                line = reader.line_num + 1
    except UnicodeDecodeError:
        raise _decode_error(path, encoding) from None
    except csv.Error as exc:
        raise ValueError(f"{path} is not a valid CSV file (line {reader.line_num}: {exc})") from None
    return rows, lines


def _read_csv_stdlib(path: str, header: list[str], encoding: str | None, delimiter: str) -> list[Fields]:
    rows, lines = _csv_records(path, encoding, delimiter)
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(header):
            raise ValueError(
                f"line {line} of {path} has {len(row)} fields, the header has {len(header)} "
                f"(delimiter {delimiter!r}; give another with --delimiter)"
            )
    return [numpy_fields(np.array([row[j] for row in rows], dtype=str)) for j in range(len(header))]


def _read_csv_pyarrow(path: str, header: list[str], encoding: str | None, delimiter: str) -> list[Fields]:
    import pyarrow as pa
    from pyarrow import csv as pacsv

    names = [f"c{j}" for j in range(len(header))]  # the header is read (and checked) by _header
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(encoding=encoding or "utf8", column_names=names, skip_rows=1),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            null_values=[],
        ),
    )
    if table.num_columns != len(header):
        raise ValueError("column count")
    return [arrow_fields(table.column(j)) for j in range(len(header))]


_CSV_READERS = {"pyarrow": _read_csv_pyarrow, "csv": _read_csv_stdlib}


def csv_reader(reader: str | None = None) -> str:
    """The CSV reader to use: ``reader`` if given (one of :data:`READERS`), else pyarrow when it
    is installed, else the standard library."""
    if reader is not None:
        if reader not in READERS:
            raise ValueError(f"unknown reader {reader!r}; accepted values: {', '.join(READERS)} or None")
        return reader
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return "csv"
    return "pyarrow"


def read_csv(
    path: str, *, encoding: str | None = None, delimiter: str | None = None, reader: str | None = None
) -> Table:
    """Every column of the CSV file ``path`` (see the module docstring)."""
    _check_file(path)
    header, delimiter = _header(path, encoding, delimiter)
    name = csv_reader(reader)
    try:
        fields = _CSV_READERS[name](path, header, encoding, delimiter)
    except (ImportError, FileNotFoundError):
        raise
    except Exception:  # the standard reader names the problem (or reads what the fast one refused)
        if name == "csv":
            raise
        fields = _read_csv_stdlib(path, header, encoding, delimiter)
    rows = len(fields[0].missing)
    if not rows:
        raise ValueError(f"{path} has a header but no data rows")
    lines: list[int] = []

    def locate(record: int) -> str:
        if not lines:  # read the line numbers only when an error needs them
            lines.extend(_csv_records(path, encoding, delimiter)[1])
        return f"line {lines[record]}"

    table = Table({}, path, np.arange(rows), locate)
    for column, raw in zip(header, fields, strict=True):
        table[column] = typed_column(column, raw, table.where)
    return table


# --- other files and in-memory tables ---------------------------------------------------------------


def _finite(name: str, values: np.ndarray, columns: Any) -> np.ndarray:
    """``values`` (numeric), refused when they hold infinity or complex numbers."""
    if values.dtype.kind == "c":
        raise TypeError(f"column {name!r} holds complex numbers; expected real numbers or text")
    if values.dtype.kind == "f":
        infinite = np.flatnonzero(np.isinf(values))
        if infinite.size:
            raise ValueError(
                f"column {name!r} holds {float(values[infinite[0]])!r} (infinity) in "
                f"{where(columns, int(infinite[0]))}; expected finite numbers (NaN for a missing value)"
            )
    return values


def columns_from_frame(frame: Any, source: str | None = None) -> Table:
    """A pandas DataFrame as a :class:`Table`: integer columns without missing values as int64
    (uint64 as it is), other numeric columns float64 (NaN where missing, nullable ``Int64`` with
    ``pd.NA`` included), bool and other columns as text (None where missing); complex numbers
    and infinity refused."""
    import pandas as pd

    out = Table({}, source, np.arange(len(frame)) if source is not None else None)
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_complex_dtype(series):
            raise TypeError(f"column {str(name)!r} holds complex numbers; expected real numbers or text")
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            if pd.api.types.is_integer_dtype(series) and not series.isna().any():
                values = series.to_numpy(dtype=np.uint64 if series.dtype.kind == "u" else np.int64)
            else:
                values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            out[str(name)] = _finite(str(name), values, out)
        else:
            out[str(name)] = np.array([None if _missing_object(v) else str(v) for v in series], dtype=object)
    return out


def _read_parquet(path: str) -> Table:
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
    return columns_from_frame(frame, path)


def _read_npz(path: str) -> Table:
    with np.load(path, allow_pickle=False) as archive:
        if "X" not in archive.files:
            raise ValueError(
                f"{path} holds {archive.files}; an .npz table needs an array 'X' (m, n) and optionally 'y' (m,)"
            )
        X = np.asarray(archive["X"])
        y = np.asarray(archive["y"]) if "y" in archive.files else None
    if X.ndim != 2:
        raise ValueError(f"{path}: X has shape {X.shape}; expected (m, n_features)")
    if y is not None and y.shape != (X.shape[0],):
        raise ValueError(f"{path}: y has shape {y.shape}; expected ({X.shape[0]},), one value per row of X")
    table = Table({}, path, np.arange(X.shape[0]))
    for name, values in [*((f"x{j}", X[:, j]) for j in range(X.shape[1])), *([("y", y)] if y is not None else [])]:
        table[name] = (
            _finite(name, values, table) if values.dtype.kind in "fciub" else values.astype(str).astype(object)
        )
    return table


def read_table(
    path: str | os.PathLike, *, encoding: str | None = None, delimiter: str | None = None, reader: str | None = None
) -> Table:
    """Every column of a ``.csv``, ``.parquet`` or ``.npz`` file as a :class:`Table` in the
    file's order (see the module docstring; ``encoding``, ``delimiter`` and ``reader`` are for CSV)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; expected a .csv, .parquet or .npz file")
    if ext == ".csv" or ext in (".tsv", ".txt"):
        return read_csv(path, encoding=encoding, delimiter=delimiter, reader=reader)
    if ext in (".parquet", ".pq"):
        _check_file(path)
        return _read_parquet(path)
    if ext == ".npz":
        _check_file(path)
        return _read_npz(path)
    raise ValueError(f"cannot read {path!r}: expected a .csv, .tsv, .parquet or .npz file")


def as_columns(data: Any, names: list[str] | None = None, what: str = "columns") -> dict[str, np.ndarray]:
    """``data`` as ``{name: 1-D NumPy array}``: a dict of columns (a :class:`Table` is kept as it
    is), a pandas DataFrame (columns by name), or a 2-D array whose columns are ``names`` in order.
    Columns must be 1-D and of one length; lists and string arrays become object arrays."""
    if isinstance(data, Table):
        columns: dict = data
    elif isinstance(data, dict):
        columns = {}
        for name, values in data.items():
            values = np.asarray(values)
            if values.ndim != 1:
                raise ValueError(f"{what}: column {name!r} has shape {values.shape}; expected one value per row")
            columns[name] = values.astype(object) if values.dtype.kind in "US" else values
    elif hasattr(data, "columns") and hasattr(data, "iloc"):
        columns = columns_from_frame(data)
    else:
        array = np.asarray(data)
        if array.ndim != 2 or names is None:
            raise TypeError(
                f"{what} must be a dict {{name: values}}, a pandas DataFrame or a 2-D array of the training columns "
                f"in order, got {type(data).__name__}" + (f" of shape {array.shape}" if array.ndim != 2 else "")
            )
        if array.shape[1] != len(names):
            raise ValueError(
                f"{what} has {array.shape[1]} columns; expected {len(names)}, the training columns in order: "
                f"{', '.join(names)}"
            )
        columns = {name: array[:, j] for j, name in enumerate(names)}
    if not columns:
        raise ValueError(f"{what} has no columns")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{n!r}: {k}" for n, k in lengths.items())
        raise ValueError(f"{what}: the columns have different lengths ({shown}); expected one value per row in each")
    for name, values in columns.items():
        if np.asarray(values).dtype.kind == "c":
            raise TypeError(f"column {name!r} holds complex numbers; expected real numbers or text")
    return columns
