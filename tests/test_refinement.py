"""Binary and multilabel fits on row streams: nested histograms refined where
undecided give exactly what the in-memory computations give.

The streaming parameters are shrunk here (a handful of cells, tiny gathers) so
that small data needs several refinement passes, ties straddle cells and
gathered cells hold many values; the answers must not change.
"""

import dataclasses
import itertools

import numpy as np
import pytest
from scipy import special

import calibrate
from calibrate import group_search, metrics, refinement, sigmoid_passes
from calibrate import thresholds as TH
from calibrate.backends import as_backend, local
from calibrate.rows import NpyRows, ShardedRows
from conftest import make_binary, make_multiclass, make_multilabel

#: The levels every streamed search here runs at.
SEARCH = dict(precision=0.9, confidence=0.9, alpha=0.05, alpha_global=0.1)


@pytest.fixture
def tiny(tiny_cells, monkeypatch):
    """Cells of 8 (first level) x 4 (below), values gathered below 6 per cell."""
    monkeypatch.setattr(sigmoid_passes, "LABEL_BINS", 8)
    monkeypatch.setattr(sigmoid_passes, "POOLED_BINS", 8)
    monkeypatch.setattr(sigmoid_passes, "SAMPLE_ROWS", 16)


def _streamed(groups, precision, confidence, bins=8):
    """Each group's threshold from the tree, refining until all are decided;
    the values are counted in two blocks, as two workers would."""
    lo = np.array([v.min() if len(v) else 0.0 for v, _ in groups])
    hi = np.array([v.max() if len(v) else 1.0 for v, _ in groups])
    tree = refinement.Tree(lo, hi, bins)
    g = np.concatenate([np.full(len(v), i) for i, (v, _) in enumerate(groups)])
    v = np.concatenate([v for v, _ in groups]).astype(np.float64)
    c = np.concatenate([c for _, c in groups])
    out, passes = [None] * len(groups), 0
    while True:
        spec = tree.spec()
        total = refinement.PassPart.of(spec)
        half = len(v) // 2
        for s in (slice(0, half), slice(half, None)):
            part = refinement.PassPart.of(spec)
            refinement.accumulate(spec, part, g[s], v[s], c[s], special.expit(v[s]))
            total += part
        tree.add(total)
        passes += 1
        leaves = tree.leaves()
        need = []
        for i, r in enumerate(out):
            if r is None:
                r = group_search.search_items(refinement.items(tree, leaves[i]), precision,
                                              confidence, None)
                if isinstance(r, TH.Pending):
                    need.append(r.nodes)
                else:
                    out[i] = r
        if not need:
            return out, passes
        assert passes < 40, "refinement does not converge"
        tree.refine(np.concatenate(need))


def _values(rng, n, kind):
    if kind == "spread":
        return rng.normal(0, 2, n)
    if kind == "rounded":                       # many ties
        return np.round(rng.normal(0, 2, n), 1)
    return rng.integers(-3, 4, n).astype(float)  # a few values, heavily tied


@pytest.mark.parametrize("seed", range(12))
def test_search_items_equals_the_in_memory_search(tiny, seed):
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.choice([1, 5, 30, 200, 3000]))
        v = _values(rng, n, ["spread", "rounded", "tied"][int(rng.integers(0, 3))])
        groups.append((v, rng.random(n) < special.expit(v * rng.uniform(0.5, 2))))
    for precision in (0.5, 0.8, 0.95):
        for confidence in (None, 0.9):
            got, passes = _streamed(groups, precision, confidence)
            for (v, c), r in zip(groups, got, strict=True):
                assert r == TH.search(v, c, precision, confidence, None, special.expit(v))


def test_refinement_needs_more_than_one_pass_here(tiny):
    # the shrunk tree must really be refined, or the test above proves little
    rng = np.random.default_rng(0)
    v = rng.normal(0, 2, 3000)
    _, passes = _streamed([(v, rng.random(3000) < special.expit(v))], 0.9, 0.9)
    assert passes >= 3


@pytest.mark.parametrize("kind", ["spread", "rounded", "tied"])
def test_equal_mass_ece_from_the_tree(tiny, kind):
    rng = np.random.default_rng(3)
    v = _values(rng, 2000, kind)
    o = rng.random(2000) < special.expit(0.7 * v)
    tree = refinement.Tree(np.array([v.min()]), np.array([v.max()]), 8)
    while True:
        spec = tree.spec()
        part = refinement.PassPart.of(spec)
        refinement.accumulate(spec, part, np.zeros(v.size, np.int64), v, o, special.expit(v))
        tree.add(part)
        r = sigmoid_passes.equal_mass_ece(refinement.items(tree, tree.leaves()[0]), 15)
        if not isinstance(r, TH.Pending):
            break
        tree.refine(r.nodes)
    assert r == pytest.approx(metrics.ece_equal_mass(special.expit(v), o, 15), rel=1e-12)


@pytest.mark.parametrize("task", ["binary", "multilabel"])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("ahead", [True, False])
def test_streamed_metrics_and_thresholds_equal_the_in_memory_ones(tiny, monkeypatch, task,
                                                                  temperature, ahead):
    if not ahead:   # each step asks for its cells only when the one before is done
        monkeypatch.setattr(sigmoid_passes, "AHEAD_VALUES", -1)
    z, y = (make_binary(n=2000, seed=4) if task == "binary"
            else make_multilabel(n=1500, c=4, seed=4))
    got = sigmoid_passes.run(as_backend(z), y, temperature, task, SEARCH)
    assert got.passes >= 2
    zz = np.asarray(z, np.float64).reshape(len(z), -1)
    yy = np.asarray(y).reshape(len(z), -1).astype(bool)
    for side, t in (("before", 1.0), ("after", temperature)):
        p = special.expit(zz / t)
        want = metrics.all_metrics(p.ravel() if task == "binary" else p,
                                   yy.ravel() if task == "binary" else yy, task)
        have = getattr(got, side)
        assert set(have) == {k for k, v in want.items() if v is not None}
        for k in have:
            assert have[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), (side, k)
    _assert_sorted_thresholds(got, z, y, temperature)
    assert got.support.tolist() == yy.sum(axis=0).tolist()


def _assert_sorted_thresholds(got, z, y, temperature):
    """Every label's threshold and the global one equal the in-memory search on
    the sorted calibrated logits (the levels of ``SEARCH``)."""
    s = np.asarray(z, np.float64).reshape(len(z), -1) / temperature
    yy = np.asarray(y).reshape(len(z), -1).astype(bool)
    for j in range(s.shape[1]):
        assert got.per_class[j] == TH.search(s[:, j], yy[:, j], 0.9, 0.9, 0.05,
                                             special.expit(s[:, j]))
    assert got.global_rule == TH.search(s.ravel(), yy.ravel(), 0.9, 0.9, 0.1,
                                        special.expit(s.ravel()))


def _data(task, seed):
    if task == "binary":
        return make_binary(n=3000, seed=seed)
    if task == "multilabel":
        return make_multilabel(n=3000, seed=seed)
    return make_multiclass(n=3000, c=6, seed=seed)


def _fit_dict(scores, labels, task):
    c = calibrate.fit(scores, labels, task=task, precision=0.9, confidence=0.9)
    d = c.to_dict()
    d.pop("created", None)
    return d


@pytest.mark.parametrize("task", ["binary", "multilabel", "multiclass"])
def test_the_same_fit_from_an_array_a_file_shards_and_any_core_count(tmp_path, monkeypatch,
                                                                      task):
    z, y = _data(task, 5)
    monkeypatch.setattr(local, "MAX_ROWS", 256)        # many chunks and fold runs
    want = _fit_dict(z, y, task)
    np.save(tmp_path / "z.npy", z)
    cuts = [0, 1000, 1001, 3000]
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        np.save(tmp_path / f"s{i}.npy", z[a:b])
    assert _fit_dict(NpyRows(tmp_path / "z.npy"), y, task) == want
    shards = ShardedRows([NpyRows(tmp_path / f"s{i}.npy") for i in range(3)])
    assert _fit_dict(shards, y, task) == want
    # labels from files too: (N, C) indicators stay a row source, read a block at
    # a time like the scores (class ids are read whole)
    np.save(tmp_path / "y.npy", y)
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        np.save(tmp_path / f"y{i}.npy", y[a:b])
    one = calibrate.io.read_labels(str(tmp_path / "y.npy"))
    many = calibrate.io.read_labels([str(tmp_path / f"y{i}.npy") for i in range(3)])
    stays = task == "multilabel"
    assert isinstance(one, NpyRows) == stays and isinstance(many, ShardedRows) == stays
    assert _fit_dict(str(tmp_path / "z.npy"), str(tmp_path / "y.npy"), task) == want
    assert _fit_dict(shards, many, task) == want
    monkeypatch.setattr(local, "n_workers", lambda: 1)
    assert _fit_dict(z, y, task) == want


@pytest.mark.parametrize("task", ["binary", "multilabel", "multiclass"])
def test_dask_gives_the_same_fit_whatever_its_chunks(monkeypatch, task):
    da = pytest.importorskip("dask.array")
    z, y = _data(task, 6)
    monkeypatch.setattr(local, "MAX_ROWS", 256)
    want = _fit_dict(z, y, task)
    for chunks in (700, 3000, 1):
        assert _fit_dict(da.from_array(z, chunks=(chunks,) + z.shape[1:]), y, task) == want


def _pass_counts(monkeypatch):
    """Record every pass's counts as the tree receives them."""
    seen = []
    real_add = refinement.Tree.add

    def add(tree, part):
        t = refinement.tabulate(list(part.gathered))     # (a copy: tabulate consumes it)
        seen.append((part.n.tolist(), part.k.tolist(), part.e.tolist(),
                     None if t is None else (t.nodes.tolist(), t.value.tolist(), t.n.tolist(),
                                             t.k.tolist(), t.e.tolist())))
        return real_add(tree, part)

    monkeypatch.setattr(refinement.Tree, "add", add)
    return seen


@pytest.mark.parametrize("task", ["binary", "multilabel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["plain", "extremes", "far"])
def test_later_passes_look_only_inside_the_window_and_count_the_same(tiny, monkeypatch,
                                                                     task, dtype, case):
    # every later pass goes through the window here; ties, a constant column,
    # extreme logits (infinite ones are refused before), temperatures a
    # thousand times apart, and ("far") logits far from zero next to their
    # spread, where a float32 cell position is off by a hundredth of a cell:
    # each pass must count exactly what locating every pair counts
    z, y = (make_binary(n=2000, seed=7, dtype=dtype) if task == "binary"
            else make_multilabel(n=1500, c=4, seed=7, dtype=dtype))
    z = np.round(z, 1)
    t = 2.5 if task == "binary" else np.array([0.05, 2.5, 50.0, 1.0])
    if task == "multilabel":
        z[:, 3] = 1.5
    if case == "extremes":
        z.reshape(-1)[:5] = [1e30, -1e30, 0.0, 1e-30, -1e-30]
    if case == "far":
        z = (z * 0.001 + 10).astype(dtype)
    window = sigmoid_passes._window(
        refinement.Tree(np.full(3, 10.0), np.full(3, 10.001), np.full(3, 1024)).spec(),
        sigmoid_passes.Layout(1, True), np.ones(1), np.dtype(dtype))
    assert (window is None) == (dtype == np.float32)    # too far for float32 there
    monkeypatch.setattr(sigmoid_passes, "WINDOW_SHARE", 1.0)
    windowed = []
    real_count = sigmoid_passes._count

    def counting(*a, **k):
        windowed.append(len(a) > 8 and a[8] is not None)
        return real_count(*a, **k)

    monkeypatch.setattr(sigmoid_passes, "_count", counting)
    seen = _pass_counts(monkeypatch)
    got = sigmoid_passes.run(as_backend(z), y, t, task, SEARCH)
    assert got.passes >= 2 and any(windowed)        # the window served the later passes
    got_counts = list(seen)
    monkeypatch.setattr(sigmoid_passes, "_window", lambda *a: None)
    monkeypatch.setattr(sigmoid_passes, "WINDOW_SHARE", 0.0)
    seen.clear()
    windowed.clear()
    want = sigmoid_passes.run(as_backend(z), y, t, task, SEARCH)
    assert not any(windowed)                        # every pair located
    assert got_counts == seen                       # pass by pass, cell by cell
    assert got.to_dict() == want.to_dict()


@pytest.mark.parametrize("ahead", [-1, 40, 10 ** 9])
@pytest.mark.parametrize("gather_all", [6, 10 ** 6])
def test_whole_cells_gathered_and_partial_tiers_give_the_sorted_answer(tiny, monkeypatch,
                                                                       ahead, gather_all):
    # cells far above GATHER gathered whole; an ahead budget that takes some tiers only
    monkeypatch.setattr(refinement, "GATHER_ALL", gather_all)
    monkeypatch.setattr(sigmoid_passes, "AHEAD_VALUES", ahead)
    z, y = make_multilabel(n=1500, c=4, seed=9)
    got = sigmoid_passes.run(as_backend(z), y, 2.5, "multilabel", SEARCH)
    _assert_sorted_thresholds(got, z, y, 2.5)


def test_one_refinement_pass_asks_for_every_stage_at_once(monkeypatch):
    # the plain choice, the start, the sequence from the best start so far and
    # the equal-mass edges all ask for their cells after the first pass: with
    # the default cells, one more pass decides all of them, exactly
    z, y = make_multilabel(n=20000, c=3, seed=8)
    got = sigmoid_passes.run(as_backend(z), y, 2.5, "multilabel", SEARCH)
    assert got.passes == 2
    monkeypatch.setattr(sigmoid_passes, "AHEAD_VALUES", -1)   # nothing asked ahead
    step_by_step = sigmoid_passes.run(as_backend(z), y, 2.5, "multilabel", SEARCH)
    assert step_by_step.passes > 2
    assert step_by_step.to_dict() | {"passes": 2} == got.to_dict()
    _assert_sorted_thresholds(got, z, y, 2.5)


@pytest.mark.parametrize("seed", range(4))
def test_may_reach_keeps_every_blob_any_piece_of_any_candidate_keeps(seed):
    # the start's blob filter stops testing a candidate at its first piece that
    # may reach, and a blob at its first such candidate: the blobs it keeps are
    # those that testing every piece of every candidate keeps
    rng = np.random.default_rng(seed)
    m = 400
    n = rng.integers(1, 60, m)
    p = np.sort(rng.random(m))[::-1]
    k = rng.binomial(n, p)
    e = n * p
    it = refinement.Items(value=np.zeros(m), exact=np.zeros(m, bool), node=np.arange(m),
                          n=n, k=k, e=e, lo=np.zeros(m), hi=np.ones(m))
    N, E = it.N, it.E
    at = np.minimum(np.searchsorted(N, rng.integers(1, N[-1], 3000)), m - 1)
    n_lo = np.maximum(N[at] - n[at] + 1, N[at] - rng.integers(0, 30, at.size)).astype(float)
    # values' expected probabilities above and below the blobs' own rates: a
    # candidate's most promising piece (by k / n) is not always its best one
    emax = np.minimum(1.0, p[at] * rng.uniform(0.9, 1.1, at.size))
    best = 0.75 + 0.05 * seed
    for pieces in (1, TH._PIECES):
        keep = TH._may_reach(it, N, E, at, n_lo, emax, pieces, best)
        a, _, kk, _, _ = TH._pieces(it, N, E, at, n_lo, emax, pieces)
        every = ~(special.betainc(np.maximum(kk, 1e-12), np.maximum(a - kk + 1, 1e-12),
                                  best - 1e-9) > 0.05).all(axis=1)
        assert not (keep & ~every).any()
        assert 0 < np.unique(at[keep]).size < np.unique(at).size
        np.testing.assert_array_equal(np.unique(at[keep]), np.unique(at[every]))


def _window_case(seed, c):
    """A window test's random state, layout of c labels, temperatures and cells."""
    rng = np.random.default_rng(seed)
    return rng, sigmoid_passes.Layout(c, True), rng.uniform(0.3, 3.0, c), \
        np.array([1024] * c + [8192, 8192])


def _edge_logits(lo, width, bins, t):
    """Per column j (a label's group j of c, then the calibrated and the given
    pooled groups): float32 logits at every cell edge of each group that sees the
    column, in its units, and one float32 step beside them either way."""
    c = len(t)
    cols = []
    for j in range(c):
        edges = [lo[g] + width[g] * np.arange(bins[g] + 1) / bins[g] for g in (j, c, c + 1)]
        zs = np.concatenate([edges[0] * t[j], edges[1] * t[j], edges[2]]).astype(np.float32)
        cols.append(np.concatenate([zs, np.nextafter(zs, np.float32(np.inf)),
                                    np.nextafter(zs, np.float32(-np.inf))]))
    n = min(len(x) for x in cols)
    return np.stack([x[:n] for x in cols], axis=1)


def _wanted_hits(spec, layout, z, t):
    """Whether each logit's exact first-level cell is wanted, per view: the
    labels', the calibrated pooled group's, the given pooled group's."""
    flat = dataclasses.replace(spec, flat=True)
    v = z.astype(np.float64)
    return tuple(spec.roots_wanted[flat.locate(g, x).reshape(z.shape)]
                 for g, x in ((np.arange(z.shape[1]), v / t), (layout.pooled_after, v / t),
                              (layout.pooled_before, v)))


@pytest.mark.parametrize("seed", range(6))
def test_window_finds_every_logit_of_a_wanted_cell_at_its_precision_limit(seed):
    # logits on and beside the first-level cell edges, of groups whose range
    # sits as far from zero as the window's float32 estimate allows (shift up
    # to ~9e5 cells) or that it refuses: every logit whose exact cell is wanted
    # (any view) is inside; a range too far gives no window
    rng, layout, t, bins = _window_case(seed, 3)
    width = 10.0 ** rng.uniform(-3, 1, layout.n_groups)
    limit = 0.5 / (4 * np.finfo(np.float32).eps) - bins - 3       # |shift| the guard allows
    shift = limit * rng.uniform(0.5, 1.0, layout.n_groups) if seed % 3 else \
        limit * np.r_[np.full(layout.n_groups - 1, 0.5), 1.1]     # one group too far
    lo = np.sign(rng.standard_normal(layout.n_groups)) * shift * width / bins
    tree = refinement.Tree(lo, lo + width, bins)
    spec = tree.spec()
    wanted = rng.random(spec.size) < 0.05
    spec = dataclasses.replace(spec, roots_wanted=wanted, wanted=wanted)
    window = sigmoid_passes._window(spec, layout, t, np.dtype(np.float32))
    if seed % 3 == 0:
        assert window is None
        return
    assert window is not None
    z = _edge_logits(lo, width, bins, t)
    labels, after, before = _wanted_hits(spec, layout, z, t)
    hit = labels | after | before
    assert hit.sum() > 100
    inside = window.inside(z)
    assert not (hit & ~inside).any()
    assert inside.mean() < 0.5                      # and it does leave most out


@pytest.mark.parametrize("seed", range(4))
def test_folded_window_finds_every_logit_of_a_wanted_pooled_cell(seed):
    # with the first-level counts, a later pass's window marks the pooled
    # groups' few wanted cells in the labels' cells and looks through those
    # alone (one view), even where a pooled group's range sits too far from zero
    # for a float32 position of its own; many scattered pooled cells, which
    # would open up most labels' cells, keep the three views
    rng, layout, t, bins = _window_case(seed, 4)
    c = layout.n_classes
    lo_s = rng.normal(0, 1, c) - 3
    lo = np.r_[lo_s, lo_s.min() - 1, (lo_s * t).min() - 1]
    width = np.r_[np.full(c, 6.0), 8.0, 8.0 * t.max()]
    if seed % 2:
        lo[-1] = 2e6 * width[-1]      # the logits' pooled range far from zero
    tree = refinement.Tree(lo, lo + width, bins)
    spec = tree.spec()
    wanted = np.zeros(spec.size, bool)
    wanted[rng.choice(int(bins[:c].sum()), 40, replace=False)] = True       # labels' cells
    for g in (c, c + 1):                                                     # 3 runs each
        start = int(tree.offset[g])
        for a in rng.choice(8192 - 5, 3, replace=False):
            wanted[start + a:start + a + rng.integers(1, 5)] = True
    spec = dataclasses.replace(spec, roots_wanted=wanted, wanted=wanted)
    root_n = np.ones(int(tree.offset[-1]), np.int64)
    window = sigmoid_passes._window(spec, layout, t, np.dtype(np.float32), root_n)
    assert window is not None and len(window.views) == 1
    z = _edge_logits(lo, width, bins, t)
    hit, pooled, before = _wanted_hits(spec, layout, z, t)
    if seed % 2 == 0:
        pooled |= before
    assert hit.sum() > 50 and pooled.sum() > 10
    inside = window.inside(z)
    assert not ((hit | pooled) & ~inside).any()
    assert window.views[0][4].mean() <= sigmoid_passes.FOLD_SHARE   # few labels' cells open
    # scattered pooled cells: three views, as without the counts
    wanted[int(tree.offset[c]):int(tree.offset[c + 1]):7] = True
    spec = dataclasses.replace(spec, roots_wanted=wanted, wanted=wanted)
    many = sigmoid_passes._window(spec, layout, t, np.dtype(np.float32), root_n)
    if seed % 2 == 0:
        assert many is not None and len(many.views) == 3
    else:
        assert many is None      # the far pooled range needs its own view, and refuses it


def test_tabulate_gives_each_cells_distinct_values_and_consumes_the_list():
    pieces = [(np.array([5, 2, 5], np.int32), np.array([0.5, 1.0, 0.7]),
               np.array([True, False, False]), np.array([0.1, 0.2, 0.3])),
              (np.array([5, 2], np.int32), np.array([0.5, 3.0]), np.array([True, True]),
               np.array([0.4, 0.5]))]
    t = refinement.tabulate(pieces)
    assert pieces == []
    assert t.nodes.tolist() == [2, 5] and t.cuts.tolist() == [0, 2, 4]
    assert t.value.tolist() == [3.0, 1.0, 0.7, 0.5]          # decreasing in each cell
    assert t.n.tolist() == [1, 1, 1, 2] and t.k.tolist() == [1, 0, 0, 2]
    np.testing.assert_allclose(t.e, [0.5, 0.2, 0.3, 0.5])


def test_label_columns_of_one_are_read_whole_and_fit_as_before(tmp_path):
    # an (N, 1) label file is a column of binary labels or class ids, not
    # multilabel indicators: read whole, it fits as the (N,) labels do
    for task, (z, y) in (("binary", make_binary(n=3000, seed=3)),
                         ("multiclass", make_multiclass(n=3000, c=4, seed=3))):
        np.save(tmp_path / "z.npy", z)
        np.save(tmp_path / "y1.npy", np.asarray(y).reshape(-1, 1))
        col = calibrate.io.read_labels(str(tmp_path / "y1.npy"))
        assert isinstance(col, np.ndarray) and col.shape == (3000, 1)
        assert _fit_dict(str(tmp_path / "z.npy"), str(tmp_path / "y1.npy"), task) == \
            _fit_dict(z, y, task)


def test_labels_counted_in_blocks_give_the_same_fit_bit_for_bit(monkeypatch):
    """A first pass counts labels' cells a block of labels at a time: with blocks
    of 8 labels of 70, and with no blocks, every metric, threshold and count of
    the streamed fit is the same, bit for bit."""
    z, y = make_multilabel(n=3000, c=70, seed=9)
    t = np.linspace(0.5, 2.0, 70)
    runs = []
    for block in (8, 10**9):
        monkeypatch.setattr(sigmoid_passes, "LABEL_BLOCK", block)
        runs.append(sigmoid_passes.run(as_backend(z), y, t, "multilabel", SEARCH).to_dict())
    assert runs[0] == runs[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bin_width_with_offsets_is_the_bin_plus_the_offset(dtype):
    """Equal-width bins (lo, hi] from p * n_bins in p's own float type (float32
    values just above an edge stay in the bin float32 rounding puts them in),
    with per-column offsets."""
    p = np.array([[0.0, 1 / 15, 0.2, 1.0], [1e-30, 0.5, 14 / 15, 0.99999]], dtype=dtype)
    want = np.clip(np.ceil(p * 15).astype(np.int64) - 1, 0, 14)
    np.testing.assert_array_equal(metrics.bin_width(p, 15), want)
    np.testing.assert_array_equal(metrics.bin_width(p, 15, offsets=15 * np.arange(4)),
                                  want + 15 * np.arange(4))
    # float32's 0.2 is 0.2000000030: times 15 it rounds to 3 in float32, not in float64
    v = np.array([0.2], np.float32).astype(dtype)
    assert metrics.bin_width(v, 15)[0] == (2 if dtype == np.float32 else 3)


def _ties(n, cells):
    """Gathered cells' values with many ties, 0.0 beside -0.0 and infinities;
    expected probabilities a function of the value, as every pass gives them."""
    rng = np.random.default_rng(n)
    lf = (rng.integers(0, cells, n) * 3).astype(np.int32)
    v = np.round(rng.standard_normal(n), 2)
    v[:6] = [np.inf, -np.inf, 0.0, -0.0, 0.0, -0.0]
    a, b = lf[2], (lf[2] + 3) % (3 * cells)
    lf[2:6] = [a, b, b, a]          # a cell whose first zero is 0.0, one whose is -0.0
    return lf, v


@pytest.mark.parametrize("n, cells", [(2000, 7), (200_000, 70_000), (50_000, 3000)])
def test_cell_order_is_the_lexicographic_order_up_to_ties(n, cells):
    """Gathered values ordered by cell, then decreasing value (ties in any order):
    a permutation that lists the pairs (cell, -value) as np.lexsort does, with
    16-bit cell keys and without."""
    lf, v = _ties(n, cells)
    order = refinement._cell_order(lf, v)
    ref = np.lexsort((-v, lf))
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    np.testing.assert_array_equal(lf[order], lf[ref])
    np.testing.assert_array_equal(v[order], v[ref])


@pytest.mark.parametrize("n, cells", [(2000, 7), (200_000, 70_000), (50_000, 3000)])
def test_tabulate_equals_the_stable_lexicographic_tables_bit_for_bit(n, cells):
    """Tables from any order of ties equal those of the stable lexicographic
    order: the same values (a cell's first zero names its sign), counts and
    expected sums, bit for bit."""
    lf, v = _ties(n, cells)
    c = np.random.default_rng(n + 1).random(n) < 0.3
    e = special.expit(v)
    t = refinement.tabulate([(lf[:n // 3], v[:n // 3], c[:n // 3], e[:n // 3]),
                             (lf[n // 3:], v[n // 3:], c[n // 3:], e[n // 3:])])
    o = np.lexsort((-v, lf))
    sl, sv, sc, se = lf[o], v[o], c[o], e[o]
    starts = np.flatnonzero(np.r_[True, (sl[1:] != sl[:-1]) | (sv[1:] != sv[:-1])])
    ends = np.r_[starts[1:], n]
    assert t.value.tobytes() == sv[starts].tobytes()
    np.testing.assert_array_equal(t.n, ends - starts)
    np.testing.assert_array_equal(t.k, np.add.reduceat(sc.astype(np.int64), starts))
    assert t.e.tobytes() == np.add.reduceat(se, starts).tobytes()
    assert np.signbit(t.value[t.value == 0]).tolist().count(True) >= 1   # -0.0 kept
