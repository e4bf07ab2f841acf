"""Decision rules: scores in the space thresholds compare in, and decisions.

=========== ============================== ==========================================
task        score compared                 decision
=========== ============================== ==========================================
multiclass  log p_k, k = argmax z          k if log p_k >= tau_k else -1 (abstain)
binary      z / T (calibrated logit)       1 if z / T >= tau else 0
multilabel  z_k / T_k per class            every k with z_k / T_k >= tau_k
=========== ============================== ==========================================

Comparing log-probabilities and logits instead of probabilities keeps
float32 saturation (p rounding to 1.0) from creating false ties.  For the
argmax class, log p_k = -log1p(sum_{c != k} exp((z_c - z_k) / T)); summing only
the other classes keeps tiny tails visible (p_k = 1 - 1e-30 stays distinct from
p_k = 1 - 1e-20).  Every function works on row chunks.
"""

import numpy as np
from scipy import special

from . import _chunks


def top_scores(logits, temperature):
    """Argmax class (ties: lowest index) and its calibrated log-probability.

    Returns ``(k, log_p)``: int64 (N,) and float64 (N,).  A torch tensor
    (a GPU tensor kept on its device by ``fit``) is scored on its device;
    only these two arrays come back.
    """
    if _chunks.is_tensor(logits):
        from . import _torch_kernels
        return _torch_kernels.top_scores(logits, temperature)
    z = logits
    n, c = z.shape
    b = 1.0 / float(temperature)
    dt = _chunks.float_dtype(z.dtype)

    def chunk(zc):
        zc = np.asarray(zc)
        r = zc.shape[0]
        kc = zc.argmax(axis=1)
        e = _chunks.scratch((r, c), dt, 1)
        np.subtract(zc, zc[np.arange(r), kc][:, None], out=e)
        np.multiply(e, b, out=e)
        np.exp(e, out=e)
        e[np.arange(r), kc] = 0  # the argmax term is exactly 1: leave it out
        return kc.astype(np.int64), -np.log1p(_chunks.row_sums(e, exact=True))

    return _chunks.concat_blocks(chunk, z, label="scoring")


def sigmoid_scores(logits, temperature):
    """Calibrated logits z / T as float64 ((N,) binary, (N, C) multilabel)."""
    z = np.asarray(logits)
    t = np.asarray(temperature, dtype=np.float64)
    return z.astype(np.float64) / t


def softmax_proba(logits, temperature):
    """softmax(z / T) row by row; float32 logits give float32 probabilities."""
    z = logits
    b = 1.0 / float(temperature)

    def chunk(zc):
        zc = np.asarray(zc)
        if zc.dtype.kind != "f":
            zc = zc.astype(np.float64)
        return (special.softmax(zc * b, axis=1),)

    return _chunks.concat_blocks(chunk, z, label="probabilities")[0]


def sigmoid_proba(logits, temperature):
    """sigmoid(z / T); float32 logits give float32 probabilities."""
    z = np.asarray(logits)
    t = np.asarray(temperature, dtype=np.float64)
    dt = _chunks.float_dtype(z.dtype)
    return special.expit(z / t.astype(dt)).astype(dt, copy=False)


def decision_units(z, y, task, temperature, n_classes):
    """Every decision a rule makes, one entry per unit (a row; a (row, class)
    pair for multilabel): the class it would predict, its score in the
    comparison space, whether that prediction is right, and the support of
    each scored class.  The threshold search, evaluate and the plots share it.
    """
    if task == "multiclass":
        k, logp = top_scores(z, temperature)
        return k, logp, k == y, np.bincount(y, minlength=n_classes)
    s = sigmoid_scores(z, temperature)
    if task == "binary":
        return np.zeros(len(s), np.int64), s, y == 1, np.array([int(y.sum())])
    cls = np.broadcast_to(np.arange(s.shape[1]), s.shape).ravel()
    return cls, s.ravel(), (y == 1).ravel(), y.sum(axis=0)


def threshold_array(values):
    """Thresholds as floats, with None (never predict) as +inf."""
    return np.array([np.inf if v is None else v for v in values], dtype=np.float64)


def decide_multiclass(k, logp, thresholds):
    """k where log p_k clears class k's threshold, else -1."""
    tau = threshold_array(thresholds)
    return np.where(logp >= tau[k], k, -1)


def decide_sigmoid(scores, thresholds):
    """Boolean decisions for calibrated logits against per-column thresholds."""
    return scores >= threshold_array(thresholds)
