"""What every backend offers: the passes over the rows of one score array.

A :class:`Backend` wraps one array (numpy in memory, a ``.npy`` row source, a
dask array, a torch tensor on its device) and owns every pass over its rows.
Subclasses say how blocks of rows are visited (:meth:`Backend.map`,
:meth:`Backend.blocks`); the passes themselves are written once here on top
of the numpy kernels of :mod:`calibrate.kernels`, and the torch backend
replaces the hot ones with the torch kernels.

Each pass reduces its per-block results in one place, so that a statistic
does not depend on how the rows were cut: per-row values are concatenated
and summed once over all rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import kernels

#: ``progress(label, n_blocks)`` returns ``advance(k)`` (or None): how a caller
#: is told that a pass of many blocks advanced (the CLI draws a bar).
Progress = Callable[[str, int], Callable[[int], None] | None]


#: One pass over the raw scores: what input detection looks at.
RowStats = kernels.BlockStats


def _stat_names(nll_at_one: bool, third: bool) -> list[str]:
    """The rows a temperature pass's kernel returns, in order (softmax and
    sigmoid alike)."""
    return ["nll", "gradient", "curvature", "gradient_at_zero"] + \
        ["nll_at_one"] * nll_at_one + ["third", "fourth"] * third


@dataclass(frozen=True)
class SoftmaxStats:
    """Means over rows of the softmax NLL and its derivatives in beta = 1/T
    (see :func:`calibrate.kernels.softmax_stats`); ``nll_at_one`` is the NLL at
    beta = 1 when the pass was asked for it."""
    nll: float
    gradient: float
    curvature: float
    gradient_at_zero: float
    nll_at_one: float | None = None
    third: float | None = None      # the NLL's third and fourth derivatives,
    fourth: float | None = None     # when asked

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SigmoidStats:
    """Per-column means of the sigmoid NLL and its derivatives in beta = 1/T
    (and of the NLL at T = 1 and the third and fourth derivatives, when the
    pass was asked for them)."""
    nll: np.ndarray
    gradient: np.ndarray
    curvature: np.ndarray
    gradient_at_zero: np.ndarray
    nll_at_one: np.ndarray | None = None
    third: np.ndarray | None = None
    fourth: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {k: None if v is None else np.asarray(v).tolist() for k, v in self.__dict__.items()}


#: The summary metrics' pass over multiclass logits at one temperature: the
#: blocks' :class:`~calibrate.kernels.MetricParts` joined in row order
#: (:meth:`~calibrate.kernels.MetricParts.of`), the same fields for all rows.
SoftmaxPass = kernels.MetricParts


@dataclass(frozen=True)
class FusedPass:
    """One pass that served the temperature and the summary: ``stats`` at the
    pass's beta, and the metrics' pass at T = 1 and at that beta when asked."""
    stats: SoftmaxStats
    at_one: SoftmaxPass | None = None
    at_beta: SoftmaxPass | None = None

    def to_dict(self) -> dict:
        return {"stats": self.stats.to_dict(), "at_one": self.at_one is not None,
                "at_beta": self.at_beta is not None}


class Backend:
    """The rows of one array and every pass over them (abstract).

    ``shape`` and ``dtype`` are those of the values; passes hand blocks of
    rows to numpy kernels and return numpy results.  ``name`` is how errors
    name the array; ``progress`` (optional) hears about long passes.
    """

    kind = "abstract"

    def __init__(self, shape: tuple[int, ...], dtype: Any, name: str = "scores",
                 progress: Progress | None = None) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.name = name
        self.progress = progress

    # -- how blocks are visited (subclasses) ----------------------------------
    def map(self, kernel: Callable, *aligned: np.ndarray, args: tuple = (),
            label: str | None = None) -> list:
        """``kernel(block, *aligned_blocks, *args)`` for each block of rows, results
        in row order; ``aligned`` are numpy arrays with one entry per row, cut
        with the rows; ``args`` go whole to every call."""
        raise NotImplementedError

    def blocks(self, max_elements: int) -> Iterator[np.ndarray]:
        """The values, a numpy block of consecutive rows at a time."""
        raise NotImplementedError

    def sample(self, n_rows: int) -> np.ndarray:
        """About ``n_rows`` rows as a numpy array, spread evenly over the rows."""
        raise NotImplementedError

    def to_numpy(self) -> np.ndarray:
        """All values as one numpy array (for narrow arrays)."""
        raise NotImplementedError

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The rows ``rows`` (sorted indices) as a numpy array, read a block at a
        time so that memory holds one block and the result."""
        parts, start = [], 0
        for block in self.blocks(1 << 22):
            lo, hi = np.searchsorted(rows, [start, start + len(block)])
            if hi > lo:
                parts.append(block[rows[lo:hi] - start])
            start += len(block)
        return np.concatenate(parts) if parts else self.sample(0)[:0]

    def mapped(self, fn: Callable, dtype: Any, row_shape: tuple[int, ...]) -> Backend:
        """A backend over ``fn(block)`` for every block (a row-wise function):
        computed now or lazily, as the backend finds cheaper."""
        raise NotImplementedError

    def columns(self) -> Backend:
        """The values as 2-D (N, C): one-column (N, 1) for a 1-D array."""
        if self.ndim == 2:
            return self
        return self.mapped(lambda b: np.asarray(b).reshape(-1, 1), self.dtype, (1,))

    # -- shape ------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def n_rows(self) -> int:
        return self.shape[0]

    @property
    def row_elements(self) -> int:
        return int(np.prod(self.shape[1:])) if self.ndim > 1 else 1

    # -- reductions ---------------------------------------------------------------
    def concat(self, kernel: Callable, *aligned: np.ndarray, args: tuple = (),
               label: str | None = None) -> tuple:
        """:meth:`map` for kernels returning a tuple of per-row arrays: each
        concatenated over all rows."""
        parts = self.map(kernel, *aligned, args=args, label=label)
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))

    def sum_rows(self, kernel: Callable, *aligned: np.ndarray, args: tuple = (),
                 label: str | None = None) -> list:
        """Totals (float64) of the per-row arrays ``kernel`` returns, summed once
        over all rows: independent of how the rows were cut."""
        return [np.sum(np.asarray(c, dtype=np.float64), axis=0)
                for c in self.concat(kernel, *aligned, args=args, label=label)]

    def sum_blocks(self, kernel: Callable, *aligned: np.ndarray, args: tuple = (),
                   label: str | None = None) -> list:
        """Totals (float64) of the partial sums ``kernel`` returns per block,
        added in row order."""
        parts = self.map(kernel, *aligned, args=args, label=label)
        total = [np.asarray(p, dtype=np.float64).copy() for p in parts[0]]
        for part in parts[1:]:
            for acc, p in zip(total, part, strict=True):
                acc += p
        return total

    def fold(self, kernel: Callable, *aligned: np.ndarray, args: tuple = (),
             init: Callable, label: str | None = None) -> Any:
        """Accumulate over all rows: ``kernel(acc, block, *aligned_blocks, *args)``
        adds a block into ``acc`` (made by ``init()``, added with ``+=``).  For
        large accumulators (histograms): each worker keeps its own."""
        def run(*blocks: Any) -> Any:
            acc = init()
            kernel(acc, *blocks, *args)
            return acc

        total = None
        for acc in self.map(run, *aligned, label=label):
            if total is None:
                total = acc
            else:
                total += acc
        return total if total is not None else init()

    # -- the passes ----------------------------------------------------------------
    def row_stats(self) -> RowStats:
        """Finiteness, range and row-sum / logsumexp spread of the raw scores."""
        return RowStats.of(self.map(kernels.row_stats, label="checking scores"))

    def label_stats(self) -> kernels.LabelStats:
        """Range, non-finite and non-integer values of labels (this backend's values)."""
        return self.fold(kernels.label_stats, init=lambda: kernels.LabelStats(None, None,
                                                                             False, False),
                         label="checking labels")

    def decimals(self) -> int | None:
        """The decimal places every value is rounded to (see :func:`kernels.decimals`)."""
        found = self.map(kernels.decimals, label="checking scores")
        return None if any(d is None for d in found) else max(found)

    def significant_bits(self) -> int | None:
        """The significant bits every value fits in (see :func:`kernels.significant_bits`)."""
        found = self.map(kernels.significant_bits, label="checking scores")
        return None if any(k is None for k in found) else max(found)

    def row_totals(self) -> np.ndarray:
        """The sum of each row (float64)."""
        return np.concatenate(self.map(kernels.row_totals, label="checking scores"))

    def logits(self, task: str, input_kind: str) -> Backend:
        """The logits behind scores of ``input_kind`` for ``task``: (N, C), or (N,)
        for binary (two softmax columns become z1 - z0)."""
        fdt = kernels.float_dtype(self.dtype)
        if task == "binary":
            if input_kind == "logits" and self.ndim == 1 and self.dtype == fdt:
                return self
            return self.mapped(lambda b: kernels.binary_logits(b, input_kind), fdt, ())
        if input_kind == "logits" and self.dtype == fdt:
            return self
        return self.mapped(lambda b: kernels.logits(b, task, input_kind), fdt, self.shape[1:])

    def softmax_stats(self, y: np.ndarray, beta: float, with_g0: bool = True,
                      nll_at_one: bool = False, unit: float = 1.0) -> SoftmaxStats:
        """Softmax temperature statistics of logits / ``unit`` (a power of two)."""
        return self.softmax_pass(y, beta, unit, with_g0, nll_at_one).stats

    def softmax_pass(self, y: np.ndarray, beta: float, unit: float = 1.0, with_g0: bool = True,
                     nll_at_one: bool = False, metrics_at_one: bool = False,
                     metrics_at_beta: bool = False, n_bins: int = 15,
                     third: bool = False) -> FusedPass:
        """One pass: temperature statistics at ``beta`` (with the third and
        fourth derivatives when ``third``) and, from the same exponentials, the
        metrics' passes at T = 1 and at T = unit / beta
        (:func:`calibrate.kernels.softmax_pass`)."""
        parts = self.map(kernels.softmax_pass, y,
                         args=(float(beta), float(unit), with_g0, nll_at_one, metrics_at_one,
                               metrics_at_beta, n_bins, third), label="temperature pass")
        rows = np.concatenate([q.stats for q in parts], axis=1)
        names = _stat_names(nll_at_one, third)
        # each statistic summed once over all its rows: independent of the blocks
        stats = SoftmaxStats(**{k: float(np.sum(r)) / self.n_rows
                                for k, r in zip(names, rows, strict=True)})
        return FusedPass(
            stats,
            SoftmaxPass.of([q.at_one for q in parts]) if metrics_at_one else None,
            SoftmaxPass.of([q.at_beta for q in parts]) if metrics_at_beta else None)

    def sigmoid_stats(self, y: Any, beta: np.ndarray, unit: Any = 1.0,
                      nll_at_one: bool = False, third: bool = False,
                      with_g0: bool = True) -> SigmoidStats:
        """(N, C) logits / ``unit`` (powers of two per column) against (N, C) or (N,)
        0/1 labels (an array or a row source); with ``third`` the NLL's third
        and fourth derivatives too; ``gradient_at_zero`` is 0 unless ``with_g0``."""
        sums = self.sum_blocks(kernels.sigmoid_stats, y,
                               args=(np.asarray(beta, dtype=np.float64),
                                     np.asarray(unit, dtype=np.float64), nll_at_one, third,
                                     with_g0),
                               label="temperature pass")
        names = _stat_names(nll_at_one, third)
        return SigmoidStats(**{k: v / self.n_rows for k, v in zip(names, sums, strict=True)})

    def top_scores(self, temperature: float) -> tuple[np.ndarray, np.ndarray]:
        """Argmax class and its calibrated log-probability, one per row."""
        k, logp = self.concat(kernels.top_scores, args=(float(temperature),), label="scoring")
        return k, logp

    def softmax_metrics(self, y: np.ndarray, temperature: float, n_bins: int,
                        scores: bool = True) -> SoftmaxPass:
        """The summary metrics' pass at ``temperature`` (with the decision scores
        when ``scores``)."""
        return SoftmaxPass.of(self.map(kernels.softmax_metrics, y,
                                       args=(float(temperature), n_bins, scores),
                                       label="metrics"))

    def family_metrics(self, y: np.ndarray, fitted: Any, n_bins: int,
                       scores: bool = True) -> SoftmaxPass:
        """The summary metrics' pass under a fitted calibration family
        (:func:`calibrate.kernels.family_metrics`), with its decision scores
        when ``scores``."""
        return SoftmaxPass.of(self.map(kernels.family_metrics, y, args=(fitted, n_bins, scores),
                                       label="metrics"))

    # -- apply, a block at a time ------------------------------------------------------
    def iter_map(self, kernel: Callable, *args: Any, max_elements: int,
                 label: str | None = None) -> Iterator[np.ndarray]:
        """``kernel(block, *args)`` (returning one array with a row per row) for
        blocks of about ``max_elements`` values, yielded in row order: streaming
        output keeps memory flat."""
        for zc in self.blocks(max_elements):
            yield kernel(zc, *args)

    def iter_decisions(self, task: str, calibration: Any, tau: np.ndarray,
                       max_elements: int) -> Iterator[np.ndarray]:
        """Decisions block by block (see :func:`calibrate.kernels.decisions`);
        ``calibration`` a temperature or a fitted family."""
        return self.iter_map(kernels.decisions, task, calibration, tau,
                             max_elements=max_elements, label="deciding")

    def iter_proba(self, task: str, calibration: Any, max_elements: int) -> Iterator[np.ndarray]:
        """Calibrated probabilities block by block."""
        return self.iter_map(kernels.proba, task, calibration, max_elements=max_elements,
                             label="probabilities")
