"""Exact binomial bounds, fixed-sequence testing, and a simulation of the
precision guarantee on a population whose true precision is known."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

import calibrate
from calibrate import fitting, guarantee, rules
from calibrate.thresholds import ACCEPT_ALL, search

PROPERTY = settings(max_examples=80, deadline=None, database=None)


# ---------------------------------------------------------------- 14. bounds and p-values
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_lower_bound_is_clopper_pearson(confidence):
    n = np.repeat(np.arange(1, 81), np.arange(2, 82))
    k = np.concatenate([np.arange(m + 1) for m in range(1, 81)])
    lb = guarantee.lower_bound(k, n, confidence)
    alpha = 1 - confidence
    want = np.where(k > 0, stats.beta.ppf(alpha, np.maximum(k, 1), n - k + 1), 0.0)
    np.testing.assert_allclose(lb, want, rtol=1e-12, atol=0)
    assert np.all(lb[k == 0] == 0)
    # closed form at k = n: P(Bin(n, p) >= n) = p^n = alpha
    np.testing.assert_allclose(lb[k == n], alpha ** (1.0 / n[k == n]), rtol=1e-10)
    # defining property: the p-value at the bound is alpha (k > 0)
    pos = k > 0
    np.testing.assert_allclose(stats.binom.sf(k[pos] - 1, n[pos], lb[pos]), alpha, rtol=1e-6)
    # below the estimate, increasing in k for fixed n
    assert np.all(lb <= k / n)
    same_n = n[1:] == n[:-1]
    assert np.all(np.diff(lb)[same_n] > 0)
    assert guarantee.lower_bound(0, 10, 0.95) == 0.0


def test_p_values_are_exact_binomial_tails():
    for n in (1, 2, 7, 30, 60):
        for t in (0.5, 0.8, 0.9, 0.95):
            k = np.arange(n + 1)
            got = guarantee.p_values(k, np.full_like(k, n), t)
            want = [math.fsum(math.comb(n, i) * t**i * (1 - t)**(n - i) for i in range(kk, n + 1))
                    for kk in k]
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-300)
    assert guarantee.p_values(0, 10, 0.9) == pytest.approx(1.0)


def test_p_value_test_equals_bound_test():
    n = np.repeat(np.arange(1, 121), np.arange(2, 122))
    k = np.concatenate([np.arange(m + 1) for m in range(1, 121)])
    checked = 0
    for t in (0.5, 0.7, 0.8, 0.9, 0.95):
        for alpha in (0.01, 0.05, 0.1):
            p = guarantee.p_values(k, n, t)
            lb = guarantee.lower_bound(k, n, 1 - alpha)
            np.testing.assert_array_equal(p <= alpha, lb >= t)
            checked += int((p <= alpha).sum())
    assert checked > 1000  # both outcomes occur


CERT_CASES = [(0.9, 0.05), (0.9, 0.005), (0.8, 0.05), (0.95, 0.01), (0.5, 0.25), (0.5, 0.125),
              (0.99, 0.05)]


def _brute_min_count(target, alpha):
    return next(n for n in range(1, 10000) if guarantee.p_values(n, n, target) <= alpha)


@pytest.mark.parametrize("target,alpha", CERT_CASES)
def test_min_certifiable(target, alpha):
    m = guarantee.min_certifiable(target, alpha)
    assert m <= _brute_min_count(target, alpha)  # never refuses a certifiable count
    for n in range(1, m):
        assert guarantee.p_values(n, n, target) > alpha  # fewer cannot be certified


@pytest.mark.parametrize("use_expected", [True, False])
@pytest.mark.parametrize("target,alpha", CERT_CASES)
def test_search_certifies_smallest_all_correct_set(target, alpha, use_expected):
    brute = _brute_min_count(target, alpha)
    s = np.arange(float(brute))
    exp = np.full(brute, (1 + target) / 2) if use_expected else None
    # Without expected probabilities the sequence starts at start_predictions
    # (default 100), a documented limit for targets that need more rows.
    t = search(s, np.ones(brute, bool), target, confidence=1 - alpha, alpha=alpha, expected=exp,
               start_predictions=max(100, brute))
    assert t.status == "ok" and t.lower_bound >= target
    assert t.n_predicted == brute  # only the whole set carries enough evidence
    if brute > 1:
        t = search(s[1:], np.ones(brute - 1, bool), target, confidence=1 - alpha, alpha=alpha,
                   expected=None if exp is None else exp[1:])
        assert t.value is None and t.status in ("too-few", "uncertified")


@pytest.mark.parametrize("use_expected", [True, False])
def test_high_target_is_certifiable_on_large_clean_class(use_expected):
    # 2000 predictions, all correct: certifies 0.99 at confidence 0.95 (0.99^2000 ~ 2e-9)
    s = np.arange(2000.0)
    exp = np.full(2000, 0.995) if use_expected else None
    t = search(s, np.ones(2000, bool), 0.99, confidence=0.95, expected=exp,
               start_predictions=300)
    assert t.status == "ok" and t.accepts_all


def test_default_start_cannot_certify_targets_needing_more_rows():
    # The documented limit of the label-free default start (100 predictions):
    # 0.99 at 95% needs 299 all-correct rows, so the first test cannot pass.
    t = search(np.arange(2000.0), np.ones(2000, bool), 0.99, confidence=0.95)
    assert t.status == "uncertified" and t.value is None


# ---------------------------------------------------------------- 15. fixed sequence
@pytest.mark.parametrize("pvalues,alpha,start,want", [
    ([0.01, 0.02, 0.2, 0.01], 0.05, 0, 1),       # stops at the first failure
    ([0.2, 0.01, 0.01], 0.05, 0, None),          # first above alpha: nothing
    ([0.01, 0.02, 0.03, 0.04], 0.05, 0, 3),      # all pass: the last index
    ([0.9, 0.01, 0.01, 0.5], 0.05, 1, 2),        # starts where told
    ([0.9, 0.01, 0.01, 0.04], 0.05, 1, 3),
    ([0.01, 0.01], 0.05, 2, None),               # nothing left to test
    ([0.05, 0.05, 0.0500001], 0.05, 0, 1),       # p == alpha is rejected
    ([0.01, 0.5, 0.01, 0.01], 0.05, 0, 0),       # later passes do not count
    ([0.0], 0.01, 0, 0),
])
def test_fixed_sequence(pvalues, alpha, start, want):
    assert guarantee.fixed_sequence(np.array(pvalues), alpha, start) == want


@pytest.mark.parametrize("n,want", [
    ([1, 5, 50, 100, 150], 3),
    ([1, 5, 50, 99, 101, 400], 4),
    ([1, 5, 50], 2),          # fewer than START_PREDICTIONS: all of them
    ([3, 120, 200], 1),
    ([100], 0),
])
def test_start_index_without_probabilities(n, want):
    assert guarantee.START_PREDICTIONS == 100
    assert guarantee.start_index(np.array(n)) == want


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), target=st.sampled_from([0.7, 0.8, 0.9, 0.95]),
       confidence=st.sampled_from([0.8, 0.9, 0.95]), use_expected=st.booleans())
def test_certified_threshold_passes_its_own_test(seed, target, confidence, use_expected):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 600))
    s = rng.normal(size=n)
    p = special.expit(3 * s + rng.uniform(0, 3))
    c = rng.random(n) < p
    t = search(s, c, target, confidence=confidence, expected=p if use_expected else None)
    if t.value is None:
        assert t.status in ("unreachable", "uncertified", "too-few")
        return
    alpha = 1 - confidence
    assert guarantee.p_values(t.n_correct, t.n_predicted, target) <= alpha
    assert t.lower_bound >= target
    m = s >= t.value
    assert (m.sum(), c[m].sum()) == (t.n_predicted, t.n_correct)
    # a certified threshold meets the plain estimate too, so it is never looser
    assert t.value >= search(s, c, target).value


def _inf(v):
    return np.inf if v is None else v


def _expected_start_data(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    s = rng.normal(size=n)
    p = special.expit(2 * s + rng.uniform(-1, 2))
    return s, rng.random(n) < p, p


def _fit_data(seed):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(1500, 5)) * 2
    y = np.argmax(g + rng.gumbel(size=g.shape), axis=1)
    return g * 1.5, y


def test_higher_target_never_loosens_with_expected_start():
    targets = np.linspace(0.5, 0.99, 25)
    for seed in range(30):
        s, c, p = _expected_start_data(seed)
        for conf in (0.9, 0.95):
            vals = [_inf(search(s, c, t, confidence=conf, expected=p).value) for t in targets]
            assert all(a <= b for a, b in itertools.pairwise(vals)), (seed, conf)


def test_fit_higher_target_never_loosens():
    targets = np.round(np.linspace(0.6, 0.98, 20), 4)
    for seed in (0, 1):
        z, y = _fit_data(seed)
        taus = np.array([[_inf(v) for v in calibrate.fit(
            z, y, precision=float(t), confidence=0.95).decision_thresholds["per_class"]]
            for t in targets])
        assert np.all(taus[1:] >= taus[:-1]), seed


def test_higher_confidence_never_loosens_with_expected_start():
    for seed in range(100):
        s, c, p = _expected_start_data(seed)
        for target in (0.8, 0.9):
            vals = [_inf(search(s, c, target, confidence=q, expected=p).value)
                    for q in (0.5, 0.8, 0.9, 0.95, 0.99)]
            assert all(a <= b for a, b in itertools.pairwise(vals)), (seed, target)


def test_fit_higher_confidence_never_loosens():
    for seed in (0,):
        z, y = _fit_data(seed)
        rows = np.array([[_inf(v) for v in calibrate.fit(z, y, precision=0.85, confidence=q)
                          .decision_thresholds["per_class"]] for q in (0.5, 0.8, 0.9, 0.95, 0.99)])
        assert np.all(rows[1:] >= rows[:-1]), seed


def test_fit_simultaneous_never_looser_than_per_class():
    for seed in (0, 1):
        z, y = _fit_data(seed)
        per = calibrate.fit(z, y, precision=0.85, confidence=0.95)
        sim = calibrate.fit(z, y, precision=0.85, confidence=0.95, simultaneous=True)
        assert sim.target["simultaneous"] is True and per.target["simultaneous"] is False
        a = np.array([_inf(v) for v in per.decision_thresholds["per_class"]])
        b = np.array([_inf(v) for v in sim.decision_thresholds["per_class"]])
        assert np.all(b >= a), seed
        assert np.isfinite(a).any()  # not vacuous


# ---------------------------------------------------------------- 16. the simulation
# Population, per class: u ~ Uniform(0, 1) and P(correct | u) = 0.6 + 0.4 u, so the
# true precision of "accept u >= s" is 0.6 + 0.4 E[u | u >= s] = 0.8 + 0.2 s, and
# the target 0.9 is met exactly for s >= 0.5.
TARGET, CONFIDENCE = 0.9, 0.95


def _true_precision(value):
    """True precision of accepting u >= value; None when nothing is accepted."""
    if value is None:
        return None
    s = 0.0 if value == ACCEPT_ALL else min(max(value, 0.0), 1.0)
    if s >= 1.0:
        return None
    return 0.8 + 0.2 * s


def _share_bound(n, alpha=1 - CONFIDENCE):
    """alpha plus three binomial standard errors over n trials."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / n)


def test_simulation_search_controls_violations():
    rng = np.random.default_rng(2024)
    draws, classes, rows = 300, 10, 400
    viol = {"certified": 0, "certified_expected": 0, "plain": 0}
    chosen = dict.fromkeys(viol, 0)
    for _ in range(draws * classes):
        u = rng.random(rows)
        prob = 0.6 + 0.4 * u
        correct = rng.random(rows) < prob
        for name, kw in (("certified", {"confidence": CONFIDENCE}),
                         ("certified_expected", {"confidence": CONFIDENCE, "expected": prob}),
                         ("plain", {"confidence": None})):
            t = search(u, correct, TARGET, **kw)
            tp = _true_precision(t.value)
            chosen[name] += tp is not None
            viol[name] += tp is not None and tp < TARGET
    pairs = draws * classes
    share = {k: v / pairs for k, v in viol.items()}
    print("violation shares (search, 3000 class fits):", share,
          "thresholds chosen:", {k: v / pairs for k, v in chosen.items()})
    assert share["certified"] <= _share_bound(pairs)
    assert share["certified_expected"] <= _share_bound(pairs)
    assert share["plain"] > 0.25
    # not vacuous: the guarantee still predicts for a good share of classes
    assert chosen["certified"] / pairs > 0.3
    assert chosen["certified_expected"] / pairs > 0.3


C_SIM = 10
_UGRID = np.linspace(0.0, 1.0, 20001)
_ZGRID = np.zeros((len(_UGRID), C_SIM))
_ZGRID[:, 0] = 1.0 + 4.0 * _UGRID


def _draw_logits(rng, n):
    """Multiclass logits with the population above: argmax k, margin 1 + 4u."""
    k = rng.integers(0, C_SIM, n)
    u = rng.random(n)
    z = np.zeros((n, C_SIM))
    z[np.arange(n), k] = 1.0 + 4.0 * u
    ok = rng.random(n) < 0.6 + 0.4 * u
    y = np.where(ok, k, (k + rng.integers(1, C_SIM, n)) % C_SIM)
    return z, y


def _fit_true_precisions(cal):
    """True precision per class of the fitted thresholds, via the apply path on a u grid.

    log p of the argmax class depends only on the margin, the same for every class.
    """
    _, logp = rules.top_scores(_ZGRID, cal.temperature)
    out = []
    for tau in cal.decision_thresholds["per_class"]:
        acc = np.zeros(len(_UGRID), bool) if tau is None else logp >= tau
        out.append(0.8 + 0.2 * _UGRID[acc].min() if acc.any() else None)
    return out


def _simulate_fit(seed, draws, rows, **kw):
    rng = np.random.default_rng(seed)
    any_viol = pair_viol = chosen = 0
    for _ in range(draws):
        z, y = _draw_logits(rng, rows)
        cal = calibrate.fit(z, y, precision=TARGET, **kw)
        tp = _fit_true_precisions(cal)
        v = [p is not None and p < TARGET for p in tp]
        any_viol += any(v)
        pair_viol += sum(v)
        chosen += sum(p is not None for p in tp)
    return any_viol / draws, pair_viol / (draws * C_SIM), chosen / (draws * C_SIM)


@pytest.fixture
def no_family_comparison(monkeypatch):
    """The guarantee is what these simulations test: skip the comparison of
    calibration families that a default fit makes on data this small."""
    monkeypatch.setattr(fitting, "COMPARE_ELEMENTS", 0)


def test_simulation_fit_simultaneous(no_family_comparison):
    draws = 60
    any_share, pair_share, chosen = _simulate_fit(7, draws, 8000, confidence=CONFIDENCE,
                                                  simultaneous=True)
    print(f"fit simultaneous: any-class violation share {any_share:.3f}, "
          f"pairs {pair_share:.4f}, thresholds chosen {chosen:.3f}")
    assert any_share <= _share_bound(draws)
    # each class is tested at alpha / C
    assert pair_share <= _share_bound(draws * C_SIM, (1 - CONFIDENCE) / C_SIM)
    assert chosen > 0.1


def test_simulation_fit_per_class_and_plain(no_family_comparison):
    draws = 50
    any_share, pair_share, chosen = _simulate_fit(8, draws, 4000, confidence=CONFIDENCE)
    print(f"fit per-class: pair violation share {pair_share:.4f} (any-class {any_share:.3f}), "
          f"thresholds chosen {chosen:.3f}")
    assert pair_share <= _share_bound(draws * C_SIM)
    assert chosen > 0.2
    any_plain, pair_plain, _ = _simulate_fit(9, 10, 4000, confidence=None)
    print(f"fit plain: pair violation share {pair_plain:.4f}, any-class {any_plain:.3f}")
    assert pair_plain > 0.25
    assert any_plain > 0.5


def test_blockwise_sequence_equals_full_sequence():
    from calibrate.guarantee import fixed_sequence, fixed_sequence_counts, p_values
    rng = np.random.default_rng(5)
    for _ in range(200):
        m = int(rng.integers(1, 3000))
        n = np.cumsum(rng.integers(1, 4, m))
        hits = np.minimum(n, np.cumsum(rng.random(m) < rng.uniform(0.85, 1.0)) * 2)
        k = np.minimum(hits, n)
        start = int(rng.integers(0, m))
        want = fixed_sequence(p_values(k, n, 0.9), 0.05, start)
        block = int(rng.integers(1, 50))
        assert fixed_sequence_counts(k, n, 0.9, 0.05, start, block=block) == want


def _brute_best(e, n, starts):
    lb = guarantee.expected_lower_bound(e, n)
    stops = list(starts[1:]) + [len(e)]
    first = [a + int(np.argmax(lb[a:b])) for a, b in zip(starts, stops, strict=True)]
    return np.array(first), lb[first]


@pytest.mark.parametrize("seed", range(6))
def test_best_expected_is_the_first_largest_bound_of_every_segment(seed):
    """The filtered search (roots only for candidates that may reach the bar)
    gives the index and value of computing every bound, in every segment: small
    classes (bars below the trusted range, nothing filtered), large ones,
    ties (repeated candidates) and all-correct runs."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 400, 30)
    es, ns = [], []
    for m in sizes:
        p = rng.random(m) ** rng.uniform(0.05, 3)          # calibrated probabilities
        if rng.random() < 0.3:
            p = np.repeat(p[: max(1, m // 3)], 3)[:m]      # tied candidates
        es.append(np.cumsum(np.sort(p)[::-1]))
        ns.append(np.arange(1, len(es[-1]) + 1, dtype=np.float64))
    e, n = np.concatenate(es), np.concatenate(ns)
    starts = np.concatenate(([0], np.cumsum([len(x) for x in es])[:-1]))
    first, best = guarantee.best_expected(e, n, starts)
    want_first, want_best = _brute_best(e, n, starts)
    np.testing.assert_array_equal(first, want_first)
    np.testing.assert_array_equal(best, want_best)   # bit for bit
    assert guarantee.start_index(ns[0], es[0]) == want_first[0]


def test_may_reach_never_drops_a_candidate_that_reaches_the_bar():
    """may_reach is False only where the computed bound is below the bar, over
    random real-valued (k, n) and bars across the trusted range; below it
    everything may reach."""
    rng = np.random.default_rng(3)
    n = np.floor(10 ** rng.uniform(0, 6, 200_000)) + 1
    k = n * rng.random(n.size) ** 0.2
    lb = guarantee.expected_lower_bound(k, n)
    for bar in (0.11, 0.3, 0.5, 0.7, 0.9, 0.99):
        dropped = ~guarantee.may_reach(k, n, bar)
        assert dropped.any() and np.all(lb[dropped] < bar)
        near = np.abs(lb - bar) < 1e-3
        assert np.all(~dropped[near & (lb >= bar)])
    assert guarantee.may_reach(k, n, guarantee.LB_TRUSTED).all()


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 0.99, 0.999])
def test_p_exceeds_is_the_p_value_test_bit_for_bit(target):
    """The bounds that spare most incomplete beta values never decide otherwise
    than the p-value itself: counts from 1 to a million, all correct, none
    correct, right at the target, and levels from Bonferroni-small to 1/2."""
    rng = np.random.default_rng(int(target * 1000))
    n = np.floor(10 ** rng.uniform(0, 6, 100_000)) + 1
    q = np.clip(target + rng.normal(0, 3, n.size) * np.sqrt(target * (1 - target) / n), 0, 1)
    k = np.round(q * n)
    k[:50], k[50:100] = n[:50], 0                         # all correct, none correct
    k[100:200] = np.floor(n[100:200] * target)            # at the target
    k[200:300] = np.ceil(n[200:300] * target)
    for alpha in (1e-9, 1e-4, 0.01, 0.05, 0.2, 0.4999, 0.6):
        want = guarantee.p_values(k, n, target) > alpha
        np.testing.assert_array_equal(guarantee.p_exceeds(k, n, target, alpha), want)
    assert bool(guarantee.p_exceeds(20.0, 20.0, target, 0.05)) == \
        bool(guarantee.p_values(20, 20, target) > 0.05)
    k_real = k * 0.999 + 0.3                              # not counts: computed as is
    np.testing.assert_array_equal(guarantee.p_exceeds(k_real, n, target, 0.05),
                                  guarantee.p_values(k_real, n, target) > 0.05)
