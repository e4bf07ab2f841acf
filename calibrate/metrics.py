"""Calibration metrics: numpy in, float out.

Each function states its definition; the names used in summaries are the
keys of :data:`NAMES`.
"""

import numpy as np

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
