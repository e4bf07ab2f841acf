"""Exact search for the loosest threshold that reaches a precision target.

A rule predicts a class for every row whose score s (log-probability of the
argmax class, or calibrated logit for sigmoid tasks) is >= tau.  Sorting the
scores in decreasing order, the candidate thresholds are the distinct score
values v_1 > v_2 > ...; at v_j the rule makes n_j predictions with k_j of
them correct (tied scores enter together), so its held-out precision is
k_j / n_j.  Precision is not monotone in the threshold, so every candidate is
looked at: among those that meet the target the loosest (most predictions,
highest recall) wins.  With a confidence level, the choice instead comes from
fixed-sequence testing of exact binomial p-values (see :mod:`.guarantee`).

The stored threshold sits midway between the chosen score and the next lower
distinct score, so that float rounding in a recomputation of the scores
cannot flip a held-out decision.  When every prediction is accepted it is the
lowest float (``ACCEPT_ALL``): probability 0.
"""

from dataclasses import dataclass

import numpy as np

from . import guarantee

#: Threshold that accepts every score: the lowest finite float64.
ACCEPT_ALL = -float(np.finfo(np.float64).max)


@dataclass(frozen=True)
class Threshold:
    """One rule's threshold and its held-out figures.

    ``value`` is the threshold in score space (None: never predict);
    ``n_predicted`` / ``n_correct`` / ``precision`` describe the held-out
    predictions it accepts; ``lower_bound`` is the Clopper-Pearson bound at
    the requested confidence (None without one); ``status`` is one of
    "ok", "unreachable" (no threshold meets the target on held-out data),
    "uncertified" (the estimate does, the bound does not), "too-few"
    (fewer predictions than any certificate needs) and "no-predictions".
    """
    value: float | None
    n_predicted: int
    n_correct: int
    precision: float | None
    lower_bound: float | None
    status: str

    @property
    def accepts_all(self):
        return self.value == ACCEPT_ALL


def candidates(scores, correct, expected=None):
    """Distinct scores in decreasing order, with cumulative predictions and hits.

    Returns ``(values, n, k, e)``: at threshold ``values[j]`` the rule accepts
    ``n[j]`` rows, ``k[j]`` of them correct, and ``e[j]`` is the sum of their
    ``expected`` probabilities of being correct (None without them).
    """
    order = np.argsort(scores, kind="stable")[::-1]
    s = np.asarray(scores)[order]
    hits = np.cumsum(np.asarray(correct)[order], dtype=np.int64)
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    e = None
    if expected is not None:
        e = np.cumsum(np.asarray(expected, dtype=np.float64)[order])[ends]
    return s[ends], ends + 1, hits[ends], e


def _midpoint(hi, lo):
    """A float strictly above ``lo`` and at most ``hi``, halfway where possible."""
    mid = lo + (hi - lo) / 2.0
    return float(mid if lo < mid <= hi else hi)


def search(scores, correct, precision, confidence=None, alpha=None, expected=None,
           start_predictions=guarantee.START_PREDICTIONS):
    """Loosest threshold on ``scores`` whose precision reaches ``precision``.

    ``correct`` marks the rows whose prediction would be right.  Without
    ``confidence`` the held-out precision k/n must reach the target; with it,
    the threshold is certified at level ``alpha`` (default 1 - confidence;
    pass ``alpha`` smaller for simultaneous guarantees).  ``expected``, the
    calibrated probability that each row's prediction is right, chooses where
    the fixed sequence starts (:func:`.guarantee.start_index`); without it
    the sequence starts at ``start_predictions`` predictions.  Returns a
    :class:`Threshold`.
    """
    if len(scores) == 0:
        return Threshold(None, 0, 0, None, None, "no-predictions")
    values, n, k, e = candidates(scores, correct, expected)
    plain = np.flatnonzero(k / n >= precision)
    if confidence is None:
        if plain.size == 0:
            return Threshold(None, 0, 0, None, None, "unreachable")
        return _at(values, n, k, int(plain[-1]), None, "ok")
    alpha = 1.0 - confidence if alpha is None else alpha
    if plain.size == 0:
        return Threshold(None, 0, 0, None, None, "unreachable")
    if n[-1] < guarantee.min_certifiable(precision, alpha):
        return Threshold(None, 0, 0, None, None, "too-few")
    start = guarantee.start_index(n, e, start_predictions)
    j = guarantee.fixed_sequence_counts(k, n, precision, alpha, start)
    if j is None:
        return Threshold(None, 0, 0, None, None, "uncertified")
    return _at(values, n, k, j, (confidence, alpha), "ok")


def _at(values, n, k, j, conf, status):
    value = _midpoint(values[j], values[j + 1]) if j + 1 < len(values) else ACCEPT_ALL
    lb = None
    if conf is not None:
        lb = float(guarantee.lower_bound(k[j], n[j], 1.0 - conf[1]))
    return Threshold(value, int(n[j]), int(k[j]), float(k[j] / n[j]), lb, status)


def search_per_class(classes, scores, correct, n_classes, precision,
                     confidence=None, alpha=None, expected=None):
    """:func:`search` for each class on the rows predicted as that class.

    ``classes[i]`` is the class row i would be predicted as (for multilabel,
    pass the flattened (row, class) pairs).  Returns a list of length
    ``n_classes``.
    """
    classes = np.asarray(classes)
    order = np.argsort(classes, kind="stable")
    bounds = np.searchsorted(classes[order], np.arange(n_classes + 1))
    out = []
    for c in range(n_classes):
        rows = order[bounds[c]:bounds[c + 1]]
        out.append(search(scores[rows], correct[rows], precision, confidence, alpha,
                          None if expected is None else expected[rows]))
    return out
