"""The one door through which the calibration families reach the rows.

Every fit in this package is a sum over rows: its kernels are pure
functions ``kernel(z_chunk, y_chunk, *params)`` returning a tuple of float64
partial sums, and :func:`total` adds them over all row chunks.  Today it runs
on :func:`calibrate._chunks.sum_blocks` (numpy arrays, ``.npy`` row sources,
dask arrays); only this module knows that.

:func:`take` gathers a subset of rows into memory (the cross-validation rows
of :mod:`.auto`, the Hessian sample of :mod:`.vector`).
"""

import numpy as np

from .. import _chunks

float_dtype = _chunks.float_dtype
scratch = _chunks.scratch

#: Rows read at a time by :func:`take` from a row source.
_TAKE_ROWS = 4096


def total(kernel, z, y, *params, label="calibration pass"):
    """Sums over all rows of ``kernel(z_chunk, y_chunk, *params)``: a list of
    float64 arrays, one per returned partial sum (added in chunk order)."""
    def chunk(zc, yc):
        return kernel(np.asarray(zc), np.asarray(yc), *params)
    return _chunks.sum_blocks(chunk, z, y, per_row=False, label=label)


def take(a, rows):
    """Rows ``rows`` (sorted int indices) of ``a`` as a numpy array.

    numpy and dask arrays index directly; a row source is read in contiguous
    runs of ``_TAKE_ROWS`` rows, keeping only the wanted ones, so memory holds
    one run and the result.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if isinstance(a, np.ndarray):
        return a[rows]
    if _chunks.is_dask(a):
        return np.asarray(a[rows])
    n = a.shape[0]
    if rows.size == n:
        return np.asarray(a)
    parts = []
    for start in range(0, n, _TAKE_ROWS):
        lo, hi = np.searchsorted(rows, [start, start + _TAKE_ROWS])
        if hi > lo:
            block = np.asarray(a[start:min(start + _TAKE_ROWS, n)])
            parts.append(block[rows[lo:hi] - start])
    if not parts:
        return np.asarray(a[0:0])
    return np.concatenate(parts)
