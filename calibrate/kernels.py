"""The math of every pass, on one block of rows, in numpy.

Each function here takes a block of rows (and the matching block of labels)
and returns per-row values or partial sums; the backends
(:mod:`calibrate.backends`) run them over all the rows -- chunk by chunk on
this machine, or one task per block on Dask -- and reduce the results.  The
torch versions of the hot kernels, for tensors that stay on a GPU, are in
:mod:`calibrate.backends.torch_kernels`; they compute the same formulas.

Conventions: element-wise work stays in the block's float dtype (float32 stays
float32: Python floats, not np.float64 scalars, multiply it); per-row results
and sums are float64.  Softmax work is on max-shifted logits u = z - max(z) <= 0,
so exp never overflows.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, SupportsFloat

import numpy as np
import numpy.typing as npt
from scipy import special

#: Probabilities may miss [0, 1] and a row sum of 1 by this much: float32
#: softmax outputs exceed 1 by a few ulps (1.00001 was seen in real data).
SUM_TOL = 1e-3

_local = threading.local()


def scratch(shape: int | tuple[int, ...], dtype: npt.DTypeLike, slot: int = 0) -> np.ndarray:
    """A per-thread reusable buffer of ``shape``.

    Fresh multi-megabyte allocations cost page faults on every chunk; each
    worker thread keeps one flat buffer per slot and dtype instead, grown
    when a larger chunk comes (never one per shape: worker threads live as
    long as the process, and shapes vary from fit to fit).
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


def float_dtype(dtype: npt.DTypeLike) -> np.dtype[Any]:
    """The dtype computations run in: float32 and float64 stay; narrower floats
    (float16) widen to float32 exactly; integers and bools compute in float64."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype if dtype.itemsize >= 4 else np.dtype(np.float32)
    return np.dtype(np.float64)


def row_sums(a: np.ndarray, exact: bool = False) -> npt.NDArray[np.float64]:
    """Row sums as float64 with numpy's pairwise summation: each row's result
    depends on that row alone (a BLAS matrix-vector product does not: its
    blocking varies with the row count).  ``exact`` accumulates in float64
    (decision scores, which the torch kernels sum the same way); otherwise in
    the array's dtype, twice as fast."""
    if exact:
        return a.sum(axis=1, dtype=np.float64)
    return a.sum(axis=1).astype(np.float64)


def in_unit_range(lo: float, hi: float) -> bool:
    """Whether values from ``lo`` to ``hi`` can be probabilities."""
    return lo >= -SUM_TOL and hi <= 1 + SUM_TOL


# -- input detection -----------------------------------------------------------

@dataclass(frozen=True)
class BlockStats:
    """What input detection looks at, from a block of raw scores or (joined by
    :meth:`of`) from all of them.

    ``sum_err`` is the largest |row sum - 1| (inf unless every value could be a
    probability), ``lse_err`` the largest |logsumexp| of a row (inf unless every
    value is <= 0); both are inf for one-column scores.
    """
    nan: bool
    posinf: bool
    neginf: bool
    min: float
    max: float
    sum_err: float
    lse_err: float

    @classmethod
    def of(cls, parts: list) -> BlockStats:
        """The blocks' statistics as one."""
        return cls(nan=any(p.nan for p in parts), posinf=any(p.posinf for p in parts),
                   neginf=any(p.neginf for p in parts),
                   min=min(p.min for p in parts), max=max(p.max for p in parts),
                   sum_err=max(p.sum_err for p in parts), lse_err=max(p.lse_err for p in parts))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def row_stats(b: npt.ArrayLike) -> BlockStats:
    """Finiteness, min and max, and the worst |row sum - 1| and |logsumexp| of a
    block of scores (rows of a 2-D block; a 1-D block is one column).  Row sums
    are only computed when the values could be probabilities, logsumexps only
    when they could be log-probabilities."""
    b = np.asarray(b)
    if b.ndim == 1:
        b = b.reshape(-1, 1)
    c = b.shape[1]
    nan = posinf = neginf = False
    # (min and max carry any NaN or infinity: finite both, every value is; one
    # read fewer than testing finiteness first)
    lo, hi = float(b.min()), float(b.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        nan, posinf, neginf = bool(np.isnan(b).any()), bool(np.isposinf(b).any()), \
            bool(np.isneginf(b).any())
        if nan:
            return BlockStats(True, posinf, neginf, np.nan, np.nan, np.inf, np.inf)
    sum_err = lse_err = np.inf
    if c > 1 and in_unit_range(lo, hi):
        sum_err = float(np.max(np.abs(b.sum(axis=1, dtype=np.float64) - 1.0)))
    if c > 1 and hi <= SUM_TOL:
        with np.errstate(all="ignore"):
            lse_err = float(np.max(np.abs(special.logsumexp(b.astype(np.float64), axis=1))))
    return BlockStats(nan, posinf, neginf, lo, hi, sum_err, lse_err)


@dataclass
class LabelStats:
    """What label checks need from a block of labels: the smallest and largest
    value (in the labels' own type), whether any is NaN / inf or not an
    integer, and (labels (N, C)) whether some row does not sum to exactly 1:
    False for one-hot rows."""
    lo: Any
    hi: Any
    nonfinite: bool
    fractional: bool
    not_one_hot: bool = False

    def __iadd__(self, other: LabelStats) -> LabelStats:
        if other.lo is not None:
            self.lo = other.lo if self.lo is None else min(self.lo, other.lo)
            self.hi = other.hi if self.hi is None else max(self.hi, other.hi)
        self.nonfinite |= other.nonfinite
        self.fractional |= other.fractional
        self.not_one_hot |= other.not_one_hot
        return self


def label_stats(acc: LabelStats, y: npt.ArrayLike) -> None:
    """Add a block of labels into ``acc`` (a :class:`LabelStats`)."""
    y = np.asarray(y)
    if y.size == 0:
        return
    if y.ndim == 2 and not acc.not_one_hot:
        acc.not_one_hot = not np.all(y.sum(axis=1) == 1)   # (real multilabel: the first block)
    if y.dtype.kind == "f":
        finite = np.isfinite(y)
        if not finite.all():
            acc.nonfinite = True
            y = y[finite]
            if y.size == 0:
                return
        acc.fractional |= not np.array_equal(y, np.round(y))
    acc += LabelStats(y.min(), y.max(), False, False)


#: Decimal places tried when probabilities do not sum to 1 (values rounded to d decimals).
ROUNDING_DECIMALS = (1, 2, 3, 4, 5, 6)


def decimals(b: npt.ArrayLike) -> int | None:
    """The fewest decimal places (of :data:`ROUNDING_DECIMALS`) that every value of
    the block is rounded to, or None: e.g. 2 for probabilities printed as 0.37."""
    x = np.asarray(b, dtype=np.float64)
    for d in ROUNDING_DECIMALS:
        s = x * 10.0 ** d
        if np.all(np.abs(s - np.round(s)) <= 1e-6 * np.maximum(1.0, np.abs(s))):
            return d
    return None


#: Significant bits of the half-precision types, tried when probabilities do not
#: sum to 1: bfloat16 (8) and float16 (11).
HALF_BITS = (8, 11)


def significant_bits(b: npt.ArrayLike) -> int | None:
    """The fewest significant bits (of :data:`HALF_BITS`) that hold every value
    of the block exactly, or None: 8 for probabilities a model computed in
    bfloat16 (a .pt file's tensors arrive as float32)."""
    m, _ = np.frexp(np.asarray(b, dtype=np.float64))
    for k in HALF_BITS:
        s = m * float(2 ** k)
        if np.array_equal(s, np.round(s)):
            return k
    return None


def row_totals(b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The sum of each row, float64."""
    return np.asarray(b).sum(axis=1, dtype=np.float64)


# -- logits from probabilities and log-probabilities ------------------------------

#: The log-probability of a probability of 0 (and of any below float32's
#: smallest normal number, 1.2e-38), and minus the logit of a sigmoid
#: probability of 1, whatever the scores' float type: the same probabilities
#: give the same logits stored as float32 or float64, in one column or two (the
#: floors had followed the type: -87.3 or -708.4 for 0, a logit of 15.9 or
#: 36.0 for 1, and gave other temperatures).  Float32's floor, so a few rows at
#: it leave a temperature fit possible; values below it are as good as 0.
LOG_ZERO = float(np.log(np.finfo(np.float32).tiny))


def softmax_logits(x: np.ndarray, input_kind: str) -> np.ndarray:
    """Softmax-task scores of ``input_kind`` -> logits (same float dtype).

    Log-probabilities are logits up to a per-row constant, which softmax
    ignores: ``max(log p, LOG_ZERO)`` for probabilities (p clipped to [0,
    1]), ``max(lp, LOG_ZERO)`` for log-probabilities.
    """
    dt = float_dtype(x.dtype)
    x = np.asarray(x).astype(dt, copy=False)
    if input_kind == "logits":
        return x
    if input_kind == "log-probabilities":
        return np.maximum(x, LOG_ZERO).astype(dt, copy=False)
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(np.clip(x, 0, 1)), LOG_ZERO).astype(dt, copy=False)


def sigmoid_logits(x: np.ndarray, input_kind: str) -> np.ndarray:
    """Sigmoid-task scores of ``input_kind`` -> logits, elementwise:
    ``log p - log1p(-p)`` (p clipped to [0, 1]; from log-probabilities
    ``lp - log(-expm1(lp))``), clipped to [LOG_ZERO, -LOG_ZERO]: 0 and 1 give
    -87.3 and 87.3, as two softmax columns (1, 0) and (0, 1) do."""
    dt = float_dtype(x.dtype)
    x = np.asarray(x).astype(dt, copy=False)
    if input_kind == "logits":
        return x
    with np.errstate(divide="ignore"):
        if input_kind == "log-probabilities":
            lp = np.minimum(x, 0)
            z = lp - np.log(-np.expm1(lp))
        else:
            p = np.clip(x, 0, 1)
            z = np.log(p) - np.log1p(-p)
    return np.clip(z, LOG_ZERO, -LOG_ZERO).astype(dt, copy=False)


def binary_logits(x: npt.ArrayLike, input_kind: str) -> np.ndarray:
    """Binary-task scores -> one logit per row: two softmax columns give the
    log-odds z1 - z0 (``softmax([z0, z1])_1 = sigmoid(z1 - z0)``); one column
    is a sigmoid score."""
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[1] == 2:
        lz = softmax_logits(x, input_kind)
        return lz[:, 1] - lz[:, 0]
    return sigmoid_logits(x.reshape(-1), input_kind)


def logits(x: np.ndarray, task: str, input_kind: str) -> np.ndarray:
    """Logits of a block for ``task``: (n, C) softmax or sigmoid logits, (n,) binary."""
    if task == "binary":
        return binary_logits(x, input_kind)
    if task == "multilabel":
        return sigmoid_logits(x, input_kind)
    return softmax_logits(x, input_kind)


def lost_true_class(zc: npt.ArrayLike, yc: npt.ArrayLike, task: str) -> tuple[np.ndarray]:
    """Which rows (multilabel: (row, label) pairs) of logits recovered from
    probabilities give the true class a probability the input could not
    hold: 0, or below the float type's smallest normal number, where the
    recovered logits sit at their floor (the model's own log-probability of
    the true class within 0.01 of log(tiny)); for a negative of a sigmoid
    task also a positive-class probability within eps of 1 (its logit at the
    ceiling of :func:`sigmoid_logits`).  Returns a tuple of one bool array."""
    zc, yc = np.asarray(zc), np.asarray(yc)
    dt = float_dtype(zc.dtype)
    floor = LOG_ZERO + 0.01
    z = zc.astype(np.float64)
    if task == "multiclass":
        logq = z[np.arange(z.shape[0]), yc] - special.logsumexp(z, axis=1)
        return (logq <= floor,)
    ceiling = sigmoid_logits(np.array([1.0], dtype=dt), "probabilities")[0]
    logq = -np.logaddexp(0.0, np.where(yc == 1, -z, z))
    return ((logq <= floor) | ((yc == 0) & (zc >= ceiling)),)


# -- temperature statistics ------------------------------------------------------

def softmax_stats(zc: npt.ArrayLike, yc: npt.ArrayLike, beta: float, with_g0: bool = True,
                  nll_at_one: bool = False, unit: float = 1.0) -> npt.NDArray[np.float64]:
    """Per-row NLL, NLL', NLL'' at ``beta`` (and NLL'(0), and the NLL at beta = 1
    with ``nll_at_one``) of softmax(beta z) against labels ``yc``::

        NLL = log sum_c exp(beta u_c) - beta u_y,   NLL' = E_p[u] - u_y,
        NLL'' = Var_p[u],                           NLL'(0) = mean_c u_c - u_y

    with u = z - max(z).  ``unit`` (a power of two) divides the logits first,
    exactly, so that logits of any scale neither overflow nor underflow;
    beta is then in units of 1 / ``unit``.  Returns a (4, n) or (5, n)
    float64 array, one row per statistic.
    """
    return softmax_pass(zc, yc, beta, unit, with_g0, nll_at_one).stats


def _in_units(z: np.ndarray, unit: npt.ArrayLike) -> np.ndarray:
    """``z / unit`` for a power of two ``unit`` (or one per column): exact."""
    if np.all(np.asarray(unit) == 1.0):
        return z
    u = np.asarray(unit, dtype=np.float64)
    with np.errstate(over="ignore"):
        inv = 1.0 / u
        inv = inv.astype(z.dtype) if z.dtype.kind == "f" else inv
    if np.all(np.isfinite(inv)):
        return z * inv
    # (a unit near the bottom of the float range: its inverse overflows; the
    # exponent applied directly is exact, and slow, and only for such logits)
    return np.ldexp(z if z.dtype.kind == "f" else z.astype(np.float64),
                    -np.round(np.log2(u)).astype(np.int64))


#: Pairs per slice of a block in the sigmoid kernels: their dozen temporaries
#: then stay in the cores' caches (a quarter faster than a whole 4 MB block).
SIGMOID_SLICE = 1 << 18


def row_slices_of(n_rows: int, n_cols: int, pairs: int | None = None) -> list[slice]:
    """Consecutive slices of a block's rows holding about ``pairs`` values each
    (default :data:`SIGMOID_SLICE`; fixed by the block's shape alone, so sums
    stay the same from run to run)."""
    step = max(1, (SIGMOID_SLICE if pairs is None else pairs) // max(1, n_cols))
    return [slice(a, min(a + step, n_rows)) for a in range(0, n_rows, step)] or [slice(0, 0)]


def sigmoid_stats(zc: npt.ArrayLike, yc: npt.ArrayLike, beta: npt.ArrayLike,
                  unit: npt.ArrayLike = 1.0, nll_at_one: bool = False,
                  third: bool = False, with_g0: bool = True) -> npt.NDArray[np.float64]:
    """:func:`_sigmoid_stats` of a block, summed over slices of its rows."""
    z, y = np.asarray(zc), np.asarray(yc)
    cols = z.shape[1] if z.ndim == 2 else 1
    parts = [_sigmoid_stats(z[s], y[s], beta, unit, nll_at_one, third, with_g0)
             for s in row_slices_of(z.shape[0], cols)]
    return parts[0] if len(parts) == 1 else np.sum(parts, axis=0)


def _sigmoid_stats(zc: npt.ArrayLike, yc: npt.ArrayLike, beta: npt.ArrayLike,
                   unit: npt.ArrayLike = 1.0, nll_at_one: bool = False,
                   third: bool = False, with_g0: bool = True) -> npt.NDArray[np.float64]:
    """Column sums of NLL, NLL', NLL'' at ``beta`` (one per column) and of NLL'(0)
    for sigmoid(beta z) against 0/1 labels::

        NLL = softplus(beta z) - y beta z,  NLL' = (s - y) z,  NLL'' = s (1 - s) z^2,
        NLL'(0) = (1/2 - y) z,  s = sigmoid(beta z)

    and with ``nll_at_one`` a further row: the NLL at beta = ``unit`` (T = 1);
    with ``third`` two more, the third and fourth derivatives
    s (1 - s) (1 - 2 s) z^3 and s (1 - s) (1 - 6 s + 6 s^2) z^4 (for a step of
    higher order).  Without ``with_g0`` the NLL'(0) row is zeros (only a
    fit's first pass needs it).
    ``zc`` (n, C) and labels ``yc`` (n, C) or (n,); ``beta`` is (C,); ``unit``
    (powers of two, one per column) as in :func:`softmax_stats`.  One
    exponential serves the NLL and s: with t = exp(-|a|), softplus(+-a) =
    log1p(t) + max(+-a, 0) and s = 1 / (1 + t) or t / (1 + t).  Returns a
    (4 to 7, C) float64 array of partial sums.
    """
    z0 = np.asarray(zc)
    zc = _in_units(z0, unit)
    o = np.asarray(yc).reshape(zc.shape) == 1
    bvec = np.asarray(beta, dtype=np.float64)
    a = zc * (bvec.astype(zc.dtype) if zc.dtype == np.float32 else bvec)
    y = o.astype(zc.dtype)
    sign = y * -2
    sign += 1                      # -1 for a positive, +1 for a negative: exact
    nll, sig = _softplus_and_sigmoid(a, sign)
    curv = sig * (1 - sig) * zc * zc
    rows = [nll.sum(axis=0, dtype=np.float64),
            ((sig - y) * zc).sum(axis=0, dtype=np.float64),
            curv.sum(axis=0, dtype=np.float64),
            ((0.5 - y) * zc).sum(axis=0, dtype=np.float64) if with_g0
            else np.zeros(zc.shape[1:])]
    if nll_at_one:
        rows.append(_softplus(z0.astype(zc.dtype, copy=False), sign)
                    .sum(axis=0, dtype=np.float64))
    if third:
        w3 = curv * zc        # s (1 - s) z^3, the same products in the same order
        rows.append((w3 * (1 - 2 * sig)).sum(axis=0, dtype=np.float64))
        rows.append((w3 * zc * (1 - 6 * sig * (1 - sig))).sum(axis=0, dtype=np.float64))
    return np.stack(rows)


def _softplus_and_sigmoid(a: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """softplus(sign a) (``sign`` -1 for a positive, +1 for a negative: the binary
    cross entropy of logit a), and sigmoid(a), from one exponential.  No
    ``np.where``: on a random mask it costs ten times the arithmetic that gives
    the same bits (a times +-1 is a or -a; t = exp(-|a|) <= 1, so
    max(t, a >= 0) is 1 where a >= 0 and t elsewhere)."""
    t = np.exp(-np.abs(a))
    nll = _softplus(a, sign, t)
    inv = 1 / (1 + t)
    return nll, np.maximum(t, a >= 0) * inv


def _softplus(a: np.ndarray, sign: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
    """softplus(sign a) as :func:`_softplus_and_sigmoid` computes it, from
    ``t`` = exp(-|a|) when given (the NLL alone: no sigmoid to compute)."""
    t = np.exp(-np.abs(a)) if t is None else t
    return np.log1p(t) + np.maximum(a * sign, 0)


# -- decision scores and probabilities ---------------------------------------------

def top_log_prob(e: np.ndarray, kc: np.ndarray) -> npt.NDArray[np.float64]:
    """log p_k of the argmax class from ``e`` = exp((z - z_k) / T) (overwritten):
    ``-log1p(sum_{c != k} e_c)``.  Summing only the other classes keeps tiny
    tails visible (p = 1 - 1e-30 stays distinct from p = 1 - 1e-20); the sum is
    accumulated in float64, as the torch kernel does."""
    e[np.arange(e.shape[0]), kc] = 0  # the argmax term is exactly 1: leave it out
    return -np.log1p(row_sums(e, exact=True))


def top_scores(zc: npt.ArrayLike, temperature: SupportsFloat
               ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Argmax class (ties: lowest index) and its calibrated log-probability:
    int64 (n,) and float64 (n,)."""
    zc = np.asarray(zc)
    r, c = zc.shape
    b = 1.0 / float(temperature)
    kc = zc.argmax(axis=1)
    e = scratch((r, c), float_dtype(zc.dtype), 1)
    np.subtract(zc, zc[np.arange(r), kc][:, None], out=e)
    np.multiply(e, b, out=e)
    np.exp(e, out=e)
    return kc.astype(np.int64), top_log_prob(e, kc)


def sigmoid_scores(zc: npt.ArrayLike, temperature: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Calibrated logits z / T as float64 ((n,) binary, (n, C) multilabel)."""
    t = np.asarray(temperature, dtype=np.float64)
    return np.asarray(zc).astype(np.float64) / t


def softmax_proba(zc: npt.ArrayLike, temperature: SupportsFloat) -> np.ndarray:
    """softmax(z / T) row by row; float32 logits give float32 probabilities."""
    zc = np.asarray(zc)
    if zc.dtype.kind != "f":
        zc = zc.astype(np.float64)
    return special.softmax(zc * (1.0 / float(temperature)), axis=1)


def sigmoid_proba(zc: npt.ArrayLike, temperature: npt.ArrayLike) -> np.ndarray:
    """sigmoid(z / T); float32 logits give float32 probabilities."""
    z = np.asarray(zc)
    t = np.asarray(temperature, dtype=np.float64)
    dt = float_dtype(z.dtype)
    return special.expit(z / t.astype(dt)).astype(dt, copy=False)


def is_family(calibration: Any) -> bool:
    """Whether ``calibration`` is a fitted calibration family
    (:mod:`calibrate.families`) rather than a temperature (a number, or one per
    label)."""
    return hasattr(calibration, "method")


def calibrated_top(zc: npt.ArrayLike, calibration: Any) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of the calibrated probabilities and its log-probability
    (:func:`top_scores` for a temperature, the family's ``top`` otherwise)."""
    if is_family(calibration):
        return calibration.top(np.asarray(zc))
    return top_scores(zc, calibration)


def calibrated_scores(zc: npt.ArrayLike, calibration: Any) -> np.ndarray:
    """Sigmoid tasks' decision scores: z / T for a temperature, the family's
    ``scores`` otherwise (strictly increasing in each label's logit)."""
    if is_family(calibration):
        return calibration.scores(np.asarray(zc))
    return sigmoid_scores(zc, calibration)


def decisions(zc: npt.ArrayLike, task: str, calibration: Any, tau: np.ndarray) -> np.ndarray:
    """Decisions for a block of logits: multiclass int64 class ids (-1 = abstain),
    binary int64 0/1, multilabel bool (n, C); ``calibration`` a temperature or
    a fitted family, ``tau`` as :func:`threshold_array` (per scored column)."""
    if task == "multiclass":
        k, logp = calibrated_top(zc, calibration)
        return decide_multiclass(k, logp, tau)
    dec = decide_sigmoid(calibrated_scores(zc, calibration), tau)
    return dec.astype(np.int64) if task == "binary" else dec


def proba(zc: npt.ArrayLike, task: str, calibration: Any) -> np.ndarray:
    """Calibrated probabilities of a block: softmax or sigmoid of z / T, or the
    family's."""
    if is_family(calibration):
        return calibration.probabilities(np.asarray(zc))
    if task == "multiclass":
        return softmax_proba(zc, calibration)
    return sigmoid_proba(zc, calibration)


def threshold_array(values: Iterable[float | None]) -> npt.NDArray[np.float64]:
    """Thresholds as floats, with None (never predict) as +inf."""
    return np.array([np.inf if v is None else v for v in values], dtype=np.float64)


def decide_multiclass(k: np.ndarray, logp: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """k where log p_k clears class k's threshold (an array, +inf = never), else -1."""
    return np.where(logp >= tau[k], k, -1)


def decide_sigmoid(scores: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Boolean decisions for calibrated logits against per-column thresholds."""
    return scores >= tau


# -- the fit summary's metrics pass --------------------------------------------------

@dataclass(frozen=True)
class MetricParts:
    """What the summary metrics need from a block (or, joined by :meth:`of`, all
    rows) of multiclass logits at one temperature, without keeping (n, C)
    probabilities.

    Per row: the argmax ``k``, the confidence ``conf`` = max p, ``py`` = p_y,
    ``sq`` = sum_k p_k^2 and (when asked for) ``logp``, the argmax's
    log-probability exactly as :func:`top_scores` gives it, so that a fit can
    take its decision scores from this pass; per class ``colsum`` = sum of p;
    and the few (row, class) entries with p_k above 1 / n_bins (at most
    n_bins - 1 per row), ``hi_cls`` and ``hi_p``, which alone can fall outside
    the first bin of the classwise ECE.
    """
    k: np.ndarray
    conf: np.ndarray
    py: np.ndarray
    sq: np.ndarray
    colsum: np.ndarray
    hi_cls: np.ndarray
    hi_p: np.ndarray
    logp: np.ndarray | None

    @classmethod
    def of(cls, parts: list) -> MetricParts:
        """Blocks' parts, in row order, as one (the pass over all rows)."""
        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(q, name) for q in parts])
        return cls(k=cat("k"), conf=cat("conf"), py=cat("py"), sq=cat("sq"),
                   colsum=np.sum([q.colsum for q in parts], axis=0), hi_cls=cat("hi_cls"),
                   hi_p=cat("hi_p"), logp=None if parts[0].logp is None else cat("logp"))

    def to_dict(self) -> dict:
        return {k: (None if v is None else np.asarray(v).tolist())
                for k, v in self.__dict__.items()}


def _metric_parts(e: np.ndarray, kc: np.ndarray, yc: np.ndarray, n_bins: int,
                  scores: bool, tot: np.ndarray | None = None) -> MetricParts:
    """:class:`MetricParts` from ``e`` = exp((z - z_k) / T), whose argmax entries
    (exactly 1) are then set to 0 for the decision score: the rest of each row,
    summed in float64, keeps log p_k distinct from 0 where float32 would round
    p_k to 1.  The probabilities the binned metrics see are e / (row sum of e),
    bit for bit as they always were (a bin edge is a discontinuity).  ``tot``
    is ``row_sums(e)`` when the caller has it already."""
    r, c = e.shape
    rows = np.arange(r)
    cut = (1.0 - 1e-4) / n_bins  # a little below the edge: rounding never hides an entry
    tot = row_sums(e) if tot is None else tot
    inv = 1.0 / tot
    py = e[rows, yc].astype(np.float64) * inv
    # flatnonzero on the raveled mask is ~20x faster than a 2-D nonzero
    hr, hc = np.divmod(np.flatnonzero(e > (cut * tot).astype(e.dtype)[:, None]), c)
    high = e[hr, hc].astype(np.float64) * inv[hr]
    col = np.einsum("i,ij->j", inv.astype(e.dtype), e)  # not BLAS: its threads stall here
    e[rows, kc] = 0
    sq = (rowdot(e, e) + 1.0) * inv * inv
    logp = -np.log1p(row_sums(e, exact=True)) if scores else None
    return MetricParts(kc.astype(np.int64), inv, py, sq, col.astype(np.float64), hc, high, logp)


def family_metrics(zc: npt.ArrayLike, yc: npt.ArrayLike, fitted: Any, n_bins: int,
                   scores: bool = True) -> MetricParts:
    """:class:`MetricParts` of a block of multiclass logits under a fitted
    family (:mod:`calibrate.families`): from its log-probabilities, with the
    decision scores of its ``top`` (the argmax's entries of e = exp(log p -
    log p_k) are exactly 1, as :func:`_metric_parts` expects)."""
    zc, yc = np.asarray(zc), np.asarray(yc)
    lp = fitted.log_probabilities(zc)
    kc, logp = fitted.top(zc)
    e = lp - lp[np.arange(lp.shape[0]), kc][:, None]
    np.exp(e, out=e)
    parts = _metric_parts(e, kc, yc, n_bins, False)
    return replace(parts, logp=np.asarray(logp, dtype=np.float64) if scores else None)


def rowdot(a: np.ndarray, b: np.ndarray) -> npt.NDArray[np.float64]:
    """sum_j a_ij b_ij of each row, as float64 (a batched dot product: each row's
    sum depends on that row alone, and it is faster than einsum)."""
    return np.matmul(a[:, None, :], b[:, :, None])[:, 0, 0].astype(np.float64)


def softmax_metrics(zc: npt.ArrayLike, yc: npt.ArrayLike, temperature: SupportsFloat, n_bins: int,
                    scores: bool = True) -> MetricParts:
    """The :class:`MetricParts` of a block of multiclass logits at ``temperature``
    (with the decision scores ``logp`` when ``scores``)."""
    zc, yc = np.asarray(zc), np.asarray(yc)
    r, c = zc.shape
    kc = zc.argmax(axis=1)
    e = scratch((r, c), float_dtype(zc.dtype), 2)
    np.subtract(zc, zc[np.arange(r), kc][:, None], out=e)
    np.multiply(e, 1.0 / float(temperature), out=e)
    np.exp(e, out=e)
    return _metric_parts(e, kc, yc, n_bins, scores)


@dataclass(frozen=True)
class PassParts:
    """One block's share of a fused pass (:func:`softmax_pass`): per-row
    temperature statistics (rows of ``stats``, as :func:`softmax_stats`), and
    the :class:`MetricParts` at T = 1 and at the pass's own beta, each when asked."""
    stats: np.ndarray
    at_one: MetricParts | None
    at_beta: MetricParts | None


def softmax_pass(zc: npt.ArrayLike, yc: npt.ArrayLike, beta: float, unit: float = 1.0,
                 with_g0: bool = True, nll_at_one: bool = False, metrics_at_one: bool = False,
                 metrics_at_beta: bool = False, n_bins: int = 15, third: bool = False
                 ) -> PassParts:
    """:func:`softmax_stats` at ``beta`` and, from the same exponentials, the
    summary metrics' parts at T = 1 and at T = unit / beta: one read of the block
    serves the temperature and the summary.

    The logits are divided by ``unit`` (a power of two, exactly).  The parts at
    beta are bit for bit those :func:`softmax_metrics` gives at T = unit / beta
    when beta / unit == 1 / (unit / beta) (the caller makes sure of it), and
    carry the decision scores.  With ``third``, two last statistic rows: the
    NLL's third and fourth derivatives in beta, the third and fourth
    cumulants of u under p, for a step of higher order.
    """
    zc = _in_units(np.asarray(zc), unit)
    yc = np.asarray(yc)
    r, c = zc.shape
    rows = np.arange(r)
    b = float(beta)
    dt = float_dtype(zc.dtype)
    kc = zc.argmax(axis=1)
    u = scratch((r, c), dt, 0)
    np.subtract(zc, zc[rows, kc][:, None], out=u)      # u = z - max(z)
    uy = u[rows, yc].astype(np.float64)
    e = scratch((r, c), dt, 1)
    np.multiply(u, b, out=e)
    np.exp(e, out=e)
    tot = row_sums(e)
    at_one = None
    if nll_at_one or metrics_at_one:   # at T = 1: beta = unit, in units of 1 / unit
        e1 = e
        if b != float(unit):
            e1 = scratch((r, c), dt, 2)
            np.exp(u if unit == 1.0 else np.multiply(u, float(unit), out=e1), out=e1)
        tot1 = tot if e1 is e else row_sums(e1)
        nll1 = np.log(tot1) - uy * float(unit)
        if metrics_at_one:
            at_one = _metric_parts(e1, kc, yc, n_bins, False, tot1)
    at_beta = _metric_parts(e, kc, yc, n_bins, True, tot) if metrics_at_beta else None
    # (zeroing the argmax entries for the scores leaves the moments alone: u_k = 0)
    m1 = rowdot(e, u) / tot                                      # E_p[u]
    np.multiply(e, u, out=e)
    m2 = rowdot(e, u) / tot                                      # E_p[u^2]
    nll = np.log(tot) - b * uy
    g0 = row_sums(u) / c - uy if with_g0 else np.zeros(r)          # NLL'(0)
    stats = [nll, m1 - uy, np.maximum(m2 - m1 * m1, 0), g0] + ([nll1] if nll_at_one else [])
    if third:
        np.multiply(e, u, out=e)
        m3 = rowdot(e, u) / tot                                  # E_p[u^3]
        np.multiply(e, u, out=e)
        m4 = rowdot(e, u) / tot                                  # E_p[u^4]
        c2 = m2 - m1 * m1
        stats.append(m3 - 3.0 * m1 * m2 + 2.0 * m1 ** 3)
        stats.append(m4 - 4.0 * m1 * m3 + 6.0 * m1 * m1 * m2 - 3.0 * m1 ** 4 - 3.0 * c2 * c2)
    return PassParts(np.stack(stats), at_one, at_beta)
