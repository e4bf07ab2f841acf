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

import glob as _glob
import os

import numpy as np

from .errors import invalid


class RowSource:
    """Base class: row slicing, and ``np.asarray`` for small sources."""

    shape = ()
    dtype = np.dtype(np.float64)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape))

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows, rest = key[0], key[1:]
            return self[rows][(slice(None),) + rest]
        if not isinstance(key, slice):
            raise TypeError("row sources take row slices")
        start, stop, step = key.indices(self.shape[0])
        if step != 1:
            raise TypeError("row sources take contiguous row slices")
        return self.read(start, max(start, stop))

    def read(self, start, stop):  # pragma: no cover - abstract
        raise NotImplementedError

    def __array__(self, dtype=None, copy=None):
        a = self.read(0, self.shape[0])
        return a if dtype is None else a.astype(dtype, copy=False)


class NpyRows(RowSource):
    """Rows of a C-ordered ``.npy`` file, read on demand (never unpickled)."""

    def __init__(self, path, where=None):
        self.path = os.fspath(path)
        where = where or f"file '{self.path}'"
        with open(self.path, "rb") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = reader(fh)
            except ValueError as exc:
                raise invalid(where, "a .npy array", f"an unreadable header ({exc})")
            self.offset = fh.tell()
        if dtype.hasobject:
            raise invalid(where, "a numeric array", "an object array (not unpickled)")
        if len(shape) == 0:
            raise invalid(where, "an array of rows", "a single number (a 0-d array)")
        if fortran and len(shape) > 1:
            raise invalid(where, "a C-ordered array", "a Fortran-ordered one")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        need = self.offset + self.row_bytes * (shape[0] if shape else 1)
        have = os.path.getsize(self.path)
        if have < need:
            raise invalid(where, f"{need} bytes for shape {tuple(shape)}",
                          f"{have} (a truncated file)")

    def read(self, start, stop):
        out = np.empty((stop - start,) + self.shape[1:], self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        pos, done = self.offset + start * self.row_bytes, 0
        # Opened per read: thousands of shards must not hold thousands of
        # descriptors (one open costs microseconds against a 4 MB read).
        fd = os.open(self.path, os.O_RDONLY)
        try:
            while done < len(view):
                got = os.preadv(fd, [view[done:]], pos + done)
                if got <= 0:
                    raise invalid(f"file '{self.path}'", "readable rows", "an early end of file")
                done += got
        finally:
            os.close(fd)
        return out

    def __reduce__(self):
        # Picklable by path, so a worker process re-opens the file itself.
        return (NpyRows, (self.path,))


class ShardedRows(RowSource):
    """Several row sources end to end, as one (rows in the given order)."""

    def __init__(self, parts, where="shards"):
        if not parts:
            raise invalid(where, "at least one file", "none")
        first = parts[0]
        for p in parts[1:]:
            if p.shape[1:] != first.shape[1:] or p.dtype != first.dtype:
                raise invalid(where, f"shards of shape (*, {', '.join(map(str, first.shape[1:]))}) "
                              f"and dtype {first.dtype}", f"{p.shape} {p.dtype} in {getattr(p, 'path', p)}")
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.starts[-1]),) + first.shape[1:]
        self.dtype = first.dtype

    def read(self, start, stop):
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

    def __init__(self, source, fn, shape=None, dtype=None):
        self.source, self.fn = source, fn
        self.shape = tuple(shape if shape is not None else source.shape)
        self.dtype = np.dtype(dtype if dtype is not None else source.dtype)

    def read(self, start, stop):
        return self.fn(np.asarray(self.source[start:stop]))


def expand(paths):
    """Sorted file list from paths and glob patterns (``*``, ``?``, ``[``)."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if any(ch in p for ch in "*?["):
            found = sorted(_glob.glob(p))
            if not found:
                raise invalid(f"pattern '{p}'", "at least one matching file", "none")
            out.extend(found)
        else:
            out.append(p)
    return out
