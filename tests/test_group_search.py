"""Many groups' threshold searches at once give, group by group, exactly what
the one-label search they replaced gives (tests/one_label_search.py), on every
refinement round; and the sorted set operations give what numpy's do."""

import numpy as np
import pytest
from scipy import special

from calibrate import group_search, refinement, setops
from calibrate import thresholds as TH
from one_label_search import search_items as one_label_search


def _counted(tree, g, v, c):
    """One pass over the values into the tree; the groups' leaves after it."""
    spec = tree.spec()
    part = refinement.PassPart.of(spec)
    refinement.accumulate(spec, part, g, v, c, special.expit(v))
    tree.add(part)
    return tree.leaves()


def _same(a, b):
    """Two search answers are the same: equal thresholds, or the same pending
    cells, guess and cells ahead, tier by tier."""
    assert type(a) is type(b)
    if isinstance(a, TH.Threshold):
        assert a == b
        return
    np.testing.assert_array_equal(a.nodes, b.nodes)
    assert a.guess == b.guess and len(a.ahead) == len(b.ahead)
    for x, y in zip(a.ahead, b.ahead, strict=True):
        np.testing.assert_array_equal(x, y)


def _groups(rng):
    out = []
    for _ in range(int(rng.integers(1, 7))):
        n = int(rng.choice([0, 1, 5, 30, 200, 3000]))
        kind = int(rng.integers(0, 3))
        v = [rng.normal(0, 2, n), np.round(rng.normal(0, 2, n), 1),
             rng.integers(-3, 4, n).astype(float)][kind]
        out.append((v, rng.random(n) < special.expit(v * rng.uniform(0.5, 2))))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_search_groups_answers_each_group_as_the_one_group_search(tiny_cells, seed):
    rng = np.random.default_rng(seed)
    groups = _groups(rng)
    bins = int(rng.choice([8, 64, 4096]))
    lo = np.array([v.min() if len(v) else 0.0 for v, _ in groups])
    hi = np.array([v.max() if len(v) else 1.0 for v, _ in groups])
    tree = refinement.Tree(lo, hi, bins)
    g = np.concatenate([np.full(len(v), i) for i, (v, _) in enumerate(groups)])
    v = np.concatenate([v for v, _ in groups])
    c = np.concatenate([c for _, c in groups])
    precision = float(rng.choice([0.5, 0.8, 0.9, 0.99]))
    confidence = [None, 0.9, 0.99][int(rng.integers(0, 3))]
    alphas = [None if rng.random() < 0.3 else float(rng.choice([0.01, 0.05, 0.5]))
              for _ in groups]
    undecided = list(range(len(groups)))
    for _ in range(40):
        leaves = _counted(tree, g, v, c)
        if not undecided:
            break
        one_by_one = [one_label_search(refinement.items(tree, leaves[i]), precision,
                                       confidence, alphas[i]) for i in undecided]
        at_once = group_search.search_tree(tree, [leaves[i] for i in undecided], precision,
                                           confidence, [alphas[i] for i in undecided])
        need = []
        for a, b in zip(one_by_one, at_once, strict=True):
            _same(a, b)
            if isinstance(a, TH.Pending):
                # sometimes the cells ahead too, as a pass with budget left asks
                need += [a.nodes] + [t for t in a.ahead if rng.random() < 0.5]
        undecided = [i for i, a in zip(undecided, one_by_one, strict=True)
                     if isinstance(a, TH.Pending)]
        if need:
            tree.refine(np.concatenate(need))
    assert not undecided


def test_batches_of_groups_give_what_all_groups_at_once_give(tiny_cells, monkeypatch):
    monkeypatch.setattr(group_search, "BATCH_ITEMS", 50)   # a group or two a batch
    rng = np.random.default_rng(7)
    groups = [(rng.normal(0, 2, n), rng.random(n) < 0.7) for n in (300, 5, 3000, 40, 900)]
    tree = refinement.Tree(np.full(5, -6.0), np.full(5, 6.0), 64)
    g = np.concatenate([np.full(len(v), i) for i, (v, _) in enumerate(groups)])
    v = np.concatenate([v for v, _ in groups])
    c = np.concatenate([c for _, c in groups])
    for _ in range(3):
        leaves = _counted(tree, g, v, c)
        whole = group_search.search_groups(
            group_search.Groups.of(*refinement.items_of_groups(tree, leaves)), 0.8, 0.9,
            [None] * 5)
        batched = group_search.search_tree(tree, leaves, 0.8, 0.9, [None] * 5)
        for a, b in zip(whole, batched, strict=True):
            _same(a, b)
        need = [r.nodes for r in whole if isinstance(r, TH.Pending)]
        if not need:
            break
        tree.refine(np.concatenate(need))


def test_items_of_groups_are_each_groups_items_end_to_end(tiny_cells):
    rng = np.random.default_rng(3)
    v = np.round(rng.normal(0, 2, 4000), 1)
    g = rng.integers(0, 4, v.size)
    c = rng.random(v.size) < 0.6
    tree = refinement.Tree(np.full(4, -5.0), np.full(4, 5.0), 16)
    for _ in range(3):                   # tables from several passes side by side
        leaves = _counted(tree, g, v, c)
        it, starts = refinement.items_of_groups(tree, leaves)
        assert starts[0] == 0 and starts[-1] == it.n.size
        for i, lv in enumerate(leaves):
            one = refinement.items(tree, lv)
            s = slice(starts[i], starts[i + 1])
            for name in ("value", "exact", "node", "n", "k", "e", "lo", "hi"):
                np.testing.assert_array_equal(getattr(it, name)[s], getattr(one, name))
        # every value is in some item, once
        assert it.n.sum() == v.size and it.k.sum() == c.sum()
        tree.refine(np.concatenate([lv[:3] for lv in leaves]))
    assert len(tree.tables) >= 2


@pytest.mark.parametrize("seed", range(20))
def test_set_operations_are_numpys(seed):
    rng = np.random.default_rng(seed)
    for dtype in (np.int64, np.int32, np.float64):
        a = rng.integers(-5, 30, int(rng.integers(0, 60))).astype(dtype)
        b = rng.integers(-5, 30, int(rng.integers(0, 60))).astype(dtype)
        for ours, theirs in ((setops.unique(a), np.unique(a)),
                             (setops.union(a, b), np.union1d(a, b)),
                             (setops.setdiff(a, b), np.setdiff1d(a, b))):
            np.testing.assert_array_equal(ours, theirs)
            assert ours.dtype == theirs.dtype
