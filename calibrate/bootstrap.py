"""Percentile bootstrap intervals for calibration metrics (Efron & Tibshirani 1993)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from .metrics import (
    ECE_KEYS,
    N_BINS,
    _prepare,
    calibration_pairs,
    classwise_ece,
    ece,
    ece_equal_mass,
    mce,
    top_label_ece,
)
from .smooth_ece import smooth_ece


def bootstrap_ci(metric: Callable[..., float], *arrays: npt.ArrayLike, n_resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
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


def bootstrap_metrics(probabilities: npt.ArrayLike, labels: npt.ArrayLike, task: str | None = None,
                      n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                      n_bins: int = N_BINS) -> dict[str, tuple[float, float]]:
    """:func:`bootstrap_ci` for each ECE-like metric of :func:`all_metrics`
    (the same resampled rows for all of them): ``{key: (low, high)}``."""
    p, y, task = _prepare(probabilities, labels, task)
    keys = [k for k in ECE_KEYS if not (task == "multilabel" and k.startswith("top_label"))]
    n = p.shape[0]
    rng = np.random.default_rng(seed)
    vals = {k: np.empty(n_resamples) for k in keys}
    # each metric of a resample: of its (confidence, outcome) pairs, or of its
    # probabilities and labels
    v: dict[str, Callable[..., float]] = {
        "ece_15_equal_width": lambda conf, o, pi, yi: ece(conf, o, n_bins),
        "ece_15_equal_mass": lambda conf, o, pi, yi: ece_equal_mass(conf, o, n_bins),
        "mce_15_equal_width": lambda conf, o, pi, yi: mce(conf, o, n_bins),
        "classwise_ece_15_equal_width":
            lambda conf, o, pi, yi: classwise_ece(pi, yi, task, n_bins),
        "top_label_ece_15_equal_width":
            lambda conf, o, pi, yi: top_label_ece(pi, yi, task, n_bins),
        "smooth_ece": lambda conf, o, pi, yi: smooth_ece(conf, o)}
    for i in range(n_resamples):
        idx = rng.integers(0, n, n)
        pi, yi = p[idx], y[idx]
        conf, o = calibration_pairs(pi, yi, task)
        for k in keys:
            vals[k][i] = v[k](conf, o, pi, yi)
    a = (1.0 - confidence) / 2
    qs = {k: np.quantile(vals[k], [a, 1.0 - a]) for k in keys}
    return {k: (float(q[0]), float(q[1])) for k, q in qs.items()}
