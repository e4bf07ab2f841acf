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
p_k = 1 - 1e-20).  The kernels are in :mod:`calibrate.kernels` (numpy) and
:mod:`calibrate.backends.torch_kernels`; the functions here take any array the
backends accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from . import kernels, params
from .backends import Backend, as_backend
from .errors import invalid

threshold_array = kernels.threshold_array


@dataclass(frozen=True)
class DecisionUnits:
    """Every decision a rule makes on labelled data, one unit each.

    Multiclass and binary: one unit per row, ``scores`` (n,) in the comparison
    space, ``classes`` (n,) the class each would predict.  Multilabel: one unit
    per (row, class) pair, ``scores`` (N, C) with the classes as columns and
    ``classes`` None.  ``correct`` has the shape of ``scores``: whether the
    prediction would be right; ``support`` counts the true members of each
    scored class.

    ``probability``: the calibrated probability that each unit's prediction
    is right, where ``scores`` only rank (isotonic: the model's logit); None
    when it is exp / sigmoid of the score.  ``global_scores``: the global
    rule's scores where they differ from ``scores`` (isotonic: the
    calibrated log-odds, one scale for every label).
    """
    scores: np.ndarray
    correct: np.ndarray
    classes: np.ndarray | None
    support: np.ndarray
    task: str
    probability: np.ndarray | None = None
    global_scores: np.ndarray | None = None

    @property
    def n_units(self) -> int:
        return int(self.scores.size)

    @property
    def n_classes(self) -> int:
        return int(self.support.size)

    def expected(self) -> np.ndarray:
        """The model's own calibrated probability that each unit's prediction is right."""
        if self.probability is not None:
            return self.probability
        return np.exp(self.scores) if self.task == "multiclass" else special.expit(self.scores)

    def global_rule_scores(self) -> np.ndarray:
        """The scores the global rule ranks the units by."""
        return self.scores if self.global_scores is None else self.global_scores

    def class_ids(self) -> np.ndarray:
        """The class of every unit, flattened like ``scores.ravel()``."""
        if self.classes is not None:
            return self.classes
        return np.broadcast_to(np.arange(self.scores.shape[1]), self.scores.shape).ravel()

    def accepted(self, tau: np.ndarray) -> np.ndarray:
        """Which units a rule with thresholds ``tau`` (per class, +inf = never) accepts,
        flattened."""
        return self.scores.ravel() >= tau[self.class_ids()]

    def to_dict(self) -> dict:
        return {"task": self.task, "n_units": self.n_units, "support": self.support.tolist()}


@dataclass(frozen=True)
class RuleCounts:
    """What the two rules decided on labelled data: per scored class the
    predictions ``predicted`` and right ones ``correct`` under the per-class
    rule and the class's true members ``support``; the same pooled under the
    global rule (``global_predicted``, ``global_correct``); ``n_units`` the
    decisions made (rows, or (row, class) pairs)."""
    predicted: np.ndarray
    correct: np.ndarray
    support: np.ndarray
    global_predicted: int
    global_correct: int
    n_units: int

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                for k, v in self.__dict__.items()}

    @classmethod
    def of_units(cls, units: DecisionUnits, tau: np.ndarray, tau_global: np.ndarray) -> RuleCounts:
        """Counted from decision units held in memory."""
        cls_ids, right = units.class_ids(), units.correct.ravel()
        acc = units.accepted(tau)
        g_acc = units.accepted(tau_global)
        return cls(np.bincount(cls_ids[acc], minlength=units.n_classes),
                   np.bincount(cls_ids[acc & right], minlength=units.n_classes),
                   np.asarray(units.support), int(g_acc.sum()), int((g_acc & right).sum()),
                   units.n_units)


def decision_units(logits: Backend, y: np.ndarray, task: str, calibration: Any,
                   n_classes: int, top: tuple | None = None) -> DecisionUnits:
    """The :class:`DecisionUnits` of labelled logits under ``calibration``: a
    temperature (a float, or one per label) or a fitted family
    (:mod:`calibrate.families`: its ``top`` or ``scores``).  ``top`` = (k,
    log p_k) when the caller already has them (multiclass)."""
    temperature = calibration
    if kernels.is_family(calibration):
        temperature = calibration.value if calibration.method == "temperature" else None
    if task == "multiclass":
        if top is None:   # a temperature on the backend's own kernels (a GPU's, say)
            top = (logits.top_scores(temperature) if temperature is not None else
                   logits.concat(kernels.calibrated_top, args=(calibration,), label="scoring"))
        k, logp = top
        return DecisionUnits(logp, k == y, k, np.bincount(y, minlength=n_classes), task)
    z = logits.to_numpy()
    s = kernels.calibrated_scores(z, calibration)
    prob = level = None
    if temperature is None and not calibration.SCORES_ARE_LOG_ODDS:
        level = calibration.log_odds(z)
        prob = special.expit(level)
    if task == "binary":
        return DecisionUnits(s, y == 1, np.zeros(len(s), np.int64),
                             np.array([int(y.sum())]), task, prob, level)
    return DecisionUnits(s, y == 1, None, y.sum(axis=0), task, prob, level)


def top_scores(logits: Any, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Argmax class (ties: lowest index) and its calibrated log-probability of
    any multiclass logits: int64 (N,) and float64 (N,)."""
    params.validate({"temperature": temperature}, params.BLOCKS)
    b = as_backend(logits)
    if b.ndim != 2:
        raise invalid("logits", "multiclass logits of shape (N, C)", f"shape {tuple(b.shape)}")
    return b.top_scores(temperature)


def sigmoid_scores(logits: Any, temperature: Any) -> np.ndarray:
    """Calibrated logits z / T as float64 ((N,) binary, (N, C) multilabel)."""
    return kernels.sigmoid_scores(as_backend(logits).to_numpy(), temperature)


def softmax_proba(logits: Any, temperature: float) -> np.ndarray:
    """softmax(z / T) row by row; float32 logits give float32 probabilities."""
    return _all(as_backend(logits).iter_proba("multiclass", temperature, 1 << 24))


def sigmoid_proba(logits: Any, temperature: Any) -> np.ndarray:
    """sigmoid(z / T); float32 logits give float32 probabilities."""
    return _all(as_backend(logits).iter_proba("multilabel", temperature, 1 << 24))


def as_float64(logits: Any) -> np.ndarray:
    """Any logits as one float64 numpy array."""
    return np.asarray(as_backend(logits).to_numpy(), dtype=np.float64)


def _all(blocks: Any) -> np.ndarray:
    parts = list(blocks)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def decide_multiclass(k: np.ndarray, logp: np.ndarray, thresholds: Any) -> np.ndarray:
    """k where log p_k clears class k's threshold (None = never), else -1."""
    return kernels.decide_multiclass(k, logp, threshold_array(thresholds))


def decide_sigmoid(scores: np.ndarray, thresholds: Any) -> np.ndarray:
    """Boolean decisions for calibrated logits against per-column thresholds."""
    return kernels.decide_sigmoid(scores, threshold_array(thresholds))
