"""Where the rows of a score array live, decided once.

:func:`as_backend` resolves any input the library accepts into a
:class:`~.base.Backend` that owns every pass over its rows:

============================  =====================================================
input                         backend
============================  =====================================================
numpy array, list, CPU tensor :class:`~.local.LocalBackend` (chunks on a thread pool)
``.npy`` path, glob, shards   :class:`~.local.LocalBackend` over a row source
dask array                    :class:`~.dask.DaskBackend` (one task per row block)
CUDA tensor                   :class:`~.torch.TorchBackend` (torch kernels on its GPU)
============================  =====================================================

This module and the backend modules are the only places that look at the
type of an array; everything else calls the backend's passes.  torch and dask
are recognised by their type's module and imported only when such an object
is handed over.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import invalid
from ..rows import RowSource
from .base import Backend, FusedPass, Progress, RowStats, SigmoidStats, SoftmaxPass, SoftmaxStats
from .local import LocalBackend

__all__ = ["Backend", "FusedPass", "LocalBackend", "Progress", "RowStats", "SigmoidStats",
           "SoftmaxPass", "SoftmaxStats", "as_backend", "as_array", "as_labels", "DEVICE_TYPES"]

#: Tensors on these device types stay there (torch kernels); other tensors are
#: read as numpy arrays (CPU tensors without a copy; MPS has no float64 sums).
DEVICE_TYPES = ("cuda",)


def _module(x: Any) -> str:
    return type(x).__module__.split(".")[0]


def _tensor_to_numpy(x: Any, name: str) -> np.ndarray:
    _check_tensor(x, name)
    t = x.detach().cpu()
    if t.is_floating_point() and t.element_size() < 4:
        t = t.float()  # float16 / bfloat16: exact in float32 (numpy has no bfloat16)
    return t.numpy()


def _check_tensor(x: Any, name: str) -> None:
    """Refuse tensors that numpy cannot take, saying what they are."""
    import torch

    if getattr(x, "is_nested", False):
        raise invalid(name, "a dense tensor", "a nested tensor")
    if x.layout != torch.strided:
        raise invalid(name, "a dense tensor", f"a tensor of layout {x.layout} "
                      "(convert it with .to_dense() if it fits in memory)")
    if x.is_quantized:
        raise invalid(name, "a tensor of real numbers", f"a quantized tensor ({x.dtype}); "
                      "call .dequantize() first")
    if x.device.type == "meta":
        raise invalid(name, "a tensor holding values", "a tensor on the meta device (no data)")
    if x.is_complex():
        raise invalid(name, "a numeric array", f"dtype {x.dtype}")


def _from_path(x: Any, name: str, labels: bool, role: str = "labels") -> Any:
    from .. import io

    return io.read_labels(x, role) if labels else io.read_scores(x)[0]


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """A list, tuple or array-like as a numeric numpy array, or one clear error."""
    if isinstance(x, np.ndarray):
        a = x
    elif hasattr(x, "__array__") or isinstance(x, (list, tuple)):
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as exc:
            detail = str(exc).splitlines()[0]
            raise invalid(name, "an array of equal-length rows",
                          f"rows of different lengths or types ({detail})") from None
    else:
        raise invalid(name, "an array", type(x).__name__)
    if a.dtype.kind in "USO":
        what = "strings" if a.dtype.kind in "US" else "Python objects"
        raise invalid(name, "a numeric array", f"{what} (dtype {a.dtype})")
    if a.dtype.kind not in "biuf":
        raise invalid(name, "a numeric array", f"dtype {a.dtype}")
    return a


def _dask_checked(x: Any, name: str) -> Any:
    import math

    if any(math.isnan(c) for dim in x.chunks for c in dim):
        raise invalid(name, "a dask array with known chunk sizes",
                      "unknown chunk sizes (call .compute_chunk_sizes() first)")
    if x.dtype.kind not in "biuf":
        raise invalid(name, "a numeric array", f"dtype {x.dtype}")
    return x


def as_backend(x: Any, name: str = "scores", progress: Progress | None = None,
               device_types: tuple[str, ...] | None = None) -> Backend:
    """The backend for scores ``x``: a numpy array, a list, a torch tensor, a dask
    array, a row source, or a path or glob (str / PathLike) of score files.

    Only a str or PathLike is a path: a list is data, never a list of files
    (open shards with :func:`calibrate.io.open_scores`).
    """
    if isinstance(x, Backend):
        return x
    if isinstance(x, (str, os.PathLike)):
        x = _from_path(x, name, labels=False)
    mod = _module(x)
    if mod == "torch":
        on = DEVICE_TYPES if device_types is None else device_types
        if x.device.type in on:
            from .torch import TorchBackend

            _check_tensor(x, name)
            return TorchBackend(x, name, progress)
        return LocalBackend(_tensor_to_numpy(x, name), name, progress)
    if mod == "dask":
        from .dask import DaskBackend

        return DaskBackend(_dask_checked(x, name), name, progress)
    if isinstance(x, RowSource):
        if x.dtype.kind not in "biuf":
            raise invalid(name, "a numeric array", f"dtype {x.dtype}")
        return LocalBackend(x, name, progress)
    return LocalBackend(_as_numpy(x, name), name, progress)


def as_labels(x: Any, name: str = "labels") -> Any:
    """Labels as :func:`as_array` reads them, except that (N, C) labels held in a
    row source (a multilabel ``.npy`` file, shards) stay there, read a block at a
    time by the passes: they can be larger than memory."""
    if isinstance(x, (str, os.PathLike)):
        x = _from_path(x, name, labels=True)
    if isinstance(x, RowSource) and x.ndim == 2:
        if x.dtype.kind not in "biuf":
            raise invalid(name, "a numeric array", f"dtype {x.dtype}")
        return x
    return as_array(x, name)


def as_array(x: Any, name: str = "labels", role: str = "labels") -> np.ndarray:
    """``x`` read whole as a numeric numpy array (labels, and other small arrays);
    a str or PathLike is a file of them (named as the ``role`` file in errors)."""
    if isinstance(x, (str, os.PathLike)):
        x = _from_path(x, name, labels=True, role=role)
    mod = _module(x)
    if mod == "torch":
        return _tensor_to_numpy(x, name)
    if mod == "dask":
        return _as_numpy(np.asarray(_dask_checked(x, name).compute()), name)
    if isinstance(x, (RowSource, Backend)):
        a = x.to_numpy() if isinstance(x, Backend) else np.asarray(x)
        return _as_numpy(a, name)
    return _as_numpy(x, name)
