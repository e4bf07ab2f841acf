"""Isotonic calibration for binary and multilabel logits (Zadrozny & Elkan,
"Transforming Classifier Scores into Accurate Multiclass Probability
Estimates", KDD 2002), per label.

Fit: the non-decreasing step function q minimising sum_i (y_i - q(z_i))^2
(the pool-adjacent-violators solution, which also maximises the binomial
likelihood among monotone maps, Barlow et al. 1972), computed by
``scipy.optimize.isotonic_regression`` on the distinct values of z with
their counts as weights and their mean labels as targets (so tied logits
always share one value, as in scikit-learn's ``IsotonicRegression``).  Its
blocks are runs of distinct logits with one fitted value each.

Map: piecewise linear through the points (centre_j, value_j) of the blocks,
centre_j being the mean logit of the rows in block j; constant beyond the
first and last centre; then clipped to [0.5 / n, 1 - 0.5 / n] with n the
rows it was fitted on, so that no row gets probability 0 or 1 (an
unclipped step function gives held-out rows p = 0 whose label is 1: an
infinite NLL).  The map is non-decreasing in z (strictly between the first
and last centre), so the decision score is the model's own logit z: it ranks
rows exactly as the model does and a flat step costs no recall.

The global rule, one threshold for every label, is a level t of the
calibrated probability (its log-odds in the file): a label's (row, label)
pairs are accepted where its map reaches t, which is where its logit
reaches the one point tau_k at which the map crosses t
(:func:`column_thresholds`; -inf when the whole map is at or above t, +inf
when it never reaches it).  So apply compares logits with per-label
thresholds under both rules.

The columns are read whole (sorting needs them all): binary and multilabel
scores are N x C small values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy import special

from . import _common
from ._passes import whole


@dataclass(frozen=True)
class Isotonic(_common.ChunkMethods):
    """Fitted isotonic maps: per label the knots (block centres), the block
    values and the clip bounds."""
    method: ClassVar[str] = "isotonic"
    PARAMS: ClassVar[tuple] = ("knots", "values", "lo", "hi")
    SCORES_ARE_LOG_ODDS: ClassVar[bool] = False
    task: str
    knots: tuple          # per label: a tuple of increasing logits
    values: tuple         # per label: the block values at those knots
    lo: tuple             # per label: the clip bounds 0.5 / n, 1 - 0.5 / n
    hi: tuple

    def threshold_probability(self, tau: float | None, column: int) -> float | None:
        """A per-class threshold (a logit of the model) as the calibrated
        probability there; 0 for "accept all", None for "never"."""
        from ..thresholds import ACCEPT_ALL
        if tau is None:
            return None
        if tau == ACCEPT_ALL:
            return 0.0
        return float(_p64(self, np.array([[float(tau)]]), [column])[0, 0])

    def column_thresholds(self, tau: float | None, n_columns: int) -> npt.NDArray[np.float64]:
        """The global level ``tau`` (a calibrated log-odds) as one model-logit
        threshold per label: see the module."""
        if tau is None:
            return np.full(n_columns, np.inf)
        return np.array([level_crossing(self, k, float(special.expit(tau)))
                         for k in range(n_columns)])


def blocks(z: npt.ArrayLike, y: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The isotonic fit of 0/1 labels ``y`` on one column of logits ``z``.

    Returns ``(distinct, fitted, starts)``: the distinct logits (sorted), the
    fitted value at each, and the index in ``distinct`` where each block
    starts (with a final entry len(distinct)).
    """
    from scipy import optimize  # half a second to import: only when fitting isotonic

    z = np.asarray(z, dtype=np.float64)
    distinct, inv, counts = np.unique(z, return_inverse=True, return_counts=True)
    mean_y = np.bincount(inv, weights=np.asarray(y, dtype=np.float64)) / counts
    res = optimize.isotonic_regression(mean_y, weights=counts.astype(np.float64),
                                       increasing=True)
    return distinct, res.x, np.asarray(res.blocks)


def _fit_column(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    distinct, fitted, starts = blocks(z, y)
    counts = np.bincount(np.searchsorted(distinct, np.asarray(z, dtype=np.float64)),
                         minlength=distinct.size).astype(np.float64)
    block = np.repeat(np.arange(starts.size - 1), np.diff(starts))
    centres = (np.bincount(block, weights=counts * distinct)
               / np.bincount(block, weights=counts))
    return centres, fitted[starts[:-1]]


def fit(z: Any, y: npt.ArrayLike, task: str = "binary") -> Isotonic:
    """Fit isotonic maps to logits z ((N,) or (N, C)) and 0/1 labels y."""
    zz = _common.as_columns(whole(z))
    yy = np.asarray(y).reshape(zz.shape)
    n = zz.shape[0]
    knots, values = [], []
    for k in range(zz.shape[1]):
        c, v = _fit_column(zz[:, k], yy[:, k])
        knots.append(_common.tup(c))
        values.append(_common.tup(v))
    lo = 0.5 / n
    return Isotonic(task=task, knots=tuple(knots), values=tuple(values),
                    lo=(lo,) * zz.shape[1], hi=(1.0 - lo,) * zz.shape[1])


def _p64(fit: Isotonic, z: npt.ArrayLike, columns: Sequence[int] | None = None) -> np.ndarray:
    """The map of each label (or of the labels ``columns``) at the columns of z."""
    zz = _common.as_columns(z).astype(np.float64)
    out = np.empty(zz.shape)
    for j, k in enumerate(range(zz.shape[1]) if columns is None else columns):
        p = np.interp(zz[:, j], fit.knots[k], fit.values[k])
        out[:, j] = np.clip(p, fit.lo[k], fit.hi[k])
    return out


def level_crossing(fit: Isotonic, k: int, level: float) -> float:
    """The least logit at which label k's map reaches ``level`` (a
    probability): -inf (as the lowest float: every pair accepted) when the
    map is at or above it everywhere, +inf when it never reaches it, else
    the point where the linear piece that crosses it meets it."""
    from ..thresholds import ACCEPT_ALL
    knots, values = np.asarray(fit.knots[k]), np.asarray(fit.values[k])
    if level <= max(fit.lo[k], min(values[0], fit.hi[k])):
        return ACCEPT_ALL
    if level > min(fit.hi[k], values[-1]):
        return np.inf
    # lo < level <= hi: the clip does not bind where the map crosses level
    j = int(np.searchsorted(values, level, side="left"))     # values[j-1] < level <= values[j]
    x0, x1, v0, v1 = knots[j - 1], knots[j], values[j - 1], values[j]
    return float(min(x1, x0 + (level - v0) / (v1 - v0) * (x1 - x0)))


def probabilities(fit: Isotonic, z: npt.ArrayLike) -> np.ndarray:
    """The clipped piecewise-linear map, in the float dtype of ``z``."""
    dt = _common.float_dtype(np.asarray(z).dtype)
    return _common.unflatten(_p64(fit, z), z).astype(dt)


def log_odds(fit: Isotonic, z: npt.ArrayLike) -> np.ndarray:
    """logit of the calibrated probability (float64; finite by the clip)."""
    return _common.unflatten(special.logit(_p64(fit, z)), z)


def scores(fit: Isotonic, z: npt.ArrayLike) -> np.ndarray:
    """Decision score: the model's own logit (float64), which the map
    preserves the order of."""
    return np.asarray(z, dtype=np.float64)
