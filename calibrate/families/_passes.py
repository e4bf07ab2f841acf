"""The one door through which the calibration families reach the rows.

Every fit in this package is a sum over rows: its kernels are pure
functions ``kernel(z_chunk, y_chunk, *params)`` returning a tuple of float64
partial sums, and :func:`total` adds them over all row chunks on the scores'
backend (:mod:`calibrate.backends`: numpy arrays, ``.npy`` row sources, dask
arrays, tensors).  :func:`take` gathers a subset of rows into memory (the
cross-validation rows of :mod:`.crossval`, the Hessian sample of
:mod:`.vector`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import kernels
from ..backends import as_backend

float_dtype = kernels.float_dtype
scratch = kernels.scratch


def total(kernel: Callable[..., Any], z: Any, y: npt.ArrayLike, *params: Any,
          label: str = "calibration pass") -> list[np.ndarray]:
    """Sums over all rows of ``kernel(z_chunk, y_chunk, *params)``: a list of
    float64 arrays, one per returned partial sum (added in chunk order)."""
    return as_backend(z).sum_blocks(kernel, np.asarray(y), args=params, label=label)


def whole(a: Any) -> np.ndarray:
    """All of ``a`` as one numpy array (the sigmoid families read their N x C
    small values whole: isotonic sorts them)."""
    return a if isinstance(a, np.ndarray) else as_backend(a).to_numpy()


def take(a: Any, rows: npt.ArrayLike) -> np.ndarray:
    """Rows ``rows`` (sorted int indices) of ``a`` as a numpy array."""
    return as_backend(a).take(np.asarray(rows, dtype=np.int64))
