"""Row-chunked passes over score arrays, on this machine or on Dask.

Every statistic the toolkit needs (the NLL and its derivatives, per-row
scores, decisions) is a function of one row at a time, so a pass is a map of
a *kernel* over blocks of rows followed by an ordered reduction.  A kernel
takes the blocks of its arrays (``kernel(z_block, y_block)``) and returns
arrays with one entry per row (or, for :func:`sum_blocks` with
``per_row=False``, partial sums).

* numpy arrays and :mod:`.rows` sources are cut into row chunks here; a
  thread pool spreads them over the cores (numpy releases the GIL), and
  chunks keep memory flat on files larger than memory.
* dask arrays are cut along their own row blocks, and the same kernel runs as
  one task per block on whatever scheduler is active (threads, or a
  dask.distributed cluster); only the per-row results come back.

Per-row results are summed over the whole vector at the end, so a total does
not depend on how the rows were chunked: the local and the Dask paths give
the same bits.
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


_local = threading.local()


def scratch(shape, dtype, slot=0):
    """A per-thread reusable buffer of ``shape``.

    Fresh multi-megabyte allocations cost page faults on every chunk; each
    worker thread keeps one flat buffer per slot and dtype instead, grown
    when a larger chunk comes (never one per shape: the pool lives as long
    as the process, and shapes vary from fit to fit).
    """
    key = (slot, np.dtype(dtype).str)
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    size = int(np.prod(shape))
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = bufs[key] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


def float_dtype(dtype):
    """The dtype computations run in: float32 and float64 stay; narrower floats
    (float16) widen to float32 exactly; integers compute in float64."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype if dtype.itemsize >= 4 else np.dtype(np.float32)
    return np.dtype(np.float64)


def row_sums(a, exact=False):
    """Row sums as float64 with numpy's pairwise summation: each row's result
    depends on that row alone (a BLAS matrix-vector product does not: its
    blocking varies with the row count).  ``exact`` accumulates in float64
    (for decision scores, which the torch kernels sum the same way); otherwise
    in the array's dtype, twice as fast."""
    if exact:
        return a.sum(axis=1, dtype=np.float64)
    return a.sum(axis=1).astype(np.float64)


def is_dask(x):
    """A dask array (recognised without importing dask)."""
    return type(x).__module__.split(".")[0] == "dask"


def is_tensor(x):
    """A torch tensor (recognised without importing torch)."""
    return type(x).__module__.startswith("torch")


def _dask_blocks(arrays):
    """Row blocks of each array as delayed objects, aligned to the first's rows."""
    import dask.array as da

    lead = next(a for a in arrays if is_dask(a))
    rows = lead.chunks[0]
    out = []
    for a in arrays:
        if not is_dask(a):
            a = da.from_array(np.asarray(a), chunks=(rows,) + tuple(-1 for _ in a.shape[1:]))
        else:
            a = a.rechunk((rows,) + tuple(-1 for _ in a.shape[1:]))
        out.append(a.to_delayed().reshape(len(rows), -1)[:, 0])
    return list(zip(*out))


_POOL = None
_POOL_LOCK = threading.Lock()


def _mark_worker():
    _local.in_pool = True


def _pool():
    """One long-lived pool: its threads keep their scratch buffers from pass to
    pass (new threads would fault in fresh pages on every pass)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=n_workers(), initializer=_mark_worker,
                                       thread_name_prefix="calibrate")
        return _POOL


#: Called as ``hook(label, n_chunks)`` before a pass, returning a callable
#: ``advance(n)`` (or None); the CLI installs a progress bar here.
progress_hook = None


def map_blocks(kernel, *arrays, rows_per_chunk=None, label=None):
    """``kernel(*blocks)`` for each block of rows; the results in row order."""
    if any(is_dask(a) for a in arrays):
        import dask

        blocks = _dask_blocks(arrays)
        return list(dask.compute(*[dask.delayed(kernel)(*b) for b in blocks]))
    lead = arrays[0]
    n = lead.shape[0]
    n_cols = int(np.prod(lead.shape[1:])) if len(lead.shape) > 1 else 1
    slices = row_slices(n, rows_per_chunk or chunk_rows(n_cols))
    advance = progress_hook(label or "pass", len(slices)) if progress_hook else None

    def run(s):
        out = kernel(*(a[s] for a in arrays))
        if advance is not None:
            advance(1)
        return out

    if len(slices) <= 1 or n_workers() <= 1 or getattr(_local, "in_pool", False):
        return [run(s) for s in slices]
    return list(_pool().map(run, slices))


def concat_blocks(kernel, *arrays, **kw):
    """:func:`map_blocks` for kernels returning a tuple of per-row arrays:
    each concatenated over all rows."""
    parts = map_blocks(kernel, *arrays, **kw)
    if not parts:
        raise ValueError("no rows")
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))


def sum_blocks(kernel, *arrays, per_row=True, **kw):
    """Totals of what ``kernel`` returns, as float64.

    ``per_row=True``: the kernel returns per-row arrays, summed over all rows
    at once (independent of the chunking).  ``per_row=False``: it returns
    partial sums, added in chunk order.
    """
    if per_row:
        return [np.sum(np.asarray(c, dtype=np.float64), axis=0)
                for c in concat_blocks(kernel, *arrays, **kw)]
    parts = map_blocks(kernel, *arrays, **kw)
    total = [np.asarray(p, dtype=np.float64).copy() for p in parts[0]]
    for part in parts[1:]:
        for acc, p in zip(total, part):
            acc += p
    return total


def sample_rows(a, n_rows, n_blocks=16):
    """About ``n_rows`` rows of ``a`` (numpy, row source or dask) as a numpy
    array: ``n_blocks`` contiguous blocks spread evenly over the rows, so a
    file is read in a few short runs."""
    n = a.shape[0]
    if n <= n_rows:
        return np.asarray(a)
    per = max(1, n_rows // n_blocks)
    starts = np.linspace(0, n - per, n_blocks).astype(np.int64)
    return np.concatenate([np.asarray(a[int(s):int(s) + per]) for s in starts])
