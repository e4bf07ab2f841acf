"""Row-chunked passes over score arrays.

Every statistic the toolkit needs (the NLL and its derivatives, per-row
scores, decisions) is a function of one row at a time, so a pass is a map
over row ranges followed by an ordered reduction.  Chunks keep memory flat on
large or memory-mapped arrays, and a thread pool spreads them over the cores:
numpy releases the GIL inside its kernels.  Results are combined in chunk
order, so the outcome does not depend on scheduling.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# About 4 MiB of float32 per chunk: large enough to amortise numpy call
# overhead, small enough to stay in cache-friendly territory.
_TARGET_ELEMENTS = 1 << 20


def chunk_rows(n_cols, target_elements=_TARGET_ELEMENTS):
    """Rows per chunk for arrays with ``n_cols`` columns."""
    return max(1, target_elements // max(1, int(n_cols)))


def row_slices(n_rows, rows_per_chunk):
    """Consecutive ``slice`` objects covering ``range(n_rows)``."""
    return [slice(start, min(start + rows_per_chunk, n_rows))
            for start in range(0, n_rows, rows_per_chunk)]


def n_workers():
    """Threads used for a pass: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def map_rows(fn, n_rows, n_cols, rows_per_chunk=None):
    """Call ``fn(slice)`` for each row chunk and return the results in order."""
    slices = row_slices(n_rows, rows_per_chunk or chunk_rows(n_cols))
    workers = min(n_workers(), len(slices))
    if workers <= 1:
        return [fn(s) for s in slices]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, slices))


def sum_rows(fn, n_rows, n_cols, rows_per_chunk=None):
    """Sum the (tuples of) float64 arrays that ``fn(slice)`` returns per chunk."""
    parts = map_rows(fn, n_rows, n_cols, rows_per_chunk)
    if not parts:
        raise ValueError("no rows")
    total = [np.asarray(p, dtype=np.float64).copy() for p in parts[0]]
    for part in parts[1:]:
        for acc, p in zip(total, part):
            acc += p
    return total


_local = threading.local()


def scratch(shape, dtype, slot=0):
    """A per-thread reusable buffer of at least ``shape`` (rows may be fewer).

    Fresh multi-megabyte allocations cost page faults on every chunk; each
    worker thread keeps its own buffers instead.
    """
    key = (slot, np.dtype(dtype).str, shape[1:])
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(key)
    if buf is None or buf.shape[0] < shape[0]:
        buf = bufs[key] = np.empty(shape, dtype)
    return buf[:shape[0]]


def row_sums(a):
    """Row sums through BLAS matrix-vector product (several times faster than
    ``a.sum(axis=1)`` on float32), as float64."""
    if a.dtype in (np.float32, np.float64):
        return (a @ np.ones(a.shape[1], a.dtype)).astype(np.float64)
    return a.sum(axis=1, dtype=np.float64)
