"""What a fit's cross-validation and its inputs show, for the summary.

* ``cross_validation``: every family's 5-fold cross-validated NLL and ECE
  next to the uncalibrated model's on the same rows, the choice, and what
  was skipped and why (:func:`calibrate.families.auto`).  It runs for
  ``method="auto"``, and for a given method on data of at most
  :data:`COMPARE_ELEMENTS` scores; the default fit on larger data stays a
  few passes over the rows.
* notes, one line each: a family clearly better than the given one (the
  hint); a chosen family whose cross-validated NLL or ECE is worse than no
  calibration at all, beyond noise; rows whose input probability of the
  true class is 0.
* ``lost_probability``: rows (multilabel: (row, label) pairs) whose
  probability input gives the true class a probability of 0, or one below
  the float type's smallest normal number (for a negative of a sigmoid
  task: a positive-class probability within the type's eps of 1), which the
  logits can only hold at their floor; how many, and how far they move the
  fit: the chosen family refitted without them, and the other rows' NLL
  under both fits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import families, kernels
from .errors import CalibrateError
from .families._passes import take
from .temperature import WorseThanChance

#: Scores (rows x scored columns) up to which a fit with a given method also
#: cross-validates every family of the task (its hint and the check against
#: no calibration): about 0.3 s at 100,000 scores here.  Above it the
#: default fit stays a few passes over the rows: run method="auto" there.
COMPARE_ELEMENTS = 100_000
#: A family is clearly better than the given one when its cross-validated
#: NLL is lower by this share and by two standard errors of the paired
#: out-of-fold difference.
CLEAR_MARGIN = 0.01
#: A calibration's cross-validated ECE counts as worse than none beyond this
#: (the 15-bin ECE's own noise at a few thousand rows is of this order) ...
ECE_SLACK = 0.01
#: ... and its NLL beyond two standard errors of the paired out-of-fold
#: difference and this share (a fit that only fits noise costs ~1/n).
NLL_SLACK = 1e-3


def findings(prepared: Any, names: list, method: str, fitted: Any, cv: Any,
             m_before: Any, m_after: Any) -> dict:
    """The :class:`calibrate.summary.FitSummary` fields the families add:
    method, calibration, accuracy, cross_validation, lost_probability, notes."""
    out: dict = {"method": fitted.method, "calibration": families.describe(fitted) | {
        "chosen_by": "auto" if method == "auto" else "given"}}
    if prepared.task == "multiclass":
        out["accuracy"] = {"before": m_before.accuracy, "after": m_after.accuracy}
    if isinstance(cv, str):   # why it did not run
        out["cross_validation"] = {"skipped": cv}
        notes = []
    else:
        out["cross_validation"] = cv.to_dict()
        notes = cv_notes(method, fitted, cv)
    lost = lost_probability(prepared, fitted, names)
    if lost is not None:
        out["lost_probability"] = lost
        notes.append(lost_note(lost, prepared.task))
    out["notes"] = tuple(notes)
    return out


def cv_notes(method: str, fitted: Any, cv: Any) -> list:
    """The hint (a clearly better family than the given one) and the warning
    (the chosen family worse than no calibration), from the cross-validation."""
    notes: list[str] = []
    chosen, best, base = cv.score(fitted.method), cv.score(cv.choice), cv.baseline
    if chosen is None or chosen.cv_nll is None:
        return notes
    if method != "auto" and best.method != fitted.method:
        gap = chosen.cv_nll - best.cv_nll
        if gap > max(2.0 * chosen.se, CLEAR_MARGIN * chosen.cv_nll):
            notes.append(
                f"hint: method {best.method} fits these data clearly better (5-fold "
                f"cross-validated NLL {best.cv_nll:.4f} vs {chosen.cv_nll:.4f} with "
                f"{fitted.method}, ECE {100 * best.cv_ece:.2f}% vs {100 * chosen.cv_ece:.2f}%): "
                f"--method {best.method} or --method auto")
    worse = []
    se = cv.paired_se(fitted.method, "uncalibrated")
    if chosen.cv_nll - base.cv_nll > max(2.0 * se, NLL_SLACK * base.cv_nll):
        worse.append(f"NLL {chosen.cv_nll:.4f} vs {base.cv_nll:.4f}")
    if chosen.cv_ece > base.cv_ece + ECE_SLACK:
        worse.append(f"ECE {100 * chosen.cv_ece:.2f}% vs {100 * base.cv_ece:.2f}%")
    if worse:
        notes.append(f"warning: {fitted.method} makes the cross-validated "
                     f"{' and '.join(worse)} worse than no calibration at all")
    return notes


def lost_probability(prepared: Any, fitted: Any, names: list) -> dict | None:
    """Rows whose probability input gives the true class probability 0 (see
    the module), and how far they move the fit; None if there are none (or
    the scores are logits)."""
    lost = lost_rows(prepared)
    count = 0 if lost is None else int(lost.sum())
    if lost is None or count == 0:
        return None
    z, task = prepared.logits, prepared.task
    out = {"count": count, "of": int(lost.size),
           "unit": "(row, label) pairs" if task == "multilabel" else "rows",
           "dtype": str(z.dtype)}
    effect = _effect(prepared, fitted, names, lost.any(axis=1) if lost.ndim == 2 else lost)
    return out if effect is None else out | effect


def lost_rows(prepared: Any) -> np.ndarray | None:
    """Which rows (multilabel: (row, label) pairs) lost the true class's
    probability (see the module); None for logits."""
    if prepared.input_kind == "logits":
        return None
    return prepared.logits.concat(kernels.lost_true_class, prepared.labels,
                                  args=(prepared.task,), label="checking probabilities")[0]


def refusal(exc: WorseThanChance, prepared: Any) -> WorseThanChance:
    """The temperature fit's refusal ("worse than chance"), saying so when rows
    whose true class has probability 0 may be the cause."""
    lost = lost_rows(prepared)
    if lost is None or not lost.any():
        return exc
    return type(exc)(f"{exc}; {int(lost.sum())} of {lost.size} rows give the true class "
                     "probability 0, which can make every temperature worse than none: "
                     "--method mix (or auto) absorbs them", exc.index)


def _effect(prepared: Any, fitted: Any, names: list, lost_rows: Any) -> dict | None:
    """The fitted family refitted without the lost rows (on the
    cross-validation subset of rows on large data), and the other rows' NLL
    under both fits."""
    z, y, task = prepared.logits, prepared.labels, prepared.task
    n = prepared.n_rows
    rows = families.cv_rows(n, 1 if len(z.shape) == 1 else z.shape[1])
    keep = ~lost_rows[rows]
    if keep.sum() < 10 or keep.all():
        return None
    zs, ys = take(z, rows), y[rows]
    m = fitted.method
    with_them: Any   # fitted families of method m (their parameters read below)
    without: Any
    try:
        with_them = fitted if rows.size == n else families.fit(m, zs, ys, task, classes=names)
        without = families.fit(m, zs[keep], ys[keep], task, classes=names)
    except CalibrateError:
        return None

    def nll(f: Any) -> float:
        return float(np.mean(families.nll_rows(f, zs[keep], ys[keep])))
    out = {"method": m, "rows_used": int(rows.size),
           "nll_other_rows": {"fit_with_them": nll(with_them), "fit_without_them": nll(without)}}
    if m in ("temperature", "mix"):
        t = [f.value if m == "temperature" else f.temperature for f in (with_them, without)]
        out["temperature"] = {"fit_with_them": _plain(t[0]), "fit_without_them": _plain(t[1])}
    return out


def _plain(v: Any) -> Any:
    return float(v) if np.ndim(v) == 0 else [float(x) for x in v]


def lost_note(lost: dict, task: str) -> str:
    """The summary's line on rows whose true class has input probability 0."""
    line = (f"note: {lost['count']} of {lost['of']} {lost['unit']} give the true class "
            "probability 0")
    if "nll_other_rows" in lost:
        o = lost["nll_other_rows"]
        line += (f"; {lost['method']} fitted without them: the other {lost['unit']}' NLL "
                 f"{o['fit_without_them']:.4f} instead of {o['fit_with_them']:.4f}")
        t = lost.get("temperature")
        if t is not None and np.ndim(t["fit_with_them"]) == 0:
            line += f", T = {t['fit_without_them']:.4g} instead of {t['fit_with_them']:.4g}"
    if task == "multiclass" and lost.get("method") == "temperature":
        line += "; --method mix (or auto) absorbs such rows"
    return line
