"""The curves behind the threshold pictures: precision, recall and selective risk
as a threshold on the scores loosens.  Each point is a candidate of the
threshold search (:func:`calibrate.thresholds.candidates`): the same distinct
scores, with ties accepted together, as the decision rules do."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .thresholds import candidates


def precision_curve(scores: npt.ArrayLike, correct: npt.ArrayLike,
                    n_positive: int | None = None) -> dict[str, np.ndarray]:
    """Precision and recall of ``score >= t`` at every distinct score t.

    ``correct[i]`` says whether row i's prediction would be right.  Returns a
    dict of arrays in decreasing threshold order: ``threshold``,
    ``predicted`` (rows accepted), ``correct``, ``precision`` = correct /
    predicted and ``recall`` = correct / ``n_positive`` (NaN without it).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    c = np.asarray(correct, dtype=bool).ravel()
    if s.size == 0:
        e = np.empty(0)
        return {"threshold": e, "predicted": e.astype(np.int64), "correct": e.astype(np.int64),
                "precision": e, "recall": e}
    cand = candidates(s, c)
    n, k = cand.n, cand.k
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = k / n_positive if n_positive else np.full(len(k), np.nan)
    return {"threshold": cand.values, "predicted": n, "correct": k,
            "precision": k / n, "recall": recall}


def risk_coverage(scores: npt.ArrayLike, correct: npt.ArrayLike,
                  n_total: int | None = None) -> dict[str, np.ndarray]:
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


def thin(n_points: int, max_points: int) -> npt.NDArray[np.int64]:
    """Indices of at most ``max_points`` of ``n_points`` curve points, evenly
    spread, always keeping the first and the last (for drawing long curves)."""
    if n_points <= max_points:
        return np.arange(n_points)
    return np.unique(np.linspace(0, n_points - 1, max_points).round().astype(np.int64))
