"""Check a threshold file on new labelled data: did the promised precision hold?

:func:`evaluate` applies a :class:`~calibrate.artifact.Calibrator` to new
scores with their true labels and reports, per class and overall, what the
decisions achieved (precision, recall, coverage, support) next to what the
file promised (its held-out figures and Clopper-Pearson lower bounds), and
the calibration metrics of :mod:`calibrate.metrics` before (T = 1) and after
the file's calibration (its T, or its family's map).

Verdicts per class (and for the global rule), on the new data:

* ``held``: precision >= target;
* ``missed``: precision < target, but within sampling noise of the new data:
  the one-sided 95% Clopper-Pearson *upper* bound on the precision still
  reaches the target.  A class whose true precision is exactly the target
  lands here about half of the time, so ``missed`` classes are expected;
* ``violated``: even that upper bound is below the target;
* ``no-predictions``: the class has a threshold but was never predicted here;
* ``no-threshold``: the file gives the class no threshold (never predicted),
  so there is no target to hold; its held-out status says why.

The file's guarantee is about the *true* precision: per class, with
probability at least ``confidence``, it reaches the target.  So a few
``violated`` classes among many are compatible with it (about
``1 - confidence`` of the certified classes); ``summary["expected_violations"]``
gives that number.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import kernels, params, rules, sigmoid_passes, summary
from .artifact import Calibrator, load
from .backends import Backend, as_array, as_labels
from .bootstrap import bootstrap_metrics
from .errors import invalid
from .guarantee import lower_bound
from .scores import check_labels

#: One-sided level of the upper bound that separates "missed" from "violated".
NOISE_LEVEL = 0.95

STATUSES = ("held", "missed", "violated", "no-predictions", "no-threshold")


def upper_bound(n_correct: int, n: int, confidence: float = NOISE_LEVEL) -> float:
    """One-sided Clopper-Pearson upper bound on a binomial proportion:
    ``1 - lower_bound(n - k, n)``, 1 when every prediction is right."""
    return float(1.0 - lower_bound(n - n_correct, n, confidence))


def _verdict(has_threshold: bool, predicted: int, correct: int, target: float) -> str:
    if not has_threshold:
        return "no-threshold"
    if predicted == 0:
        return "no-predictions"
    if correct / predicted >= target:
        return "held"
    return "missed" if upper_bound(correct, predicted) >= target else "violated"


class _Record(Mapping):
    """Read-only mapping access to :meth:`to_dict` (reports were dicts before)."""

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Any:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


@dataclass(frozen=True, eq=False)
class EvalRow(_Record):
    """What one class (``name``; None for a pooled row) achieved on new data.

    ``threshold`` the file's threshold as a probability; ``precision``,
    ``recall`` and ``coverage`` of its decisions on the new data; ``support``
    its true members; ``predicted`` / ``correct`` the counts; ``upper_bound``
    the one-sided Clopper-Pearson upper bound on the precision; ``status`` the
    verdict; ``held_out`` the file's own row (None where it has none).
    """
    name: str | None
    threshold: float | None
    precision: float | None
    recall: float | None
    coverage: float | None
    support: int
    predicted: int
    correct: int
    upper_bound: float | None
    status: str
    held_out: dict | None = None
    with_threshold: bool = True

    def to_dict(self) -> dict:
        d: dict = {} if self.name is None else {"class": self.name}
        if self.with_threshold:
            d["threshold"] = self.threshold
        d.update(precision=self.precision, recall=self.recall, coverage=self.coverage,
                 support=self.support, predicted=self.predicted, correct=self.correct,
                 upper_bound=self.upper_bound, status=self.status)
        if self.with_threshold:   # a rule's row; the pooled row promised nothing
            d["held_out"] = self.held_out
        return d


def _row(name: str | None, predicted: int, correct: int, support: int, n_units: int,
         has_threshold: bool, target: float, threshold: float | None,
         held_out: dict | None = None, with_threshold: bool = True) -> EvalRow:
    return EvalRow(
        name, threshold, correct / predicted if predicted else None,
        correct / support if support else None, predicted / n_units if n_units else None,
        int(support), int(predicted), int(correct),
        upper_bound(correct, predicted) if predicted else None,
        _verdict(has_threshold, predicted, correct, target), held_out, with_threshold)


_PROMISED = ("threshold", "precision", "recall", "coverage", "support", "predicted",
             "lower_bound", "status")


def _promised(row: Any) -> dict | None:
    """The file's held-out figures for a row (None where the file has no summary)."""
    if not isinstance(row, dict):
        return None
    return {k: row.get(k) for k in _PROMISED}


@dataclass(frozen=True, eq=False)
class EvaluationReport(_Record):
    """What :func:`evaluate` found: per class and overall, against the file's promise.

    ``per_class`` one :class:`EvalRow` per scored class under the per-class
    rule; ``overall`` all per-class-rule decisions pooled; ``global_rule`` the
    global rule; ``counts`` of verdicts over classes; ``expected_violations``
    how many certified classes the guarantee allows below target; ``metrics``
    before / after on the new data, as in the fit summary; ``method`` the
    file's calibration family (``temperature`` None for another family).
    """
    n: int
    task: str
    rule: str
    target: dict
    temperature: Any
    per_class: tuple
    overall: EvalRow
    global_rule: EvalRow
    counts: dict
    expected_violations: float | None
    metrics: dict
    method: str = "temperature"

    def to_dict(self) -> dict:
        return {"n": self.n, "task": self.task, "rule": self.rule, "target": dict(self.target),
                "method": self.method, "temperature": self.temperature,
                "per_class": [r.to_dict() for r in self.per_class],
                "overall": self.overall.to_dict(), "global": self.global_rule.to_dict(),
                "counts": dict(self.counts), "expected_violations": self.expected_violations,
                "metrics": self.metrics}

    # -- reporting policy -------------------------------------------------------
    def is_compact(self) -> bool:
        """Whether a table should show only the classes below target."""
        return len(self.per_class) > summary.COMPACT_ABOVE

    def below_target(self) -> list:
        """Classes below target or never predicted, lowest precision first."""
        bad = [r for r in self.per_class if r.status in ("violated", "missed", "no-predictions")]
        return sorted(bad, key=lambda r: (r.precision if r.precision is not None else -1.0,
                                          r.name))


def evaluate(cal: Calibrator, scores: Any, labels: Any, input_kind: str | None = None,
             bootstrap: int = 0, seed: int = 0, *, scores_name: str = "scores",
             labels_name: str = "labels") -> EvaluationReport:
    """Apply ``cal`` to new ``scores`` with true ``labels`` and compare with its promise.

    Parameters
    ----------
    cal : Calibrator, or the path of a threshold file
    scores, labels : arrays (numpy, torch, dask, row sources), as for :func:`calibrate.fit`
    input_kind : str, optional
        What ``scores`` hold; default: the kind recorded in the file.
    bootstrap : int
        With n > 0, percentile bootstrap intervals (n resamples of the rows,
        ``seed``) for the ECE-like metrics, before and after.
    scores_name, labels_name : str
        How errors name the inputs (the command line: their files).

    Returns
    -------
    EvaluationReport (a read-only mapping of its ``to_dict()``)
        ``n``, ``task``, ``rule`` (the file's default), ``target``,
        ``temperature``; ``per_class`` (threshold, precision, recall, coverage,
        support, predicted, correct, upper_bound, status, and ``held_out``,
        the file's own row); ``overall``; ``global``; ``counts`` of statuses
        over classes; ``expected_violations``; ``metrics``.  Coverage is the
        share of decision units (rows; (row, class) pairs for multilabel)
        predicted.
    """
    params.validate({"input": input_kind, "bootstrap": bootstrap, "seed": seed},
                    params.EVALUATE)
    if isinstance(cal, (str, os.PathLike)):          # a threshold file, as ThresholdHead takes
        cal = load(cal)
    elif not isinstance(cal, Calibrator):
        raise invalid("cal", "a Calibrator or a threshold file's path", type(cal).__name__)
    z = cal.logits(scores, input_kind, scores_name)
    n_rows = int(z.n_rows)
    y = check_labels(as_labels(labels, labels_name), cal.task, n_rows, len(cal.classes),
                     labels_name)
    target = float(cal.target["precision"])
    tau, tau_g = cal.rule_thresholds("per-class"), cal.rule_thresholds("global")
    if cal.task == "multiclass" or cal.method != "temperature":
        # (multilabel labels left in their file: the families take them in memory)
        units = rules.decision_units(z, as_array(y, labels_name), cal.task, cal.calibrator,
                                     cal.n_scored)
        counts_ = rules.RuleCounts.of_units(units, tau, tau_g)
    else:   # a sigmoid temperature: counted in a pass over the rows
        counts_ = sigmoid_passes.rule_counts(z, y, cal.temperature, tau, tau_g[0])
    per_rows, overall, glob = _rule_rows(cal, counts_, target)
    counts = {s: 0 for s in STATUSES}
    for r in per_rows:
        counts[r.status] += 1
    T: Any = cal.temperature   # a float, one per label, or None (another family)
    return EvaluationReport(
        n=n_rows, task=cal.task, rule=cal.rule, target=dict(cal.target),
        temperature=T if T is None or np.ndim(T) == 0 else [float(v) for v in T],
        per_class=per_rows, overall=overall, global_rule=glob, counts=counts,
        expected_violations=_expected_violations(cal, cal.n_scored - counts["no-threshold"]),
        metrics=_metrics(cal, z, y, bootstrap, seed), method=cal.method)


def _rule_rows(cal: Calibrator, c: rules.RuleCounts, target: float) -> tuple:
    """The per-class rows, the pooled row and the global rule's row on new data."""
    held = cal.summary if isinstance(cal.summary, dict) else {}
    per_tau = cal.decision_thresholds["per_class"]
    # as probabilities the file's way (isotonic: its curve at the model's logit,
    # not the sigmoid of that logit)
    per_p = cal.thresholds["per_class"]
    held_rows = held.get("per_class") or [None] * len(per_tau)
    scored = cal.classes[1:] if cal.task == "binary" else cal.classes
    per_rows = tuple(
        _row(name, c.predicted[j], c.correct[j], c.support[j], c.n_units,
             per_tau[j] is not None, target, per_p[j],
             _promised(held_rows[j] if j < len(held_rows) else None))
        for j, name in enumerate(scored))
    total_support = int(np.sum(c.support))
    overall = _row(None, int(c.predicted.sum()), int(c.correct.sum()), total_support,
                   c.n_units, True, target, None, with_threshold=False)
    g_tau = cal.decision_thresholds["global"]
    glob = _row(None, c.global_predicted, c.global_correct, total_support, c.n_units,
                g_tau is not None, target, cal.thresholds["global"],
                _promised(held.get("global")))
    return per_rows, overall, glob


def _expected_violations(cal: Calibrator, certified: int) -> float | None:
    """per class: each certified class misses with probability <= 1 - confidence;
    simultaneous: all hold at once with probability >= confidence."""
    conf = cal.target.get("confidence")
    if conf is None:
        return None
    return (1.0 - conf) * certified if not cal.target.get("simultaneous") else 1.0 - conf


def _metrics(cal: Calibrator, z: Backend, y: np.ndarray, bootstrap: int, seed: int) -> dict:
    if cal.task != "multiclass" and cal.method == "temperature":
        sp = sigmoid_passes.run(z, y, cal.temperature, cal.task)
        before, after = sp.before, sp.after
    else:
        before = summary.metrics_at(z, y, cal.task, 1.0, scores=False).values
        after = summary.metrics_at(z, y, cal.task, cal.calibrator, scores=False).values
    out = summary.named_metrics(before, after, cal.task)
    if bootstrap:
        y = as_array(y)          # the resamples hold the pairs in memory
        for side, calibration in (("before", 1.0), ("after", cal.calibrator)):
            p = probabilities(cal, z, calibration)
            ci = bootstrap_metrics(p, y, cal.task, n_resamples=int(bootstrap), seed=seed)
            for key, (lo, hi) in ci.items():
                out[key][side + "_ci"] = [lo, hi]
    return out


def probabilities(cal: Calibrator, z: Any, calibration: Any) -> np.ndarray:
    """softmax / sigmoid of logits ``z`` at a temperature, or a fitted family's
    probabilities, as float64 ((N,) for binary)."""
    if kernels.is_family(calibration):
        p = [calibration.probabilities(b) for b in z.blocks(1 << 24)]
        return np.asarray(p[0] if len(p) == 1 else np.concatenate(p), dtype=np.float64)
    if cal.task == "multiclass":
        return np.asarray(rules.softmax_proba(z, calibration), dtype=np.float64)
    return rules.sigmoid_proba(rules.as_float64(z), calibration)


def describe_status(status: str) -> str:
    """One line for a verdict, for people."""
    return {
        "held": "precision on the new data reaches the target",
        "missed": "below the target, within the new data's sampling noise "
                  f"(one-sided {100 * NOISE_LEVEL:g}% upper bound reaches it)",
        "violated": f"below the target beyond sampling noise (one-sided "
                    f"{100 * NOISE_LEVEL:g}% upper bound below it)",
        "no-predictions": "has a threshold but was never predicted on the new data",
        "no-threshold": "the file gives it no threshold: never predicted",
    }[status]
