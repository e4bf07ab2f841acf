"""Binary and multilabel on row streams: the summary's metrics and both rules'
thresholds in a few passes, exactly, whatever the number of (row, label) pairs.

The first pass over the (N, C) logits and labels computes, for the model as
given (T = 1) and as calibrated, every summary metric that is a sum over pairs
(binned and maximum calibration error, Brier score, log loss, classwise and
top-label ECE, and the residuals binned on the smooth ECE's finest grid), and
counts every pair into the first-level cells of a :class:`refinement.Tree`:
one group per label (its calibrated logits, for the per-class rule), one for
all pairs pooled (calibrated: the global rule and the equal-mass ECE after)
and one for the logits as given (the equal-mass ECE before).  Then the
threshold searches (:func:`group_search.search_groups`) and the equal-mass bins
(:func:`equal_mass_ece`) ask for the cells they cannot decide yet, and passes
that count only those cells follow until nothing is pending.  Memory holds the
histograms and the gathered cells, never the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from . import group_search, kernels, metrics, refinement, setops, smooth_ece
from . import thresholds as _thr
from .backends import Backend

#: Cells likely needed by a later step of the threshold searches are asked
#: for early while together they hold at most this many values: a pass less,
#: for memory that stays small (a pass's gathered values are tabulated at once).
AHEAD_VALUES = 1 << 22
#: A later pass locates only the pairs inside its window while they are at most
#: this share of a block (beyond it, locating every pair costs less).
WINDOW_SHARE = 0.5
#: Rows of the sample whose values set the first-level cells' ranges.
SAMPLE_ROWS = 4096
#: First-level cells of each label's group (multilabel: one group per label, so
#: fewer) and of the pooled groups.
LABEL_BINS = 1024
POOLED_BINS = 8192
#: Labels whose first-level cells a first pass counts together.
LABEL_BLOCK = 32
#: A later pass looks through the labels' cells alone (the pooled groups'
#: wanted cells marked in them) while that leaves at most this share of the
#: pairs inside its window.
FOLD_SHARE = 0.25


@dataclass
class Sums:
    """Per-pair sums of one side (T = 1, or calibrated) over blocks of rows."""
    count: np.ndarray           # (classes, bins): pairs per (class, equal-width bin of p)
    gap: np.ndarray             # (classes, bins): sum (o - p) there
    brier: np.ndarray           # (1,) sum (p - o)^2
    log_loss: np.ndarray        # (1,) sum log max(q, tiny), q = p or 1 - p (when asked)
    negative: np.ndarray        # (bins,): binary only, sum (p - o) per bin of 1 - p
    top_label: np.ndarray       # (2 * bins,): binary only, sum (correct - confidence)
    grid: np.ndarray            # residuals (o - p) / n binned on the smooth ECE's grid

    @classmethod
    def empty(cls, n_classes: int, n_bins: int) -> Sums:
        return cls(np.zeros((n_classes, n_bins)), np.zeros((n_classes, n_bins)), np.zeros(1),
                   np.zeros(1), np.zeros(n_bins), np.zeros(2 * n_bins),
                   np.zeros(smooth_ece.FINEST_GRID + 1))

    def __iadd__(self, other: Sums) -> Sums:
        for name in ("count", "gap", "brier", "log_loss", "negative", "top_label", "grid"):
            getattr(self, name).__iadd__(getattr(other, name))
        return self

    def add(self, p: np.ndarray, o: np.ndarray, binary: bool, n_bins: int, n_pairs: int,
            log_loss: bool) -> None:
        """A block's pairs: probabilities ``p`` and outcomes ``o`` (bool), both (r, C)
        (and the log loss when asked).  Per (class, bin) counts and residuals give
        the pooled equal-width bins and the classwise ones alike."""
        c = p.shape[1]
        pf = p.ravel()
        res = o.ravel() - pf                                   # o - p
        key = metrics.bin_width(p, n_bins, offsets=n_bins * np.arange(c)).ravel()
        size = c * n_bins
        self.count += np.bincount(key, minlength=size).reshape(c, n_bins)
        self.gap += np.bincount(key, weights=res, minlength=size).reshape(c, n_bins)
        # not BLAS (res @ res): its idle threads spin on the cores the passes use
        self.brier += np.einsum("i,i->", res, res)
        if log_loss:
            tiny = np.finfo(np.float64).tiny
            q = np.where(o.ravel(), pf, 1.0 - pf)
            self.log_loss += np.sum(np.log(np.maximum(q, tiny)))
        if binary:
            # the negative class: P(y = 0) = 1 - p against 1 - o, residual -res;
            # the top label (ties to class 0): p and res where p > 1/2, else
            # the negative class's bin and residual
            nb = metrics.bin_width(1.0 - pf, n_bins)
            self.negative -= np.bincount(nb, weights=res, minlength=n_bins)
            # (arithmetic, not np.where: the same values at a fifth of the cost)
            k = pf > 0.5
            top = key + n_bins
            top -= nb
            top *= k
            top += nb                                         # key + n_bins where k, else nb
            sign = k * 2.0
            sign -= 1.0
            sign *= res                                       # res where k, else -res
            self.top_label += np.bincount(top, weights=sign, minlength=2 * n_bins)
        self.grid += smooth_ece.binned(pf, res / n_pairs, smooth_ece.FINEST_GRID, in_unit=True)

    def metrics(self, n_pairs: int, binary: bool, mass_ece: float) -> dict:
        """Every summary metric (keys of :data:`calibrate.metrics.NAMES`) from the sums."""
        count, gap = self.count.sum(axis=0), self.gap.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(count > 0, gap / count, np.nan)
        classwise = np.abs(self.gap).sum() + (np.abs(self.negative).sum() if binary else 0.0)
        out = {
            "nll": float(-self.log_loss[0] / n_pairs),
            "brier": float(self.brier[0] / n_pairs),
            "ece_15_equal_width": float(np.abs(gap).sum() / n_pairs),
            "ece_15_equal_mass": mass_ece,
            "mce_15_equal_width": float(np.nanmax(np.abs(rel))),
            # (binary: both classes' columns, 2 per row)
            "classwise_ece_15_equal_width": float(classwise / (n_pairs * (2 if binary else 1))),
            "smooth_ece": smooth_ece.smooth_ece_binned(self.grid),
        }
        if binary:
            out["top_label_ece_15_equal_width"] = float(np.abs(self.top_label).sum() / n_pairs)
        return {k: out[k] for k in metrics.LABELS if k in out}


@dataclass
class Pass:
    """One worker's share of a pass: the sums of both sides (first pass only)
    and the tree's counts."""
    before: Sums | None
    after: Sums | None
    tree: refinement.PassPart

    def __iadd__(self, other: Pass) -> Pass:
        if self.before is not None:   # the first pass: every share has both sides' sums
            assert self.after is not None and other.before is not None \
                and other.after is not None
            self.before += other.before
            self.after += other.after
        self.tree += other.tree
        return self


@dataclass(frozen=True)
class Layout:
    """Which tree group holds what: labels 0..C-1 (when searching thresholds),
    then all pairs calibrated, then all pairs as given."""
    n_classes: int
    per_label: bool

    @property
    def pooled_group(self) -> bool:
        """Whether all pairs (calibrated) have a group of their own (not when the
        one label's group already holds them all)."""
        return not (self.per_label and self.n_classes == 1)

    @property
    def pooled_after(self) -> int:
        # (binary: the one label's group, group 0, is all pairs already)
        return self.n_classes if self.per_label and self.pooled_group else 0

    @property
    def pooled_before(self) -> int:
        return self.pooled_after + 1

    @property
    def n_groups(self) -> int:
        return self.pooled_before + 1


def _pair_values(zc: np.ndarray, yc: np.ndarray, temperature: np.ndarray,
                 idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A block's logits (r, C) as float64, calibrated logits z / T, and outcomes;
    with ``idx`` (flat positions in the block) only those pairs, as flat arrays."""
    z = np.asarray(zc)
    z = z.reshape(z.shape[0], -1)
    o = np.asarray(yc).reshape(z.shape) == 1
    t = temperature
    if idx is not None:
        z, o, t = z.ravel()[idx], o.ravel()[idx], temperature[idx % z.shape[1]]
    z = z.astype(np.float64)
    return z, z / t, o


def _views(layout: Layout, z: np.ndarray, s: np.ndarray, pa: np.ndarray | None,
           pb: np.ndarray | None, cols: np.ndarray | None) -> list[tuple[Any, Any, Any]]:
    """(group or groups, values, probabilities) of each view of the pairs: the
    labels' (column j in group j; ``cols``: the flat pairs' columns), all pairs
    calibrated, all pairs as given."""
    c = layout.n_classes
    views: list[tuple[Any, np.ndarray, np.ndarray | None]] = []
    if layout.per_label:
        views.append((np.arange(c) if cols is None else cols, s, pa))
    if layout.pooled_group:
        views.append((layout.pooled_after, s, pa))
    views.append((layout.pooled_before, z, pb))
    return views


def _count(spec: refinement.TreeSpec, part: refinement.PassPart, layout: Layout,
           z: np.ndarray, s: np.ndarray, o: np.ndarray, pa: np.ndarray | None,
           pb: np.ndarray | None, cols: np.ndarray | None = None,
           labels_only: bool = False) -> None:
    """Count a block's pairs into the tree's wanted cells (probabilities computed
    here when not given: only for the pairs those cells hold).  The pairs are
    (r, C) arrays, or with ``cols`` flat arrays of the pairs' columns;
    ``labels_only``: the labels' view alone."""
    wanted = spec.groups_wanted
    for g, v, p in _views(layout, z, s, pa, pb, cols):
        if labels_only and np.ndim(g) == 0:
            continue
        if not wanted[g].any():
            continue                     # nothing of these groups is counted this pass
        if spec.flat and np.ndim(g) == 1 and v.ndim == 2 and p is not None and \
                v.shape[1] > LABEL_BLOCK:
            # The labels' cells a block of labels at a time: the counts' cells then
            # stay in cache (a row's pairs fall in a thousand labels' cells apart).
            # Each cell is one label's, so it sums the same pairs in the same order.
            for a in range(0, v.shape[1], LABEL_BLOCK):
                cs = slice(a, a + LABEL_BLOCK)
                refinement.accumulate(spec, part, g[cs], v[:, cs], o[:, cs], p[:, cs])
            continue
        refinement.accumulate(spec, part, g, v, o, special.expit if p is None else p)


@dataclass(frozen=True)
class Window:
    """Where a later pass looks: per view with cells counted this pass (a label's
    group, the pooled groups), ``z * scale + shift`` in the logits' own float
    type is a pair's position in its first-level cells (per column; ``base``
    the column's first cell), and ``table`` marks the cells within one of a
    wanted one.  The estimate is within a quarter of a cell of the exact
    position (see :func:`_window`), so every pair the pass counts is inside."""
    views: tuple[tuple[np.ndarray, np.ndarray, Any, np.ndarray, np.ndarray], ...]
    dtype: np.dtype

    def inside(self, z: np.ndarray) -> np.ndarray:
        """Whether each logit of the (r, C) block may fall in a wanted cell."""
        out = np.zeros(z.shape, bool)
        hit = np.empty(z.shape, bool)
        with np.errstate(over="ignore", invalid="ignore"):
            for scale, shift, base, top, table in self.views:
                u = z * scale
                u += shift
                np.clip(u, 0, top, out=u)
                # (intp cells: np.take with them is half the cost of indexing
                # with int32 ones, which numpy converts first)
                cell = u.astype(np.intp)
                if base is not None:
                    cell += base
                out |= np.take(table, cell, out=hit)
        return out


def _window(spec: refinement.TreeSpec, layout: Layout, t: np.ndarray,
            dtype: np.dtype, root_n: np.ndarray | None = None) -> Window | None:
    """The :class:`Window` of a later pass over logits of ``dtype``, or None (every
    pair located) where a group's range sits so far from zero next to its width
    that ``dtype`` cannot place a logit within a quarter of a cell.  In cells, the
    estimate errs by at most (|position| + |shift|) * 2 eps (eps the dtype's
    machine epsilon, twice its unit roundoff: rounding the scale, the shift,
    the product and the sum); the position matters only within two cells of
    the first-level range (farther out both clip to the same end cell), where
    the error is below (cells + 2 + |shift|) * 2 eps: asked to stay under a
    quarter of a cell, and the table widened by one cell each way.

    With labels' groups, the pooled groups' wanted cells are marked in the
    labels' cells when, by the first-level counts ``root_n``, that leaves at
    most :data:`FOLD_SHARE` of the pairs inside: one view then does the work
    of three."""
    c = layout.n_classes
    eps = float(np.finfo(dtype).eps)
    views = []

    def view(g: Any, per_column: np.ndarray, table: np.ndarray | None = None) -> bool:
        g = np.asarray(g)
        first, last = spec.cells_of(g)
        if table is None:
            table = _widened(spec.roots_wanted[first:last])
        if not table.any():
            return True
        scale = spec.root_scale[g] * per_column      # per column
        shift = np.broadcast_to(-spec.root_lo[g] * spec.root_scale[g], (c,))
        top = np.broadcast_to(spec.bins[g] - 1, (c,))
        if not np.all(np.isfinite(scale)) or not np.all(np.isfinite(shift)) or \
                (float(top.max()) + 3 + float(np.max(np.abs(shift)))) * 4 * eps > 0.5:
            return False
        base = (spec.offset[g] - first).astype(np.intp) if g.ndim else None
        views.append((scale.astype(dtype), shift.astype(dtype), base,
                      refinement.one_if_same(top).astype(dtype), table))
        return True

    folded = None
    if layout.per_label and root_n is not None:
        first, last = spec.cells_of(np.arange(c))
        folded = _widened(spec.roots_wanted[first:last]) | _pooled_marks(spec, layout, t)
        n = root_n[first:last]
        if n[folded].sum() > FOLD_SHARE * n.sum():
            folded = None       # the pooled cells would open up too many labels' cells
    ok = True
    if layout.per_label:
        ok &= view(np.arange(c), 1.0 / t, folded)
    if folded is None:
        if layout.pooled_group:
            ok &= view(layout.pooled_after, 1.0 / t)
        ok &= view(layout.pooled_before, np.ones(c))
    return Window(tuple(views), dtype) if ok else None


def _widened(w: np.ndarray) -> np.ndarray:
    """The wanted cells ``w`` and their neighbours: a window's table, one cell wider
    each way than its float estimate of a position can err."""
    table = w.copy()
    table[1:] |= w[:-1]
    table[:-1] |= w[1:]
    return table


def _pooled_marks(spec: refinement.TreeSpec, layout: Layout, t: np.ndarray) -> np.ndarray:
    """Over the labels' first-level cells (column j's in group j): the cells whose
    values may hold a pair of a pooled group's wanted cell, or of a cell next to
    one (a label's values are z / T_j, the calibrated pooled group's too, the
    other's z).  Each run of such pooled cells is a range of values, taken to
    each label's cells one cell wider on each side than its floor: float error
    in the window's estimate or at a cell's edge cannot move a pair across."""
    c = layout.n_classes
    first, last = spec.cells_of(np.arange(c))
    lo, scale = spec.root_lo[:c, None], spec.root_scale[:c, None]
    top = (spec.bins[:c] - 1)[:, None].astype(np.float64)
    base = (spec.offset[:c] - first)[:, None]
    diff = np.zeros(last - first + 1, np.int64)
    pooled = [(layout.pooled_before, True)] + \
        ([(layout.pooled_after, False)] if layout.pooled_group else [])
    for g, as_given in pooled:
        a, b = spec.cells_of(g)
        ww = _widened(spec.roots_wanted[a:b])
        if not ww.any():
            continue
        edge = np.diff(np.concatenate(([0], ww.astype(np.int8), [0])))
        ra, rb = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)   # runs [ra, rb)
        v_lo = spec.root_lo[g] + ra / spec.root_scale[g]
        v_hi = spec.root_lo[g] + rb / spec.root_scale[g]
        v_lo[ra == 0], v_hi[rb == b - a] = -np.inf, np.inf   # the end cells reach on
        s_lo, s_hi = (v_lo / t[:, None], v_hi / t[:, None]) if as_given else \
            (np.broadcast_to(v_lo, (c, ra.size)), np.broadcast_to(v_hi, (c, ra.size)))
        with np.errstate(invalid="ignore"):
            # (NaN where a range is degenerate: then the label's every cell; such a
            # label's own view refuses the window anyway)
            ca = np.clip(np.nan_to_num(np.floor((s_lo - lo) * scale) - 1, nan=0.0), 0, top)
            cb = np.clip(np.nan_to_num(np.floor((s_hi - lo) * scale) + 1, nan=np.inf), 0, top)
        ca, cb = ca.astype(np.int64), cb.astype(np.int64)
        np.add.at(diff, (base + ca).ravel(), 1)
        np.add.at(diff, (base + cb).ravel() + 1, -1)
    return np.cumsum(diff[:-1]) > 0


def _first_pass(acc: Pass, zc: np.ndarray, yc: np.ndarray, temperature: np.ndarray,
                spec: refinement.TreeSpec, layout: Layout, binary: bool, n_bins: int,
                n_pairs: int, log_loss: bool) -> None:
    """The summary's sums and the pooled groups' counts a slice of the block at a
    time (their temporaries stay in cache; the expected sums go into the
    block's own zeros, value by value, and are added once: the sums of
    counting the block at once), the labels' counts a block of labels at a
    time (:func:`_count`)."""
    assert acc.before is not None and acc.after is not None   # made by the first pass's init
    z, s, o = _pair_values(zc, yc, temperature)
    pb, pa = np.empty_like(z), np.empty_like(s)
    pooled = [(g, v, p) for g, v, p in _views(layout, z, s, pa, pb, None)
              if np.ndim(g) == 0 and spec.groups_wanted[g]]
    cells = [spec.cells_of(g) for g, _, _ in pooled]
    sums = [np.zeros(b - a) for a, b in cells]
    for r in kernels.row_slices_of(*z.shape):
        acc.before.add(special.expit(z[r], out=pb[r]), o[r], binary, n_bins, n_pairs, log_loss)
        acc.after.add(special.expit(s[r], out=pa[r]), o[r], binary, n_bins, n_pairs, log_loss)
        for (g, v, p), e_into in zip(pooled, sums, strict=True):
            refinement.accumulate(spec, acc.tree, g, v[r], o[r], p[r], e_into)
    for (a, b), e in zip(cells, sums, strict=True):
        acc.tree.e[a:b] += e
    _count(spec, acc.tree, layout, z, s, o, pa, pb, labels_only=True)


def _next_pass(acc: Pass, zc: np.ndarray, yc: np.ndarray, temperature: np.ndarray,
               spec: refinement.TreeSpec, layout: Layout, window: Window | None) -> None:
    """Count the wanted cells' pairs.  Later passes want a few cells: the pairs
    that may fall in them are found on the logits as they are (``window``),
    and only those are converted and located (the same counts, in the same
    order, as locating every pair)."""
    z = np.asarray(zc)
    z = z.reshape(z.shape[0], -1)
    if window is not None and window.dtype == z.dtype:
        inside = window.inside(z)
        if np.count_nonzero(inside) <= WINDOW_SHARE * z.size:
            idx = np.flatnonzero(inside)
            v, s, o = _pair_values(z, yc, temperature, idx)
            _count(spec, acc.tree, layout, v, s, o, None, None, idx % z.shape[1])
            return
    _count(spec, acc.tree, layout, *_pair_values(z, yc, temperature), None, None)


@dataclass(frozen=True)
class StreamedFit:
    """What :func:`run` found: the metrics before and after (keys of
    :data:`calibrate.metrics.NAMES`, "nll" the mean log loss of the pairs'
    probabilities),
    each label's threshold and the global one (None unless searched), the
    positives per label and the number of (row, label) pairs."""
    before: dict
    after: dict
    per_class: list | None
    global_rule: Any
    support: np.ndarray
    n_units: int
    passes: int

    def to_dict(self) -> dict:
        return {"before": self.before, "after": self.after, "n_units": self.n_units,
                "passes": self.passes, "support": self.support.tolist(),
                "per_class": None if self.per_class is None
                else [t.to_dict() for t in self.per_class],
                "global": None if self.global_rule is None else self.global_rule.to_dict()}


def run(z: Backend, y: Any, temperature: Any, task: str, search: dict | None = None,
        n_bins: int = metrics.N_BINS, log_loss: bool = True) -> StreamedFit:
    """The summary metrics of sigmoid(z / T) before (T = 1) and after, and with
    ``search`` (``precision``, ``confidence``, ``alpha`` per label, ``alpha_global``)
    the thresholds of both rules, in passes over ``z`` (N, C) and labels ``y``.
    ``log_loss=False`` leaves "nll" out (a fit has its temperature's own)."""
    zc = z.columns()
    n_rows, c = zc.shape
    n_pairs = n_rows * c
    binary = task == "binary"
    t = np.broadcast_to(np.asarray(temperature, dtype=np.float64), (c,)).copy()
    layout = Layout(c, search is not None)
    tree = _first_tree(zc, t, layout)
    spec = tree.spec()
    acc = zc.fold(_first_pass, y, args=(t, spec, layout, binary, n_bins, n_pairs, log_loss),
                  init=lambda: Pass(Sums.empty(c, n_bins),
                                    Sums.empty(c, n_bins),
                                    refinement.PassPart.of(spec)),
                  label="summary and thresholds")
    tree.add(acc.tree)
    passes = 1
    found: dict = {}
    while True:
        pending, tiers = _decide(tree, layout, search, found, n_bins)
        if pending.size == 0:
            break
        budget = AHEAD_VALUES
        for ahead in tiers:          # sequence, start, grid: while the budget lasts
            budget -= int(tree.n[ahead].sum())
            if budget < 0:
                break
            pending = setops.union(pending, ahead)
        tree.refine(pending)
        spec = tree.spec()
        window = _window(spec, layout, t, kernels.float_dtype(zc.dtype),
                         tree.n[:int(tree.offset[-1])])
        part = zc.fold(_next_pass, y, args=(t, spec, layout, window),
                       init=lambda spec=spec: Pass(None, None, refinement.PassPart.of(spec)),
                       label="thresholds")
        tree.add(part.tree)
        passes += 1
    support = _support(tree, layout, c)
    return StreamedFit(
        acc.before.metrics(n_pairs, binary, found["mass_before"]),
        acc.after.metrics(n_pairs, binary, found["mass_after"]),
        [found[g] for g in range(c)] if search is not None else None,
        found.get("global"), support, n_pairs, passes)


def _support(tree: refinement.Tree, layout: Layout, c: int) -> np.ndarray:
    """Positives per label (the pooled group's first-level counts when not per label)."""
    if layout.per_label:
        return np.bincount(tree.group, weights=tree.k * (tree.parent < 0),
                           minlength=layout.n_groups)[:c].astype(np.int64)
    return np.array([int(tree.k[(tree.group == layout.pooled_after) & (tree.parent < 0)].sum())])


def _first_tree(z: Backend, t: np.ndarray, layout: Layout) -> refinement.Tree:
    """First-level cells spanning each group's values in a row sample."""
    zs = np.asarray(z.sample(SAMPLE_ROWS), dtype=np.float64).reshape(-1, layout.n_classes)
    ss = zs / t
    lo, hi = [], []
    if layout.per_label:
        lo.append(ss.min(axis=0))
        hi.append(ss.max(axis=0))
    if layout.pooled_group:
        lo.append([ss.min()])
        hi.append([ss.max()])
    lo.append([zs.min()])
    hi.append([zs.max()])
    bins = np.full(layout.n_groups, POOLED_BINS)
    if layout.per_label and layout.n_classes > 1:
        bins[:layout.n_classes] = LABEL_BINS
    return refinement.Tree(np.concatenate(lo), np.concatenate(hi), bins)


def _decide(tree: refinement.Tree, layout: Layout, search: dict | None, found: dict,
            n_bins: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Decide what can be; return the cells still needed, and those likely
    needed after them, tier by tier over all groups
    (:class:`calibrate.thresholds.Pending`)."""
    leaves = tree.leaves()
    need: list[np.ndarray] = []
    ahead: list[list[np.ndarray]] = [[] for _ in _thr.AHEAD_TIERS]
    todo: list[tuple[Any, Any]] = []   # (class id or "global", its level)
    if search is not None:
        todo += [(g, search["alpha"]) for g in range(layout.n_classes)]
        todo.append(("global", search["alpha_global"]))
    todo = [(key, alpha) for key, alpha in todo if key not in found]
    results: list = []
    if todo:
        assert search is not None   # rules are searched only with a search
        # every group's search at once (the same answers as one by one)
        groups = [layout.pooled_after if key == "global" else key for key, _ in todo]
        results = group_search.search_tree(tree, [leaves[g] for g in groups], search["precision"],
                                           search["confidence"], [alpha for _, alpha in todo])
    for (key, _), r in zip(todo, results, strict=True):
        if isinstance(r, _thr.Pending):
            need.append(r.nodes)
            for tier, t in zip(ahead, r.ahead, strict=False):   # (a plain choice: none)
                tier.append(t)
        else:
            found[key] = r
    for key, g in (("mass_after", layout.pooled_after), ("mass_before", layout.pooled_before)):
        if key in found:
            continue
        r = equal_mass_ece(refinement.items(tree, leaves[g]), n_bins)
        if isinstance(r, _thr.Pending):
            need.append(r.nodes)
        else:
            found[key] = r

    def cat(a: list) -> np.ndarray:
        return setops.unique(np.concatenate(a)) if a else np.empty(0, np.int64)
    return cat(need), [cat(t) for t in ahead]


def equal_mass_ece(it: refinement.Items, n_bins: int) -> float | _thr.Pending:
    """The equal-mass ECE (:func:`calibrate.metrics.ece_equal_mass`) of the pairs
    whose values (logits) ``it`` holds, p = sigmoid(value): bins end at the
    order statistics of p, ties kept together; every item must fall in one bin."""
    n = int(it.N[-1])
    # ascending ranks m_j - 1 of the bin edges are descending positions n - m_j
    m = -(-np.arange(1, n_bins) * n // n_bins)
    pos = n - m
    at = np.searchsorted(it.N, pos, side="right")         # the item holding each position
    unknown = ~it.exact[at]
    if unknown.any():
        return _thr.Pending(it.node[at[unknown]])
    edges = np.sort(special.expit(it.value[at]))          # t_j, ascending
    slack = 1e-12 * (1.0 + np.abs(np.nan_to_num(it.lo, posinf=0, neginf=0))
                     + np.abs(np.nan_to_num(it.hi, posinf=0, neginf=0)))
    p_lo = np.where(it.exact, special.expit(it.value), special.expit(it.lo - slack))
    p_hi = np.where(it.exact, special.expit(it.value), special.expit(it.hi + slack))
    b_lo = np.searchsorted(edges, p_lo, side="left")
    b_hi = np.searchsorted(edges, p_hi, side="left")
    split = b_lo != b_hi
    if split.any():
        return _thr.Pending(it.node[split])
    gap = np.bincount(b_lo, weights=it.k - it.e, minlength=n_bins)
    return float(np.abs(gap).sum() / n)


def _count_rules(acc: np.ndarray, zc: np.ndarray, yc: np.ndarray, temperature: np.ndarray,
                 tau: np.ndarray, tau_global: float) -> None:
    """Add a block's decisions per label into ``acc`` (5, C): per-class rule
    predicted and correct, global rule predicted and correct, positives."""
    _, s, o = _pair_values(zc, yc, temperature)
    a, g = s >= tau, s >= tau_global
    acc += np.stack([a.sum(axis=0), (a & o).sum(axis=0), g.sum(axis=0), (g & o).sum(axis=0),
                     o.sum(axis=0)])


def rule_counts(z: Backend, y: Any, temperature: Any, tau: np.ndarray,
                tau_global: float) -> Any:
    """:class:`calibrate.rules.RuleCounts` of both rules on labelled sigmoid
    scores, in one pass (thresholds as floats, +inf = never)."""
    from .rules import RuleCounts

    zc = z.columns()
    c = zc.shape[1]
    t = np.broadcast_to(np.asarray(temperature, dtype=np.float64), (c,)).copy()
    acc = zc.fold(_count_rules, y, args=(t, np.asarray(tau, dtype=np.float64),
                                         float(tau_global)),
                  init=lambda: np.zeros((5, c), np.int64), label="decisions")
    return RuleCounts(acc[0], acc[1], acc[4], int(acc[2].sum()), int(acc[3].sum()),
                      zc.n_rows * c)
