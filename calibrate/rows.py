"""Row sources: arrays too large for memory, read a block of rows at a time.

Every pass of the toolkit reads its scores in row chunks (see
:mod:`._chunks`), so a score array never has to be in memory whole.  A
:class:`NpyRows` reads a ``.npy`` file with ``os.preadv`` into the caller's
chunk (no memory map, so the process's resident memory stays flat even when
the file is several GB); :class:`ShardedRows` puts several sources end to end
without concatenating them; :class:`MappedRows` applies a row-wise function
(probabilities -> logits) to each chunk as it is read.

A row source has ``shape``, ``dtype``, ``ndim``, ``len()`` and
``source[start:stop]`` (a numpy array of those rows); ``np.asarray(source)``
reads everything, for the small arrays (labels, one-column scores) where that
is fine.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from .errors import invalid
from .outputs import StrPath, file_kind, is_pattern


class RowSource:
    """Base class: row slicing, and ``np.asarray`` for small sources."""

    shape: tuple[int, ...] = ()
    dtype: np.dtype[Any] = np.dtype(np.float64)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice | tuple[Any, ...]) -> np.ndarray:
        if isinstance(key, tuple):
            rows, rest = key[0], key[1:]
            return self[rows][(slice(None),) + rest]
        if not isinstance(key, slice):
            raise TypeError("row sources take row slices")
        start, stop, step = key.indices(self.shape[0])
        if step != 1:
            raise TypeError("row sources take contiguous row slices")
        return self.read(start, max(start, stop))

    def read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __array__(self, dtype: npt.DTypeLike | None = None,
                  copy: bool | None = None) -> np.ndarray:
        a = self.read(0, self.shape[0])
        return a if dtype is None else a.astype(dtype, copy=False)


#: ``.npy`` format versions numpy defines: (1, 0) and (2, 0) headers are latin-1,
#: (3, 0) is utf-8 (only for structured field names, which are refused anyway).
NPY_VERSIONS = {(1, 0): "<H", (2, 0): "<I", (3, 0): "<I"}
#: numpy's own limit on a header's length (``max_header_size``).
NPY_MAX_HEADER = 10_000
#: Dimensions of an array that holds no element are bounded by this many values
#: a row: the file cannot bound them, and callers size buffers by the row.
EMPTY_ROW_MAX = 1 << 24


@dataclass(frozen=True)
class NpyHeader:
    """A checked ``.npy`` header: the array's ``shape`` and ``dtype``, whether it
    is stored in ``fortran`` order, and the ``header_bytes`` before its data."""
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool
    header_bytes: int

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "dtype": str(self.dtype), "fortran": self.fortran,
                "header_bytes": self.header_bytes}


def read_npy_header(fh: IO[bytes], where: str, stream_bytes: int) -> NpyHeader:
    """Parse a ``.npy`` header from the binary stream ``fh`` without trusting it.

    Returns an :class:`NpyHeader`.  Refuses format
    versions numpy does not define, headers longer than numpy's limit, shapes
    that are not tuples of non-negative ints (a bool is not an int), dtypes
    that are not plain numbers (objects, structured, strings, dates, complex),
    and, with exact integer arithmetic (no int64 wrap-around), a data size other
    than what follows the header in the ``stream_bytes`` of the whole array: a
    truncated file, or bytes the header does not account for (rows a lying
    shape would silently drop).
    """
    d, header_bytes = _header_dict(fh, where)
    shape, fortran = d["shape"], d["fortran_order"]
    if (not isinstance(shape, tuple) or len(shape) > 32
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise invalid(where, "a .npy shape: a tuple of at most 32 non-negative ints",
                      _short(shape))
    if type(fortran) is not bool:
        raise invalid(where, "a .npy fortran_order of True or False", _short(fortran))
    try:
        dtype = np.lib.format.descr_to_dtype(d["descr"])
    except (TypeError, ValueError, KeyError, OverflowError, MemoryError, RecursionError):
        raise invalid(where, "a .npy array", f"an invalid dtype {_short(d['descr'])}") from None
    if dtype.hasobject:
        raise invalid(where, "a numeric array", "an object array (not unpickled)")
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise invalid(where, "a numeric array (bool, int, uint or float)", f"dtype {dtype}")
    size = 1
    for n in shape:
        size *= n
    need = size * dtype.itemsize
    data_bytes_available = stream_bytes - header_bytes
    if need != data_bytes_available:
        why = "a truncated file" if need > data_bytes_available else "bytes after the array"
        raise invalid(where, f"{need} data bytes for shape {shape} and dtype {dtype}",
                      f"{data_bytes_available} ({why})")
    row = 1
    for n in shape[1:]:
        row *= n
    if size == 0 and row > EMPTY_ROW_MAX:
        raise invalid(where, f"rows of at most {EMPTY_ROW_MAX} values in an empty array",
                      f"shape {shape}")
    return NpyHeader(shape, dtype, fortran, header_bytes)


def _header_dict(fh: IO[bytes], where: str) -> tuple[dict[str, Any], int]:
    """The header dict of a ``.npy`` stream and the header's length in bytes:
    magic, a version numpy defines, a length within numpy's limit, and a plain
    dict literal of exactly descr, fortran_order and shape (nothing evaluated)."""
    import ast
    import struct

    def bad(found: str) -> Exception:
        return invalid(where, "a .npy array", found)

    magic = fh.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise bad("no .npy magic string (an unreadable header)" if len(magic) == 8
                  else "an unreadable header (EOF in the magic string)")
    version = (magic[6], magic[7])
    if version not in NPY_VERSIONS:
        raise bad(f"format version {version[0]}.{version[1]} (numpy defines 1.0, 2.0 and 3.0)")
    fmt = NPY_VERSIONS[version]
    raw = fh.read(struct.calcsize(fmt))
    if len(raw) < struct.calcsize(fmt):
        raise bad("an unreadable header (EOF in the header length)")
    length = struct.unpack(fmt, raw)[0]
    if length > NPY_MAX_HEADER:
        raise bad(f"a header of {length} bytes (at most {NPY_MAX_HEADER})")
    text = fh.read(length)
    if len(text) < length:
        raise bad(f"an unreadable header (EOF: {len(text)} of {length} header bytes)")
    header_bytes = 8 + len(raw) + length
    try:
        d = ast.literal_eval(text.decode("utf-8" if version == (3, 0) else "latin-1"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError,
            UnicodeDecodeError):
        raise bad("an unreadable header (not a Python dict literal)") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise bad("an unreadable header (not a dict of descr, fortran_order and shape)")
    return d, header_bytes


def _short(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters for a one-line message."""
    r = repr(value)
    return r if len(r) <= limit else r[:limit - 3] + "..."


@contextlib.contextmanager
def open_regular(path: StrPath, where: str) -> Iterator[IO[bytes]]:
    """A binary file object for ``path``, refused unless it is a regular file.

    Opened without blocking (a FIFO would wait for a writer) and checked on the
    open descriptor, so the file cannot be swapped between check and read.
    """
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise invalid(where, "an existing file", "nothing at that path") from None
    except (OSError, ValueError) as exc:
        try:  # a socket cannot be opened at all: say what it is
            mode = os.stat(path).st_mode
        except (OSError, ValueError):
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            raise invalid(where, "a regular file", file_kind(mode)) from None
        raise invalid(where, "a readable file",
                      getattr(exc, "strerror", None) or str(exc)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # checked before fdopen, which refuses folders itself
        os.close(fd)
        raise invalid(where, "a regular file", file_kind(mode))
    with os.fdopen(fd, "rb") as fh:
        yield fh


class NpyRows(RowSource):
    """Rows of a C-ordered ``.npy`` file, read on demand (never unpickled).

    The header is checked by :func:`read_npy_header` against the file's size, so
    no read ever asks for more than the file holds.
    """

    def __init__(self, path: StrPath, where: str | None = None) -> None:
        self.path = os.fspath(path)
        where = where or f"file '{self.path}'"
        with open_regular(self.path, where) as fh:
            h = read_npy_header(fh, where, os.fstat(fh.fileno()).st_size)
            shape, dtype, fortran, offset = h.shape, h.dtype, h.fortran, h.header_bytes
        if len(shape) == 0:
            raise invalid(where, "an array of rows", "a single number (a 0-d array)")
        if fortran and len(shape) > 1:
            raise invalid(where, "a C-ordered array", "a Fortran-ordered one")
        self.offset = offset
        self.shape, self.dtype = tuple(shape), dtype
        row = 1
        for n in shape[1:]:
            row *= n
        self.row_bytes = row * dtype.itemsize

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start,) + self.shape[1:], self.dtype)
        view = out.reshape(-1).view(np.uint8).data
        pos, done = self.offset + start * self.row_bytes, 0
        # Opened per read: thousands of shards must not hold thousands of
        # descriptors (one open costs microseconds against a 4 MB read).
        where = f"file '{self.path}'"
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            try:
                while done < len(view):
                    got = os.preadv(fd, [view[done:]], pos + done)
                    if got <= 0:
                        raise invalid(where, "readable rows", "an early end of file "
                                      "(the file changed while it was read)")
                    done += got
            finally:
                os.close(fd)
        except OSError as exc:  # replaced or removed while it was read
            raise invalid(where, "readable rows", exc.strerror or str(exc)) from None
        return out

    def __reduce__(self) -> tuple[type[NpyRows], tuple[str]]:
        # Picklable by path, so a worker process re-opens the file itself.
        return (NpyRows, (self.path,))


class ShardedRows(RowSource):
    """Several row sources end to end, as one (rows in the given order)."""

    def __init__(self, parts: Sequence[Any], where: str = "shards") -> None:
        if not parts:
            raise invalid(where, "at least one file", "none")
        first = parts[0]
        for p in parts[1:]:
            if p.shape[1:] != first.shape[1:] or p.dtype != first.dtype:
                dims = ", ".join(map(str, first.shape[1:]))
                raise invalid(where, f"shards of shape (*, {dims}) and dtype {first.dtype}",
                              f"{p.shape} {p.dtype} in {getattr(p, 'path', p)}")
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.starts[-1]),) + first.shape[1:]
        self.dtype = first.dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        out = []
        i = int(np.searchsorted(self.starts, start, side="right")) - 1
        while start < stop and i < len(self.parts):
            lo = self.starts[i]
            hi = min(stop, self.starts[i + 1])
            if hi > start:
                out.append(np.asarray(self.parts[i][start - lo:hi - lo]))
            start = max(start, hi)
            i += 1
        if not out:
            return np.empty((0,) + self.shape[1:], self.dtype)
        return out[0] if len(out) == 1 else np.concatenate(out)


class MappedRows(RowSource):
    """``fn`` applied to each chunk of ``source`` as it is read (row-wise)."""

    def __init__(self, source: Any, fn: Callable[[np.ndarray], np.ndarray],
                 shape: Sequence[int] | None = None, dtype: npt.DTypeLike | None = None) -> None:
        self.source, self.fn = source, fn
        self.shape = tuple(shape if shape is not None else source.shape)
        self.dtype = np.dtype(dtype if dtype is not None else source.dtype)

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.fn(np.asarray(self.source[start:stop]))


def expand(paths: Iterable[StrPath]) -> list[str]:
    """Sorted file list from paths and glob patterns (:func:`is_pattern`)."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if is_pattern(p):
            found = sorted(_glob.glob(p))
            if not found:
                raise invalid(f"pattern '{p}'", "at least one matching file", "none")
            out.extend(found)
        else:
            out.append(p)
    return out
