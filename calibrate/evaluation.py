"""Check a threshold file on new labelled data: did the promised precision hold?

:func:`evaluate` applies a :class:`~calibrate.artifact.Calibrator` to new
scores with their true labels and reports, per class and overall, what the
decisions achieved (precision, recall, coverage, support) next to what the
file promised (its held-out figures and Clopper-Pearson lower bounds), and
the calibration metrics of :mod:`calibrate.metrics` before (T = 1) and after
(the file's T) temperature scaling.

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

import numpy as np

from . import metrics, rules
from . import scores as _scores
from .artifact import to_probability
from .errors import invalid
from .guarantee import lower_bound

#: One-sided level of the upper bound that separates "missed" from "violated".
NOISE_LEVEL = 0.95

STATUSES = ("held", "missed", "violated", "no-predictions", "no-threshold")


def upper_bound(n_correct, n, confidence=NOISE_LEVEL):
    """One-sided Clopper-Pearson upper bound on a binomial proportion:
    ``1 - lower_bound(n - k, n)``, 1 when every prediction is right."""
    return float(1.0 - lower_bound(n - n_correct, n, confidence))


def _verdict(has_threshold, predicted, correct, target):
    if not has_threshold:
        return "no-threshold"
    if predicted == 0:
        return "no-predictions"
    if correct / predicted >= target:
        return "held"
    return "missed" if upper_bound(correct, predicted) >= target else "violated"


def _row(predicted, correct, support, n_units, has_threshold, target, threshold):
    return {
        "threshold": threshold,
        "precision": correct / predicted if predicted else None,
        "recall": correct / support if support else None,
        "coverage": predicted / n_units if n_units else None,
        "support": int(support),
        "predicted": int(predicted),
        "correct": int(correct),
        "upper_bound": upper_bound(correct, predicted) if predicted else None,
        "status": _verdict(has_threshold, predicted, correct, target),
    }


_PROMISED = ("threshold", "precision", "recall", "coverage", "support", "predicted",
             "lower_bound", "status")


def _promised(row):
    """The file's held-out figures for a row (None where the file has no summary)."""
    if not isinstance(row, dict):
        return None
    return {k: row.get(k) for k in _PROMISED}


def _decisions(cal, z, y):
    """:func:`rules.decision_units`, and the units' count."""
    cls, sc, correct, support = rules.decision_units(z, y, cal.task, cal.temperature,
                                                     cal.n_scored)
    return cls, sc, correct, support, len(sc)


def _accepted(cls, sc, tau):
    t = rules.threshold_array(tau)
    return sc >= t[cls]


def evaluate(cal, scores, labels, input_kind=None, bootstrap=0, seed=0):
    """Apply ``cal`` to new ``scores`` with true ``labels`` and compare with its promise.

    Parameters
    ----------
    cal : Calibrator
    scores, labels : arrays (numpy or torch), as for :func:`calibrate.fit`
    input_kind : str, optional
        What ``scores`` hold; default: the kind recorded in the file.
    bootstrap : int
        With n > 0, percentile bootstrap intervals (n resamples of the rows,
        ``seed``) for the ECE-like metrics, before and after.

    Returns
    -------
    dict (JSON-ready)
        ``n``, ``task``, ``rule`` (the file's default), ``target``,
        ``temperature``; ``per_class`` (one row per scored class under the
        per-class rule: threshold, precision, recall, coverage, support,
        predicted, correct, upper_bound, status, and ``held_out``, the file's
        own row); ``overall`` (all per-class-rule decisions pooled);
        ``global`` (the global rule, with its ``held_out`` row); ``counts`` of
        statuses over classes; ``expected_violations``; ``metrics`` (before /
        after on the new data, as in the fit summary).  Coverage is the share
        of decision units (rows; (row, class) pairs for multilabel) predicted.
    """
    z = cal.logits(scores, input_kind)
    n_rows = int(z.shape[0])
    lab = _scores.as_array(labels, "labels")
    n_cls = len(cal.classes)
    y = _scores.check_labels(lab, cal.task, n_rows, n_cls)
    if not isinstance(bootstrap, (int, np.integer)) or isinstance(bootstrap, bool) or bootstrap < 0:
        raise invalid("bootstrap", "a number of resamples >= 0", repr(bootstrap))
    target = float(cal.target["precision"])
    summary = cal.summary if isinstance(cal.summary, dict) else {}

    cls, sc, correct, support, n_units = _decisions(cal, z, y)
    scored = cal.classes[1:] if cal.task == "binary" else cal.classes
    per_tau = cal.decision_thresholds["per_class"]
    acc = _accepted(cls, sc, per_tau)
    n_scored = len(per_tau)
    pred = np.bincount(cls[acc], minlength=n_scored)
    hits = np.bincount(cls[acc & correct], minlength=n_scored)
    held_rows = summary.get("per_class") or [None] * n_scored
    per_rows = []
    for j, name in enumerate(scored):
        row = {"class": name}
        row.update(_row(pred[j], hits[j], support[j], n_units, per_tau[j] is not None, target,
                        to_probability(per_tau[j], cal.task)))
        row["held_out"] = _promised(held_rows[j] if j < len(held_rows) else None)
        per_rows.append(row)

    total_support = int(np.sum(support))
    overall = _row(int(acc.sum()), int((acc & correct).sum()), total_support, n_units,
                   True, target, None)
    del overall["threshold"]
    g_tau = cal.decision_thresholds["global"]
    g_acc = _accepted(cls, sc, [g_tau] * n_scored)
    glob = _row(int(g_acc.sum()), int((g_acc & correct).sum()), total_support, n_units,
                g_tau is not None, target, to_probability(g_tau, cal.task))
    glob["held_out"] = _promised(summary.get("global"))

    counts = {s: 0 for s in STATUSES}
    for r in per_rows:
        counts[r["status"]] += 1
    conf = cal.target.get("confidence")
    certified = n_scored - counts["no-threshold"]
    expected = None
    if conf is not None:
        # per class: each certified class misses with probability <= 1 - confidence;
        # simultaneous: all hold at once with probability >= confidence
        expected = (1.0 - conf) * certified if not cal.target.get("simultaneous") else 1.0 - conf

    m = _metrics(cal, z, y, bootstrap, seed)
    T = cal.temperature
    return {
        "n": n_rows,
        "task": cal.task,
        "rule": cal.rule,
        "target": dict(cal.target),
        "temperature": T if np.ndim(T) == 0 else [float(v) for v in T],
        "per_class": per_rows,
        "overall": overall,
        "global": glob,
        "counts": counts,
        "expected_violations": expected,
        "metrics": m,
    }


def _metrics(cal, z, y, bootstrap, seed):
    T = cal.temperature
    before = metrics.summary_metrics(z, y, cal.task, 1.0)
    after = metrics.summary_metrics(z, y, cal.task, T)
    out = {key: {"definition": metrics.describe(key, cal.task),
                 "before": metrics.finite(before[key]), "after": metrics.finite(after[key])}
           for key in before}
    if bootstrap:
        for side, temp in (("before", 1.0), ("after", T)):
            p = probabilities(cal, z, temp)
            ci = metrics.bootstrap_metrics(p, y, cal.task, n_resamples=int(bootstrap), seed=seed)
            for key, (lo, hi) in ci.items():
                out[key][side + "_ci"] = [lo, hi]
    return out


def probabilities(cal, z, temperature):
    """softmax / sigmoid of logits ``z`` at ``temperature`` as float64 ((N,) for binary)."""
    if cal.task == "multiclass":
        return np.asarray(rules.softmax_proba(z, temperature), dtype=np.float64)
    return np.asarray(rules.sigmoid_proba(np.asarray(z, dtype=np.float64), temperature))


def describe_status(status):
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

