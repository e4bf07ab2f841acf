"""Opening scores the way the command line does: a file, shards, and a Dask cluster.

:func:`open_scores` turns one path, a glob, or several ``.npy`` shards into
an array the library passes over in row chunks (never concatenating shards),
reads the labels (from ``labels`` files, or from a ``.npz`` / ``.pt`` that
holds them beside the scores), and with ``scheduler`` connects to a
``dask.distributed`` cluster and hands the scores over as a dask array cut
into row blocks of about 16 Mi values, the workers reading the files
themselves.  It also says how errors should name the inputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import io
from .errors import invalid
from .outputs import is_pattern
from .rows import RowSource

#: Values per Dask block of rows (64 MiB of float32).
DASK_BLOCK_ELEMENTS = 1 << 24

@dataclass(frozen=True)
class OpenedScores:
    """Scores opened from files: ``scores`` (a numpy array, row source or dask
    array), ``labels`` (a numpy array, a row source for (N, C) ``.npy`` labels,
    or None), how errors name them
    (``scores_name``, ``labels_name``), and the Dask ``client`` when a cluster
    was asked for (closed by :meth:`close`, or leaving a ``with`` block)."""
    scores: Any
    labels: np.ndarray | RowSource | None
    scores_name: str
    labels_name: str
    client: Any = None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def __enter__(self) -> OpenedScores:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def to_dict(self) -> dict:
        return {"shape": list(self.scores.shape), "scores_name": self.scores_name,
                "labels_name": self.labels_name, "cluster": self.client is not None}


def _paths(spec: Any) -> list[str]:
    if isinstance(spec, (str, os.PathLike)):
        return [os.fspath(spec)]
    return [os.fspath(p) for p in spec]


def describe(paths: Sequence[str], role: str) -> str:
    """How errors name an input: ``scores file 'x.npy'`` or ``scores shards 'a b'``."""
    if len(paths) == 1 and not is_pattern(paths[0]):
        return f"{role} file '{paths[0]}'"
    return f"{role} shards '{' '.join(paths)}'"


def _one_or_many(paths: list[str]) -> Any:
    return paths[0] if len(paths) == 1 else paths


def open_scores(scores: Any, labels: Any = None, scheduler: str | None = None,
                require_labels: bool = True, want_labels: bool = True) -> OpenedScores:
    """Open score files (a path, a glob, or a list of ``.npy`` shards) and their labels.

    ``labels`` are label files in the same forms; without them the labels come
    from the scores file when it is a ``.npz`` / ``.pt`` holding an array named
    ``labels`` (an error when none is found and ``require_labels``).
    ``scheduler`` (e.g. ``tcp://host:8786``) runs every pass on that
    dask.distributed cluster.  With label files given, or ``want_labels`` False,
    the scores file's own labels are not even read.
    """
    sp = _paths(scores)
    lp = _paths(labels) if labels is not None and len(_paths(labels)) else []
    s, y = io.read_scores(_one_or_many(sp), with_labels=want_labels and not lp)
    if lp:
        y = io.read_labels(_one_or_many(lp))
    elif y is None and require_labels:
        raise invalid(describe(sp, "scores"), "labels: a --labels file, or an array named "
                      "'labels' in the scores file", "neither")
    client = None
    if scheduler is not None:
        client = connect(scheduler)
        s = as_dask(s)
    if y is not None and not isinstance(y, RowSource):
        y = np.asarray(y)
    return OpenedScores(s, y, describe(sp, "scores"),
                        describe(lp or sp, "labels"), client)


def connect(address: str) -> Any:
    """A dask.distributed client of the scheduler at ``address``, set as default."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise invalid("scheduler", "dask installed (pip install 'calibrate-thresholds[dask]')",
                      "no dask") from None
    try:
        return Client(address, timeout="10s", set_as_default=True)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise invalid("scheduler", "the address of a running dask scheduler "
                      "(e.g. tcp://host:8786)", f"{address!r} ({exc})") from None


def as_dask(scores: Any, block_elements: int = DASK_BLOCK_ELEMENTS) -> Any:
    """Scores as a dask array of row blocks of about ``block_elements`` values (the
    workers read row sources themselves)."""
    import dask.array as da

    if scores.ndim < 2:
        rows = max(1, block_elements)
    else:
        rows = max(1, block_elements // max(1, scores.shape[1]))
    return da.from_array(scores, chunks=(rows,) + tuple(scores.shape[1:]), asarray=True)
