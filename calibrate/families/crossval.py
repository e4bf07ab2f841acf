"""``auto``: the family with the lowest cross-validated held-out NLL.

K-fold cross-validation (K = 5) on the held-out set: each family is fitted on
K - 1 folds and scored on the remaining one, for each fold; its CV NLL is the
mean NLL over all out-of-fold rows (multilabel: over all (row, label) pairs)
and its CV ECE the 15-bin equal-width ECE of the pooled out-of-fold
(confidence, outcome) pairs (:func:`calibrate.metrics.ece`).  NLL, a proper
scoring rule, decides; the ECE is reported beside it (the prototype found
that rules weighing ECE in the choice gave up NLL and gained no ECE).

The choice (``rule="lowest"``, the default): the lowest CV NLL, CV NLLs
within 1e-5 relative counting as ties won by the simpler family (families
are listed simplest first).  The fits are exact to about that, and the
mixture gains less than that on data that one temperature calibrates
exactly: without the tie it won 9 of 20 such draws of 3000 rows, with a
weight too small to move a held-out NLL by 1e-5.  Platt still wins 5 of 20
pure-temperature binary draws (held-out cost ~0.0003), by noise.
``rule="one-se"`` takes instead the simplest family within one standard
error of the lowest (the one-standard-error rule of Breiman et al.,
Classification and Regression Trees, 1984; Hastie, Tibshirani & Friedman,
Elements of Statistical Learning, 7.10), the standard error being that of
the paired out-of-fold difference (rows, or whole groups, as units:
cluster-robust).  It keeps the temperature on such data, but on the real
IMDB set it also kept the temperature where isotonic was better held out
(ECE 1.6% against 0.8%).
The winner is refitted on all rows.

Folds are a function of the row count, the groups and the seed alone, never
of how the rows are chunked or stored.  With ``groups`` (one id per row,
e.g. the image of a detection) whole groups go to one fold.  On large data
the cross-validation runs on a seeded random subset of about ``CV_ELEMENTS``
scores (whole groups, when grouped), the full-data refit is warm-started from
the mean of the fold fits, and the per-class families (ovr-platt, vector)
are cross-validated only when a split-half score test
(:func:`.vector.split_half_signal`) finds per-class signal: without it they
can only fit noise, and they cost most.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import metrics
from ..errors import invalid
from ..scores import check_block_arguments
from . import vector
from ._common import Family
from ._passes import take

#: Scores (rows x columns) in the cross-validation subset at most.
CV_ELEMENTS = 10_000_000
#: Above this many scores in the cross-validation rows, per-class families
#: are cross-validated only when the split-half test finds per-class signal.
SCREEN_ELEMENTS = 2_000_000
#: The split-half z-score that counts as per-class signal.
SIGNAL_Z = 3.0
N_FOLDS = 5
RULES = ("lowest", "one-se")
PER_CLASS = ("ovr-platt", "vector")
_TIE = 1e-5


@dataclass(frozen=True)
class FamilyScore:
    """One family's cross-validation: mean out-of-fold NLL and 15-bin ECE,
    the standard error of its NLL's paired difference to the lowest (0 for
    the lowest), and the seconds its fold fits and evaluations took; when it
    was not scored, ``cv_nll`` is None and ``note`` says why."""
    method: str
    cv_nll: float | None
    cv_ece: float | None
    se: float | None
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class AutoResult:
    """What ``auto`` chose, the winner refitted on all rows (``fitted``),
    every family's :class:`FamilyScore`, and how the folds were made."""
    choice: str
    fitted: Family | None      # None when only comparing (refit=False)
    scores: tuple[FamilyScore, ...]
    rule: str
    n_folds: int
    cv_rows: int
    n_rows: int
    grouped: bool
    signal_z: float | None     # the split-half test, when it ran
    refit_seconds: float
    #: The uncalibrated model (T = 1) scored on the same out-of-fold rows.
    baseline: FamilyScore | None = None
    #: Per cross-validation row, each scored family's out-of-fold NLL and the
    #: uncalibrated model's ("uncalibrated"); ``units`` the rows' group codes.
    oof_nll: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    units: np.ndarray | None = field(default=None, repr=False)

    def score(self, method: str) -> FamilyScore | None:
        """The :class:`FamilyScore` of ``method`` (None if not compared)."""
        return next((s for s in self.scores if s.method == method), None)

    def paired_se(self, a: str, b: str) -> float:
        """Standard error of the mean out-of-fold NLL difference a - b (rows,
        or whole groups, as units)."""
        return paired_se(self.oof_nll[a] - self.oof_nll[b], self.units)

    def to_dict(self) -> dict[str, Any]:
        """The cross-validation as the fit summary reports it (no timings: a
        fit of the same data writes the same file)."""
        def row(s: FamilyScore) -> dict[str, Any]:
            return {"method": s.method, "cv_nll": s.cv_nll, "cv_ece": s.cv_ece,
                    "se": s.se} | ({"skipped": s.note} if s.note else {})
        return {"choice": self.choice, "rule": self.rule, "folds": self.n_folds,
                "rows": self.cv_rows, "of_rows": self.n_rows, "grouped": self.grouped,
                "signal_z": self.signal_z, "families": [row(s) for s in self.scores],
                "uncalibrated": None if self.baseline is None else {
                    "cv_nll": self.baseline.cv_nll, "cv_ece": self.baseline.cv_ece}}


def _group_codes(groups: npt.ArrayLike | None, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise invalid("groups", f"one group id per row ({n})", f"shape {g.shape}")
    return np.unique(g, return_inverse=True)[1].reshape(-1)


def cv_rows(n: int, n_cols: int, groups: npt.ArrayLike | None = None, seed: int = 0,
            max_elements: int = CV_ELEMENTS) -> np.ndarray:
    """Sorted indices of the rows cross-validation runs on: all of them when
    n x n_cols <= max_elements, else a seeded random subset of about
    max_elements / n_cols rows (whole groups when ``groups`` are given)."""
    want = max(1, int(max_elements) // max(1, int(n_cols)))
    if n <= want:
        return np.arange(n)
    rng = np.random.default_rng([seed, 1])
    codes = _group_codes(groups, n)
    if codes is None:
        return np.sort(rng.choice(n, want, replace=False))
    sizes = np.bincount(codes)
    order = rng.permutation(sizes.size)
    keep = order[:int(np.searchsorted(np.cumsum(sizes[order]), want)) + 1]
    return np.flatnonzero(np.isin(codes, keep))


def fold_ids(n: int, n_folds: int = N_FOLDS, groups: npt.ArrayLike | None = None,
             seed: int = 0) -> npt.NDArray[np.int64]:
    """Fold of each of ``n`` rows (int64 in [0, n_folds)), seeded.

    Without groups: a random permutation dealt round-robin (folds differ in
    size by at most one row).  With groups: whole groups, largest first
    (ties in a seeded random order), each to the fold with the fewest rows so
    far (ties: the lowest fold).
    """
    rng = np.random.default_rng([seed, 2])
    codes = _group_codes(groups, n)
    if codes is None:
        if n < n_folds:
            raise invalid("cross-validation", f"at least {n_folds} rows", f"{n}")
        folds = np.empty(n, np.int64)
        folds[rng.permutation(n)] = np.arange(n) % n_folds
        return folds
    sizes = np.bincount(codes)
    if sizes.size < n_folds:
        raise invalid("groups", f"at least {n_folds} groups for {n_folds}-fold "
                      "cross-validation", f"{sizes.size}")
    shuffled = rng.permutation(sizes.size)
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    load = np.zeros(n_folds, np.int64)
    group_fold = np.empty(sizes.size, np.int64)
    for g in order:   # one step per group: fine for the ~1e5 groups of real sets
        k = int(np.argmin(load))
        group_fold[g] = k
        load[k] += sizes[g]
    return group_fold[codes]


def paired_se(d: npt.ArrayLike, units: np.ndarray | None = None) -> float:
    """Standard error of the mean of per-row differences ``d`` (float64),
    cluster-robust over ``units`` (int codes; None: every row its own):
    sqrt(U / (U - 1) sum_u (D_u - n_u mean)^2) / N with D_u the unit sums."""
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    if units is None:
        sums, counts = d, np.ones(n)
    else:
        sums, counts = np.bincount(units, d), np.bincount(units).astype(np.float64)
    u = sums.size
    if u < 2:
        return 0.0
    resid = sums - counts * d.mean()
    return float(np.sqrt(u / (u - 1) * np.sum(resid * resid)) / n)


def choose(nll: dict[str, np.ndarray], rule: str = "lowest",
           units: np.ndarray | None = None) -> tuple[str, dict[str, float]]:
    """The winning family from out-of-fold per-row NLLs ``nll`` (a dict,
    simplest family first).  Returns ``(choice, se)``: se maps each family to
    the standard error of its paired difference to the lowest.  Differences
    below ``_TIE`` relative are ties, won by the simpler family."""
    mean = {m: float(np.mean(v)) for m, v in nll.items()}
    best = min(nll, key=mean.__getitem__)
    se = {m: paired_se(nll[m] - nll[best], units) for m in nll}
    slack = _TIE * abs(mean[best])
    for m in nll:
        if mean[m] - mean[best] <= slack + (se[m] if rule == "one-se" else 0.0):
            return m, se
    raise AssertionError("unreachable: the lowest family ties with itself")


def _warm(fitted: Any) -> np.ndarray | None:
    """A fitted family's parameters as a warm start for its own ``fit``."""
    m = fitted.method
    if m == "mix":
        return np.array([fitted.temperature, fitted.weight])
    if m == "vector":
        return np.array([fitted.a, fitted.b])
    if m in ("platt", "ovr-platt"):
        return np.column_stack([fitted.a, fitted.b])
    return None


def _cross_validate(method: str, z: np.ndarray, y: np.ndarray, folds: np.ndarray, task: str,
                    temps: list[float] | None, classes: Any, options: dict[str, Any]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """Out-of-fold NLL (per row; multilabel: per row, mean over labels),
    ECE pairs and fold fits of one family.  Each fold's fit starts where the
    previous fold's ended (the training sets share 3/4 of their rows: a few
    Newton steps fewer, the same optimum)."""
    from . import confidence_pairs, fit, nll_rows
    n = z.shape[0]
    nll = np.empty(n)
    conf, outcome = [], []
    fits: list[Any] = []   # the fold fits of family ``method``
    for k in range(int(folds.max()) + 1):
        train, test = folds != k, folds == k
        f = fit(method, z[train], y[train], task, classes=classes,
                temperature=None if temps is None else temps[k],
                init=_warm(fits[-1]) if fits else None, **options)
        rows = nll_rows(f, z[test], y[test])
        nll[test] = rows if rows.ndim == 1 else rows.mean(axis=1)
        c, o = confidence_pairs(f, z[test], y[test])
        conf.append(c)
        outcome.append(o)
        fits.append(f)
    return nll, np.concatenate(conf), np.concatenate(outcome), fits


def _score_families(names: tuple[str, ...], zc: np.ndarray, yc: np.ndarray, folds: np.ndarray,
                    task: str, seed: int, classes: Any, options: dict[str, Any],
                    screen_elements: int | None = None, keep: tuple[str, ...] = ()
                    ) -> tuple[dict[str, Any], dict[str, tuple[str, float]], float | None]:
    """Cross-validate each family: ``(results, notes, signal)``, results[m]
    = (out-of-fold NLL, confidences, outcomes, fold fits, seconds), notes[m]
    = (why it was not scored, seconds), signal = the split-half z or None.
    Per-class families (but those in ``keep``) are screened above
    ``screen_elements`` scores."""
    from . import fit
    results: dict[str, Any] = {}
    notes: dict[str, tuple[str, float]] = {}
    temps: list[float] | None = None
    signal: float | None = None
    if screen_elements is None:
        screen_elements = SCREEN_ELEMENTS
    for m in names:
        t0 = time.perf_counter()
        if (m in PER_CLASS and m not in keep and task == "multiclass"
                and zc.size > screen_elements):
            if signal is None:
                t_all = fit("temperature", zc, yc, task).temperature[0]
                signal = vector.split_half_signal(zc, yc, t_all, seed)
            if signal < SIGNAL_Z:
                notes[m] = (f"no per-class signal (split-half z = {signal:.2f} < {SIGNAL_Z:g})",
                            time.perf_counter() - t0)
                continue
        try:
            out = _cross_validate(m, zc, yc, folds, task,
                                  temps if task == "multiclass" else None, classes,
                                  options if m == "vector" else {})
        except (ValueError, np.linalg.LinAlgError) as exc:
            notes[m] = (str(exc), time.perf_counter() - t0)
            continue
        if m == "temperature":
            temps = [f.temperature[0] for f in out[3]]
        if np.all(np.isfinite(out[0])):
            results[m] = out + (time.perf_counter() - t0,)
        else:
            notes[m] = ("a non-finite out-of-fold NLL", time.perf_counter() - t0)
    return results, notes, signal


def _baseline(zc: np.ndarray, yc: np.ndarray, task: str) -> tuple[FamilyScore, np.ndarray]:
    """The uncalibrated model (T = 1) on the cross-validation rows: its
    out-of-fold figures are its in-sample ones (nothing is fitted)."""
    from . import confidence_pairs, identity, nll_rows
    one = identity(task, 1 if zc.ndim == 1 else zc.shape[1])
    rows = nll_rows(one, zc, yc)
    conf, outcome = confidence_pairs(one, zc, yc)
    nll = rows if rows.ndim == 1 else rows.mean(axis=1)
    return FamilyScore("uncalibrated", float(nll.mean()), metrics.ece(conf, outcome), None,
                       0.0), nll


def _refit(choice: str, fold_fits: list[Any], z: Any, y: npt.ArrayLike, task: str,
           classes: Any, fitted_temperature: Any, options: dict[str, Any]) -> Family:
    """The chosen family fitted on all rows, warm-started from the mean of its
    fold fits (a multiclass family other than temperature from the full-data
    temperature too); the temperature family already fitted, when given."""
    from . import fit
    starts: list[Any] = [_warm(f) for f in fold_fits]
    init = None if starts[0] is None else np.mean(starts, axis=0)
    if choice == "temperature" and fitted_temperature is not None:
        return fitted_temperature
    temperature = None
    if task == "multiclass" and choice != "temperature":
        try:
            temperature = (fitted_temperature or fit("temperature", z, y, task)).temperature[0]
        except ValueError:      # no temperature fits: the family starts on its own
            temperature = None
    return fit(choice, z, y, task, temperature=temperature, init=init, classes=classes,
               **(options if choice == "vector" else {}))


# long: a docstring for its many options; the body checks, compares, then refits
def auto(z: Any, y: npt.ArrayLike, task: str, groups: npt.ArrayLike | None = None,
         methods: Sequence[str] | None = None, n_folds: int = N_FOLDS, seed: int = 0,
         rule: str = "lowest", max_cv_elements: int = CV_ELEMENTS, classes: Any = None,
         refit: bool = True, fitted_temperature: Any = None,
         screen_elements: int | None = None, keep: tuple[str, ...] = (),
         **options: Any) -> AutoResult:
    """Choose a family by K-fold cross-validated NLL and refit it on all rows.

    ``z``: logits ((N, C) multiclass or multilabel, (N,) binary; numpy, a
    row source or a dask array); ``y``: labels; ``groups``: one id per row,
    or None; ``methods``: the families to compare (default: all for the
    task, simplest first); ``rule``: "lowest" or "one-se" (see the module).
    ``refit=False`` only compares (``fitted`` is then None);
    ``fitted_temperature``: the temperature family already fitted on all
    rows: the refit when temperature wins, and the T where another
    multiclass family's refit starts.  ``screen_elements`` (default
    :data:`SCREEN_ELEMENTS`): above this many cross-validation scores the
    per-class families (but those in ``keep``) are cross-validated only when
    the split-half test finds per-class signal.  Returns an :class:`AutoResult`,
    with the uncalibrated model's figures on the same rows (``baseline``).
    """
    check_block_arguments(z, y if hasattr(y, "shape") else np.asarray(y), task)
    from . import check_method
    from . import methods as task_methods
    names = task_methods(task) if methods is None else tuple(methods)
    for m in names:
        if m == "auto":
            raise invalid("method", "a family name in auto's list", "'auto'")
        check_method(m, task)
    if rule not in RULES:
        raise invalid("rule", "one of " + ", ".join(RULES), repr(rule))
    n = z.shape[0]
    n_cols = 1 if len(z.shape) == 1 else z.shape[1]
    rows = cv_rows(n, n_cols, groups, seed, max_cv_elements)
    zc, yc = take(z, rows), take(np.asarray(y), rows)
    codes = _group_codes(groups, n)
    units = None if codes is None else np.unique(codes[rows], return_inverse=True)[1]
    folds = fold_ids(rows.size, n_folds, units, seed)
    results, notes, signal = _score_families(names, zc, yc, folds, task, seed, classes, options,
                                             screen_elements, keep)
    if not results:
        raise invalid("method auto", "at least one family that fits every fold",
                      "; ".join(f"{m}: {note}" for m, (note, _) in notes.items()))
    choice, se = choose({m: r[0] for m, r in results.items()}, rule, units)
    scores = tuple(
        FamilyScore(m, float(results[m][0].mean()), metrics.ece(results[m][1], results[m][2]),
                    se[m], results[m][4]) if m in results
        else FamilyScore(m, None, None, None, notes[m][1], notes[m][0]) for m in names)
    baseline, base_nll = _baseline(zc, yc, task)
    oof = {m: r[0] for m, r in results.items()} | {"uncalibrated": base_nll}
    if not refit:
        return AutoResult(choice=choice, fitted=None, scores=scores, rule=rule,
                          n_folds=n_folds, cv_rows=int(rows.size), n_rows=int(n),
                          grouped=groups is not None, signal_z=signal, refit_seconds=0.0,
                          baseline=baseline, oof_nll=oof, units=units)
    t0 = time.perf_counter()
    fitted = _refit(choice, results[choice][3], z, y, task, classes, fitted_temperature, options)
    return AutoResult(choice=choice, fitted=fitted, scores=scores, rule=rule, n_folds=n_folds,
                      cv_rows=int(rows.size), n_rows=int(n), grouped=groups is not None,
                      signal_z=signal, refit_seconds=time.perf_counter() - t0,
                      baseline=baseline, oof_nll=oof, units=units)
