"""Rows of a dask array: one task per block of rows, on any scheduler.

The same numpy kernels as on this machine run as one task per row block on
whatever scheduler is active (threads, or a ``dask.distributed`` cluster);
only the per-block results come back.  Arrays aligned with the rows (labels)
are cut along the same blocks.  The array is rechunked first to the row
chunks a pass over a local array uses (whole rows, about 4 MiB each), and a
fold adds its blocks in the same runs and order: every sum, hence every
temperature, threshold and metric, comes out bit-identical to the same values
passed as an array, a file or shards, whatever the chunks given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .base import Backend, Progress
from .local import FOLD_RUNS, chunk_rows, sample_rows


class DaskBackend(Backend):
    """A ``dask.array`` with known chunk sizes."""

    kind = "dask"

    def __init__(self, data: Any, name: str = "scores", progress: Progress | None = None) -> None:
        super().__init__(data.shape, data.dtype, name, progress)
        self.data = data.rechunk((chunk_rows(self.row_elements),)
                                 + tuple(-1 for _ in data.shape[1:]))

    def _blocks(self, arrays: tuple) -> list:
        """Row blocks of the data and of each aligned array, as delayed objects."""
        import dask.array as da

        rows = self.data.chunks[0]
        out = [self.data.to_delayed().reshape(len(rows), -1)[:, 0]]
        for a in arrays:
            a = da.from_array(np.asarray(a), chunks=(rows,) + tuple(-1 for _ in a.shape[1:]))
            out.append(a.to_delayed().reshape(len(rows), -1)[:, 0])
        return list(zip(*out, strict=True))

    def map(self, kernel: Callable, *aligned: np.ndarray, args: tuple = (),
            label: str | None = None) -> list:
        import dask

        run = kernel if not args else (lambda *blocks: kernel(*blocks, *args))
        tasks = [dask.delayed(run)(*b) for b in self._blocks(aligned)]
        return list(dask.compute(*tasks))

    def fold(self, kernel: Callable, *aligned: np.ndarray, args: tuple = (),
             init: Callable, label: str | None = None) -> Any:
        import dask

        def step(acc: Any, *blocks: Any) -> Any:
            kernel(acc, *blocks, *args)
            return acc

        # as LocalBackend.fold: a chain of blocks per run, the runs added in order
        blocks = self._blocks(aligned)
        n_runs = min(FOLD_RUNS, len(blocks))
        runs = []
        for i in range(n_runs):
            acc = dask.delayed(init)()
            for b in blocks[i * len(blocks) // n_runs:(i + 1) * len(blocks) // n_runs]:
                acc = dask.delayed(step)(acc, *b)
            runs.append(acc)
        total = None
        for acc in dask.compute(*runs):
            if total is None:
                total = acc
            else:
                total += acc
        return total if total is not None else init()

    def blocks(self, max_elements: int) -> Iterator[np.ndarray]:
        for i in range(self.data.numblocks[0]):
            yield np.asarray(self.data.blocks[i].compute())

    def iter_map(self, kernel: Callable, *args: Any, max_elements: int,
                 label: str | None = None) -> Iterator[np.ndarray]:
        for block in self.blocks(max_elements):
            yield kernel(block, *args)

    def sample(self, n_rows: int) -> np.ndarray:
        return sample_rows(_Rows(self.data), n_rows)

    def to_numpy(self) -> np.ndarray:
        return np.asarray(self.data.compute())

    def mapped(self, fn: Callable, dtype: Any, row_shape: tuple[int, ...]) -> Backend:
        chunks = (self.data.chunks[0],) + tuple((k,) for k in row_shape)
        out = self.data.map_blocks(fn, dtype=dtype, chunks=chunks,
                                   drop_axis=tuple(range(1, self.ndim)),
                                   new_axis=tuple(range(1, 1 + len(row_shape))))
        return DaskBackend(out, self.name, self.progress)


class _Rows:
    """Row slicing of a dask array that computes the slice."""

    def __init__(self, data: Any) -> None:
        self.data, self.shape = data, data.shape

    def __getitem__(self, s: slice) -> np.ndarray:
        return np.asarray(self.data[s].compute())
