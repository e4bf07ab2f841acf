"""The one-label threshold search over a refinement tree's cells, as the library
ran it before every label of a round was searched at once
(:mod:`calibrate.group_search`): kept here, step by step, as the reference the
all-labels search must equal, answer for answer and cell for cell.
"""

from typing import Any

import numpy as np

from calibrate import guarantee, setops
from calibrate.thresholds import (
    _PIECES,
    ACCEPT_ALL,
    SEQUENCE_BLOCK,
    Pending,
    Threshold,
    _expected_bounds,
    _lowest_lb,
    _may_reach,
    _midpoint,
    _p_upper_exceeds,
    waiting,
)


def search_items(it: Any, precision: float, confidence: float | None = None,
                 alpha: float | None = None, expit_expected: bool = True,
                 start_predictions: int = guarantee.START_PREDICTIONS) -> Threshold | Pending:
    """One group's search, one step after another: what
    :func:`calibrate.group_search.search_groups` answers for each group (its
    docstring states the answers and the bounds on cells of unknown values)."""
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
