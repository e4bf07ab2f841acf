"""Threshold searches over the cells of a refinement tree, many groups at once.

A multilabel fit searches a threshold per label, and another over all pairs,
on every refinement round.  Searched one label at a time, a round of a
thousand labels was a few hundred thousand small numpy calls, and those calls,
not the arithmetic, were the cost.  :func:`search_groups` runs each step of
the search over all groups' candidates together: the groups' items
concatenated, with segment reductions where a step works within a group, and
the sequences of fixed-sequence testing advanced in lockstep.  Each group's
answer depends on its own items alone (the tests compare it with the
one-label search it replaced, round by round, cell for cell).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import guarantee, refinement, setops
from . import thresholds as _thr
from .backends import local
from .thresholds import Pending, Threshold


@dataclass(frozen=True)
class Groups:
    """Several groups' :class:`~calibrate.refinement.Items`, concatenated: group
    g's are [starts[g], starts[g + 1]); ``seg`` is each item's group and ``N``,
    ``K``, ``E`` are cumulated within each group (as each group's own
    ``Items.N``, ``.K``, ``.E``)."""
    it: refinement.Items
    starts: np.ndarray
    seg: np.ndarray
    N: np.ndarray
    K: np.ndarray
    E: np.ndarray

    @classmethod
    def of(cls, it: refinement.Items, starts: np.ndarray) -> Groups:
        starts = np.asarray(starts, dtype=np.int64)
        size = np.diff(starts)
        seg = np.repeat(np.arange(size.size), size)
        N, K = _within(np.cumsum(it.n), starts), _within(np.cumsum(it.k), starts)
        # (float sums: each group's own cumulative sum, not a difference of totals)
        E = np.concatenate([np.cumsum(it.e[a:b]) for a, b in zip(starts[:-1], starts[1:],
                                                                 strict=True)] + [np.empty(0)])
        return cls(it, starts, seg, N, K, E)

    @property
    def n_groups(self) -> int:
        return self.starts.size - 1


#: Items a batch of groups holds at most (one group may hold more): the
#: batch's arrays then stay in the cores' caches and in memory already
#: mapped, where a search over every group at once spends as long on fresh
#: pages as on the search.
BATCH_ITEMS = 1 << 18
#: Items of a batch at least when smaller batches would share a search among
#: the cores (below it, a task's fixed cost outweighs the sharing).
MIN_SHARE = 1 << 12


def search_tree(tree: refinement.Tree, leaves: list, precision: float,
                confidence: float | None, alphas: list) -> list[Threshold | Pending]:
    """:func:`search_groups` of the groups whose leaves are ``leaves`` (each
    group's, as :meth:`calibrate.refinement.Tree.leaves` gives them), in
    batches of consecutive groups of about :data:`BATCH_ITEMS` items."""
    sizes = np.array([int(refinement.item_counts(tree, lv).sum()) for lv in leaves],
                     dtype=np.int64)
    # a share for each core (two, for balance) where that leaves batches worth a task
    per = min(BATCH_ITEMS, max(MIN_SHARE, -(-int(sizes.sum()) // (2 * local.n_workers()))))
    batches = []
    a = 0
    while a < len(leaves):
        b = a + max(1, int(np.searchsorted(np.cumsum(sizes[a:]), per, side="right")))
        batches.append((a, b))
        a = b

    def batch(ab: tuple[int, int]) -> list:
        a, b = ab
        gr = Groups.of(*refinement.items_of_groups(tree, leaves[a:b]))
        return search_groups(gr, precision, confidence, alphas[a:b])
    # (batches on the cores: each is independent, and its numpy calls are large)
    return [r for part in local.map_tasks(batch, batches) for r in part]


def _within(total: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Integer cumulative sums restarted at each group (exact: integers)."""
    first = starts[:-1]
    before = np.where(first > 0, total[np.maximum(first - 1, 0)], 0) if total.size \
        else np.zeros(first.size, total.dtype)
    return total - np.repeat(before, np.diff(starts))


def _first_per_group(mask: np.ndarray, seg: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, the first position (in the whole array) where ``mask`` holds,
    else the array's length."""
    first = np.full(n_groups, mask.size, np.int64)
    idx = np.flatnonzero(mask)
    np.minimum.at(first, seg[idx], idx)
    return first


def _split(idx: np.ndarray, seg: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """``idx`` (positions, ordered by group) cut into one array per group."""
    bounds = np.searchsorted(seg, np.arange(n_groups + 1))
    return [idx[bounds[g]:bounds[g + 1]] for g in range(n_groups)]


def _by_level(fn: Any, alpha: np.ndarray, *args: np.ndarray, dtype: Any = bool) -> np.ndarray:
    """``fn(*args, alpha)`` elementwise with one alpha per element (one call per
    distinct alpha: the functions take a scalar level)."""
    out = np.zeros(alpha.size, dtype)
    for a in setops.unique(alpha):
        m = alpha == a
        out[m] = fn(*(x[m] for x in args), float(a))
    return out


def _p_exceeds_at(p: float) -> Any:
    """``k, n, alpha -> guarantee.p_exceeds(k, n, p, alpha)``."""
    return lambda k, n, alpha: guarantee.p_exceeds(k, n, p, alpha)


def search_items(it: refinement.Items, precision: float, confidence: float | None = None,
                 alpha: float | None = None, expit_expected: bool = True
                 ) -> Threshold | Pending:
    """One group's search (:func:`search_groups` of that group alone)."""
    return search_groups(Groups.of(it, np.array([0, it.n.size])), precision, confidence,
                         [alpha], expit_expected)[0]


def search_groups(gr: Groups, precision: float, confidence: float | None,
                  alphas: list, expit_expected: bool = True) -> list[Threshold | Pending]:
    """:func:`calibrate.thresholds.search` on each group's items: the same
    :class:`~calibrate.thresholds.Threshold`, or a
    :class:`~calibrate.thresholds.Pending` with the cells it must see first
    (and, ``ahead``, those the later steps will likely need: the plain choice,
    the start of the fixed sequence and the sequence wait on each other, and
    asking for a later step's cells in the same pass saves passes).
    ``alphas``: each group's level (None: 1 - ``confidence``).

    Cells whose values are unknown ("blobs") are decided by bounds that hold
    for every arrangement of their values: a blob's last candidate accepts all
    of it (exact counts); a candidate inside it has between ``n`` and the
    blob's count, its correct ones between (count - blob's wrong ones) and
    (count capped by the blob's correct ones), its expected sum within the
    blob's range of expected probabilities.
    """
    G = gr.n_groups
    N = gr.N
    a0, size = gr.starts[:-1], np.diff(gr.starts)
    out: list[Any] = [None] * G
    for g in np.flatnonzero(size == 0):
        out[g] = Threshold(None, 0, 0, None, None, "no-predictions")
    chosen_nodes, last = _plain_choices(gr, precision)
    if confidence is None:   # the plain rule: the plain choice is the answer
        _plain_answers(gr, chosen_nodes, last, out)
        return out
    alpha = np.array([1.0 - confidence if a is None else a for a in alphas], dtype=np.float64)
    todo = []
    for g in np.flatnonzero(size > 0):
        pending = chosen_nodes[g].size > 0
        if not pending and last[g] < 0:
            out[g] = Threshold(None, 0, 0, None, None, "unreachable")
        elif N[a0[g] + size[g] - 1] < guarantee.min_certifiable(precision, float(alpha[g])):
            out[g] = Pending(chosen_nodes[g]) if pending else \
                Threshold(None, 0, 0, None, None, "too-few")
        else:
            todo.append(g)
    todo_a = np.asarray(todo, dtype=np.int64)
    starts = _starts(gr, todo_a, expit_expected)
    # every group's sequence: from its start, or from where the start stands so far
    from_ = np.array([s if isinstance(s, (int, np.integer)) else s.guess
                      for s in starts], dtype=np.int64)
    seqs = _sequences(gr, todo_a, from_, precision, alpha)
    final: list[tuple[int, int]] = []
    for g, start, seq in zip(todo, starts, seqs, strict=True):
        chosen_pending = chosen_nodes[g].size > 0
        if chosen_pending or isinstance(start, Pending):
            out[g] = _thr.waiting(chosen_nodes[g] if chosen_pending else None, start, seq)
        elif seq is None:
            out[g] = Threshold(None, 0, 0, None, None, "uncertified")
        elif isinstance(seq, Pending):
            out[g] = seq
        else:
            final.append((int(g), int(seq)))
    _at_items(gr, final, alpha, out)
    return out


def _plain_answers(gr: Groups, chosen_nodes: list[np.ndarray], last: np.ndarray,
                   out: list) -> None:
    """Each non-empty group's plain-rule answer, into ``out``: the cells its plain
    choice must see first, "unreachable", or the threshold at its choice."""
    plain = []
    for g in np.flatnonzero(np.diff(gr.starts) > 0):
        if chosen_nodes[g].size:
            out[g] = Pending(chosen_nodes[g])
        elif last[g] < 0:
            out[g] = Threshold(None, 0, 0, None, None, "unreachable")
        else:
            plain.append((int(g), int(last[g])))
    _at_items(gr, plain, None, out)


def _plain_choices(gr: Groups, p: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Per group, the plain choice: the last item holding a candidate with
    held-out precision >= ``p`` (an item whose last candidate, or value, does;
    within the group, -1 when none), and the cells it must see first (the
    blobs after it that may reach ``p``; empty when none)."""
    it, seg, N, K = gr.it, gr.seg, gr.N, gr.K
    G = gr.n_groups
    loc = np.arange(seg.size) - np.repeat(gr.starts[:-1], np.diff(gr.starts))
    surely = K / N >= p
    possible = ~it.exact & ((K - p * (N - it.n + it.k)) >= 0)
    last = np.full(G, -1, np.int64)
    np.maximum.at(last, seg[surely], loc[surely])
    after = np.flatnonzero(possible & (loc > last[seg]))
    return [it.node[a] for a in _split(after, seg[after], G)], last


# long: the starts of every group, step by step, each over all groups' candidates
def _starts(gr: Groups, groups: np.ndarray, expit_expected: bool) -> list[int | Pending]:
    """Where each of ``groups``' fixed sequence starts (see
    :func:`calibrate.guarantee.start_index`): the start item (within the
    group), or :class:`Pending` with the cells that must be seen first, the
    best candidate so far as its guess and, when it first opens up the largest
    cells to count the candidates, the grid's undecided cells ahead."""
    it, N, E = gr.it, gr.N, gr.E
    G = groups.size
    if G == 0:
        return []
    a0 = gr.starts[:-1][groups]
    size = np.diff(gr.starts)[groups]
    blob = ~it.exact
    mine = np.full(gr.n_groups, -1, np.int64)
    mine[groups] = np.arange(G)
    inside = mine[gr.seg] >= 0                           # items of these groups
    gi = mine[gr.seg]                                    # their place in ``groups``
    d_lo = size
    d_hi = np.bincount(gi[inside], weights=np.where(it.exact, 1, it.n)[inside],
                       minlength=G).astype(np.int64)
    open_up = _open_up(gr, groups, gi, inside, d_lo, d_hi)
    n_before = N - it.n
    # the candidates: every item, or those at a grid of counts
    every = d_hi <= guarantee.START_GRID
    at_parts, nlo_parts, owner_parts = [], [], []
    for j in range(G):
        a, m = int(a0[j]), int(size[j])
        if every[j]:
            at = np.arange(a, a + m)
            n_lo = np.where(blob[at], n_before[at] + 1, N[at]).astype(np.float64)
        else:
            grid = guarantee.start_grid(N[a + m - 1])
            at = a + np.minimum(np.searchsorted(N[a:a + m], grid, side="left"), m - 1)
            n_lo = np.where(blob[at], np.maximum(np.ceil(grid), n_before[at] + 1), N[at])
        at_parts.append(at)
        nlo_parts.append(n_lo)
        owner_parts.append(np.full(at.size, j, np.int64))
    at = np.concatenate(at_parts)
    n_lo = np.concatenate(nlo_parts)
    own = np.concatenate(owner_parts)
    b = blob[at]
    # the best exact candidate of each group (candidate order: the first max wins)
    ex = setops.unique(at[~b])
    best = np.full(G, -np.inf)
    best_at = np.full(G, -1, np.int64)
    if ex.size:
        ex_own = gi[ex]
        seg_starts = np.flatnonzero(np.r_[True, ex_own[1:] != ex_own[:-1]])
        first, top = guarantee.best_expected(E[ex], N[ex], seg_starts)
        best[ex_own[seg_starts]] = top
        best_at[ex_own[seg_starts]] = ex[first]
    live = _live_blobs(gr, at, n_lo, b, own, best, expit_expected)
    live_nodes = _split_unique(it.node[at[live]], own[live], G)
    has_live = np.bincount(own[live], minlength=G) > 0
    # where no exact candidate yet: about the best end of a cell (exact counts)
    guess = best_at.copy()
    no_exact = best_at < 0
    if no_exact.any():
        sel = no_exact[own]
        ends = setops.unique(at[sel])
        with np.errstate(all="ignore"):
            w = guarantee.wilson_lower_bound(E[ends], N[ends].astype(np.float64),
                                             guarantee.START_LEVEL)
        w = np.nan_to_num(w, nan=-1.0)
        e_own = gi[ends]
        top_w = np.full(G, -np.inf)
        np.maximum.at(top_w, e_own, w)
        pick = _first_per_group(w == top_w[e_own], e_own, G)
        guess[no_exact] = ends[pick[no_exact]]
    result: list[int | Pending] = []
    for j in range(G):
        a = int(a0[j])
        opened = None if open_up is None else open_up[j]
        if opened is None and not has_live[j]:
            assert best_at[j] >= 0   # (a grid point is exact or in a live blob)
            result.append(int(best_at[j]) - a)
        elif opened is None:
            result.append(Pending(live_nodes[j], int(guess[j]) - a))
        else:
            result.append(Pending(setops.unique(opened), int(guess[j]) - a,
                                  (setops.setdiff(live_nodes[j], opened),)))
    return result


def _open_up(gr: Groups, groups: np.ndarray, gi: np.ndarray, inside: np.ndarray,
             d_lo: np.ndarray, d_hi: np.ndarray) -> list | None:
    """Per group (None for all when none does): when how many candidates it has
    is not yet known, its largest cells, enough to show the missing distinct
    values if their values are distinct; else None."""
    it = gr.it
    opening = (d_lo <= guarantee.START_GRID) & (guarantee.START_GRID < d_hi)
    if not opening.any():
        return None
    sel = np.flatnonzero(inside & ~it.exact & opening[np.maximum(gi, 0)])
    order = sel[np.lexsort((-it.n[sel], gi[sel]))]          # by group, largest first
    o_own = gi[order]
    gain = np.cumsum(np.minimum(it.n[order], 256) - 1)
    bounds = np.searchsorted(o_own, np.arange(groups.size + 1))
    gain = gain - np.concatenate([[0], gain])[bounds[:-1]][o_own]
    target = 2 * (guarantee.START_GRID + 1 - d_lo)
    enough = np.bincount(o_own, weights=gain < target[o_own], minlength=groups.size) + 1
    out: list = [None] * groups.size
    for j in np.flatnonzero(opening):
        mine = order[bounds[j]:bounds[j + 1]]
        out[j] = it.node[mine[:int(enough[j])]]
    return out


def _split_unique(values: np.ndarray, own: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Per group, the sorted distinct ``values`` it owns."""
    order = np.lexsort((values, own))
    v, o = values[order], own[order]
    keep = np.r_[True, (v[1:] != v[:-1]) | (o[1:] != o[:-1])] if v.size else np.zeros(0, bool)
    return _split(v[keep], o[keep], n_groups)


def _live_blobs(gr: Groups, at: np.ndarray, n_lo: np.ndarray, b: np.ndarray,
                own: np.ndarray, best: np.ndarray, expit_expected: bool) -> np.ndarray:
    """The places among ``at`` (items, ``own`` their groups; ``b``: inside a
    blob) whose candidate may beat its group's ``best``, the best exact
    expected lower bound: first the free bound lb <= e / n (e at most at the
    blob's end, n at least ``n_lo``), then bounds in one piece, then in pieces.
    Only a blob's place of least ``n_lo`` is tested: every candidate of the
    blob's other places lies in its range of counts, so its bounds hold for
    them too."""
    it, N, E = gr.it, gr.N, gr.E
    n_before, e_before = N - it.n, E - it.e
    emin, emax = _thr._expected_bounds(it, expit_expected, at)
    e_end = np.minimum(E[at], e_before[at] + (N[at] - n_before[at]) * emax)
    free = np.minimum(1.0, e_end / n_lo)
    live = np.flatnonzero(b & (free >= best[own]))
    count = np.bincount(own[live], minlength=best.size)
    many = np.flatnonzero(count > 256)
    if many.size:
        # a few points' lower bounds first raise the bar the free bound must clear
        first = np.searchsorted(own[live], many)
        probe = np.concatenate([live[f + np.linspace(0, c - 1, 64).astype(np.int64)]
                                for f, c in zip(first, count[many], strict=True)])
        lo_p = _thr._lowest_lb(it, N, E, at[probe], n_lo[probe], emin[probe], 1)
        best = best.copy()
        np.maximum.at(best, own[probe], lo_p)
        live = live[free[live] >= best[own[live]]]
    order = live[np.lexsort((n_lo[live], at[live]))]
    live = order[np.r_[True, at[order[1:]] != at[order[:-1]]]] if order.size else order
    for pieces in (1, _thr._PIECES):
        if live.size == 0:
            break
        live = live[_thr._may_reach(it, N, E, at[live], n_lo[live], emax[live], pieces,
                                    best[own[live]])]
    return np.sort(live)


# long: the fixed-sequence scans of all groups, advanced block by block in lockstep
def _sequences(gr: Groups, groups: np.ndarray, start: np.ndarray, p: float,
               alpha: np.ndarray) -> list[int | Pending | None]:
    """Fixed-sequence testing of each of ``groups`` from its ``start`` item
    (within the group), p-values block by block and only until the first
    failure: the last item before it (within the group), None when the start
    fails, or :class:`Pending` with the blobs whose outcome is not yet
    certain (a blob whose end fails is unsure)."""
    it, N, K = gr.it, gr.N, gr.K
    G = groups.size
    a0 = gr.starts[:-1][groups]
    end = gr.starts[1:][groups]
    lvl = alpha[groups]
    s = a0 + start
    result: list[Any] = [None] * G
    if G == 0:
        return result
    ok = ~_by_level(_p_exceeds_at(p), lvl, K[s], N[s])
    stop = np.full(G, -1, np.int64)
    j = s + 1
    block = np.full(G, _thr.SEQUENCE_BLOCK, np.int64)
    active = np.flatnonzero(ok)
    unsure_at: list[np.ndarray] = []
    unsure_own: list[np.ndarray] = []
    blob = ~it.exact
    while True:
        done = active[j[active] >= end[active]]
        stop[done] = end[done]
        active = active[j[active] < end[active]]
        if active.size == 0:
            break
        lens = np.minimum(end[active] - j[active], block[active])
        own = np.repeat(active, lens)
        idx = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens) + j[own]
        fails = _by_level(_p_exceeds_at(p), lvl[own], K[idx], N[idx])
        first = np.full(G, np.iinfo(np.int64).max)
        np.minimum.at(first, own[fails], idx[fails])
        scan = idx <= first[own]
        bl = scan & blob[idx]
        if bl.any():
            up = _by_level(_upper_exceeds_at(gr, p), lvl[own[bl]], idx[bl])
            unsure_at.append(idx[bl][up])
            unsure_own.append(own[bl][up])
        failed = active[first[active] < np.iinfo(np.int64).max]
        stop[failed] = first[failed]
        go = active[first[active] == np.iinfo(np.int64).max]
        j[go] = j[go] + lens[np.searchsorted(active, go)]
        block[go] *= 2
        active = go
    ua = np.concatenate(unsure_at) if unsure_at else np.empty(0, np.int64)
    uo = np.concatenate(unsure_own) if unsure_own else np.empty(0, np.int64)
    order = np.lexsort((ua, uo))
    by_group = _split(ua[order], uo[order], G)
    for i in np.flatnonzero(ok):
        if by_group[i].size:
            result[i] = Pending(it.node[by_group[i]])
        elif stop[i] == end[i]:
            result[i] = int(end[i] - a0[i]) - 1            # every candidate passes
        else:
            result[i] = int(stop[i] - a0[i]) - 1
    return result


def _upper_exceeds_at(gr: Groups, p: float) -> Any:
    """``idx, alpha -> thresholds._p_upper_exceeds(...)`` over the groups' items."""
    return lambda idx, alpha: _thr._p_upper_exceeds(gr.it, gr.N, gr.K, p, alpha, idx)


def _at_items(gr: Groups, final: list[tuple[int, int]], alpha: np.ndarray | None,
              out: list) -> None:
    """The threshold at the last candidate of each (group, item within it) in
    ``final``, into ``out``: midway between its value and the next item's first
    (both must be known, else :class:`Pending` with the unknown cells), or
    accepting all after the last item; with its Clopper-Pearson bound at the
    group's level (none without ``alpha``), the bounds computed together."""
    if not final:
        return
    it, N, K = gr.it, gr.N, gr.K
    g = np.array([f[0] for f in final], dtype=np.int64)
    j = np.array([f[1] for f in final], dtype=np.int64)
    at = gr.starts[:-1][g] + j
    lb: list[float | None] = [None] * g.size
    if alpha is not None:
        bounds = _by_level(lambda k, n, a: guarantee.lower_bound(k, n, 1.0 - a), alpha[g],
                          K[at], N[at], dtype=np.float64)
        lb = [float(b) for b in bounds]
    for i, (gg, jj) in enumerate(final):
        a, m = int(gr.starts[gg]), int(gr.starts[gg + 1] - gr.starts[gg])
        if jj == m - 1:
            value = _thr.ACCEPT_ALL
        else:
            unknown = [a + x for x in (jj, jj + 1) if not it.exact[a + x]]
            if unknown:
                out[gg] = Pending(it.node[unknown])
                continue
            value = _thr._midpoint(it.value[a + jj], it.value[a + jj + 1])
        n, k = int(N[a + jj]), int(K[a + jj])
        out[gg] = Threshold(value, n, k, float(k / n), lb[i], "ok")
