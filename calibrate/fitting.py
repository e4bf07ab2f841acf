"""``calibrate.fit``: temperature, thresholds for both rules, and the summary.

This module only wires the pure pieces together: :mod:`.scores` (task, input
kind, logits on their backend), :mod:`.temperature`, :mod:`.rules` (scores in
comparison space), :mod:`.thresholds` with :mod:`.guarantee`, and
:mod:`.summary`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import metrics, params, rules, sigmoid_passes, summary
from . import thresholds as _thr
from .artifact import Calibrator, to_probability
from .backends import Progress
from .errors import invalid
from .scores import PreparedScores, prepare
from .temperature import fit_temperature


def class_names(classes: Any, task: str, n_cls: int, where: str = "classes") -> list[str]:
    """The class names for a fit: given (distinct, one per class; two for
    binary) or "0".."C-1"."""
    want = 2 if task == "binary" else n_cls
    if classes is None:
        return [str(i) for i in range(want)]
    names = [str(c) for c in classes]
    if len(names) != want:
        raise invalid(where, f"{want} class names for {task} scores", f"{len(names)}")
    if len(set(names)) != len(names):
        raise invalid(where, "distinct class names", "duplicates")
    return names


def fit(scores: Any, labels: Any, precision: float = 0.9, confidence: float | None = 0.95,
        rule: str = "per-class", task: str = "auto", input_kind: str = "auto",
        classes: Any = None, simultaneous: bool = False, *, scores_name: str = "scores",
        labels_name: str = "labels", classes_name: str = "classes",
        progress: Progress | None = None) -> Calibrator:
    """Fit a temperature and precision-targeted thresholds on held-out data.

    Parameters
    ----------
    scores : array (N, C), (N,) or (N, 1)
        Logits, probabilities or log-probabilities (``input_kind``): a numpy
        array, a torch tensor (a CUDA tensor is fitted on its GPU), a dask
        array, a row source (:func:`calibrate.io.open_scores`), or the path
        or glob of score files.
    labels : array
        Class ids (N,) for multiclass, 0/1 (N,) for binary, 0/1 (N, C) for
        multilabel; None when ``scores`` is a .npz / .pt file holding them.
    precision : float in (0, 1)
        Precision each class (``per-class``) or all predictions (``global``)
        must reach.
    confidence : float in (0, 1) or None
        Probability that the target holds on new data from the same
        distribution (Clopper-Pearson bounds with fixed-sequence testing,
        see :mod:`calibrate.guarantee`); None for the plain held-out estimate.
    rule : "per-class" or "global"
        The rule ``predict`` uses by default; both are fitted and stored.
    task : "auto", "multiclass", "binary" or "multilabel"
    input_kind : "auto", "logits", "probabilities" or "log-probabilities"
    classes : list of names, optional
    simultaneous : bool
        Make the per-class guarantee hold for all classes at once
        (Bonferroni: each class tested at (1 - confidence) / C).
    scores_name, labels_name, classes_name : str
        How error messages name the inputs (the CLI passes the file names).
    progress : callable, optional
        ``progress(label, n_blocks)`` returning ``advance(k)``: told about long passes.

    Returns
    -------
    Calibrator
    """
    params.validate({"precision": precision, "confidence": confidence, "rule": rule,
                     "task": task, "input": input_kind, "classes": classes,
                     "simultaneous": simultaneous, "progress": progress}, params.FIT)
    if labels is None:
        # Like the CLI: a .npz / .pt file may hold its labels beside the scores.
        if isinstance(scores, (str, os.PathLike)):
            from . import io
            scores, labels = io.read_scores(scores)
        if labels is None:
            raise invalid(labels_name, "an array, or scores in a .npz / .pt file holding "
                          "an array named 'labels'", "None")
    prepared = prepare(scores, labels, task, input_kind, scores_name, labels_name, progress)
    names = class_names(classes, prepared.task, prepared.n_classes, classes_name)
    return fit_prepared(prepared, names, precision, confidence, rule, simultaneous)


def fit_prepared(prepared: PreparedScores, names: list[str], precision: float,
                 confidence: float | None, rule: str, simultaneous: bool) -> Calibrator:
    """:func:`fit` on scores already prepared."""
    z, y, task, n_cls = prepared.logits, prepared.labels, prepared.task, prepared.n_classes
    # The summary's metric pass at T = 1 gives the NLL before: no need to
    # spend an extra exp on it in the temperature fit.
    temp = fit_temperature(z, y, task, prepared.name, names, nll_before=False,
                           summary_bins=metrics.N_BINS)
    T = temp.temperature
    alpha, alpha_global = _alphas(confidence, simultaneous, n_cls)
    if task == "multiclass":
        # the temperature passes usually made the metrics' passes on the way;
        # the one at T also gives the decision scores
        m_before = (summary.softmax_summary(temp.at_one, y, n_cls) if temp.at_one is not None
                    else summary.metrics_at(z, y, task, 1.0, scores=False))
        m_after = (summary.softmax_summary(temp.at_t, y, n_cls) if temp.at_t is not None
                   else summary.metrics_at(z, y, task, T))
        units = rules.decision_units(z, y, task, T, n_cls, top=m_after.top)
        per, glob = search_rules(units, precision, confidence, simultaneous)
        before, after, support, n_units = m_before.values, m_after.values, units.support, \
            units.n_units
    else:
        # binary and multilabel: metrics and thresholds in passes over the rows
        sp = sigmoid_passes.run(z, y, T, task, dict(precision=precision, confidence=confidence,
                                                    alpha=alpha, alpha_global=alpha_global),
                                log_loss=False)
        per, glob = sp.per_class, sp.global_rule
        # the summary's NLL is the temperature's objective: the binary cross entropy
        # of the logits (mean over classes for multilabel)
        before = dict(sp.before, nll=float(np.mean(temp.nll_before)))
        after = dict(sp.after, nll=float(np.mean(temp.nll_after)))
        support, n_units = sp.support, sp.n_units
    fs = summary.fit_summary(prepared, temp, names, per, glob, support, n_units, before, after,
                             lambda v: to_probability(v, task))
    return Calibrator(
        task=task, classes=names, input_kind=prepared.input_kind, temperature=T, rule=rule,
        decision_thresholds={"per_class": [t.value for t in per], "global": glob.value},
        target={"precision": float(precision),
                "confidence": None if confidence is None else float(confidence),
                "simultaneous": bool(simultaneous)},
        summary=fs.to_dict())


def _alphas(confidence: float | None, simultaneous: bool,
            n_cls: int) -> tuple[float | None, float | None]:
    """The level each class is tested at (Bonferroni over classes when
    simultaneous), and the global rule's."""
    if confidence is None:
        return None, None
    return ((1 - confidence) / n_cls if simultaneous else 1 - confidence), 1 - confidence


def search_rules(units: rules.DecisionUnits, precision: float, confidence: float | None,
                 simultaneous: bool) -> tuple[list, _thr.Threshold]:
    """The thresholds of both rules on the decision units: per class, and global.

    The model's own calibrated probability of being right picks where each
    confidence sequence starts (scores only, plus the fitted calibration).
    """
    alpha, alpha_global = _alphas(confidence, simultaneous, units.n_classes)
    expected = units.expected()
    if units.classes is None:   # multilabel: the classes are the columns
        per = _thr.search_columns(units.scores, units.correct, precision, confidence, alpha,
                                  expected)
    else:
        per = _thr.search_per_class(units.classes, units.scores, units.correct,
                                    units.n_classes, precision, confidence, alpha, expected)
    glob = _thr.search(units.scores.ravel(), units.correct.ravel(), precision, confidence,
                       alpha_global, expected.ravel())
    return per, glob
