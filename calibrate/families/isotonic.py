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

The columns are read whole (sorting needs them all): binary and multilabel
scores are N x C small values.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import optimize, special

from . import _common


@dataclass(frozen=True)
class Isotonic(_common.ChunkMethods):
    """Fitted isotonic maps: per label the knots (block centres), the block
    values and the clip bounds."""
    method: ClassVar[str] = "isotonic"
    task: str
    knots: tuple          # per label: a tuple of increasing logits
    values: tuple         # per label: the block values at those knots
    lo: tuple             # per label: the clip bounds 0.5 / n, 1 - 0.5 / n
    hi: tuple


def blocks(z, y):
    """The isotonic fit of 0/1 labels ``y`` on one column of logits ``z``.

    Returns ``(distinct, fitted, starts)``: the distinct logits (sorted), the
    fitted value at each, and the index in ``distinct`` where each block
    starts (with a final entry len(distinct)).
    """
    z = np.asarray(z, dtype=np.float64)
    distinct, inv, counts = np.unique(z, return_inverse=True, return_counts=True)
    mean_y = np.bincount(inv, weights=np.asarray(y, dtype=np.float64)) / counts
    res = optimize.isotonic_regression(mean_y, weights=counts.astype(np.float64),
                                       increasing=True)
    return distinct, res.x, np.asarray(res.blocks)


def _fit_column(z, y):
    distinct, fitted, starts = blocks(z, y)
    counts = np.bincount(np.searchsorted(distinct, np.asarray(z, dtype=np.float64)),
                         minlength=distinct.size).astype(np.float64)
    block = np.repeat(np.arange(starts.size - 1), np.diff(starts))
    centres = (np.bincount(block, weights=counts * distinct)
               / np.bincount(block, weights=counts))
    return centres, fitted[starts[:-1]]


def fit(z, y, task="binary"):
    """Fit isotonic maps to logits z ((N,) or (N, C)) and 0/1 labels y."""
    zz = _common.as_columns(z)
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


def _p64(fit, z):
    zz = _common.as_columns(z).astype(np.float64)
    out = np.empty(zz.shape)
    for k in range(zz.shape[1]):
        p = np.interp(zz[:, k], fit.knots[k], fit.values[k])
        out[:, k] = np.clip(p, fit.lo[k], fit.hi[k])
    return out


def probabilities(fit, z):
    """The clipped piecewise-linear map, in the float dtype of ``z``."""
    dt = _common.float_dtype(np.asarray(z).dtype)
    return _common.unflatten(_p64(fit, z), z).astype(dt)


def log_odds(fit, z):
    """logit of the calibrated probability (float64; finite by the clip)."""
    return _common.unflatten(special.logit(_p64(fit, z)), z)


def scores(fit, z):
    """Decision score: the model's own logit (float64), which the map
    preserves the order of."""
    return np.asarray(z, dtype=np.float64)
