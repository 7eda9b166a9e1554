"""Files written atomically and ``.npz`` archives with JSON metadata read without pickle: the
plumbing that model files (:mod:`anybackprop.io`), checkpoints, logs and plots share."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only when the block completes: a temporary file in the
    same directory, flushed and fsynced, then ``os.replace``. On any error the temporary file is
    removed and whatever was at ``path`` is untouched."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def csv_text(header: list, rows: Any) -> str:
    """A CSV document (``\n`` line ends): the ``header`` row, then ``rows``."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue()


def write_text(path: str | os.PathLike, text: str) -> None:
    """``text`` as UTF-8 to ``path``, atomically."""
    with atomic_open(path) as f:
        f.write(text.encode("utf-8"))


def _invalid(path: Any, reason: str, what: str = "model") -> ValueError:
    return ValueError(f"{os.fspath(path)} is not a valid anybackprop {what} file: {reason}")


def read_archive(path: str | os.PathLike, meta_key: str = "__anybackprop__", what: str = "model") -> tuple[dict, dict[str, np.ndarray]]:
    """``(metadata, arrays)`` of an ``.npz`` archive holding JSON metadata under ``meta_key``,
    read with ``allow_pickle=False``; a clear ValueError when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise _invalid(path, "not an .npz archive", what)
            contents = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        if isinstance(exc, ValueError) and "not a valid anybackprop" in str(exc):
            raise
        raise _invalid(path, f"cannot read it as an .npz archive ({type(exc).__name__}: {exc})", what) from None
    if meta_key not in contents:
        raise _invalid(path, "it has no anybackprop metadata", what)
    try:
        meta = json.loads(str(contents.pop(meta_key)))
    except json.JSONDecodeError as exc:
        raise _invalid(path, f"its metadata is not JSON ({exc})", what) from None
    if not isinstance(meta, dict):
        raise _invalid(path, "its metadata is not a JSON object", what)
    return meta, contents
