"""Exact order statistics and threshold searches over values too many to sort.

A binary or multilabel task can have a billion (row, label) scores: sorting
them is out of reach of memory and time, yet the threshold search needs the
exact sorted candidates where it decides, and the equal-mass ECE needs exact
order statistics.  Both are answered here from nested histograms, refined
only where the answer is not yet certain, in a few passes over the rows:

1. a first pass counts every value into ``BINS`` cells of its group (a label,
   or all pairs pooled), evenly spaced in value;
2. the question is answered from the counts where they suffice; the cells
   where they do not are split into ``SUB_BINS`` sub-cells, or, once they hold
   few values, gathered: their distinct values with counts;
3. the next pass counts only the values that fall in those cells; repeat.

Cells are intervals of values, so every cell's values precede (in decreasing
order) those of the next, and a value always falls in the same cell: the
sorted candidates are the gathered cells' values in order, and between them
cells whose contents never needed to be known.  The answers equal those of
the in-memory search (:func:`calibrate.thresholds.search`) on the same values:
they use exact counts, and bounds that hold for every arrangement of a cell's
contents.  (Sums of expected probabilities are added in another order than a
sorted cumulative sum, so those agree to float rounding.)

A pass is :func:`accumulate` on blocks of values, run by a backend
(:meth:`calibrate.backends.Backend.fold`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import setops

#: Cells per group on the first pass (a group of many values: more than twice
#: the candidates at which the confidence sequence's start switches to a grid,
#: so that it shows more than that many non-empty cells at once).
BINS = 4096
#: Sub-cells a refined cell is split into.
SUB_BINS = 256
#: A cell with at most this many values is gathered instead of split.
GATHER = 4096
#: Cells to be refined are all gathered when together they hold at most this
#: many values (one pass instead of a split and another pass; the values'
#: memory is small next to a pass's).
GATHER_ALL = 1 << 20
#: Bits of a cell's position within its parent (SUB_BINS = 2 ** _BITS).
_BITS = 8
#: Levels of cells below the first at most (the key below holds them).
_MAX_DEPTH = 6


@dataclass(frozen=True)
class TreeSpec:
    """Where a pass sends each value (small arrays, picklable; see :meth:`Tree.spec`)."""
    root_lo: np.ndarray
    root_scale: np.ndarray
    bins: np.ndarray            # first-level cells per group
    offset: np.ndarray          # first first-level cell of each group (one more at the end)
    lo: np.ndarray
    hi: np.ndarray
    child: np.ndarray
    gathered: np.ndarray
    wanted: np.ndarray
    roots_wanted: np.ndarray
    flat: bool = False          # first-level cells only, all counted (a first pass)
    slot: np.ndarray | None = None   # each wanted cell's place in a pass's counts

    @property
    def size(self) -> int:
        return self.lo.size

    @property
    def n_slots(self) -> int:
        """The length of a pass's counts: one per wanted cell (every cell on a
        first pass), never one per cell of a large tree for a few wanted ones."""
        return self.size if self.slot is None else int(self.wanted.sum())

    def cells_of(self, g: Any) -> tuple[int, int]:
        """The first-level cells [first, last) of group ``g`` (or of the groups
        of an array ``g``, contiguous)."""
        g = np.asarray(g)
        return int(self.offset[g.min()]), int(self.offset[g.max() + 1])

    @functools.cached_property
    def groups_wanted(self) -> np.ndarray:
        """Per group, whether any of its cells is counted in this pass (made once
        per pass, not once per block: a reduction over every first-level cell)."""
        return np.logical_or.reduceat(self.roots_wanted, self.offset[:-1])

    def locate(self, g: Any, v: np.ndarray) -> np.ndarray:
        """The leaf of each (group, value), -1 where no wanted cell lies below its
        first-level cell.  A value's leaf depends on the value alone.  ``g`` is one
        group for all values, or an array of first groups of the columns of a
        2-D ``v`` (column j in group g + j), or a group per value."""
        g = np.asarray(g)
        # (one group or one per column broadcast: no gathers over the values;
        # in place)
        b = np.subtract(v, self.root_lo[g])
        b *= self.root_scale[g]
        np.floor(b, out=b)
        np.clip(b, 0, one_if_same(self.bins[g] - 1), out=b)
        node = b.astype(np.int64)
        node += self.offset[g]
        node = node.ravel()
        v = v.ravel()
        if self.flat:
            return node
        out = np.full(v.size, -1, np.int64)
        idx = np.flatnonzero(self.roots_wanted[node])
        node, vv = node[idx], v[idx]
        while True:
            c = self.child[node]
            deeper = np.flatnonzero(c >= 0)
            if deeper.size == 0:
                break
            nd = node[deeper]
            j = np.floor((vv[deeper] - self.lo[nd]) * (SUB_BINS / (self.hi[nd] - self.lo[nd])))
            node[deeper] = c[deeper] + np.clip(j, 0, SUB_BINS - 1).astype(np.int64)
        out[idx] = node
        return out


def one_if_same(a: np.ndarray) -> Any:
    """``a``'s one value where all its entries are equal, else ``a``: numpy
    clips with a scalar bound at a quarter of the cost of a broadcast one."""
    a = np.asarray(a)
    return a.flat[0] if a.size and np.all(a == a.flat[0]) else a


@dataclass
class PassPart:
    """One block's (or one worker's) counts of a pass: the wanted cells' n, k and
    e, and the values that fell in gathered cells (tabulated once, by
    :meth:`Tree.add`)."""
    n: np.ndarray
    k: np.ndarray
    e: np.ndarray
    gathered: list = field(default_factory=list)

    @classmethod
    def empty(cls, size: int) -> PassPart:
        return cls(np.zeros(size, np.int64), np.zeros(size, np.int64), np.zeros(size))

    @classmethod
    def of(cls, spec: TreeSpec) -> PassPart:
        """Empty counts for a pass made with ``spec``."""
        return cls.empty(spec.n_slots)

    def __iadd__(self, other: PassPart) -> PassPart:
        self.n += other.n
        self.k += other.k
        self.e += other.e
        self.gathered += other.gathered
        return self


def accumulate(spec: TreeSpec, part: PassPart, g: np.ndarray, v: np.ndarray,
               correct: np.ndarray, expected: Any, e_into: np.ndarray | None = None) -> None:
    """Count values ``v`` of groups ``g`` (float64), whether each is ``correct``
    and its ``expected`` probability of being correct (an array, or a function
    of the values computed only for those counted), into ``part``.

    ``e_into`` (a first pass: the groups' cells): the expected sums are added
    there, value by value in order, instead of into ``part``: a block's values
    given a piece at a time into zeros sum exactly as the block given at once."""
    leaf = spec.locate(g, v)
    v, correct = v.ravel(), correct.ravel()
    if spec.flat:                       # every value counted in its first-level cell
        # counted over the cells of these groups only: a count's cost grows with
        # its length, and a pooled group's 8192 cells sit beside 1000 labels' 1024 each
        if leaf.size == 0:
            return
        a, b = spec.cells_of(g)
        if a:
            leaf = leaf - a
        _count_nk(part, leaf, correct, b - a, a)
        w = expected(v) if callable(expected) else expected.ravel()
        if e_into is not None:
            np.add.at(e_into, leaf, w)      # (in order, as the count below)
        else:
            part.e[a:b] += np.bincount(leaf, weights=w, minlength=b - a)
        return
    ok = np.flatnonzero(leaf >= 0)
    ok = ok[spec.wanted[leaf[ok]]]
    if ok.size == 0:
        return
    leaf, v, correct = leaf[ok], v[ok], correct[ok]
    expected = expected(v) if callable(expected) else expected.ravel()[ok]
    gat = spec.gathered[leaf]
    plain = ~gat
    if plain.any():
        # counted by slot (wanted cells only): a late pass wants a few cells of
        # a tree of millions, and a count per cell would cost more than the values
        lf = leaf[plain] if spec.slot is None else spec.slot[leaf[plain]]
        _count_nk(part, lf, correct[plain], part.n.size)
        part.e += np.bincount(lf, weights=expected[plain], minlength=part.n.size)
    if gat.any():
        # (cells number far below 2 ** 31: half the memory of int64 for the cell ids)
        part.gathered.append((leaf[gat].astype(np.int32), v[gat], correct[gat].astype(bool),
                              expected[gat]))


def _count_nk(part: PassPart, leaf: np.ndarray, correct: np.ndarray, size: int,
              at: int = 0) -> None:
    """Values and correct values per cell in one count: cell 2 * leaf + correct
    (a second count over a boolean selection costs twice as much), for the
    ``size`` cells from ``at``."""
    key = leaf * 2
    key += correct
    nk = np.bincount(key, minlength=2 * size).reshape(size, 2)
    part.k[at:at + size] += nk[:, 1]
    part.n[at:at + size] += nk[:, 0] + nk[:, 1]


def tabulate(gathered: list) -> Tables | None:
    """Per gathered cell, its table of distinct values (decreasing) with their
    count n, correct count k and expected sum e (None when nothing was gathered).
    Equal values of a cell must have equal expected probabilities (in every
    pass they are a function of the value).  Consumes ``gathered``: the list
    is emptied as its values are copied."""
    if not gathered:
        return None
    # a column at a time, each piece's column let go once copied: the gathered
    # values are a pass's largest memory
    cols = []
    for i in range(4):
        cols.append(np.concatenate([g[i] for g in gathered]))
        gathered[:] = [(None,) * (i + 1) + g[i + 1:] for g in gathered]
    gathered.clear()
    lf, v, c, e = cols
    del cols
    # 0.0 and -0.0 tie, and the sort below leaves ties in any order: the first
    # zero a cell gathered names its value, as it always has
    zeros = np.flatnonzero(v == 0)
    z_cell, z_neg = lf[zeros], np.signbit(v[zeros])
    del zeros
    order = _cell_order(lf, v)
    lf = lf[order]
    v = v[order]
    c = c[order]
    e = e[order]
    del order
    starts = np.flatnonzero(np.r_[True, (lf[1:] != lf[:-1]) | (v[1:] != v[:-1])])
    n_v = np.diff(np.r_[starts, lf.size])
    k_v = np.add.reduceat(c.astype(np.int64), starts)
    e_v = np.add.reduceat(e, starts)
    node = lf[starts]
    value = v[starts]
    if z_neg.any():
        cells, first = np.unique(z_cell, return_index=True)
        at = np.flatnonzero(value == 0)
        value[at] = np.where(z_neg[first][np.searchsorted(cells, node[at])], -0.0, 0.0)
    cuts = np.r_[np.flatnonzero(np.r_[True, node[1:] != node[:-1]]), node.size]
    return Tables(node[cuts[:-1]], cuts, value, n_v, k_v, e_v)


def _cell_order(lf: np.ndarray, v: np.ndarray) -> np.ndarray:
    """An order of the values by cell, then decreasing value, ties in any order.
    Made as two sorts: by value (numpy's quicksort, a third of the time of its
    stable sort here), then a stable one by cell; the cells renumbered 0, 1, ...
    so that the second is a radix sort of 16-bit keys when there are at most
    65536 of them (twice as fast).  A tie's order changes no table: equal
    values of a cell have equal expected probabilities (each is a function of
    the value), and any order sums equal terms to the same float."""
    order = np.argsort(-v)
    seen = np.bincount(lf)
    if np.count_nonzero(seen) > 1 << 16:
        return order[np.argsort(lf[order], kind="stable")]
    ids = (np.cumsum(seen > 0) - 1).astype(np.uint16)
    return order[np.argsort(ids[lf[order]], kind="stable")]


@dataclass(frozen=True)
class Tables:
    """Gathered cells' tables (:func:`tabulate`), concatenated: cell
    ``nodes[i]`` holds the distinct values ``value[cuts[i]:cuts[i + 1]]``
    (decreasing) with their counts ``n``, correct counts ``k`` and expected
    sums ``e``."""
    nodes: np.ndarray
    cuts: np.ndarray
    value: np.ndarray
    n: np.ndarray
    k: np.ndarray
    e: np.ndarray


class Tree:
    """Nested histograms over the values of ``n_groups`` groups.

    Cells ("nodes") are intervals [lo, hi) of one group's values.  Group g's
    first-level cells are ``bins`` equal slices of [lo_g, hi_g] (values
    outside fall in the end cells); a refined cell has ``SUB_BINS`` children,
    or is gathered.  Per cell: ``n`` values, ``k`` of them correct, ``e``
    their summed expected probability; a gathered cell holds its table of
    distinct values.  ``key`` orders the cells of a group (a cell's key is its
    path from the first level, so children sort inside their parent).
    """

    def __init__(self, lo: np.ndarray, hi: np.ndarray, bins: Any = BINS) -> None:
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.maximum(np.asarray(hi, dtype=np.float64), lo)
        self.n_groups = lo.size
        self.bins = np.broadcast_to(np.asarray(bins, dtype=np.int64), lo.shape).copy()
        self.offset = np.concatenate([[0], np.cumsum(self.bins)])
        width = (hi - lo) / self.bins
        self.root_lo = lo
        with np.errstate(over="ignore"):
            scale = 1.0 / np.where(width > 0, width, 1.0)
        # a width too small to invert (subnormal) puts every value in one cell
        self.root_scale = np.where((width > 0) & np.isfinite(scale), scale, 0.0)
        size = int(self.offset[-1])
        self.group = np.repeat(np.arange(self.n_groups), self.bins)
        j = np.arange(size) - self.offset[self.group]            # cell within its group
        self.lo = lo[self.group] + width[self.group] * j
        self.hi = lo[self.group] + width[self.group] * (j + 1)
        self.lo[self.offset[:-1]] = -np.inf                     # the end cells are open
        self.hi[self.offset[1:] - 1] = np.inf
        self.key = j.astype(np.int64) << (_BITS * _MAX_DEPTH)
        self.depth = np.zeros(size, np.int64)
        self.child = np.full(size, -1, np.int64)
        self.parent = np.full(size, -1, np.int64)
        self.gathered = np.zeros(size, bool)
        self.n = np.zeros(size, np.int64)
        self.k = np.zeros(size, np.int64)
        self.e = np.zeros(size)
        # a gathered cell's table: rows [table_at, table_at + table_len) of tables[table_of]
        self.tables: list[Tables] = []
        self.table_of = np.full(size, -1, np.int64)
        self.table_at = np.zeros(size, np.int64)
        self.table_len = np.zeros(size, np.int64)
        self.pending = np.arange(size)

    @property
    def size(self) -> int:
        return self.lo.size

    # -- one pass -------------------------------------------------------------------
    def spec(self) -> TreeSpec:
        """What the next pass needs: where values go, and which cells to count."""
        wanted = np.zeros(self.size, bool)
        wanted[self.pending] = True
        roots = np.zeros(int(self.offset[-1]), bool)
        nodes = self.pending
        while nodes.size:
            top = nodes[nodes < roots.size]
            roots[top] = True
            nodes = self.parent[nodes[nodes >= roots.size]]
        flat = self.size == roots.size and bool(wanted.all()) and not self.gathered.any()
        slot = None
        if not flat:
            slot = np.full(self.size, -1, np.int64)
            slot[wanted] = np.arange(int(wanted.sum()))
        return TreeSpec(self.root_lo, self.root_scale, self.bins, self.offset, self.lo, self.hi,
                        self.child, self.gathered, wanted, roots, flat, slot)

    @property
    def done(self) -> bool:
        return self.pending.size == 0

    def add(self, part: PassPart) -> None:
        """A pass's counts (all of its blocks added together): one per wanted
        cell, in the order of the cells (:attr:`TreeSpec.n_slots`)."""
        w = self.pending          # sorted (see refine), as the pass's slots are
        if w.size > 1 and not np.all(w[1:] > w[:-1]):
            raise AssertionError("refinement: pending cells out of order")
        self.n[w] += part.n
        self.k[w] += part.k
        self.e[w] += part.e
        t = tabulate(part.gathered)
        if t is not None:
            self.table_of[t.nodes] = len(self.tables)
            self.table_at[t.nodes] = t.cuts[:-1]
            self.table_len[t.nodes] = np.diff(t.cuts)
            self.tables.append(t)
            starts = t.cuts[:-1]
            self.n[t.nodes] = np.add.reduceat(t.n, starts)
            self.k[t.nodes] = np.add.reduceat(t.k, starts)
            self.e[t.nodes] = np.add.reduceat(t.e, starts)
        self.pending = np.empty(0, np.int64)

    # -- refinement -------------------------------------------------------------------
    def refine(self, nodes: np.ndarray) -> None:
        """Split or gather the leaf cells ``nodes`` on the next pass."""
        nodes = setops.unique(np.asarray(nodes, dtype=np.int64))
        nodes = nodes[~self.gathered[nodes] & (self.child[nodes] < 0)]
        lo, hi = self.lo[nodes], self.hi[nodes]
        split = ((self.n[nodes] > GATHER) & np.isfinite(lo) & np.isfinite(hi)
                 & (self.depth[nodes] < _MAX_DEPTH))
        with np.errstate(invalid="ignore"):
            split &= (lo + (hi - lo) / SUB_BINS > lo)   # room for distinct sub-cells
        if self.n[nodes].sum() <= GATHER_ALL:
            split[:] = False
        gather, split = nodes[~split], nodes[split]
        # (a cell that cannot be split - an open end, one value - is gathered
        # whatever its size: its table holds its distinct values)
        self.gathered[gather] = True
        new = [gather]
        if split.size:
            new.append(self._split(split))
        # sorted: gather is, and the new children come after every old cell
        self.pending = np.concatenate(new)

    def _split(self, nodes: np.ndarray) -> np.ndarray:
        first, m = self.size, nodes.size * SUB_BINS
        j = np.arange(SUB_BINS)
        width = (self.hi[nodes] - self.lo[nodes]) / SUB_BINS
        clo = (self.lo[nodes][:, None] + width[:, None] * j).ravel()
        chi = (self.lo[nodes][:, None] + width[:, None] * (j + 1)).ravel()
        chi[SUB_BINS - 1::SUB_BINS] = self.hi[nodes]
        depth = self.depth[nodes] + 1
        shift = _BITS * (_MAX_DEPTH - depth)
        ckey = (self.key[nodes][:, None] + (j[None, :].astype(np.int64) << shift[:, None])).ravel()
        self.child[nodes] = first + np.arange(nodes.size) * SUB_BINS

        def grow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.concatenate([a, b])
        self.lo, self.hi = grow(self.lo, clo), grow(self.hi, chi)
        self.group = grow(self.group, np.repeat(self.group[nodes], SUB_BINS))
        self.key = grow(self.key, ckey)
        self.depth = grow(self.depth, np.repeat(depth, SUB_BINS))
        self.child = grow(self.child, np.full(m, -1, np.int64))
        self.parent = grow(self.parent, np.repeat(nodes, SUB_BINS))
        self.gathered = grow(self.gathered, np.zeros(m, bool))
        self.n = grow(self.n, np.zeros(m, np.int64))
        self.k = grow(self.k, np.zeros(m, np.int64))
        self.e = grow(self.e, np.zeros(m))
        self.table_of = grow(self.table_of, np.full(m, -1, np.int64))
        self.table_at = grow(self.table_at, np.zeros(m, np.int64))
        self.table_len = grow(self.table_len, np.zeros(m, np.int64))
        return first + np.arange(m)

    # -- reading ----------------------------------------------------------------------
    def leaves(self) -> list:
        """Per group, its non-empty leaf cells in decreasing order of value."""
        leaf = np.flatnonzero((self.child < 0) & (self.n > 0))
        order = np.lexsort((-self.key[leaf], self.group[leaf]))
        leaf = leaf[order]
        bounds = np.searchsorted(self.group[leaf], np.arange(self.n_groups + 1))
        return [leaf[bounds[g]:bounds[g + 1]] for g in range(self.n_groups)]


@dataclass(frozen=True)
class Items:
    """A group's sorted candidates where known: each item is a distinct value of a
    gathered cell (``exact``) or a whole cell whose values are not known
    (``node`` >= 0 for those).  ``n``, ``k``, ``e`` per item, cumulated in
    ``N``, ``K``, ``E`` (through the item); ``lo`` / ``hi`` bound its values."""
    value: np.ndarray
    exact: np.ndarray
    node: np.ndarray
    n: np.ndarray
    k: np.ndarray
    e: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def N(self) -> np.ndarray:
        return np.cumsum(self.n)

    @property
    def K(self) -> np.ndarray:
        return np.cumsum(self.k)

    @property
    def E(self) -> np.ndarray:
        return np.cumsum(self.e)


def items(tree: Tree, leaves: np.ndarray) -> Items:
    """The :class:`Items` of a group's leaves (in decreasing order): each gathered
    leaf's table in place of the leaf."""
    return _items(tree, leaves)[0]


def items_of_groups(tree: Tree, leaves: list) -> tuple[Items, np.ndarray]:
    """Several groups' :class:`Items` concatenated (``leaves``: each group's, as
    :meth:`Tree.leaves` gives them), with where each group's begin (one more at
    the end): group i's items are [starts[i], starts[i + 1]), each exactly the
    :func:`items` of its leaves."""
    per_leaf, sizes = _items(tree, np.concatenate(leaves) if leaves
                             else np.empty(0, np.int64))
    leaf_starts = np.cumsum([0] + [lv.size for lv in leaves])
    item_ends = np.concatenate([[0], np.cumsum(sizes)])
    return per_leaf, item_ends[leaf_starts]


def item_counts(tree: Tree, leaves: np.ndarray) -> np.ndarray:
    """How many items each leaf makes: a gathered leaf its table's distinct
    values, any other one."""
    return np.where(tree.gathered[leaves], tree.table_len[leaves], 1)


def _items(tree: Tree, leaves: np.ndarray) -> tuple[Items, np.ndarray]:
    """:func:`items`, with the number of items of each leaf."""
    gat = tree.gathered[leaves]
    sizes = item_counts(tree, leaves)
    gl = leaves[gat]
    at = np.repeat(np.arange(leaves.size), sizes)          # the leaf of each item
    blob = ~gat[at]
    total = int(sizes.sum())
    value = np.full(total, np.nan)
    n, k, e = np.empty(total, np.int64), np.empty(total, np.int64), np.empty(total)
    nodes = leaves[at[blob]]
    n[blob], k[blob], e[blob] = tree.n[nodes], tree.k[nodes], tree.e[nodes]
    if gl.size:
        # the tables' rows, leaf after leaf, gathered from each pass's tables at once
        lens = tree.table_len[gl]
        rows = np.repeat(tree.table_at[gl] - (np.cumsum(lens) - lens), lens) \
            + np.arange(int(lens.sum()))
        src = np.repeat(tree.table_of[gl], lens)
        dest = np.flatnonzero(~blob)
        for t in setops.unique(src):
            tb = tree.tables[int(t)]
            m = src == t
            r, d = rows[m], dest[m]
            value[d], n[d], k[d], e[d] = tb.value[r], tb.n[r], tb.k[r], tb.e[r]
    lo = np.where(blob, tree.lo[leaves[at]], value)
    hi = np.where(blob, tree.hi[leaves[at]], value)
    return Items(value, ~blob, np.where(blob, leaves[at], -1), n, k, e, lo, hi), sizes
