"""Calibration metrics: the estimators, numpy in, float out.

Each function states its definition; the names used in summaries are the
keys of :data:`NAMES`.  The smooth ECE is in :mod:`calibrate.smooth_ece`,
bootstrap intervals in :mod:`calibrate.bootstrap`, the curves behind the
threshold pictures in :mod:`calibrate.curves`, and the summary's metrics
computed from logits in one pass over the rows in :mod:`calibrate.summary`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import params
from .backends import as_array, as_backend
from .errors import invalid
from .smooth_ece import smooth_ece, smooth_ece_at, smooth_reliability  # noqa: F401

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


def nll(logits: Any, labels: Any, task: str, temperature: Any = 1.0) -> float:
    """Mean NLL of ``labels`` under logits scaled by 1/``temperature``.

    multiclass: mean_i [logsumexp(z_i / T) - z_iy / T];
    binary / multilabel: mean_i [softplus(z / T) - y z / T], averaged over
    classes for multilabel.
    """
    z = as_backend(logits)
    if task == "multiclass":
        return float(z.softmax_stats(as_array(labels), 1.0 / temperature).nll)
    z = z.columns()
    y = as_array(labels).reshape(z.shape).astype(np.float64)
    beta = 1.0 / np.broadcast_to(np.asarray(temperature, dtype=np.float64), (z.shape[1],))
    return float(np.mean(z.sigmoid_stats(y, beta).nll))


def _check_pairs(p: np.ndarray, o: np.ndarray, n_bins: int) -> None:
    """The checks of a public metric's arguments: as many outcomes as
    probabilities, probabilities in [0, 1], an integer number of bins >= 1."""
    params.validate({"n_bins": n_bins}, params.BLOCKS)
    if p.size != o.size:
        raise invalid("outcomes", f"one per probability ({p.size})", f"{o.size}")
    if p.size and not (np.all(p >= 0) and np.all(p <= 1)):
        raise invalid("probabilities", "values in [0, 1]",
                      "NaN" if np.isnan(p).any()
                      else f"values from {p.min():.6g} to {p.max():.6g}")


def ece(probabilities: npt.ArrayLike, outcomes: npt.ArrayLike, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width bins (Guo et al. 2017).

    ``ECE = sum_b |B_b| / n * |mean_{i in B_b} outcome_i - mean_{i in B_b} p_i|``
    with bins ``B_b = {i : p_i in ((b-1)/n_bins, b/n_bins]}`` (p = 0 falls in
    the first bin).  For top-label ECE pass the confidence max_k p_k and
    whether the argmax was right; for a positive class, p(y=1) and y.
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    o = np.asarray(outcomes, dtype=np.float64).ravel()
    _check_pairs(p, o, n_bins)
    if p.size == 0:
        return float("nan")
    b = bin_width(p, n_bins)
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


def describe(key: str, task: str) -> str:
    """The exact definition of summary metric ``key`` for ``task``."""
    text = NAMES[key]
    if key in ECE_KEYS and key not in ("classwise_ece_15_equal_width",
                                       "top_label_ece_15_equal_width"):
        text += f"; pairs: {PAIRS[task]}"
    return text


def finite(x: float | None) -> float | None:
    """``x`` as a float, or None when it is missing or not finite (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def infer_task(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> str:
    """multilabel for (N, C) labels, binary for (N,) probabilities, else multiclass."""
    y = np.asarray(labels)
    p = np.asarray(probabilities)
    if y.ndim == 2 and y.shape[1] > 1:
        return "multilabel"
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
        return "binary"
    return "multiclass"


def _prepare(probabilities: npt.ArrayLike, labels: npt.ArrayLike,
             task: str | None) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], str]:
    task = task or infer_task(probabilities, labels)
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    if task == "binary":
        p, y = p.reshape(-1), y.reshape(-1)
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"{p.shape[0]} probability rows but {y.shape[0]} labels")
    return p, y.astype(np.int64), task


def calibration_pairs(probabilities: npt.ArrayLike, labels: npt.ArrayLike,
                      task: str | None = None) -> tuple[np.ndarray, npt.NDArray[np.float64]]:
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

def bin_width(p: np.ndarray, n_bins: int, offsets: Any = None) -> npt.NDArray[np.int64]:
    """Equal-width bin of each p: b = ceil(p n_bins) - 1, bins (lo, hi], p = 0 in bin 0
    (plus ``offsets``, integers broadcast against p: a bin per class and bin).
    Computed in p's float type, as p * n_bins always was, whose small
    integers are exact, and converted once."""
    b = np.multiply(p, n_bins)
    np.ceil(b, out=b)
    np.clip(b, 1, n_bins, out=b)                 # the bin plus one
    b = b.astype(np.int64)
    # (the one taken off with the offsets: an operation fewer per value)
    b += -1 if offsets is None else np.asarray(offsets) - 1
    return b


def bin_mass(p: np.ndarray, n_bins: int) -> npt.NDArray[np.int64]:
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


def reliability_bins(probabilities: npt.ArrayLike, outcomes: npt.ArrayLike, n_bins: int = N_BINS,
                     strategy: str = "width") -> dict[str, np.ndarray]:
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
    b = bin_width(p, n_bins) if strategy == "width" else bin_mass(p, n_bins)
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


def _binned_ece(p: np.ndarray, o: np.ndarray, b: np.ndarray, n_bins: int) -> float:
    if p.size == 0:
        return float("nan")
    gap = np.bincount(b, weights=o - p, minlength=n_bins)
    return float(np.abs(gap).sum() / p.size)


def ece_equal_mass(probabilities: npt.ArrayLike, outcomes: npt.ArrayLike,
                   n_bins: int = N_BINS) -> float:
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
    return _binned_ece(p, o, bin_mass(p, n_bins), n_bins)


def mce(probabilities: npt.ArrayLike, outcomes: npt.ArrayLike, n_bins: int = N_BINS) -> float:
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
# Task-aware metrics on probabilities

def log_loss(probabilities: npt.ArrayLike, labels: npt.ArrayLike,
             task: str | None = None) -> float:
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


def brier(probabilities: npt.ArrayLike, labels: npt.ArrayLike, task: str | None = None) -> float:
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


def classwise_ece(probabilities: npt.ArrayLike, labels: npt.ArrayLike, task: str | None = None,
                  n_bins: int = N_BINS) -> float:
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
    b = bin_width(p, n_bins, offsets=n_bins * np.arange(c))
    gap = np.bincount(b.ravel(), weights=(onehot - p).ravel(), minlength=c * n_bins)
    return float(np.abs(gap).sum() / (n * c))


def top_label_ece(probabilities: npt.ArrayLike, labels: npt.ArrayLike, task: str | None = None,
                  n_bins: int = N_BINS) -> float:
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
    b = bin_width(conf, n_bins, offsets=n_bins * k)
    gap = np.bincount(b, weights=(k == y) - conf, minlength=p.shape[1] * n_bins)
    return float(np.abs(gap).sum() / len(y))


def all_metrics(probabilities: npt.ArrayLike, labels: npt.ArrayLike, task: str | None = None,
                n_bins: int = N_BINS) -> dict[str, float]:
    """Every summary metric of probabilities against labels, keyed as in
    :data:`NAMES` (no ``top_label`` for multilabel)."""
    p, y, task = _prepare(probabilities, labels, task)
    conf, o = calibration_pairs(p, y, task)
    out: dict[str, Any] = {
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
