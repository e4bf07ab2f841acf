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


def search_items(it: Any, precision: float, confidence: float | None = None,
                 alpha: float | None = None, expit_expected: bool = True,
                 start_predictions: int = guarantee.START_PREDICTIONS) -> Threshold | Pending:
    """:func:`search` on a group's :class:`calibrate.refinement.Items`: the same
    :class:`Threshold`, or :class:`Pending` with the cells it must see first
    (and, ``ahead``, those the later steps will likely need: the plain choice,
    the start of the fixed sequence and the sequence wait on each other, and
    asking for a later step's cells in the same pass saves passes).

    Cells whose values are unknown ("blobs") are decided by bounds that hold
    for every arrangement of their values: a blob's last candidate accepts all
    of it (exact counts); a candidate inside it has between ``n`` and the
    blob's count, its correct ones between (count - blob's wrong ones) and
    (count capped by the blob's correct ones), its expected sum within the
    blob's range of expected probabilities.
    """
    if it.n.size == 0:
        return Threshold(None, 0, 0, None, None, "no-predictions")
    N, K, E = it.N, it.K, it.E
    chosen = _plain_choice(it, N, K, precision)
    if chosen is None:
        return Threshold(None, 0, 0, None, None, "unreachable")
    if confidence is None:
        return chosen if isinstance(chosen, Pending) else _at_item(it, N, K, chosen, None)
    alpha = 1.0 - confidence if alpha is None else alpha
    if N[-1] < guarantee.min_certifiable(precision, alpha):
        return chosen if isinstance(chosen, Pending) else \
            Threshold(None, 0, 0, None, None, "too-few")
    # Each step below waits on the one before; while one waits, the cells the
    # next will likely need come "ahead" (from the best start so far: most often
    # the sequence from there needs what it will need from the true start).
    # Only the answer's cells decide; asking ahead saves passes.
    start = _start_item(it, N, E, expit_expected, start_predictions)
    if isinstance(chosen, Pending) or isinstance(start, Pending):
        at = start.guess if isinstance(start, Pending) else start
        seq = _sequence(it, N, K, precision, alpha, at) if at is not None else None
        return waiting(chosen.nodes if isinstance(chosen, Pending) else None, start, seq)
    assert isinstance(start, int)
    j = _sequence(it, N, K, precision, alpha, start)
    if j is None or isinstance(j, Pending):
        return j if j is not None else Threshold(None, 0, 0, None, None, "uncertified")
    return _at_item(it, N, K, j, alpha)


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


def _plain_choice(it: Any, N: np.ndarray, K: np.ndarray, p: float) -> int | Pending | None:
    """The last item holding a candidate with held-out precision >= p (an item
    whose last candidate, or value, does), None if there is none."""
    blob = ~it.exact
    surely = K / N >= p
    n_before = N - it.n
    possible = blob & ((K - p * (n_before + it.k)) >= 0)
    last = int(np.flatnonzero(surely)[-1]) if surely.any() else -1
    after = np.flatnonzero(possible & (np.arange(it.n.size) > last))
    if after.size:
        return Pending(it.node[after])
    return None if last < 0 else last


#: Pieces a blob's range of counts is cut into when bounding a candidate's
#: expected lower bound (the bound's slack shrinks with the pieces).
_PIECES = 8


def _start_item(it: Any, N: np.ndarray, E: np.ndarray, expit_expected: bool,
                start_predictions: int) -> int | Pending:
    """The item where the fixed sequence starts (see :func:`guarantee.start_index`),
    or :class:`Pending` with the cells that must be seen first, the best
    candidate so far as its ``guess`` and, when it first opens up the largest
    cells to count the candidates, the grid's undecided cells as ``ahead``."""
    blob = ~it.exact
    d_lo = int(it.exact.sum() + blob.sum())
    d_hi = int(it.exact.sum() + it.n[blob].sum())
    open_up = None
    if d_lo <= guarantee.START_GRID < d_hi:
        # how many candidates is not yet known: open up the largest cells, enough to
        # show the missing distinct values if their values are distinct; and ask
        # at once for the cells the grid below would need, in case there are more
        order = np.flatnonzero(blob)[np.argsort(-it.n[blob], kind="stable")]
        gain = np.cumsum(np.minimum(it.n[order], 256) - 1)
        enough = int(np.searchsorted(gain, 2 * (guarantee.START_GRID + 1 - d_lo))) + 1
        open_up = it.node[order[:enough]]
    n_before = N - it.n
    if d_hi <= guarantee.START_GRID:           # every candidate
        at = np.arange(it.n.size)
        n_lo = np.where(blob, n_before + 1, N).astype(np.float64)
    else:                                      # the candidates at a grid of counts
        grid = guarantee.start_grid(N[-1])
        at = np.minimum(np.searchsorted(N, grid, side="left"), it.n.size - 1)
        n_lo = np.where(blob[at], np.maximum(np.ceil(grid), n_before[at] + 1), N[at])
    b = blob[at]
    exact_at = setops.unique(at[~b])                   # candidate order: the first max wins
    best_at, best = None, -np.inf
    if exact_at.size:
        first, top = guarantee.best_expected(E[exact_at], N[exact_at])
        best_at, best = int(exact_at[first[0]]), float(top[0])
    live = _live_blobs(it, N, E, at, n_lo, b, best, expit_expected)
    if open_up is None and live.size == 0:
        assert best_at is not None   # (a grid point is exact or in a live blob)
        return best_at   # no cell can hold the start
    if best_at is not None:
        guess = best_at
    else:   # no exact candidate yet: about the best end of a cell (exact counts)
        ends = setops.unique(at)
        with np.errstate(all="ignore"):
            w = guarantee.wilson_lower_bound(E[ends], N[ends].astype(np.float64),
                                             guarantee.START_LEVEL)
        guess = int(ends[np.argmax(np.nan_to_num(w, nan=-1.0))])
    live_nodes = setops.unique(it.node[at[live]])
    if open_up is None:
        return Pending(live_nodes, guess)
    return Pending(setops.unique(open_up), guess, (setops.setdiff(live_nodes, open_up),))


def _live_blobs(it: Any, N: np.ndarray, E: np.ndarray, at: np.ndarray, n_lo: np.ndarray,
                b: np.ndarray, best: float, expit_expected: bool) -> np.ndarray:
    """The places among ``at`` (``b``: inside a blob) whose candidate may beat
    ``best``, the best exact expected lower bound: first the free bound lb <=
    e / n (e at most at the blob's end, n at least ``n_lo``), then bounds in
    one piece, then in pieces.

    Only a blob's place of least ``n_lo`` is tested: every candidate of the
    blob's other places lies in its range of counts, so its bounds hold for
    them too (a blob is live exactly when that place is)."""
    n_before, e_before = N - it.n, E - it.e
    emin, emax = _expected_bounds(it, expit_expected, at)
    e_end = np.minimum(E[at], e_before[at] + (N[at] - n_before[at]) * emax)
    live = np.flatnonzero(b & (np.minimum(1.0, e_end / n_lo) >= best))
    if live.size > 256:
        # a few points' lower bounds first raise the bar the free bound must clear
        probe = live[np.linspace(0, live.size - 1, 64).astype(np.int64)]
        lo_p = _lowest_lb(it, N, E, at[probe], n_lo[probe], emin[probe], 1)
        best = max(best, float(lo_p.max()))
        live = live[np.minimum(1.0, e_end[live] / n_lo[live]) >= best]
    order = live[np.lexsort((n_lo[live], at[live]))]
    live = order[np.r_[True, at[order[1:]] != at[order[:-1]]]] if order.size else order
    for pieces in (1, _PIECES):
        if live.size == 0:
            break
        live = live[_may_reach(it, N, E, at[live], n_lo[live], emax[live], pieces, best)]
    return live


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
    blob, :func:`_live_blobs`; a candidate is live once one piece may).  One
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


def _sequence(it: Any, N: np.ndarray, K: np.ndarray, p: float, alpha: float,
              start: int) -> int | Pending | None:
    """Fixed-sequence testing from the start item: the last candidate before the
    first failure (an item index), None when the start fails.  p-values are
    computed block by block from the start, only until the first failure."""
    if guarantee.p_exceeds(K[start], N[start], p, alpha):
        return None
    blob = ~it.exact
    unsure: list = []
    j, block = start + 1, SEQUENCE_BLOCK
    while j < it.n.size:
        idx = np.arange(j, min(it.n.size, j + block))
        fails = idx[guarantee.p_exceeds(K[idx], N[idx], p, alpha)]   # item ends: exact
        scan = idx[idx <= fails[0]] if fails.size else idx
        bl = scan[blob[scan]]
        if bl.size:
            unsure.append(bl[_p_upper_exceeds(it, N, K, p, alpha, bl)])
        if fails.size:
            stop = int(fails[0])
            break
        j, block = int(idx[-1]) + 1, block * 2
    else:
        stop = it.n.size
    unsure_all = np.concatenate(unsure) if unsure else np.empty(0, np.int64)
    if unsure_all.size:
        return Pending(it.node[unsure_all])
    if stop == it.n.size:
        return it.n.size - 1                              # every candidate passes
    return stop - 1          # (a blob whose end fails is unsure: stop is exact here)


def _at_item(it: Any, N: np.ndarray, K: np.ndarray, j: int,
             alpha: float | None) -> Threshold | Pending:
    """The threshold at item j's last candidate: midway between its value and the
    next item's first (both must be known), or accepting all after the last."""
    if j == it.n.size - 1:
        value = ACCEPT_ALL
    else:
        unknown = [i for i in (j, j + 1) if not it.exact[i]]
        if unknown:
            return Pending(it.node[unknown])
        value = _midpoint(it.value[j], it.value[j + 1])
    n, k = int(N[j]), int(K[j])
    lb = None if alpha is None else float(guarantee.lower_bound(k, n, 1.0 - alpha))
    return Threshold(value, n, k, float(k / n), lb, "ok")
