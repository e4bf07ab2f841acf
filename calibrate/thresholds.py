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

:func:`search_per_class` searches every class at once: one sort by (class,
score), then segment reductions over the candidates of all classes, so that
a thousand classes cost about what one search over all rows does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import guarantee, setops
from .errors import check_unit_interval, invalid

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
    def accepts_all(self) -> bool:
        return self.value == ACCEPT_ALL

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Candidates:
    """Distinct scores in decreasing order, with cumulative counts.

    At threshold ``values[j]`` the rule accepts ``n[j]`` rows, ``k[j]`` of them
    correct; ``e[j]`` is the sum of their expected probabilities of being
    correct (None without them).
    """
    values: np.ndarray
    n: np.ndarray
    k: np.ndarray
    e: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {k: (None if v is None else v.tolist()) for k, v in self.__dict__.items()}


def _sorted_candidates(s: np.ndarray, correct: np.ndarray, expected: np.ndarray | None,
                       group_start: np.ndarray) -> tuple:
    """Candidates of rows already sorted by (group, decreasing score): the end of
    each run of tied scores within a group, with counts cumulated per group.
    ``group_start[g]`` is where group g's rows begin (one past the end last).
    Returns (ends, n, k, e) over all groups' candidates, in row order."""
    m = s.size
    new_group = np.zeros(m, bool)
    new_group[group_start[:-1][group_start[:-1] < m]] = True
    last = np.ones(m, bool)
    last[:-1] = (s[1:] != s[:-1]) | new_group[1:]
    ends = np.flatnonzero(last)
    hits = np.cumsum(correct, dtype=np.int64)
    gid = np.searchsorted(group_start, ends, side="right") - 1
    first = group_start[gid]
    before = np.where(first > 0, hits[np.maximum(first - 1, 0)], 0)
    n = ends - first + 1
    k = hits[ends] - before
    e = None
    if expected is not None:
        ce = np.cumsum(np.asarray(expected, dtype=np.float64))
        e = ce[ends] - np.where(first > 0, ce[np.maximum(first - 1, 0)], 0.0)
    return ends, n, k, e


def candidates(scores: np.ndarray, correct: np.ndarray,
               expected: np.ndarray | None = None) -> Candidates:
    """The :class:`Candidates` of one rule over ``scores``."""
    order = np.argsort(scores, kind="stable")[::-1]
    s = np.asarray(scores)[order]
    hits = np.cumsum(np.asarray(correct)[order], dtype=np.int64)
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    e = None
    if expected is not None:
        e = np.cumsum(np.asarray(expected, dtype=np.float64)[order])[ends]
    return Candidates(s[ends], ends + 1, hits[ends], e)


def _midpoint(hi: float, lo: float) -> float:
    """A float strictly above ``lo`` and at most ``hi``, halfway where possible."""
    mid = lo + (hi - lo) / 2.0
    return float(mid if lo < mid <= hi else hi)


def search(scores: np.ndarray, correct: np.ndarray, precision: float,
           confidence: float | None = None, alpha: float | None = None,
           expected: np.ndarray | None = None,
           start_predictions: int = guarantee.START_PREDICTIONS) -> Threshold:
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
    check_unit_interval("precision", precision)
    check_unit_interval("confidence", confidence, allow_none=True)
    if len(scores) != len(correct):
        raise invalid("correct", f"one per score ({len(scores)})", f"{len(correct)}")
    if len(scores) and np.isnan(scores).any():
        raise invalid("scores", "scores that are numbers", "NaN")
    if len(scores) == 0:
        return Threshold(None, 0, 0, None, None, "no-predictions")
    c = candidates(scores, correct, expected)
    return _choose(c.values, c.n, c.k, c.e, precision, confidence, alpha, start_predictions)


def _choose(values: np.ndarray, n: np.ndarray, k: np.ndarray, e: np.ndarray | None,
            precision: float, confidence: float | None, alpha: float | None,
            start_predictions: int) -> Threshold:
    """The threshold of one rule from its candidates (see :func:`search`)."""
    plain = np.flatnonzero(k / n >= precision)
    if plain.size == 0:
        return Threshold(None, 0, 0, None, None, "unreachable")
    if confidence is None:
        return _at(values, n, k, int(plain[-1]), None, "ok")
    alpha = 1.0 - confidence if alpha is None else alpha
    if n[-1] < guarantee.min_certifiable(precision, alpha):
        return Threshold(None, 0, 0, None, None, "too-few")
    start = guarantee.start_index(n, e, start_predictions)
    j = guarantee.fixed_sequence_counts(k, n, precision, alpha, start)
    if j is None:
        return Threshold(None, 0, 0, None, None, "uncertified")
    return _at(values, n, k, j, alpha, "ok")


def _at(values: np.ndarray, n: np.ndarray, k: np.ndarray, j: int, alpha: float | None,
        status: str) -> Threshold:
    value = _midpoint(values[j], values[j + 1]) if j + 1 < len(values) else ACCEPT_ALL
    lb = None if alpha is None else float(guarantee.lower_bound(k[j], n[j], 1.0 - alpha))
    return Threshold(value, int(n[j]), int(k[j]), float(k[j] / n[j]), lb, status)


def search_per_class(classes: np.ndarray, scores: np.ndarray, correct: np.ndarray,
                     n_classes: int, precision: float, confidence: float | None = None,
                     alpha: float | None = None, expected: np.ndarray | None = None,
                     start_predictions: int = guarantee.START_PREDICTIONS) -> list[Threshold]:
    """:func:`search` for each class on the rows predicted as that class, all at once.

    ``classes[i]`` is the class row i would be predicted as.  Returns a list of
    length ``n_classes``, each entry equal to ``search`` on that class's rows.
    """
    classes = np.asarray(classes)
    order = np.lexsort((-np.asarray(scores, dtype=np.float64), classes))
    bounds = np.searchsorted(classes[order], np.arange(n_classes + 1))
    return search_sorted(bounds, np.asarray(scores)[order], np.asarray(correct)[order],
                         None if expected is None else np.asarray(expected)[order],
                         precision, confidence, alpha, start_predictions)


def search_columns(scores: np.ndarray, correct: np.ndarray, precision: float,
                   confidence: float | None = None, alpha: float | None = None,
                   expected: np.ndarray | None = None,
                   start_predictions: int = guarantee.START_PREDICTIONS) -> list[Threshold]:
    """:func:`search` on each column of (N, C) ``scores`` (multilabel: the classes
    are the columns), from one sort along the rows."""
    n, c = scores.shape
    order = np.argsort(-scores, axis=0, kind="stable").T          # (C, N)
    cols = np.arange(c)[:, None]
    bounds = np.arange(c + 1) * n
    return search_sorted(bounds, scores.T[cols, order].ravel(), correct.T[cols, order].ravel(),
                         None if expected is None else expected.T[cols, order].ravel(),
                         precision, confidence, alpha, start_predictions)


def search_sorted(bounds: np.ndarray, s: np.ndarray, correct: np.ndarray,
                  expected: np.ndarray | None, precision: float, confidence: float | None,
                  alpha: float | None, start_predictions: int) -> list[Threshold]:
    """The per-group search on rows sorted by (group, decreasing score), group g
    in ``bounds[g]:bounds[g + 1]``.

    Small groups are decided together by segment reductions over their
    candidates; groups with more candidates than :data:`guarantee.START_GRID`
    (whose start is looked for on a grid) one at a time.  Either way each
    group gets exactly what :func:`search` gives it.
    """
    g = len(bounds) - 1
    ends, n, k, e = _sorted_candidates(s, correct, expected, bounds)
    gid = np.searchsorted(bounds, ends, side="right") - 1
    cb = np.searchsorted(gid, np.arange(g + 1))            # candidates of group g
    out: list[Threshold | None] = [None] * g
    sizes = np.diff(cb)
    for j in np.flatnonzero(sizes == 0):
        out[j] = Threshold(None, 0, 0, None, None, "no-predictions")
    big = np.flatnonzero(sizes > guarantee.START_GRID)
    for j in big:
        sl = slice(cb[j], cb[j + 1])
        out[j] = _choose(s[ends[sl]], n[sl], k[sl], None if e is None else e[sl],
                         precision, confidence, alpha, start_predictions)
    small = np.flatnonzero((sizes > 0) & (sizes <= guarantee.START_GRID))
    if small.size:
        chosen, status = _choose_small(small, cb, n, k, e, precision, confidence, alpha,
                                       start_predictions)
        a = None if confidence is None else (1.0 - confidence if alpha is None else alpha)
        for j, jj, st in zip(small, chosen, status, strict=True):
            if st != "ok":
                out[j] = Threshold(None, 0, 0, None, None, st)
            else:
                sl = slice(cb[j], cb[j + 1])
                out[j] = _at(s[ends[sl]], n[sl], k[sl], int(jj - cb[j]), a, "ok")
    return out  # type: ignore[return-value]


def _elementwise(fn: Any, *arrays: np.ndarray) -> np.ndarray:
    """``fn`` of aligned arrays, value by value, computed in chunks on the
    thread pool (the incomplete beta function dominates a search over many
    classes; scipy's ufuncs release the GIL)."""
    from .backends.local import row_slices, run_chunks

    parts = run_chunks(fn, arrays, row_slices(len(arrays[0]), 8192))
    return np.concatenate(parts) if parts else np.empty(0)


def _choose_small(groups: np.ndarray, cb: np.ndarray, n: np.ndarray, k: np.ndarray,
                  e: np.ndarray | None, precision: float, confidence: float | None,
                  alpha: float | None, start_predictions: int) -> tuple:
    """:func:`_choose` for many groups at once: the chosen candidate index (into
    the concatenated candidates) and the status of each group.  The candidates
    of ``groups`` are contiguous runs cb[g]:cb[g + 1] of the arrays."""
    sel = np.concatenate([np.arange(cb[j], cb[j + 1]) for j in groups]) \
        if groups.size != len(cb) - 1 else np.arange(cb[-1])
    lens = cb[groups + 1] - cb[groups]
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))          # into sel
    stops = starts + lens
    nn, kk = n[sel], k[sel]
    local = np.arange(sel.size)
    seg = np.repeat(np.arange(groups.size), lens)
    ok = kk / nn >= precision
    last_ok = np.maximum.reduceat(np.where(ok, local, -1), starts)
    status = np.where(last_ok < 0, "unreachable", "ok").astype(object)
    if confidence is None:
        return sel[np.maximum(last_ok, 0)], status
    a = 1.0 - confidence if alpha is None else alpha
    total = nn[stops - 1]
    status[(status == "ok") & (total < guarantee.min_certifiable(precision, a))] = "too-few"
    if e is None:
        want = np.minimum(start_predictions, total)
        start = guarantee.segment_first(nn >= want[seg], starts, stops)
    else:
        start, _ = guarantee.best_expected(e[sel], nn, starts, _elementwise)
    fail = _elementwise(lambda k, n: guarantee.p_exceeds(k, n, precision, a), kk, nn)
    first_fail = guarantee.segment_first(fail & (local >= start[seg]), starts, stops)
    status[(status == "ok") & (first_fail == start)] = "uncertified"
    return sel[np.maximum(first_fail - 1, 0)], status


# -- the same search on cells of a histogram (calibrate.refinement) ------------------

@dataclass(frozen=True)
class Pending:
    """The search cannot decide yet: the cells ``nodes`` are needed to go on.

    ``ahead`` holds cells likely needed after them, in three tiers by the step
    that will want them: (the sequence's, the start's, the start's grid's);
    each may be empty, and none repeats a cell of ``nodes`` or of an earlier
    tier.  The sequence's are a few cells, the grid's the most: a pass takes
    the tiers in that order while its budget lasts (asking early saves passes;
    see :func:`search_items`).  ``guess``: where a start still undecided stands
    so far (the best exact candidate, or about the best end of a cell when none
    is exact yet)."""
    nodes: np.ndarray
    guess: int | None = None
    ahead: tuple[np.ndarray, ...] = ()


#: The tiers of :attr:`Pending.ahead`, in the order a pass takes them.
AHEAD_TIERS = ("sequence", "start", "grid")


def _expected_bounds(it: Any, expit_expected: bool,
                     at: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on one value's expected probability in each item (or the items
    ``at``): expit of the item's value range (widened by float slack) when the
    expected probability is the sigmoid of the value, else [0, 1]."""
    lo, hi = (it.lo, it.hi) if at is None else (it.lo[at], it.hi[at])
    if not expit_expected:
        return np.zeros(lo.size), np.ones(lo.size)
    from scipy import special
    with np.errstate(invalid="ignore"):
        slack = 1e-12 * (1.0 + np.abs(np.where(np.isfinite(lo), lo, 0))
                         + np.abs(np.where(np.isfinite(hi), hi, 0)))
    return (np.clip(special.expit(lo - slack) - 1e-15, 0, 1),
            np.clip(special.expit(hi + slack) + 1e-15, 0, 1))


def waiting(chosen: np.ndarray | None, start: int | Pending, seq: Any) -> Pending:
    """What a search waits on when its plain choice (the cells ``chosen``, None
    when decided) or its start (:class:`Pending`) is not decided yet: those
    cells first, the start's after the plain choice's, and ahead, tier by
    tier, the sequence's from the guess (``seq``), the start's, and the
    start's grid's, none repeating an earlier one."""
    empty = np.empty(0, np.int64)
    start_nodes = start.nodes if isinstance(start, Pending) else empty
    need, by_start = (chosen, start_nodes) if chosen is not None else (start_nodes, empty)
    tiers = [seq.nodes if isinstance(seq, Pending) else empty, by_start,
             start.ahead[0] if isinstance(start, Pending) and start.ahead else empty]
    taken, ahead = need, []
    for t in tiers:
        ahead.append(setops.setdiff(t, taken))
        taken = setops.union(taken, t)
    return Pending(need, None, tuple(ahead))


#: Pieces a blob's range of counts is cut into when bounding a candidate's
#: expected lower bound (the bound's slack shrinks with the pieces).
_PIECES = 8


@functools.lru_cache(maxsize=16)
def _fractions(pieces: int) -> np.ndarray:
    """0, 1 / pieces, ..., 1 (read-only, made once)."""
    f = np.linspace(0, 1, pieces + 1)
    f.setflags(write=False)
    return f


def _pieces(it: Any, N: np.ndarray, E: np.ndarray, at: np.ndarray, n_lo: np.ndarray,
            emax: np.ndarray | None, pieces: int) -> tuple:
    """The range of counts of the candidate at each of ``at`` (a blob), [n_lo,
    the blob's end], cut in ``pieces``: per piece its lowest count a and highest
    b, and (given ``emax``, else None) the most its expected sum can be at b
    (the blob's start plus b - start values of at most ``emax`` each); with
    the blob's start (n, e)."""
    n_before, e_before = (N - it.n)[at], (E - it.e)[at]
    n_hi = N[at].astype(np.float64)
    cuts = n_lo[:, None] + (n_hi - n_lo)[:, None] * _fractions(pieces)
    a = np.maximum(np.floor(cuts[:, :-1]), n_lo[:, None])
    b = np.minimum(np.ceil(cuts[:, 1:]), n_hi[:, None])
    e_top = None if emax is None else \
        np.minimum(E[at][:, None], e_before[:, None] + (b - n_before[:, None]) * emax[:, None])
    return a, b, e_top, n_before, e_before


def _may_reach(it: Any, N: np.ndarray, E: np.ndarray, at: np.ndarray, n_lo: np.ndarray,
               emax: np.ndarray, pieces: int, best: Any) -> np.ndarray:
    """Which of the candidates at ``at`` (in blobs; ``emax`` their values' largest
    expected probability) may have an expected lower bound of at least
    ``best``, cutting each one's range of counts in ``pieces`` (one place per
    blob; a candidate is live once one piece may).  One
    incomplete beta value per piece instead of a root: the Clopper-Pearson
    bound at real k, n is below p exactly when I_p(k, n - k + 1) > level
    (:func:`guarantee.may_reach`: p is ``best`` less a margin far above the
    computed root's error).  ``best``: one bar, or one per candidate (the
    candidates of several groups at once, :mod:`calibrate.group_search`)."""
    a, _, k, _, _ = _pieces(it, N, E, at, n_lo, emax, pieces)
    bar = np.broadcast_to(np.asarray(best, dtype=np.float64), at.shape)
    # the pieces in order of their free bound k / a, most promising first: a
    # live candidate is most often shown live by its first piece tested
    rank = np.argsort(-(k / a), axis=1, kind="stable")
    keep = np.zeros(at.size, bool)
    todo = np.arange(at.size)
    for col in range(pieces):
        piece = rank[todo, col]
        below = ~guarantee.may_reach(k[todo, piece], a[todo, piece], bar[todo])
        keep[todo[~below]] = True
        todo = todo[below]
    return keep


def _lowest_lb(it: Any, N: np.ndarray, E: np.ndarray, at: np.ndarray, n_lo: np.ndarray,
               emin: np.ndarray, pieces: int) -> np.ndarray:
    """A lower bound on the expected lower bound of the candidate at each of
    ``at`` (exact where the item is exact; ``emin`` the least expected
    probability of its values).  In a blob the candidate's count n lies in
    [n_lo, the blob's end] and its expected sum is at least the blob's start
    plus (n - start) values of ``emin``; the range of n is cut in pieces, and
    the bound is taken per piece (the expected lower bound grows with the
    expected sum, falls with n)."""
    a, b, _, n_before, e_before = _pieces(it, N, E, at, n_lo, None, pieces)
    e_bot = e_before[:, None] + (a - n_before[:, None]) * emin[:, None]
    lo_b = guarantee.expected_lower_bound(e_bot, b).min(axis=1)
    exact = it.exact[at]
    if exact.any():
        lo_b[exact] = guarantee.expected_lower_bound(E[at][exact], N[at][exact])
    return lo_b


def _p_upper_exceeds(it: Any, N: np.ndarray, K: np.ndarray, p: float, alpha: float,
                     idx: np.ndarray) -> np.ndarray:
    """Whether the largest p-value any candidate inside blobs ``idx`` can have
    exceeds ``alpha``: the largest is with all of their wrong values first (k
    stays, n grows by them), then every added value right (which only lowers it)."""
    n_before, k_before = N[idx] - it.n[idx], K[idx] - it.k[idx]
    w = it.n[idx] - it.k[idx]
    k_worst = np.where(w >= 1, k_before, k_before + 1)
    n_worst = np.where(w >= 1, n_before + w, n_before + 1)
    return guarantee.p_exceeds(k_worst, n_worst, p, alpha)


#: The first block of p-values a sequence's scan computes (each next one doubles).
SEQUENCE_BLOCK = 64

