"""Calibration metrics: numpy in, float out.

Each function states its definition; the names used in summaries are the
keys of :data:`NAMES`.
"""

import numpy as np
from scipy import special

from . import _chunks
from . import temperature as _temperature

#: The metric behind each summary key, spelled out for readers of the file.
NAMES = {
    "nll": "mean negative log-likelihood (nats): softmax cross entropy for "
           "multiclass, binary cross entropy for binary, mean over classes of "
           "per-class binary cross entropy for multilabel",
    "ece": "expected calibration error, 15 equal-width bins (lo, hi] "
           "(Guo et al. 2017): top-label confidence for multiclass, "
           "positive-class probability for binary, all (row, class) "
           "probabilities pooled for multilabel",
}


def nll(logits, labels, task, temperature=1.0):
    """Mean NLL of ``labels`` under logits scaled by 1/``temperature``.

    multiclass: mean_i [logsumexp(z_i / T) - z_iy / T];
    binary / multilabel: mean_i [softplus(z / T) - y z / T], averaged over
    classes for multilabel.
    """
    if task == "multiclass":
        return float(_temperature.softmax_stats(logits, labels, 1.0 / temperature)[0])
    z = logits.reshape(-1, 1) if logits.ndim == 1 else logits
    y = np.asarray(labels).reshape(z.shape).astype(np.float64)
    beta = 1.0 / np.broadcast_to(np.asarray(temperature, dtype=np.float64), (z.shape[1],))
    return float(np.mean(_temperature.sigmoid_stats(z, y, beta)[0]))


def ece(probabilities, outcomes, n_bins=15):
    """Expected calibration error with equal-width bins (Guo et al. 2017).

    ``ECE = sum_b |B_b| / n * |mean_{i in B_b} outcome_i - mean_{i in B_b} p_i|``
    with bins ``B_b = {i : p_i in ((b-1)/n_bins, b/n_bins]}`` (p = 0 falls in
    the first bin).  For top-label ECE pass the confidence max_k p_k and
    whether the argmax was right; for a positive class, p(y=1) and y.
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    o = np.asarray(outcomes, dtype=np.float64).ravel()
    if p.size == 0:
        return float("nan")
    b = np.clip(np.ceil(p * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    gap = np.bincount(b, weights=o - p, minlength=n_bins)
    return float(np.abs(gap).sum() / p.size)


# ---------------------------------------------------------------------------
# Which (confidence, outcome) pairs a task's ECE is computed on, and the names
# of everything the summary reports.

#: Bins used by every binned metric in summaries and pictures.
N_BINS = 15

NAMES.update({
    "brier": "Brier score (Brier 1950): multiclass mean over rows of "
             "sum_k (p_k - 1[y = k])^2, range [0, 2] (sklearn's brier_score_loss "
             "convention); binary mean (p - y)^2 on the positive class, range [0, 1]; "
             "multilabel mean over all (row, class) pairs of (p - y)^2",
    "ece_15_equal_width": "expected calibration error, 15 equal-width bins (lo, hi] "
                          "(Guo et al. 2017): sum_b |B_b| / n |mean outcome - mean "
                          "confidence|; the same value as 'ece'",
    "ece_15_equal_mass": "expected calibration error, 15 equal-mass bins (ranks split "
                         "evenly, tied values kept in one bin; adaptive ECE of Nixon "
                         "et al. 2019)",
    "mce_15_equal_width": "maximum calibration error (Naeini et al. 2015): largest "
                          "|accuracy - confidence| over the non-empty bins of "
                          "'ece_15_equal_width'",
    "classwise_ece_15_equal_width": "classwise ECE (Kull et al. 2019): mean over classes k "
                                    "of the 15-bin equal-width ECE of p_k against 1[y = k], "
                                    "all rows (binary: both classes; multilabel: each "
                                    "label's own probabilities)",
    "top_label_ece_15_equal_width": "top-label ECE (Gupta & Ramdas 2022): rows binned by "
                                    "predicted class and by top-label confidence (15 "
                                    "equal-width bins), sum over bins of |B|/n |accuracy - "
                                    "confidence|; binary: predicted class 1 if p > 0.5; "
                                    "not defined for multilabel",
    "smooth_ece": "smooth ECE (Blasiok & Nakkiran 2024): integral over [0, 1] of "
                  "|mean_i K_s(t, p_i) (o_i - p_i)| with the reflected Gaussian kernel "
                  "K_s, at the bandwidth s where it equals s",
})

#: The order and the short labels of the metrics in human summaries.
LABELS = {
    "nll": "NLL",
    "brier": "Brier score",
    "ece_15_equal_width": "ECE (15 bins)",
    "ece_15_equal_mass": "ECE (15 equal-mass)",
    "mce_15_equal_width": "MCE (15 bins)",
    "classwise_ece_15_equal_width": "classwise ECE (15)",
    "top_label_ece_15_equal_width": "top-label ECE (15)",
    "smooth_ece": "smooth ECE",
}

#: Metrics given with bootstrap intervals on request (all the ECE-like ones).
ECE_KEYS = ("ece_15_equal_width", "ece_15_equal_mass", "mce_15_equal_width",
            "classwise_ece_15_equal_width", "top_label_ece_15_equal_width", "smooth_ece")

#: What the ECE pairs are, per task (the 'ece' entry of NAMES, split).
PAIRS = {
    "multiclass": "top-label confidence max_k p_k against argmax correct",
    "binary": "positive-class probability p against y",
    "multilabel": "all (row, class) probabilities pooled against their labels",
}


def describe(key, task):
    """The exact definition of summary metric ``key`` for ``task``."""
    text = NAMES[key]
    if key in ECE_KEYS and key not in ("classwise_ece_15_equal_width",
                                       "top_label_ece_15_equal_width"):
        text += f"; pairs: {PAIRS[task]}"
    return text


def finite(x):
    """``x`` as a float, or None when it is missing or not finite (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def infer_task(probabilities, labels):
    """multilabel for (N, C) labels, binary for (N,) probabilities, else multiclass."""
    y = np.asarray(labels)
    p = np.asarray(probabilities)
    if y.ndim == 2 and y.shape[1] > 1:
        return "multilabel"
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
        return "binary"
    return "multiclass"


def _prepare(probabilities, labels, task):
    task = task or infer_task(probabilities, labels)
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    if task == "binary":
        p, y = p.reshape(-1), y.reshape(-1)
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"{p.shape[0]} probability rows but {y.shape[0]} labels")
    return p, y.astype(np.int64), task


def calibration_pairs(probabilities, labels, task=None):
    """The (confidence, outcome) pairs a task's ECE is computed on.

    multiclass: ``(max_k p_k, argmax_k p_k == y)`` (ties: lowest index);
    binary: ``(p, y)`` with p = P(y = 1); multilabel: every ``(p_ik, y_ik)``
    pooled.  Outcomes are float64 0/1.
    """
    p, y, task = _prepare(probabilities, labels, task)
    if task == "multiclass":
        k = p.argmax(axis=1)
        return p[np.arange(len(k)), k], (k == y).astype(np.float64)
    return p.ravel(), y.ravel().astype(np.float64)


# ---------------------------------------------------------------------------
# Binned estimators on (confidence, outcome) pairs

def _bin_width(p, n_bins):
    """Equal-width bin of each p: b = ceil(p n_bins) - 1, bins (lo, hi], p = 0 in bin 0."""
    return np.clip(np.ceil(p * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def _bin_mass(p, n_bins):
    """Equal-mass bin of each p: rank r of n goes to floor(r n_bins / n); every
    member of a group of tied values takes the bin of the group's first rank, so
    the bins do not depend on the order of the rows."""
    n = p.size
    order = np.argsort(p, kind="stable")
    s = p[order]
    first = np.searchsorted(s, s, side="left")
    b = np.empty(n, np.int64)
    b[order] = (first * n_bins) // n
    return b


def reliability_bins(probabilities, outcomes, n_bins=N_BINS, strategy="width"):
    """Per-bin counts and means: what a reliability diagram draws.

    ``strategy`` is ``"width"`` (bins ((b-1)/n_bins, b/n_bins], p = 0 in the
    first) or ``"mass"`` (see :func:`ece_equal_mass`).  Returns a dict of
    arrays of length ``n_bins``: ``count``, ``confidence`` (mean p),
    ``accuracy`` (mean outcome), both NaN in empty bins, ``gap`` = accuracy -
    confidence, and ``lo``, ``hi`` (the bin edges for "width"; the smallest and
    largest p in the bin for "mass").
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    o = np.asarray(outcomes, dtype=np.float64).ravel()
    if strategy not in ("width", "mass"):
        raise ValueError(f"strategy: expected 'width' or 'mass', found {strategy!r}")
    b = _bin_width(p, n_bins) if strategy == "width" else _bin_mass(p, n_bins)
    count = np.bincount(b, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(b, weights=p, minlength=n_bins) / count
        acc = np.bincount(b, weights=o, minlength=n_bins) / count
    if strategy == "width":
        lo, hi = np.arange(n_bins) / n_bins, np.arange(1, n_bins + 1) / n_bins
    else:
        lo = np.full(n_bins, np.inf)
        hi = np.full(n_bins, -np.inf)
        np.minimum.at(lo, b, p)
        np.maximum.at(hi, b, p)
        lo[count == 0] = np.nan
        hi[count == 0] = np.nan
    return {"count": count.astype(np.int64), "confidence": conf, "accuracy": acc,
            "gap": acc - conf, "lo": lo, "hi": hi}


def _binned_ece(p, o, b, n_bins):
    if p.size == 0:
        return float("nan")
    gap = np.bincount(b, weights=o - p, minlength=n_bins)
    return float(np.abs(gap).sum() / p.size)


def ece_equal_mass(probabilities, outcomes, n_bins=N_BINS):
    """ECE with equal-mass (adaptive) bins (Nixon et al., "Measuring Calibration
    in Deep Learning", CVPR-W 2019; Roelofs et al., AISTATS 2022).

    ``ECE = sum_b |B_b| / n * |mean_{B_b} outcome - mean_{B_b} p|`` where the
    pairs sorted by p are cut into ``n_bins`` runs of (nearly) equal size: the
    pair of rank r (0-based) of n goes to bin floor(r n_bins / n).  Tied
    values all take the bin of the first of them, so bins never split a tie
    and the result does not depend on row order.  Less biased than equal-width
    bins when the confidences crowd into a few of them.
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    o = np.asarray(outcomes, dtype=np.float64).ravel()
    return _binned_ece(p, o, _bin_mass(p, n_bins), n_bins)


def mce(probabilities, outcomes, n_bins=N_BINS):
    """Maximum calibration error (Naeini, Cooper & Hauskrecht, AAAI 2015; Guo
    et al. 2017): ``max_b |mean_{B_b} outcome - mean_{B_b} p|`` over the
    non-empty equal-width bins (lo, hi] of :func:`ece`."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    o = np.asarray(outcomes, dtype=np.float64).ravel()
    if p.size == 0:
        return float("nan")
    r = reliability_bins(p, o, n_bins, "width")
    return float(np.nanmax(np.abs(r["gap"])))


# ---------------------------------------------------------------------------
# Smooth ECE (Blasiok & Nakkiran, "Smooth ECE: Principled Reliability Diagrams
# via Kernel Smoothing", ICLR 2024)

_SMOOTH_PTS_PER_SIGMA = 40     # grid points per kernel width
_SMOOTH_MIN_GRID = 512         # grid intervals at least
_SMOOTH_SIGMA_MIN = 1e-3       # below this the data are calibrated to the grid's resolution


def _reflected_grid(p, r, m):
    """Linear binning of weights r at positions p onto the grid j / m, j = 0..m,
    as the even periodic extension of period 2 (length 2m): the reflected
    kernel of a point is the wrapped Gaussian over its images +-p + 2z, and the
    images of a point at 0 or 1 coincide, hence the doubled end points."""
    pos = np.clip(p, 0.0, 1.0) * m
    j = np.minimum(np.floor(pos).astype(np.int64), m - 1)
    frac = pos - j
    w = (np.bincount(j, weights=r * (1 - frac), minlength=m + 1)
         + np.bincount(j + 1, weights=r * frac, minlength=m + 1))
    ext = np.concatenate([w, w[-2:0:-1]])
    ext[0] *= 2
    ext[m] *= 2
    return ext


def _wrapped_gaussian(m, sigma):
    """The Gaussian density of width sigma wrapped on the circle of length 2,
    sampled at the 2m grid offsets j / m."""
    L = 2 * m
    d = np.arange(L, dtype=np.float64)
    d = np.where(d < m, d, d - L) / m
    k = np.zeros(L)
    for z in range(-4, 5):
        k += np.exp(-0.5 * ((d + 2 * z) / sigma) ** 2)
    return k / (np.sqrt(2 * np.pi) * sigma)


class _Smoother:
    """Binned residuals per grid size, so that the bandwidth search bins once per grid."""

    def __init__(self, p, o=None):
        """Weights (o_i - p_i) / n, or 1 / n without outcomes (the density)."""
        self.p = np.asarray(p, dtype=np.float64).ravel()
        n = max(self.p.size, 1)
        self.r = (np.full(self.p.size, 1.0 / n) if o is None
                  else (np.asarray(o, dtype=np.float64).ravel() - self.p) / n)
        self._grids = {}

    def grid(self, sigma):
        need = max(_SMOOTH_MIN_GRID, int(np.ceil(_SMOOTH_PTS_PER_SIGMA / sigma)))
        m = 1 << int(np.ceil(np.log2(need)))
        if m not in self._grids:
            ext = _reflected_grid(self.p, self.r, m)
            self._grids[m] = np.fft.rfft(ext)
        return m, self._grids[m]

    def curve(self, sigma):
        """t = j / m and g(t) = mean_i K_sigma(t, p_i) (o_i - p_i), j = 0..m."""
        m, f = self.grid(sigma)
        g = np.fft.irfft(f * np.fft.rfft(_wrapped_gaussian(m, sigma)), 2 * m)[:m + 1]
        return np.arange(m + 1) / m, g

    def value(self, sigma):
        t, g = self.curve(sigma)
        a = np.abs(g)
        return float((a.sum() - 0.5 * (a[0] + a[-1])) / (len(t) - 1))  # trapezoid on [0, 1]


def smooth_ece_at(probabilities, outcomes, sigma):
    """``smECE_sigma = integral_0^1 |mean_i K_sigma(t, p_i) (o_i - p_i)| dt``.

    ``K_sigma(t, p) = sum_{z in Z} phi_sigma(t - p - 2z) + phi_sigma(t + p - 2z)``
    is the Gaussian of width sigma reflected at 0 and 1 (a density in t on
    [0, 1] for every p).  Written as the kernel-smoothed residual r(t) times
    the kernel density estimate d(t), it is the integral of |r(t)| d(t): the
    ECE of the smoothed reliability curve.  Computed on a grid of at least
    40 points per sigma (linear binning, FFT convolution, trapezoid rule).
    """
    return _Smoother(probabilities, outcomes).value(float(sigma))


def smooth_ece(probabilities, outcomes, return_sigma=False):
    """Smooth ECE (Blasiok & Nakkiran, ICLR 2024): :func:`smooth_ece_at` at the
    bandwidth sigma* where ``smECE_sigma* = sigma*``.

    smECE_sigma does not increase with sigma (Gaussian smoothing never
    increases an L1 norm), so the fixed point is unique; it is found by
    bisection on log sigma in [1e-3, 1] to a relative 1e-4.  When smECE_sigma <
    sigma already at sigma = 1e-3 the data are calibrated to that resolution
    and smECE at 1e-3 is returned.  With ``return_sigma`` returns
    ``(smece, sigma)``.
    """
    sm = _Smoother(probabilities, outcomes)
    if sm.p.size == 0:
        return (float("nan"), float("nan")) if return_sigma else float("nan")
    lo, hi = _SMOOTH_SIGMA_MIN, 1.0
    if sm.value(lo) <= lo:
        sigma = lo
    elif sm.value(hi) >= hi:  # cannot happen for probabilities: smECE <= E|o - p| <= 1
        sigma = hi
    else:
        while hi / lo > 1 + 1e-4:
            mid = np.sqrt(lo * hi)
            if sm.value(mid) > mid:
                lo = mid
            else:
                hi = mid
        sigma = np.sqrt(lo * hi)
    v = sm.value(sigma)
    return (v, float(sigma)) if return_sigma else v


def smooth_reliability(probabilities, outcomes, sigma=None):
    """The smoothed reliability curve of :func:`smooth_ece`: ``(t, r(t) + t,
    d(t))`` with r the kernel-smoothed residual and d the kernel density,
    at sigma* unless given."""
    sm = _Smoother(probabilities, outcomes)
    if sigma is None:
        sigma = smooth_ece(probabilities, outcomes, return_sigma=True)[1]
    t, g = sm.curve(sigma)
    _, d = _Smoother(sm.p).curve(sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(d > 1e-12, g / d, np.nan)
    return t, r + t, d


# ---------------------------------------------------------------------------
# Task-aware metrics on probabilities

def log_loss(probabilities, labels, task=None):
    """Mean negative log-likelihood (nats) of probabilities.

    multiclass: ``-mean_i log p_{i, y_i}``; binary: ``-mean_i [y log p + (1 - y)
    log(1 - p)]`` with p = P(y = 1); multilabel: the mean over classes of the
    binary value (= the mean over all (row, class) pairs).  Probabilities are
    clipped to [tiny, 1] inside the log (sklearn's ``log_loss`` clips to
    [eps, 1 - eps] and renormalises; the two agree away from 0 and 1).
    """
    p, y, task = _prepare(probabilities, labels, task)
    tiny = np.finfo(np.float64).tiny
    if task == "multiclass":
        return float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], tiny))))
    q = np.where(y == 1, p, 1.0 - p)
    return float(-np.mean(np.log(np.maximum(q, tiny))))


def brier(probabilities, labels, task=None):
    """Brier score (Brier, Monthly Weather Review 1950).

    multiclass: ``mean_i sum_k (p_ik - 1[y_i = k])^2`` (range [0, 2], the
    original definition, as sklearn's ``brier_score_loss`` for multiclass);
    binary: ``mean_i (p_i - y_i)^2`` with p = P(y = 1) (range [0, 1]; half
    the two-class sum, as ``brier_score_loss``); multilabel: the mean over all
    (row, class) pairs of ``(p_ik - y_ik)^2``.
    """
    p, y, task = _prepare(probabilities, labels, task)
    if task == "multiclass":
        py = p[np.arange(len(y)), y]
        return float(np.mean(np.einsum("ij,ij->i", p, p) - 2 * py + 1))
    return float(np.mean((p - y) ** 2))


def classwise_ece(probabilities, labels, task=None, n_bins=N_BINS):
    """Classwise ECE (Kull et al., "Beyond temperature scaling: Obtaining
    well-calibrated multi-class probabilities with Dirichlet calibration",
    NeurIPS 2019).

    ``cwECE = (1 / C) sum_k sum_b |B_kb| / n * |mean_{B_kb} 1[y = k] -
    mean_{B_kb} p_k|`` with B_kb the rows whose p_k falls in equal-width bin b
    (lo, hi].  binary: C = 2 classes, P(y = 0) = 1 - p; multilabel: each
    label's probabilities against its own 0/1 labels.
    """
    p, y, task = _prepare(probabilities, labels, task)
    if task == "binary":
        p = np.stack([1.0 - p, p], axis=1)
        onehot = np.stack([1 - y, y], axis=1)
    elif task == "multiclass":
        onehot = np.zeros(p.shape)
        onehot[np.arange(len(y)), y] = 1
    else:
        onehot = y
    n, c = p.shape
    b = _bin_width(p, n_bins) + n_bins * np.arange(c)
    gap = np.bincount(b.ravel(), weights=(onehot - p).ravel(), minlength=c * n_bins)
    return float(np.abs(gap).sum() / (n * c))


def top_label_ece(probabilities, labels, task=None, n_bins=N_BINS):
    """Top-label ECE (Gupta & Ramdas, "Top-label calibration and multiclass-to-
    binary reductions", ICLR 2022).

    ``TL-ECE = sum_l sum_b |B_lb| / n * |mean_{B_lb} 1[y = l] - mean_{B_lb}
    max p|``: rows are binned by their predicted class l = argmax p (ties:
    lowest index) and, within it, by their confidence max p into equal-width
    bins (lo, hi].  Unlike the ECE of Guo et al. it conditions on the
    predicted class as well.  binary: l = 1 if p > 0.5 else 0, confidence
    max(p, 1 - p).  Not defined for multilabel (raises ValueError).
    """
    p, y, task = _prepare(probabilities, labels, task)
    if task == "multilabel":
        raise ValueError("top-label ECE is not defined for multilabel data")
    if task == "binary":
        p = np.stack([1.0 - p, p], axis=1)
    k = p.argmax(axis=1)
    conf = p[np.arange(len(k)), k]
    b = _bin_width(conf, n_bins) + n_bins * k
    gap = np.bincount(b, weights=(k == y) - conf, minlength=p.shape[1] * n_bins)
    return float(np.abs(gap).sum() / len(y))


def all_metrics(probabilities, labels, task=None, n_bins=N_BINS):
    """Every summary metric of probabilities against labels, keyed as in
    :data:`NAMES` (no ``top_label`` for multilabel)."""
    p, y, task = _prepare(probabilities, labels, task)
    conf, o = calibration_pairs(p, y, task)
    out = {
        "nll": log_loss(p, y, task),
        "brier": brier(p, y, task),
        "ece_15_equal_width": ece(conf, o, n_bins),
        "ece_15_equal_mass": ece_equal_mass(conf, o, n_bins),
        "mce_15_equal_width": mce(conf, o, n_bins),
        "classwise_ece_15_equal_width": classwise_ece(p, y, task, n_bins),
        "top_label_ece_15_equal_width": (top_label_ece(p, y, task, n_bins)
                                         if task != "multilabel" else None),
        "smooth_ece": smooth_ece(conf, o),
    }
    if out["top_label_ece_15_equal_width"] is None:
        del out["top_label_ece_15_equal_width"]
    return out


# ---------------------------------------------------------------------------
# Bootstrap intervals

def bootstrap_ci(metric, *arrays, n_resamples=1000, confidence=0.95, seed=0):
    """Percentile bootstrap interval of ``metric(*arrays)`` (Efron & Tibshirani 1993).

    Rows (the first axis of every array) are drawn with replacement
    ``n_resamples`` times with ``numpy.random.default_rng(seed)``; returns
    ``(low, high)``, the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
    quantiles of the resampled values.  Example:
    ``bootstrap_ci(ece, conf, correct)``.

    Read it as the spread of the *estimator* on samples of this size.  Binned
    and smooth ECEs are biased upward by sampling noise, and a resample adds
    more: for a well-calibrated model whose ECE is mostly noise the interval
    can lie wholly above the estimate.  Where the miscalibration is large
    against the noise (the usual "before" side) it brackets the estimate.
    """
    arrays = [np.asarray(a) for a in arrays]
    n = arrays[0].shape[0]
    rng = np.random.default_rng(seed)
    vals = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = rng.integers(0, n, n)
        vals[i] = metric(*(a[idx] for a in arrays))
    a = (1.0 - confidence) / 2
    lo, hi = np.quantile(vals, [a, 1.0 - a])
    return float(lo), float(hi)


def bootstrap_metrics(probabilities, labels, task=None, n_resamples=1000,
                      confidence=0.95, seed=0, n_bins=N_BINS):
    """:func:`bootstrap_ci` for each ECE-like metric of :func:`all_metrics`
    (the same resampled rows for all of them): ``{key: (low, high)}``."""
    p, y, task = _prepare(probabilities, labels, task)
    keys = [k for k in ECE_KEYS if not (task == "multilabel" and k.startswith("top_label"))]
    n = p.shape[0]
    rng = np.random.default_rng(seed)
    vals = {k: np.empty(n_resamples) for k in keys}
    for i in range(n_resamples):
        idx = rng.integers(0, n, n)
        pi, yi = p[idx], y[idx]
        conf, o = calibration_pairs(pi, yi, task)
        v = {"ece_15_equal_width": lambda: ece(conf, o, n_bins),
             "ece_15_equal_mass": lambda: ece_equal_mass(conf, o, n_bins),
             "mce_15_equal_width": lambda: mce(conf, o, n_bins),
             "classwise_ece_15_equal_width": lambda: classwise_ece(pi, yi, task, n_bins),
             "top_label_ece_15_equal_width": lambda: top_label_ece(pi, yi, task, n_bins),
             "smooth_ece": lambda: smooth_ece(conf, o)}
        for k in keys:
            vals[k][i] = v[k]()
    a = (1.0 - confidence) / 2
    return {k: tuple(float(x) for x in np.quantile(vals[k], [a, 1.0 - a])) for k in keys}


# ---------------------------------------------------------------------------
# Curves behind the threshold pictures

def precision_curve(scores, correct, n_positive=None):
    """Precision and recall of ``score >= t`` at every distinct score t.

    ``correct[i]`` says whether row i's prediction would be right.  Returns a
    dict of arrays in decreasing threshold order: ``threshold``,
    ``predicted`` (rows accepted), ``correct``, ``precision`` = correct /
    predicted and ``recall`` = correct / ``n_positive`` (NaN without it).
    Ties are accepted together, as by the decision rules.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    c = np.asarray(correct, dtype=bool).ravel()
    if s.size == 0:
        e = np.empty(0)
        return {"threshold": e, "predicted": e.astype(np.int64), "correct": e.astype(np.int64),
                "precision": e, "recall": e}
    order = np.argsort(s, kind="stable")[::-1]
    ss = s[order]
    hits = np.cumsum(c[order], dtype=np.int64)
    ends = np.flatnonzero(np.append(ss[1:] != ss[:-1], True))
    n = ends + 1
    k = hits[ends]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = k / n_positive if n_positive else np.full(len(k), np.nan)
    return {"threshold": ss[ends], "predicted": n, "correct": k,
            "precision": k / n, "recall": recall}


def risk_coverage(scores, correct, n_total=None):
    """Selective risk against coverage as the threshold on ``scores`` loosens
    (Geifman & El-Yaniv, NeurIPS 2017).

    At each distinct score t: ``coverage`` = accepted / ``n_total`` (default:
    all rows) and ``risk`` = 1 - precision of the accepted rows (1 - selective
    accuracy for the multiclass global rule).  Returns a dict of arrays in
    decreasing threshold order, with ``threshold`` and ``predicted``.
    """
    pc = precision_curve(scores, correct)
    total = n_total or np.asarray(scores).size
    return {"threshold": pc["threshold"], "predicted": pc["predicted"],
            "coverage": pc["predicted"] / total, "risk": 1.0 - pc["precision"]}


def thin(n_points, max_points):
    """Indices of at most ``max_points`` of ``n_points`` curve points, evenly
    spread, always keeping the first and the last (for drawing long curves)."""
    if n_points <= max_points:
        return np.arange(n_points)
    return np.unique(np.linspace(0, n_points - 1, max_points).round().astype(np.int64))


# ---------------------------------------------------------------------------
# The fit summary's metrics, from logits, in row chunks

def _softmax_summary_pass(z, y, temperature, n_bins):
    """One chunked pass over multiclass logits at ``temperature``.

    Never holds more than a chunk of (rows, C) values: per row it keeps the
    argmax k, the confidence max p, p_y and sum_k p_k^2; per class the column
    sum of p; and the few (row, class) entries with p_k above 1 / n_bins (at
    most n_bins - 1 per row), which alone can fall outside the first bin of the
    classwise ECE.
    """
    c = z.shape[1]
    b = 1.0 / float(temperature)
    dt = _chunks.float_dtype(z.dtype)
    cut = (1.0 - 1e-4) / n_bins  # a little below the edge: rounding never hides an entry

    def chunk(zc, yc):
        zc, yc = np.asarray(zc), np.asarray(yc)
        r = zc.shape[0]
        rows = np.arange(r)
        kc = zc.argmax(axis=1)
        e = _chunks.scratch((r, c), dt, 2)
        np.subtract(zc, zc[rows, kc][:, None], out=e)
        np.multiply(e, b, out=e)
        np.exp(e, out=e)
        tot = _chunks.row_sums(e)
        inv = 1.0 / tot
        py = e[rows, yc].astype(np.float64) * inv
        sq = np.einsum("ij,ij->i", e, e).astype(np.float64) * inv * inv
        col = np.einsum("i,ij->j", inv.astype(dt), e)  # not BLAS: its threads stall here
        # flatnonzero on the raveled mask is ~20x faster than a 2-D nonzero
        hr, hc = np.divmod(np.flatnonzero(e > (cut * tot).astype(dt)[:, None]), c)
        high = e[hr, hc].astype(np.float64) * inv[hr]
        # The argmax's log-probability exactly as rules.top_scores computes it
        # (the tail summed without the argmax's 1), so that fit can take its
        # decision scores from this pass instead of another one.
        e[rows, kc] = 0
        logp = -np.log1p(_chunks.row_sums(e, exact=True))
        return (kc.astype(np.int64), inv, py, sq, col.astype(np.float64), hc, high, logp)

    parts = _chunks.map_blocks(chunk, z, y, label="metrics")
    k, conf, py, sq = (np.concatenate([q[i] for q in parts]) for i in range(4))
    colsum = np.sum([q[4] for q in parts], axis=0)
    hi_cls = np.concatenate([q[5] for q in parts])
    hi_p = np.concatenate([q[6] for q in parts])
    logp = np.concatenate([q[7] for q in parts])
    return k, conf, py, sq, colsum, hi_cls, hi_p, logp


def summary_metrics(logits, labels, task, temperature, n_bins=N_BINS, with_scores=False):
    """:func:`all_metrics` of ``sigmoid/softmax(logits / temperature)`` without
    holding the (N, C) probabilities.

    multiclass: one chunked pass (:func:`_softmax_summary_pass`); the
    classwise ECE is exact: first-bin sums per class are the column sums minus
    the entries above 1 / n_bins.  binary: N-sized arrays.  multilabel: the
    pooled equal-mass and smooth ECE need all N C probabilities together (one
    float64 vector of N C).  The NLL is the temperature fit's objective
    (``nll``); the caller may overwrite it with the value the fit computed.
    Multiclass with ``with_scores``: returns ``(metrics, (k, log_p))``, the
    argmax class and its log-probability from the same pass (as
    :func:`calibrate.rules.top_scores` gives them).
    """
    if task != "multiclass":
        z = np.asarray(logits, dtype=np.float64)
        t = np.asarray(temperature, dtype=np.float64)
        p = special.expit(z / t)
        return all_metrics(p, labels, task, n_bins)
    y = np.asarray(labels)
    n, c = logits.shape
    k, conf, py, sq, colsum, hi_cls, hi_p, logp = _softmax_summary_pass(
        logits, y, temperature, n_bins)
    correct = (k == y).astype(np.float64)
    tiny = np.finfo(np.float64).tiny
    # classwise: gap[k, b] = #(y = k, p_yk in b) - sum of p_k in b
    hb = _bin_width(hi_p, n_bins)
    sum_p = np.bincount(hi_cls * n_bins + hb, weights=hi_p, minlength=c * n_bins).reshape(c, n_bins)
    sum_p[:, 0] = colsum - sum_p[:, 1:].sum(axis=1)
    cnt_y = np.bincount(y * n_bins + _bin_width(py, n_bins),
                        minlength=c * n_bins).reshape(c, n_bins)
    classwise = float(np.abs(cnt_y - sum_p).sum() / (n * c))
    tl = np.bincount(_bin_width(conf, n_bins) + n_bins * k, weights=correct - conf,
                     minlength=c * n_bins)
    out = {
        "nll": float(-np.mean(np.log(np.maximum(py, tiny)))),
        "brier": float(np.mean(sq - 2 * py + 1)),
        "ece_15_equal_width": ece(conf, correct, n_bins),
        "ece_15_equal_mass": ece_equal_mass(conf, correct, n_bins),
        "mce_15_equal_width": mce(conf, correct, n_bins),
        "classwise_ece_15_equal_width": classwise,
        "top_label_ece_15_equal_width": float(np.abs(tl).sum() / n),
        "smooth_ece": smooth_ece(conf, correct),
    }
    return (out, (k, logp)) if with_scores else out
