"""``calibrate.fit``: a calibration, thresholds for both rules, and the summary.

This module only wires the pure pieces together: :mod:`.scores` (task, input
kind, logits on their backend), :mod:`.temperature` and :mod:`.families`
(the calibration), :mod:`.rules` (scores in comparison space),
:mod:`.thresholds` with :mod:`.guarantee`, :mod:`.summary` and
:mod:`.findings` (what the cross-validation and the inputs show).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

import numpy as np

from . import families, metrics, params, rules, sigmoid_passes, summary
from . import thresholds as _thr
from .artifact import Calibrator, to_probability
from .backends import Progress, as_array
from .errors import CalibrateError, invalid
from .findings import COMPARE_ELEMENTS, findings, refusal
from .scores import PreparedScores, prepare
from .temperature import WorseThanChance, fit_temperature


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


# long: the docstring documents every parameter; the body is 17 lines
def fit(scores: Any, labels: Any, precision: float = 0.9, confidence: float | None = 0.95,
        rule: str = "per-class", task: str = "auto", input_kind: str = "auto",
        classes: Any = None, simultaneous: bool = False, method: str = "temperature",
        groups: Any = None, *, scores_name: str = "scores", labels_name: str = "labels",
        classes_name: str = "classes", groups_name: str = "groups",
        progress: Progress | None = None) -> Calibrator:
    """Fit a calibration and precision-targeted thresholds on held-out data.

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
    method : str
        The calibration family (:mod:`calibrate.families`): "temperature"
        (the default), "mix", "vector", "ovr-platt" (multiclass), "platt",
        "isotonic" (binary, multilabel), or "auto": the family with the
        lowest 5-fold cross-validated NLL.
    groups : array (N,) or path, optional
        A group id per row (an image, a patient): cross-validation keeps
        each group in one fold.
    scores_name, labels_name, classes_name, groups_name : str
        How error messages name the inputs (the CLI passes the file names).
    progress : callable, optional
        ``progress(label, n_blocks)`` returning ``advance(k)``: told about long passes.

    Returns
    -------
    Calibrator
    """
    params.validate({"precision": precision, "confidence": confidence, "rule": rule,
                     "task": task, "input": input_kind, "classes": classes,
                     "simultaneous": simultaneous, "method": method, "groups": groups,
                     "progress": progress}, params.FIT)
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
    families.check_method(method, prepared.task)
    g = check_groups(groups, prepared.n_rows, groups_name)
    return fit_prepared(prepared, names, precision, confidence, rule, simultaneous, method, g)


def check_groups(groups: Any, n_rows: int, name: str = "groups") -> np.ndarray | None:
    """One group id per row (numbers or strings; a path: a file of them), or None."""
    if groups is None:
        return None
    if isinstance(groups, (str, os.PathLike)):
        g = as_array(groups, name, role="groups")
    else:
        g = np.asarray(groups.cpu() if hasattr(groups, "cpu") else groups)
    if g.dtype.kind not in "biufUS":
        raise invalid(name, "group ids (numbers or strings)", f"dtype {g.dtype}")
    if g.ndim != 1 or g.shape[0] != n_rows:
        raise invalid(name, f"one group id per score row ({n_rows})", f"shape {g.shape}")
    if g.dtype.kind == "f" and not np.isfinite(g).all():
        raise invalid(name, "finite group ids", "NaN or inf")
    return g


def fit_prepared(prepared: PreparedScores, names: list[str], precision: float,
                 confidence: float | None, rule: str, simultaneous: bool,
                 method: str = "temperature", groups: np.ndarray | None = None) -> Calibrator:
    """:func:`fit` on scores already prepared."""
    if not isinstance(prepared.labels, np.ndarray) and (
            method != "temperature" or prepared.n_rows * prepared.n_classes <= COMPARE_ELEMENTS):
        # multilabel labels left in their file: the families (and the comparison
        # of them on small data) take them in memory
        prepared = dataclasses.replace(prepared, labels=as_array(prepared.labels))
    z, y, task, n_cls = prepared.logits, prepared.labels, prepared.task, prepared.n_classes
    temp, fitted, cv = calibrate_scores(prepared, names, method, groups)
    if task != "multiclass" and fitted.method == "temperature":
        # binary and multilabel under a temperature: metrics and thresholds in
        # passes over the rows (the NLLs are the temperature's objective)
        alpha, alpha_global = _alphas(confidence, simultaneous, n_cls)
        sp = sigmoid_passes.run(z, y, temp.temperature, task,
                                dict(precision=precision, confidence=confidence, alpha=alpha,
                                     alpha_global=alpha_global), log_loss=False)
        per, glob = sp.per_class, sp.global_rule
        assert per is not None   # thresholds were searched
        m_before, m_after = summary.MetricsAt(sp.before), summary.MetricsAt(sp.after)
        support, n_units = sp.support, sp.n_units
    else:
        m_before, m_after = before_after(prepared, temp, fitted)
        units = rules.decision_units(z, y, task, fitted, n_cls, top=m_after.top)
        per, glob = search_rules(units, precision, confidence, simultaneous)
        support, n_units = units.support, units.n_units

    def probability(v: Any, column: int | None) -> Any:
        return to_probability(v, task) if column is None else \
            fitted.threshold_probability(v, column)

    found = findings(prepared, names, method, fitted, cv, m_before, m_after)
    fs = summary.fit_summary(prepared, temp if fitted.method == "temperature" else None, names,
                             per, glob, support, n_units, m_before.values, m_after.values,
                             probability, **found)
    return Calibrator(
        task=task, classes=names, input_kind=prepared.input_kind,
        temperature=families.temperature_of(fitted), rule=rule,
        decision_thresholds={"per_class": [t.value for t in per], "global": glob.value},
        target={"precision": float(precision),
                "confidence": None if confidence is None else float(confidence),
                "simultaneous": bool(simultaneous)},
        summary=fs.to_dict(), calibrator=fitted)


def calibrate_scores(prepared: PreparedScores, names: list[str], method: str,
                     groups: np.ndarray | None) -> tuple:
    """The calibration of a fit: ``(temp, fitted, cv)``, the temperature fit
    (a :class:`~calibrate.temperature.TemperatureResult`, when one was made:
    multiclass always, as the start of the other families and for its fused
    summary passes), the fitted family, and the cross-validation
    (:class:`calibrate.families.AutoResult`, or why it did not run)."""
    z, y, task = prepared.logits, prepared.labels, prepared.task
    temp = None
    if method in ("temperature", "auto") or task == "multiclass":
        # The summary's metric pass at T = 1 gives the NLL before: no need to
        # spend an extra exp on it in the temperature fit.
        try:
            temp = fit_temperature(z, y, task, prepared.name, names, nll_before=False,
                                   summary_bins=metrics.N_BINS)
        except WorseThanChance as exc:
            # (another family may still fit: the mixture absorbs rows whose
            # true class has probability ~0, which can make every T worse)
            if method == "temperature" or task != "multiclass":
                raise refusal(exc, prepared) from None
            temp = None
    t_family = None if temp is None else families.temperature.from_result(temp, task)
    cv = None
    with _named(prepared.name):
        if method == "auto":
            cv = families.auto(z, y, task, groups=groups, classes=names,
                               fitted_temperature=t_family)
            fitted = cv.fitted
        elif method == "temperature":
            fitted = t_family
        else:
            fitted = families.fit(method, z, y, task, classes=names,
                                  temperature=None if temp is None else temp.temperature)
    if cv is None:
        cv = compare(prepared, names, groups, method)
    return temp, fitted, cv


def compare(prepared: PreparedScores, names: list[str], groups: np.ndarray | None,
            method: str) -> Any:
    """Every family cross-validated on small data (an
    :class:`~calibrate.families.AutoResult` without refit), else why not.
    The per-class families other than ``method`` are screened by the
    split-half test at any size: without per-class signal they cannot be
    clearly better, and they cost most."""
    n_scores = prepared.n_rows * prepared.n_classes
    if n_scores > COMPARE_ELEMENTS:
        return (f"{n_scores:,} scores, more than {COMPARE_ELEMENTS:,}: the fit stays a few "
                "passes over the rows; method 'auto' (--method auto) compares the families")
    try:
        return families.auto(prepared.logits, prepared.labels, prepared.task, groups=groups,
                             classes=names, refit=False, screen_elements=0, keep=(method,))
    except CalibrateError as exc:   # too few rows or groups for 5 folds, say
        return f"not possible here: {exc}"


class _named:
    """Refusals of the families name the scores as the caller does."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> Literal[False]:
        if isinstance(exc, CalibrateError) and self.name != "scores" and \
                str(exc).startswith("scores: "):
            raise CalibrateError(f"{self.name}: {str(exc)[len('scores: '):]}") from None
        return False


def before_after(prepared: PreparedScores, temp: Any, fitted: Any) -> tuple:
    """The summary metrics (:class:`summary.MetricsAt`) before (T = 1) and
    after calibration; multiclass "after" carries the decision scores."""
    z, y, task, n_cls = prepared.logits, prepared.labels, prepared.task, prepared.n_classes
    if task == "multiclass":
        # the temperature passes usually made the metrics' passes on the
        # way; the one at T also gives the decision scores
        m_before = (summary.softmax_summary(temp.at_one, y, n_cls)
                    if temp is not None and temp.at_one is not None
                    else summary.metrics_at(z, y, task, 1.0, scores=False))
        if fitted.method == "temperature" and temp.at_t is not None:
            return m_before, summary.softmax_summary(temp.at_t, y, n_cls)
        return m_before, summary.metrics_at(z, y, task, fitted)
    m_before = summary.metrics_at(z, y, task, 1.0)
    m_after = summary.metrics_at(z, y, task, fitted)
    if fitted.method != "temperature":
        # the families' own objective (exact, as the temperature's): the
        # mean binary NLL over rows (multilabel: over (row, label) pairs)
        zz = z.to_numpy()
        nll = [float(np.mean(families.nll_rows(f, zz, y)))
               for f in (families.identity(task, n_cls), fitted)]
        m_before = dataclasses.replace(m_before, values=dict(m_before.values, nll=nll[0]))
        m_after = dataclasses.replace(m_after, values=dict(m_after.values, nll=nll[1]))
    return m_before, m_after


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
    glob = _thr.search(units.global_rule_scores().ravel(), units.correct.ravel(), precision,
                       confidence, alpha_global, expected.ravel())
    return per, glob
