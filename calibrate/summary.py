"""The fit summary: what a fit found, as figures people and programs read.

:func:`metrics_at` computes every summary metric of :mod:`calibrate.metrics`
from logits at one temperature in one pass over the rows (never holding the
(N, C) probabilities); :func:`fit_summary` assembles the
:class:`FitSummary` that the threshold file stores; and the summary's own
methods hold the reporting policy a command-line tool and a library user
share: which classes a compact table shows, the status counts, and the hint
when many classes could not be certified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import kernels, metrics
from .backends import Backend, SoftmaxPass
from .smooth_ece import smooth_ece

#: Above this many classes a table shows the status counts and the worst classes.
COMPACT_ABOVE = 20
#: How many classes a compact table shows.
WORST_SHOWN = 10


@dataclass(frozen=True)
class MetricsAt:
    """Every summary metric (keys of :data:`calibrate.metrics.NAMES`) at one
    temperature or under one fitted family; multiclass passes also give
    ``top`` = (argmax k, log p_k) and the ``accuracy`` of the argmax."""
    values: dict
    top: tuple | None = None
    accuracy: float | None = None

    def to_dict(self) -> dict:
        return dict(self.values)


def metrics_at(z: Backend, y: np.ndarray, task: str, calibration: Any,
               n_bins: int = metrics.N_BINS, scores: bool = True) -> MetricsAt:
    """:func:`calibrate.metrics.all_metrics` of softmax / sigmoid (z / T), or of a
    fitted family's probabilities (``calibration`` a temperature or a family).

    multiclass: one chunked pass (:meth:`Backend.softmax_metrics`, or
    :meth:`Backend.family_metrics`, with the decision scores when ``scores``).
    binary and multilabel: a temperature in passes over the pairs
    (:mod:`calibrate.sigmoid_passes`), another family from the N (or N C)
    probabilities.  The NLL here is the probabilities' log loss; a fit may
    replace it with its objective.
    """
    temperature = calibration
    if kernels.is_family(calibration):
        temperature = calibration.value if calibration.method == "temperature" else None
    if task != "multiclass":
        if temperature is not None:
            from . import sigmoid_passes
            return MetricsAt(sigmoid_passes.run(z, y, temperature, task, n_bins=n_bins).after)
        zz = np.asarray(z.to_numpy(), dtype=np.float64)
        p = np.asarray(calibration.probabilities(zz), dtype=np.float64)
        return MetricsAt(metrics.all_metrics(p, y, task, n_bins))
    sp = (z.softmax_metrics(y, temperature, n_bins, scores) if temperature is not None
          else z.family_metrics(y, calibration, n_bins, scores))
    return softmax_summary(sp, y, z.shape[1], n_bins)


def softmax_summary(sp: SoftmaxPass, y: np.ndarray, n_classes: int,
                    n_bins: int = metrics.N_BINS) -> MetricsAt:
    """Every summary metric from a multiclass metrics pass.  The classwise ECE is
    exact: first-bin sums per class are the column sums minus the entries above
    1 / n_bins."""
    n, c = len(y), n_classes
    correct = (sp.k == y).astype(np.float64)
    tiny = np.finfo(np.float64).tiny
    # classwise: gap[k, b] = #(y = k, p_yk in b) - sum of p_k in b
    hb = metrics.bin_width(sp.hi_p, n_bins)
    sum_p = np.bincount(sp.hi_cls * n_bins + hb, weights=sp.hi_p,
                        minlength=c * n_bins).reshape(c, n_bins)
    sum_p[:, 0] = sp.colsum - sum_p[:, 1:].sum(axis=1)
    cnt_y = np.bincount(y * n_bins + metrics.bin_width(sp.py, n_bins),
                        minlength=c * n_bins).reshape(c, n_bins)
    tl = np.bincount(metrics.bin_width(sp.conf, n_bins) + n_bins * sp.k,
                     weights=correct - sp.conf, minlength=c * n_bins)
    values = {
        "nll": float(-np.mean(np.log(np.maximum(sp.py, tiny)))),
        "brier": float(np.mean(sp.sq - 2 * sp.py + 1)),
        "ece_15_equal_width": metrics.ece(sp.conf, correct, n_bins),
        "ece_15_equal_mass": metrics.ece_equal_mass(sp.conf, correct, n_bins),
        "mce_15_equal_width": metrics.mce(sp.conf, correct, n_bins),
        "classwise_ece_15_equal_width": float(np.abs(cnt_y - sum_p).sum() / (n * c)),
        "top_label_ece_15_equal_width": float(np.abs(tl).sum() / n),
        "smooth_ece": smooth_ece(sp.conf, correct),
    }
    return MetricsAt(values, None if sp.logp is None else (sp.k, sp.logp),
                     float(np.mean(correct)))


def finite_values(d: Any) -> Any:
    """``d`` (dicts, lists, numbers) with every non-finite number as None: the
    file is JSON, which has no NaN (figures of scores beyond float range)."""
    if isinstance(d, dict):
        return {k: finite_values(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [finite_values(v) for v in d]
    if isinstance(d, float):
        return metrics.finite(d)
    return d


def named_metrics(before: dict, after: dict, task: str) -> dict:
    """The summary's ``metrics`` block: each key with its definition, before and after."""
    return {key: {"definition": metrics.describe(key, task),
                  "before": metrics.finite(before[key]), "after": metrics.finite(after[key])}
            for key in before}


@dataclass(frozen=True)
class ClassRow:
    """One class's threshold and held-out figures (``name`` None for the global rule).

    ``threshold`` as a probability (None: never predicted); ``precision`` and
    ``recall`` of the accepted held-out predictions; ``support`` the class's
    true members; ``predicted`` the accepted predictions; ``coverage`` their
    share of the decision units; ``lower_bound`` the Clopper-Pearson bound;
    ``status`` as :class:`calibrate.thresholds.Threshold`.
    """
    name: str | None
    threshold: float | None
    precision: float | None
    recall: float | None
    support: int
    predicted: int
    coverage: float | None
    lower_bound: float | None
    status: str

    def to_dict(self) -> dict:
        d = {} if self.name is None else {"class": self.name}
        d.update({k: getattr(self, k) for k in ("threshold", "precision", "recall", "support",
                                                 "predicted", "coverage", "lower_bound",
                                                 "status")})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ClassRow:
        # (the file's values as they are: None where a field is missing)
        return cls(d.get("class"), *(d.get(k) for k in (  # type: ignore[arg-type]
            "threshold", "precision", "recall", "support", "predicted", "coverage",
            "lower_bound", "status")))


def class_row(name: str | None, t: Any, support: int, n_units: int, probability: Any) -> ClassRow:
    """The :class:`ClassRow` of a :class:`calibrate.thresholds.Threshold`;
    ``probability`` maps a decision threshold to a probability."""
    return ClassRow(name, probability(t.value), t.precision,
                    (t.n_correct / support) if support else None, int(support),
                    t.n_predicted, t.n_predicted / n_units if n_units else None,
                    t.lower_bound, t.status)


@dataclass(frozen=True)
class FitSummary:
    """What a fit found on its held-out data, as stored in the threshold file.

    ``temperature`` holds ``value`` (a float, or one per class), ``status``,
    ``passes``, ``converged`` and, for multilabel, ``shared_value`` (a
    temperature fit; empty for another family); ``nll`` and ``ece`` are
    ``{"before", "after"}``; ``metrics`` maps every summary metric to its
    definition, before and after; ``per_class`` and ``global_rule`` are the
    rules' rows.

    What the calibration families add (None where it does not apply):
    ``method`` the family applied; ``calibration`` what it found
    (:func:`calibrate.families.describe`, and ``chosen_by``: "given" or
    "auto"); ``accuracy`` multiclass ``{"before", "after"}`` (argmax of the
    calibrated probabilities; per-class families move it);
    ``cross_validation`` every family's cross-validated NLL and ECE next to
    the uncalibrated model's, and the choice
    (:meth:`calibrate.families.AutoResult.to_dict`) or why it did not run;
    ``lost_probability`` the rows whose input probability of the true class
    is 0 and how far they move the fit; ``notes`` one-line findings (a
    clearly better family, a calibration worse than none).
    """
    n: int
    task: str
    input_kind: str
    temperature: dict
    nll: dict
    ece: dict
    metrics: dict
    per_class: tuple
    global_rule: ClassRow
    method: str | None = None
    calibration: dict | None = None
    accuracy: dict | None = None
    cross_validation: dict | None = None
    lost_probability: dict | None = None
    notes: tuple = ()

    def to_dict(self) -> dict:
        d = {"n": self.n, "task": self.task, "input_kind": self.input_kind}
        if self.method is not None:
            d["method"] = self.method
        if self.temperature:
            d["temperature"] = dict(self.temperature)
        if self.calibration is not None:
            d["calibration"] = finite_values(self.calibration)
        d |= {"nll": dict(self.nll), "ece": dict(self.ece)}
        if self.accuracy is not None:
            d["accuracy"] = dict(self.accuracy)
        d["metrics"] = dict(self.metrics)
        for key in ("cross_validation", "lost_probability"):
            if getattr(self, key) is not None:
                d[key] = finite_values(getattr(self, key))
        if self.method is not None:    # a fit by this version: notes, maybe none
            d["notes"] = list(self.notes)
        return d | {"per_class": [r.to_dict() for r in self.per_class],
                    "global": self.global_rule.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> FitSummary:
        """A summary read from a file (missing parts empty)."""
        rows = [ClassRow.from_dict(r) for r in d.get("per_class") or [] if isinstance(r, dict)]
        g = d.get("global")

        def obj(key: str) -> dict | None:
            return d.get(key) if isinstance(d.get(key), dict) else None
        notes = d.get("notes")
        # (the file's values as they are: None where a field is missing)
        return cls(d.get("n"), d.get("task"), d.get("input_kind"),  # type: ignore[arg-type]
                   obj("temperature") or {},
                   obj("nll") or {}, obj("ece") or {}, obj("metrics") or {},
                   tuple(rows), ClassRow.from_dict(g if isinstance(g, dict) else {}),
                   d.get("method") if isinstance(d.get("method"), str) else None,
                   obj("calibration"), obj("accuracy"), obj("cross_validation"),
                   obj("lost_probability"),
                   tuple(n for n in notes if isinstance(n, str)) if isinstance(notes, list)
                   else ())

    # -- reporting policy -------------------------------------------------------
    def status_counts(self) -> dict:
        """How many classes have each status, by status name (sorted)."""
        counts: dict = {}
        for r in self.per_class:
            counts[r.status] = counts.get(r.status, 0) + 1
        return dict(sorted(counts.items()))

    def is_compact(self) -> bool:
        """Whether a table should show counts and the worst classes only."""
        return len(self.per_class) > COMPACT_ABOVE

    def lowest_recall(self, k: int = WORST_SHOWN) -> list:
        """The ``k`` classes with the lowest held-out recall (no recall counts as 0)."""
        return sorted(self.per_class, key=lambda r: (r.recall or 0.0, r.name))[:k]

    def certification_hint(self, confidence: float | None) -> str | None:
        """A hint when a quarter or more of the classes could not be certified."""
        rows = self.per_class
        stuck = [r for r in rows if r.status in ("uncertified", "too-few")]
        if confidence is None or not rows or len(stuck) * 4 < len(rows):
            return None
        per = sum(r.support for r in rows) / max(1, len(rows))
        return (f"{len(stuck)} of {len(rows)} classes could not be certified with about "
                f"{per:.0f} held-out rows each; more held-out data, --rule global, a lower "
                "--confidence or --confidence none give them thresholds")


def fit_summary(prepared: Any, temp: Any, names: list, per: list, glob: Any,
                support: np.ndarray, n_units: int, m_before: dict, m_after: dict,
                probability: Any, **found: Any) -> FitSummary:
    """Assemble the :class:`FitSummary` of a fit.

    ``prepared`` the :class:`calibrate.scores.PreparedScores`; ``temp`` the
    :class:`calibrate.temperature.TemperatureResult` of the temperature
    family (None for another family: then the caller's NLLs stand);
    ``per`` / ``glob`` the thresholds; ``support`` the true members of each
    scored class and ``n_units`` the decisions made (rows, or (row, class)
    pairs); ``m_before`` / ``m_after`` the metrics at T = 1 and calibrated;
    ``probability(value, column)`` a decision threshold of a column (None:
    the global rule's) as a probability; ``found`` the :class:`FitSummary`
    fields the families add.
    """
    task = prepared.task
    if task == "multiclass" or temp is None:
        nll_b, nll_a = m_before["nll"], m_after["nll"]
    else:
        # the temperature fit's own objective: multilabel, the mean over
        # classes of each class's binary cross entropy
        nll_b, nll_a = float(np.mean(temp.nll_before)), float(np.mean(temp.nll_after))
        m_before, m_after = dict(m_before, nll=nll_b), dict(m_after, nll=nll_a)
    scored = names[1:] if task == "binary" else names
    rows = tuple(class_row(name, t, s, n_units, lambda v, j=j: probability(v, j))
                 for j, (name, t, s) in enumerate(zip(scored, per, support, strict=True)))
    g = class_row(None, glob, int(np.sum(support)), n_units,
                  lambda v: probability(v, None))
    temperature = {}
    if temp is not None:
        T = temp.temperature
        temperature = {"value": T if np.ndim(T) == 0 else [float(v) for v in T],
                       "status": temp.status, "passes": temp.n_passes,
                       "converged": temp.converged}
        if temp.shared_temperature is not None:
            temperature["shared_value"] = temp.shared_temperature
    return FitSummary(
        n=prepared.n_rows, task=task, input_kind=prepared.input_kind, temperature=temperature,
        nll={"before": nll_b, "after": nll_a},
        ece={"before": m_before["ece_15_equal_width"], "after": m_after["ece_15_equal_width"]},
        metrics=named_metrics(m_before, m_after, task), per_class=rows, global_rule=g, **found)
