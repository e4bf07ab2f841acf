"""Rows on this machine: a numpy array in memory, or a row source read in chunks.

Passes cut the rows into chunks of about 4 MiB and spread them over the cores
with one long-lived thread pool (numpy releases the GIL; long-lived threads
keep their scratch buffers from pass to pass).  A row source
(:mod:`calibrate.rows`: a ``.npy`` file read with ``pread``, shards, a lazy
conversion) is read one chunk at a time, so memory stays flat on files larger
than memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..rows import MappedRows, RowSource
from .base import Backend, Progress

# About 4 MiB of float32 per chunk: large enough to amortise numpy call
# overhead, small enough to stay in cache-friendly territory.
TARGET_ELEMENTS = 1 << 20


#: Rows per chunk at most: narrow rows (binary scores) get more, smaller
#: chunks, so that per-value work with many temporaries stays in cache and
#: spreads over the cores.
MAX_ROWS = 1 << 18

#: Runs of consecutive chunks that a fold accumulates separately (in parallel)
#: and then adds in order; fixed, so sums do not depend on the machine.
FOLD_RUNS = 16


def chunk_rows(n_cols: int, target_elements: int | None = None) -> int:
    """Rows per chunk for arrays with ``n_cols`` values per row."""
    target = TARGET_ELEMENTS if target_elements is None else target_elements
    rows = max(1, target // max(1, int(n_cols)))
    return rows if target_elements is not None else min(rows, MAX_ROWS)


def row_slices(n_rows: int, rows_per_chunk: int) -> list[slice]:
    """Consecutive ``slice`` objects covering ``range(n_rows)``."""
    return [slice(start, min(start + rows_per_chunk, n_rows))
            for start in range(0, n_rows, rows_per_chunk)]


def n_workers() -> int:
    """Threads used for a pass: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_local = threading.local()
_SETTLED = False
#: The block freed once per process to settle the allocator (under glibc's 32 MB cap).
SETTLE_BYTES = 30 << 20


def settle_allocator() -> None:
    """Once per process, before the first pass: allocate and free one block of
    :data:`SETTLE_BYTES`.

    glibc's malloc gives the freed memory at the top of its heap back to the
    system beyond a threshold that starts at 128 KB, and raises it (to twice
    the block) only when a block it mapped on its own, between 128 KB and 32 MB,
    is freed.  Until then a pass's megabyte-sized temporaries are fresh pages
    on every slice, a page fault per 4 KB: a first multilabel fit of 100k x 100
    in a process took 390k faults and 1.5-1.9 s, a later one 65k and 1.3 s
    (settled: 31k faults and 1.3-1.4 s).  Freeing one such block raises the
    threshold as the first large temporary of any numpy program does, once
    for all threads; other allocators ignore it."""
    global _SETTLED
    if not _SETTLED:
        _SETTLED = True
        block = np.empty(SETTLE_BYTES, np.uint8)
        del block


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _mark_worker() -> None:
    _local.in_pool = True


def _pool() -> ThreadPoolExecutor:
    """One long-lived pool: its threads keep their scratch buffers from pass to
    pass (new threads would fault in fresh pages on every pass)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=n_workers(), initializer=_mark_worker,
                                       thread_name_prefix="calibrate")
        return _POOL


def run_chunks(kernel: Callable, arrays: tuple, slices: list[slice],
               progress: Progress | None = None, label: str | None = None) -> list:
    """``kernel(*(a[s] for a in arrays))`` for each slice, on the pool; results in order."""
    advance = progress(label or "pass", len(slices)) if progress else None

    def run(s: slice) -> Any:
        out = kernel(*(np.asarray(a[s]) for a in arrays))
        if advance is not None:
            advance(1)
        return out

    return map_tasks(run, slices)


def map_tasks(fn: Callable, tasks: list) -> list:
    """``[fn(t) for t in tasks]`` on the pool (the results in order): for work
    whose numpy calls are large enough to release the GIL.  In the calling
    thread when there is one task or one core, or when called from the pool."""
    settle_allocator()
    if len(tasks) <= 1 or n_workers() <= 1 or getattr(_local, "in_pool", False):
        return [fn(t) for t in tasks]
    return list(_pool().map(fn, tasks))


def fold_chunks(kernel: Callable, arrays: tuple, slices: list[slice], init: Callable,
                args: tuple = (), progress: Progress | None = None,
                label: str | None = None) -> Any:
    """``kernel(acc, *(a[s] for a in arrays), *args)`` for each slice, into
    accumulators made by ``init()`` and added with ``+=``; returns their total.

    One accumulator per run of consecutive chunks, not one per chunk
    (histograms of millions of cells would be allocated and added per chunk).
    The runs are fixed by the slices alone, never by which thread is free, and
    are added in order: float sums come out bit-identical from run to run, on
    any number of cores, for an array, a file or a tensor alike."""
    settle_allocator()
    n_runs = min(FOLD_RUNS, len(slices))
    runs = [slices[i * len(slices) // n_runs:(i + 1) * len(slices) // n_runs]
            for i in range(n_runs)]
    advance = progress(label or "pass", len(slices)) if progress else None

    def run(chunks: list[slice]) -> Any:
        acc = init()
        for s in chunks:
            kernel(acc, *(np.asarray(a[s]) for a in arrays), *args)
            if advance is not None:
                advance(1)
        return acc

    if n_runs <= 1 or n_workers() <= 1 or getattr(_local, "in_pool", False):
        results: Iterator = map(run, runs)
    else:
        results = _pool().map(run, runs)
    total = None
    for acc in results:
        if total is None:
            total = acc
        else:
            total += acc
    return total if total is not None else init()


def sample_rows(a: Any, n_rows: int, n_blocks: int = 16) -> np.ndarray:
    """About ``n_rows`` rows of ``a`` as a numpy array: ``n_blocks`` contiguous
    blocks spread evenly over the rows, so a file is read in a few short runs."""
    n = a.shape[0]
    if n <= n_rows:
        return np.asarray(a[0:n])
    per = max(1, n_rows // n_blocks)
    starts = np.linspace(0, n - per, n_blocks).astype(np.int64)
    return np.concatenate([np.asarray(a[int(s):int(s) + per]) for s in starts])


class LocalBackend(Backend):
    """A numpy array or a :class:`~calibrate.rows.RowSource`, passed over in chunks."""

    def __init__(self, data: np.ndarray | RowSource, name: str = "scores",
                 progress: Progress | None = None) -> None:
        super().__init__(data.shape, data.dtype, name, progress)
        self.data = data
        self.kind = "rows" if isinstance(data, RowSource) else "numpy"

    def _slices(self) -> list[slice]:
        return row_slices(self.n_rows, chunk_rows(self.row_elements))

    def map(self, kernel: Callable, *aligned: np.ndarray, args: tuple = (),
            label: str | None = None) -> list:
        run = kernel if not args else (lambda *blocks: kernel(*blocks, *args))
        return run_chunks(run, (self.data,) + aligned, self._slices(), self.progress, label)

    def fold(self, kernel: Callable, *aligned: np.ndarray, args: tuple = (),
             init: Callable, label: str | None = None) -> Any:
        return fold_chunks(kernel, (self.data,) + aligned, self._slices(), init, args,
                           self.progress, label)

    def blocks(self, max_elements: int) -> Iterator[np.ndarray]:
        rows = chunk_rows(self.row_elements, max_elements)
        if rows >= self.n_rows:
            yield np.asarray(self.data[0:self.n_rows])
            return
        for s in row_slices(self.n_rows, rows):
            yield np.asarray(self.data[s])

    def iter_map(self, kernel: Callable, *args: Any, max_elements: int,
                 label: str | None = None) -> Iterator[np.ndarray]:
        # each block's chunks run on the pool, so apply uses every core
        rows = chunk_rows(self.row_elements, max_elements)
        per = chunk_rows(self.row_elements)
        blocks = row_slices(self.n_rows, rows)
        advance = None
        if self.progress is not None:
            total = sum(len(row_slices(s.stop - s.start, per)) for s in blocks)
            advance = self.progress(label or "pass", total)
        for s in blocks:
            part = _RowWindow(self.data, s)
            chunks = row_slices(part.shape[0], per)
            out = run_chunks(lambda b: kernel(b, *args), (part,), chunks, None, label)
            if advance is not None:
                advance(len(chunks))
            yield out[0] if len(out) == 1 else np.concatenate(out)

    def sample(self, n_rows: int) -> np.ndarray:
        return sample_rows(self.data, n_rows)

    def to_numpy(self) -> np.ndarray:
        return np.asarray(self.data[0:self.n_rows])

    def take(self, rows: np.ndarray) -> np.ndarray:
        if isinstance(self.data, np.ndarray):
            return self.data[rows]
        return super().take(rows)

    def columns(self) -> Backend:
        if self.ndim == 1 and isinstance(self.data, np.ndarray):
            return LocalBackend(self.data.reshape(-1, 1), self.name, self.progress)
        return super().columns()

    def mapped(self, fn: Callable, dtype: Any, row_shape: tuple[int, ...]) -> Backend:
        if isinstance(self.data, RowSource):
            # lazily, chunk by chunk as passes read it
            src = MappedRows(self.data, fn, shape=(self.n_rows,) + tuple(row_shape), dtype=dtype)
            return LocalBackend(src, self.name, self.progress)
        parts = run_chunks(fn, (self.data,), self._slices())
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return LocalBackend(out, self.name, self.progress)


class _RowWindow:
    """Rows ``s`` of a row-sliceable array, as a row-sliceable array."""

    def __init__(self, data: Any, s: slice) -> None:
        self.data, self.start = data, s.start
        self.shape = (s.stop - s.start,) + tuple(data.shape[1:])

    def __getitem__(self, s: slice) -> np.ndarray:
        return np.asarray(self.data[self.start + s.start:self.start + s.stop])
