"""Files written atomically and ``.npz`` archives with JSON metadata read as untrusted input: the
plumbing that model files (:mod:`anybackprop.io`), checkpoints, logs and plots share.

Writing (:func:`atomic_open`): a temporary file beside the target (a name that fits the file
system's limit), created with the permissions a plain ``open(path, "w")`` would give (``0o666``
less the umask; an overwritten file keeps its mode), flushed and fsynced, renamed over the target
with ``os.replace``, then the directory fsynced so that the rename itself survives a crash.

Reading (:func:`read_archive`), in two phases, never with ``np.load`` and never unpickling:

1. the JSON metadata member, bounded in size and nesting depth;
2. the caller turns the metadata into the members it implies (name, shape, dtype); every member is
   checked against that expectation from the zip directory and its ``.npy`` header, before a
   byte of its data is read: unexpected, missing, duplicate, compressed or oversized members are
   refused, as are wrong dtypes or shapes and non-finite values. Big-endian arrays are converted
   to native byte order.

Every failure is ``ValueError("<path> is not a valid anybackprop <what> file: <reason>")``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
import stat
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

import numpy as np

MAX_META_CHARS = 1 << 20
"""Longest JSON metadata of a model file, in characters (a model's is a few kB)."""
MAX_META_DEPTH = 32
"""Deepest nesting of JSON arrays and objects in the metadata."""
MAX_MEMBERS = 1 << 16
"""Most members an archive's zip directory may list (read before the metadata)."""
_MAX_HEADER = 10000  # numpy's own bound on a .npy header (read_array_header's max_header_size)
_READ_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError, SyntaxError)
"""What reading a damaged or hostile member can raise (zipfile's, the decompressor's, NumPy's header parser)."""
_NPY_MAGIC = b"\x93NUMPY"


def _name_max(directory: str) -> int:
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError, TypeError):
        return 255


def _temporary_name(directory: str, base: str) -> str:
    """``.<base>.<random>.tmp``, ``base`` shortened until the name fits the directory's
    ``PC_NAME_MAX`` (counted in encoded bytes)."""
    suffix = f".{secrets.token_hex(4)}.tmp"
    stem = "." + base
    limit = _name_max(directory)
    while stem and len(os.fsencode(stem + suffix)) > limit:
        stem = stem[:-1]
    return os.path.join(directory, stem + suffix)


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory: the rename is still atomic
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only when the block completes: a temporary file in the
    same directory, flushed and fsynced, then ``os.replace`` and an fsync of the directory. The
    file gets ``0o666`` less the umask, or the mode of the file it replaces. On any error the
    temporary file is removed and whatever was at ``path`` is untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = None  # a new file: os.open's 0o666 less the umask, as open() would give
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = _temporary_name(directory, os.path.basename(path))
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"cannot create a temporary file beside {path}")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


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


def display_name(path: Any) -> str:
    """``path`` as messages show it: the path, or a file object's name."""
    if isinstance(path, (str, bytes, os.PathLike)):
        return os.fsdecode(path)
    name = getattr(path, "name", None)
    return name if isinstance(name, str) else f"<{type(path).__name__}>"


def _invalid(path: Any, reason: str, what: str = "model") -> ValueError:
    return ValueError(f"{display_name(path)} is not a valid anybackprop {what} file: {reason}")


class _Invalid(Exception):
    """A reason a file is not valid, raised inside the reader and turned into :func:`_invalid`."""


class Refusal(ValueError):
    """Raised by an expectation for a file that is valid but does not fit the caller (a
    checkpoint of another optimizer): passed on unchanged by :func:`read_archive`."""


@dataclass(frozen=True)
class Contents:
    """What the zip directory says, for an expectation to consult: the array members' names
    (without ``.npy``, metadata excluded) and the archive's size in bytes (every member is stored
    uncompressed, so no array it holds can be larger)."""

    names: tuple[str, ...]
    nbytes: int


Expected = dict[str, tuple[tuple[int, ...], Any]]
"""``{member name: (shape, dtype)}``: the arrays that the metadata implies."""


def json_depth(value: Any) -> int:
    """Deepest nesting of lists and dicts in the parsed JSON ``value`` (counted with a stack, not
    by recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _read_header(f: IO[bytes], member: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from the ``.npy`` header at the start of ``f``."""
    magic = f.read(8)
    if len(magic) != 8 or magic[:6] != _NPY_MAGIC:
        raise _Invalid(f"member {member!r} is not a .npy array")
    version = (magic[6], magic[7])
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=_MAX_HEADER)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=_MAX_HEADER)
    else:
        raise _Invalid(f"member {member!r} has .npy format version {version}, expected 1.0 or 2.0")
    return tuple(shape), bool(fortran), np.dtype(dtype)


def _same_dtype(found: np.dtype, expected: np.dtype) -> bool:
    """Equal up to byte order, plain numbers only (no fields, subarrays or objects)."""
    if found.fields is not None or found.subdtype is not None or found.hasobject or found.kind not in "biuf":
        return False
    return found.newbyteorder("=") == expected.newbyteorder("=")


def _member_data(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    if not nbytes + 10 <= info.file_size <= nbytes + 12 + _MAX_HEADER:
        raise _Invalid(
            f"member {name!r} is {info.file_size} bytes, but a {dtype.name} array of shape {shape} takes "
            f"{nbytes} (+ header)"
        )
    with zf.open(info) as f:
        found_shape, fortran, found = _read_header(f, name)
        if not _same_dtype(found, dtype) or found_shape != tuple(shape):
            raise _Invalid(f"{name} has shape {found_shape} dtype {found}, expected {tuple(shape)} {dtype}")
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise _Invalid(f"member {name!r} is truncated ({len(data)} of {nbytes} bytes)")
        if f.read(1):
            raise _Invalid(f"member {name!r} has data after its array")
    array = np.frombuffer(data, dtype=found).reshape(shape, order="F" if fortran else "C")
    array = np.array(array, dtype=found.newbyteorder("="), order="C")  # native byte order, writable
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise _Invalid(f"{name} contains NaN or infinity")
    return array


def _few(names: Any, limit: int = 20) -> str:
    """``names`` sorted, as a list, the first ``limit`` of them (a hostile file may hold thousands)."""
    names = sorted(names)
    return str(names) if len(names) <= limit else f"{str(names[:limit])[:-1]}, ... ({len(names)} in all)]"


def _open_source(path: Any, stack: contextlib.ExitStack) -> tuple[BinaryIO, int]:
    if isinstance(path, (str, bytes, os.PathLike)):
        if os.path.isdir(path):
            raise _Invalid("it is a directory")
        f: Any = stack.enter_context(open(path, "rb"))  # noqa: SIM115 (the caller's stack closes it; FileNotFoundError passes)
    elif hasattr(path, "read"):
        f = path
        if not (hasattr(f, "seekable") and f.seekable()):  # a pipe or a socket: read it whole
            f = io.BytesIO(f.read())
    else:
        raise TypeError(f"expected a path or a binary file object, got {type(path).__name__}")
    start = f.tell()
    size = f.seek(0, os.SEEK_END) - start
    f.seek(start)
    head = f.read(len(_NPY_MAGIC))
    f.seek(start)
    if not isinstance(head, bytes):
        raise TypeError(f"expected a binary file object, got one that reads {type(head).__name__}")
    if head == _NPY_MAGIC:
        raise _Invalid("it is a single .npy array, not an .npz archive")
    listed = zip_entries_listed(f, start, size)
    f.seek(start)
    if listed is not None and listed > MAX_MEMBERS:
        raise _Invalid(f"its zip directory lists {listed} members (at most {MAX_MEMBERS})")
    return f, size


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory: signature, disks, entries here, total, ...
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # signature, disk, offset of the zip64 end record, disks
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")  # signature, size, versions, disks, entries here, total, ...


def zip_entries_listed(f: Any, start: int, size: int) -> int | None:
    """The number of members the zip directory of ``f`` (``size`` bytes from offset ``start``)
    declares, read from its end-of-central-directory record (and the zip64 record it points to)
    as PKWARE's APPNOTE lays them out, before :mod:`zipfile` builds one object per member; None
    when no such record is found (``zipfile`` then gives its own error)."""
    tail_len = min(size, _EOCD.size + 0xFFFF)  # the record, then a comment of at most 65535 bytes
    f.seek(start + size - tail_len)
    tail = f.read(tail_len)
    at = len(tail)
    while True:  # the last signature whose record and comment end the file (one may hide in a comment)
        at = tail.rfind(b"PK\x05\x06", 0, at)
        if at < 0:
            return None
        if len(tail) - at >= _EOCD.size and at + _EOCD.size + _EOCD.unpack_from(tail, at)[-1] == len(tail):
            break
    total = _EOCD.unpack_from(tail, at)[4]
    locator_at = at - _ZIP64_LOCATOR.size
    if locator_at < 0 or tail[locator_at : locator_at + 4] != b"PK\x06\x07":
        return int(total)
    offset = _ZIP64_LOCATOR.unpack_from(tail, locator_at)[2]
    if offset + _ZIP64_EOCD.size > size:
        return int(total)
    f.seek(start + offset)
    record = f.read(_ZIP64_EOCD.size)
    if len(record) < _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
        return int(total)
    return int(_ZIP64_EOCD.unpack(record)[7])


def read_archive(
    path: Any,
    expect: Callable[[dict, Contents], Expected],
    meta_key: str = "__anybackprop__",
    what: str = "model",
    max_meta: int = MAX_META_CHARS,
) -> tuple[dict, dict[str, np.ndarray]]:
    """``(metadata, arrays)`` of an ``.npz`` archive (a path or a seekable binary file object)
    holding JSON metadata under ``meta_key``, read in two phases: the metadata (at most
    ``max_meta`` characters, :data:`MAX_META_DEPTH` deep, a JSON object), then the arrays that
    ``expect(metadata, contents)`` names, each checked against its expected shape and dtype before
    its data is read. ``expect`` raises ValueError/TypeError/KeyError for metadata it cannot use.
    A clear ValueError whenever the file is not valid; FileNotFoundError for a missing path."""
    try:
        with contextlib.ExitStack() as stack:
            f, size = _open_source(path, stack)
            try:
                zf = stack.enter_context(zipfile.ZipFile(f))
                infos = zf.infolist()
            except (
                zipfile.BadZipFile,
                zipfile.LargeZipFile,
                OSError,
                EOFError,
                ValueError,
                NotImplementedError,
            ) as exc:
                raise _Invalid(f"cannot read it as an .npz archive ({type(exc).__name__}: {exc})") from None
            members: dict[str, zipfile.ZipInfo] = {}
            for info in infos:
                if info.filename in members:
                    raise _Invalid(f"it holds member {info.filename!r} twice")
                members[info.filename] = info
                if not info.filename.endswith(".npy"):
                    raise _Invalid(f"member {info.filename!r} is not a .npy array")
                if info.flag_bits & 0x1:
                    raise _Invalid(f"member {info.filename!r} is encrypted")
                if info.compress_type != zipfile.ZIP_STORED:
                    raise _Invalid(
                        f"member {info.filename!r} is compressed (anybackprop writes uncompressed members: save "
                        "it again)"
                    )
                if info.file_size != info.compress_size or info.header_offset + info.compress_size > size:
                    raise _Invalid(
                        f"member {info.filename!r} declares {info.file_size} bytes that the file does not hold "
                        "(truncated?)"
                    )
            meta_info = members.pop(meta_key + ".npy", None)
            if meta_info is None:
                raise _Invalid("it has no anybackprop metadata")
            meta = _read_meta(zf, meta_info, meta_key, max_meta)
            contents = Contents(tuple(name[:-4] for name in members), size)
            try:
                expected = expect(meta, contents)
            except (_Invalid, Refusal):
                raise
            except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
                reason = (
                    str(exc)
                    if isinstance(exc, ValueError)
                    else f"its metadata is not valid ({type(exc).__name__}: {exc})"
                )
                raise _Invalid(reason) from None
            missing = sorted(set(expected) - set(contents.names))
            extra = sorted(set(contents.names) - set(expected))
            if missing or extra:
                raise _Invalid(
                    f"it holds arrays {_few(contents.names)} but its metadata describes {_few(expected)}"
                    + (f" (missing {_few(missing)})" if missing else "")
                    + (f" (unexpected {_few(extra)})" if extra else "")
                )
            shapes = {k: (tuple(int(n) for n in shape), np.dtype(dtype)) for k, (shape, dtype) in expected.items()}
            total = sum(int(np.prod(shape, dtype=object)) * dtype.itemsize for shape, dtype in shapes.values())
            if total > size:
                raise _Invalid(f"its metadata implies {total} bytes of arrays but the file has {size} bytes")
            arrays = {}
            for key, (shape, dtype) in shapes.items():
                try:
                    arrays[key] = _member_data(zf, members[key + ".npy"], key, shape, dtype)
                except _Invalid:  # noqa: PERF203 (one member at a time: the error names it)
                    raise
                except _READ_ERRORS as exc:
                    raise _Invalid(f"cannot read member {key!r} ({type(exc).__name__}: {exc})") from None
    except _Invalid as exc:
        raise _invalid(path, str(exc), what) from None
    return meta, arrays


def _read_meta(zf: zipfile.ZipFile, info: zipfile.ZipInfo, meta_key: str, max_meta: int) -> dict:
    if info.file_size > 12 + _MAX_HEADER + 4 * max_meta:
        raise _Invalid(f"its metadata is {info.file_size} bytes, more than the {max_meta} characters allowed")
    try:
        with zf.open(info) as f:
            shape, _, dtype = _read_header(f, meta_key)
            if dtype.kind != "U" or shape != ():
                raise _Invalid(f"its metadata is not a unicode string (dtype {dtype.str}, shape {shape})")
            if dtype.itemsize > 4 * max_meta:
                raise _Invalid(
                    f"its metadata is {dtype.itemsize // 4} characters long, more than the {max_meta} allowed"
                )
            data = f.read(dtype.itemsize)
            if len(data) != dtype.itemsize:
                raise _Invalid("its metadata is truncated")
        text = str(np.frombuffer(data, dtype=dtype)[0])
    except _Invalid:
        raise
    except (*_READ_ERRORS, UnicodeError) as exc:
        raise _Invalid(f"cannot read its metadata ({type(exc).__name__}: {exc})") from None
    try:
        meta = json.loads(text)
    except RecursionError:  # json's parser refuses nesting deeper than the recursion limit
        raise _Invalid(f"its metadata nests deeper than {MAX_META_DEPTH} levels") from None
    except ValueError as exc:
        raise _Invalid(f"its metadata is not JSON ({type(exc).__name__}: {exc})") from None
    if json_depth(meta) > MAX_META_DEPTH:
        raise _Invalid(f"its metadata nests deeper than {MAX_META_DEPTH} levels")
    if not isinstance(meta, dict):
        raise _Invalid("its metadata is not a JSON object")
    return meta
