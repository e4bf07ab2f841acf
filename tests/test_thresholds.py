"""Exact threshold search: brute-force agreement, achieved precision,
monotonicity in the target, unreachable targets and float32 saturation."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

import calibrate
from calibrate import rules
from calibrate.thresholds import ACCEPT_ALL, candidates, search, search_per_class

PROPERTY = settings(max_examples=100, deadline=None, database=None)

TARGETS = st.sampled_from([0.3, 0.5, 0.6, 2 / 3, 0.75, 0.8, 0.9, 0.95])


@st.composite
def tie_heavy(draw, max_size=60, lo=-3, hi=3):
    """Integer-valued scores from a small range (many ties), random correctness."""
    n = draw(st.integers(1, max_size))
    s = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    c = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return np.array(s, dtype=np.float64), np.array(c, dtype=bool)


@st.composite
def seeded(draw, max_size=400):
    """Random continuous scores of random size whose correctness rises with the score."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, max_size))
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n)
    # a few exact ties as well
    s[rng.random(n) < 0.1] = 0.25
    correct = rng.random(n) < special.expit(2 * s + rng.uniform(-1, 2))
    return s, correct


def brute_force(scores, correct, target):
    """Lowest distinct score v with precision{s >= v} >= target: (index, ascending values)."""
    vals = np.unique(scores)
    for i, v in enumerate(vals):
        m = scores >= v
        if correct[m].sum() / m.sum() >= target:
            return i, vals
    return None, vals


# ---------------------------------------------------------------- 9. brute force
@PROPERTY
@given(data=tie_heavy(), target=TARGETS)
def test_search_equals_brute_force(data, target):
    s, c = data
    t = search(s, c, target, confidence=None)
    i, vals = brute_force(s, c, target)
    if i is None:
        assert t.value is None and t.status == "unreachable"
        assert t.n_predicted == 0
        return
    v = vals[i]
    assert t.status == "ok"
    assert t.lower_bound is None
    if i == 0:
        assert t.value == ACCEPT_ALL and t.accepts_all
    else:
        assert vals[i - 1] < t.value < v
        assert t.value == (vals[i - 1] + v) / 2  # midway
        assert not t.accepts_all
    m = s >= v
    assert t.n_predicted == m.sum()
    assert t.n_correct == c[m].sum()
    assert t.precision == c[m].sum() / m.sum()


@PROPERTY
@given(data=tie_heavy(max_size=40), target=TARGETS)
def test_search_is_order_and_dtype_invariant(data, target):
    s, c = data
    perm = np.random.default_rng(len(s)).permutation(len(s))
    a = search(s, c, target)
    b = search(s[perm], c[perm], target)
    d = search(s.astype(np.float32).astype(np.float64), c.astype(np.int64), target)
    assert a == b == d


@PROPERTY
@given(vals=st.lists(st.sampled_from([-1e300, -5.5, -1e-300, 0.0, 1e-300, 2.0,
                                      2.0000000000000004, 7.0, 1e300]),
                     min_size=1, max_size=30),
       data=st.data(), target=TARGETS)
def test_threshold_separates_adjacent_and_extreme_floats(vals, data, target):
    s = np.array(vals)
    c = np.array(data.draw(st.lists(st.booleans(), min_size=len(s), max_size=len(s))))
    t = search(s, c, target)
    i, uniq = brute_force(s, c, target)
    if i is None:
        assert t.value is None
        return
    if i == 0:
        assert t.value == ACCEPT_ALL
    else:
        assert uniq[i - 1] < t.value <= uniq[i]
    np.testing.assert_array_equal(s >= t.value, s >= uniq[i])


@PROPERTY
@given(data=tie_heavy())
def test_candidates_are_cumulative_counts(data):
    s, c = data
    cand = candidates(s, c)
    values, n, k = cand.values, cand.n, cand.k
    np.testing.assert_array_equal(values, np.unique(s)[::-1])
    np.testing.assert_array_equal(n, [(s >= v).sum() for v in values])
    np.testing.assert_array_equal(k, [c[s >= v].sum() for v in values])


def test_empty_scores_give_no_predictions():
    t = search(np.array([]), np.array([], bool), 0.9)
    assert t.value is None and t.status == "no-predictions"


# ---------------------------------------------------------------- 10. precision reached
@PROPERTY
@given(data=seeded(), target=TARGETS, confidence=st.sampled_from([None, 0.8, 0.95]))
def test_achieved_precision_reaches_target(data, target, confidence):
    s, c = data
    t = search(s, c, target, confidence=confidence)
    if t.value is None:
        assert t.status in ("unreachable", "uncertified", "too-few")
        return
    assert t.status == "ok"
    m = s >= t.value
    assert m.sum() == t.n_predicted > 0
    assert c[m].sum() == t.n_correct
    assert c[m].mean() >= target
    if confidence is not None:
        alpha = 1 - confidence
        assert t.lower_bound == pytest.approx(
            stats.beta.ppf(alpha, t.n_correct, t.n_predicted - t.n_correct + 1), rel=1e-9)
        assert t.lower_bound >= target


def test_search_per_class_is_search_on_each_class():
    rng = np.random.default_rng(2)
    n, k = 900, 4
    cls = rng.integers(0, k - 1, n)  # class 3 never predicted
    s = rng.normal(size=n)
    c = rng.random(n) < special.expit(3 * s + 1)
    for conf in (None, 0.95):
        out = search_per_class(cls, s, c, k, 0.8, conf)
        assert len(out) == k
        for j in range(3):
            assert out[j] == search(s[cls == j], c[cls == j], 0.8, conf)
        assert out[3].value is None and out[3].status == "no-predictions"
    # a smaller alpha (simultaneous) is never looser
    loose = search_per_class(cls, s, c, k, 0.8, 0.95)
    strict = search_per_class(cls, s, c, k, 0.8, 0.95, alpha=0.05 / k)
    for a, b in zip(loose, strict, strict=True):
        assert _inf(b.value) >= _inf(a.value)


def _multiclass_data(rng, n=3000, c=5, t_true=1.5):
    g = rng.normal(size=(n, c)) * 2.0
    y = np.argmax(g + rng.gumbel(size=(n, c)), axis=1)
    return g * t_true, y


@pytest.mark.parametrize("confidence", [None, 0.95])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_predict_reproduces_precision_per_class(confidence, dtype):
    rng = np.random.default_rng(4)
    z, y = _multiclass_data(rng)
    z = z.astype(dtype)
    target = 0.85
    cal = calibrate.fit(z, y, precision=target, confidence=confidence)
    pred = cal.predict(z)
    taus = cal.decision_thresholds["per_class"]
    assert sum(t is not None for t in taus) >= 3  # not vacuous
    for j, tau in enumerate(taus):
        m = pred == j
        row = cal.summary["per_class"][j]
        if tau is None:
            assert not m.any()
            continue
        assert m.sum() == row["predicted"] > 0
        assert (y[m] == j).mean() >= target
        assert (y[m] == j).sum() / m.sum() == row["precision"]
        if confidence is not None:
            assert row["lower_bound"] >= target
    # global rule: selective accuracy over the non-abstained rows
    g = cal.predict(z, rule="global")
    if cal.decision_thresholds["global"] is not None:
        acc = g != -1
        assert acc.any()
        assert (g[acc] == y[acc]).mean() >= target
        assert acc.sum() == cal.summary["global"]["predicted"]
    else:
        assert (g == -1).all()


@pytest.mark.parametrize("confidence", [None, 0.95])
def test_fit_predict_reproduces_precision_sigmoid(confidence):
    rng = np.random.default_rng(6)
    g = rng.normal(size=(3000, 3)) * 2
    y = (rng.random(g.shape) < special.expit(g)).astype(np.int64)
    target = 0.85
    cal = calibrate.fit(g * 2.0, y, precision=target, confidence=confidence)
    assert cal.task == "multilabel"
    pred = cal.predict(g * 2.0)
    for j, tau in enumerate(cal.decision_thresholds["per_class"]):
        assert tau is not None
        assert (y[pred[:, j], j] == 1).mean() >= target
    calb = calibrate.fit(g[:, 0] * 2.0, y[:, 0], precision=target, confidence=confidence)
    assert calb.task == "binary"
    pb = calb.predict(g[:, 0] * 2.0)
    assert (pb == 1).any()
    assert (y[pb == 1, 0] == 1).mean() >= target


# ---------------------------------------------------------------- 11. monotone in the target
def _inf(v):
    return np.inf if v is None else v


@PROPERTY
@given(data=seeded(), confidence=st.sampled_from([None, 0.5, 0.9, 0.95, 0.99]))
def test_higher_target_never_loosens(data, confidence):
    s, c = data
    targets = np.linspace(0.05, 0.99, 25)
    vals = [_inf(search(s, c, t, confidence=confidence).value) for t in targets]
    assert all(a <= b for a, b in itertools.pairwise(vals))


@PROPERTY
@given(data=tie_heavy(max_size=200))
def test_higher_target_never_loosens_ties(data):
    s, c = data
    for conf in (None, 0.9):
        vals = [_inf(search(s, c, t, confidence=conf).value) for t in np.linspace(0.1, 0.95, 18)]
        assert all(a <= b for a, b in itertools.pairwise(vals))


@PROPERTY
@given(data=seeded(), target=TARGETS)
def test_higher_confidence_never_loosens(data, target):
    s, c = data
    vals = [_inf(search(s, c, target, confidence=q).value) for q in (0.5, 0.8, 0.9, 0.95, 0.99)]
    assert all(a <= b for a, b in itertools.pairwise(vals))
    # and a certified threshold is never looser than the plain estimate
    assert _inf(search(s, c, target).value) <= vals[0]


# ---------------------------------------------------------------- 12. unreachable
@pytest.mark.parametrize("confidence", [None, 0.95])
def test_unreachable_target(confidence):
    s = np.arange(20.0)
    t = search(s, np.zeros(20, bool), 0.5, confidence=confidence)
    assert t.value is None and t.status == "unreachable"
    # best prefix precision is 3/4 (top 4 rows): 0.8 cannot be met
    c = np.array([0, 1, 1, 1] + [0] * 16, bool)
    s = -np.arange(len(c), dtype=float)  # decreasing: c lists rows from the top
    assert max(c[s >= v].mean() for v in s) == 0.75
    t = search(s, c, 0.8, confidence=confidence)
    assert t.value is None and t.status == "unreachable"
    assert search(s, c, 0.75).value is not None


@pytest.mark.parametrize("confidence", [None, 0.95])
def test_fit_never_predicts_unreachable_class(confidence):
    rng = np.random.default_rng(8)
    z, y = _multiclass_data(rng, n=3000, c=3, t_true=1.0)
    top = np.argmax(z, axis=1)
    # every row predicted as class 2 is labelled 0 or 1
    y = np.where(top == 2, rng.integers(0, 2, len(y)), y)
    cal = calibrate.fit(z, y, precision=0.8, confidence=confidence)
    assert cal.decision_thresholds["per_class"][2] is None
    assert cal.thresholds["per_class"][2] is None
    assert cal.summary["per_class"][2]["status"] == "unreachable"
    assert not (cal.predict(z) == 2).any()
    fresh, _ = _multiclass_data(np.random.default_rng(9), n=2000, c=3)
    assert not (cal.predict(fresh) == 2).any()
    assert ((cal.predict(fresh) == 0) | (cal.predict(fresh) == 1)).any()


# ---------------------------------------------------------------- 13. float32 saturation
def test_float32_saturation_gives_no_false_ties():
    margins = np.array([20.0, 30.0, 40.0, 50.0, 60.0, 80.0])
    z = np.zeros((len(margins), 3), np.float32)
    z[:, 1] = margins
    z[:, 2] = margins - 100.0  # a tail far below the others
    # the premise: every row's probability is exactly 1.0 in float32
    p = rules.softmax_proba(z, 1.0)
    assert p.dtype == np.float32
    assert np.all(p[:, 1] == 1.0)
    k, logp = rules.top_scores(z, 1.0)
    np.testing.assert_array_equal(k, 1)
    assert len(np.unique(logp)) == len(margins)
    assert np.all(np.diff(logp) > 0)  # larger margin, larger log-probability
    ref = -np.log1p(np.exp(-margins) + np.exp(-100.0))
    np.testing.assert_allclose(logp, ref, rtol=1e-5)

    # The search separates them: rows with margin 30 or less are wrong.
    correct = margins > 30
    t = search(logp, correct, 0.99)
    assert t.n_predicted == 4 and t.n_correct == 4
    np.testing.assert_array_equal(rules.decide_multiclass(k, logp, [None, t.value, None]),
                                  np.where(correct, 1, -1))
