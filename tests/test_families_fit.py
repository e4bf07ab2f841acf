"""Each family's fit: the exact optimum of its objective (against an
independent float64 scipy fit, 1e-5 relative), known parameters recovered
from synthetic data, and the edge cases (rare labels, refusals, bounds)."""

import numpy as np
import pytest
from scipy import optimize, special

from calibrate import families
from calibrate.errors import CalibrateError
from calibrate.families import isotonic, mix, ovr_platt, platt, vector

RTOL = 1e-5


def close(ours, ref, rtol=RTOL):
    """Relative agreement, parameters near 0 judged against the vector's scale."""
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * np.max(np.abs(ref)))


def draw(rng, p):
    return (p.cumsum(axis=1) > rng.random((p.shape[0], 1))).argmax(axis=1)


def scipy_min(fun, x0, bounds=None):
    """float64 reference optimum (L-BFGS-B, analytic gradient, tight tolerances)."""
    r = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                          options={"gtol": 1e-13, "ftol": 1e-16, "maxiter": 20000, "maxcor": 50})
    return r.x


# ---------------------------------------------------------------------------
# Platt (binary, multilabel)

def platt_ref(z, y):
    def fun(p):
        t = p[0] * z + p[1]
        r = special.expit(t) - y
        return np.mean(np.logaddexp(0, t) - y * t), np.array([np.mean(r * z), np.mean(r)])
    return scipy_min(fun, [1.0, 0.0])


def offset_binary(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < special.expit(h)).astype(np.int64)
    return 2.0 * h + 1.5, y      # true map: sigmoid(0.5 z - 0.75)


def test_platt_recovers_an_offset_and_equals_scipy():
    z, y = offset_binary()
    f = platt.fit(z, y)
    assert f.converged and f.status == ("fitted",)
    assert abs(f.a[0] - 0.5) < 0.02 and abs(f.b[0] + 0.75) < 0.05
    close([f.a[0], f.b[0]], platt_ref(z, y))


def test_platt_float32_logits_equal_scipy():
    z, y = offset_binary(5000, seed=1)
    f = platt.fit(z.astype(np.float32), y)
    close([f.a[0], f.b[0]], platt_ref(z.astype(np.float32).astype(np.float64), y))


def test_platt_multilabel_per_label_and_shared_fallback():
    rng = np.random.default_rng(2)
    n = 4000
    h = rng.normal(0, 2, (n, 3))
    y = (rng.random((n, 3)) < special.expit(h)).astype(np.int64)
    y[:, 2] = 0
    y[rng.choice(n, 5, replace=False), 2] = 1          # 5 positives: below MIN_CLASS_COUNT
    z = h * np.array([2.0, 0.5, 1.0]) + np.array([1.0, -1.0, 0.0])
    f = platt.fit(z, y, task="multilabel")
    assert f.status == ("fitted", "fitted", "shared")
    for k in (0, 1):
        close([f.a[k], f.b[k]], platt_ref(z[:, k], y[:, k]))
    # the shared (a, b): one pair minimising the NLL summed over all labels
    close(f.shared, platt_ref(z.ravel(), y.ravel()))
    assert (f.a[2], f.b[2]) == f.shared


def test_platt_refuses_logits_pointing_away():
    z, y = offset_binary(2000)
    with pytest.raises(CalibrateError, match="better than chance"):
        platt.fit(-z, y)


def test_platt_caps_separable_data():
    z = np.linspace(-3, 3, 200)
    y = (z > 0).astype(np.int64)
    f = platt.fit(z, y)
    assert f.status == ("capped",) and f.a[0] == pytest.approx(100.0)
    p = f.probabilities(np.array([-0.5, 0.5]))
    assert p[0] < 1e-10 and p[1] > 1 - 1e-10


# ---------------------------------------------------------------------------
# One-vs-rest Platt

def test_ovr_platt_equals_per_class_scipy_fits():
    rng = np.random.default_rng(3)
    n, c = 3000, 4
    g = rng.normal(0, 2, (n, c))
    y = draw(rng, special.softmax(g, axis=1))
    z = 1.7 * g
    f = ovr_platt.fit(z, y)
    assert f.converged and set(f.status) == {"fitted"}
    x = special.log_softmax(z, axis=1)
    for k in range(c):
        close([f.a[k], f.b[k]], platt_ref(x[:, k], (y == k).astype(float)))
    p = f.probabilities(z)
    s = special.expit(np.asarray(f.a) * x + np.asarray(f.b))
    np.testing.assert_allclose(p, s / s.sum(axis=1, keepdims=True), rtol=1e-12)


def test_ovr_platt_rare_classes_share_one_pair():
    rng = np.random.default_rng(4)
    n, c = 2000, 5
    g = rng.normal(0, 2, (n, c))
    g[:, 4] -= 6                                        # class 4 almost never true
    y = draw(rng, special.softmax(g, axis=1))
    assert 0 < (y == 4).sum() < 10
    f = ovr_platt.fit(g, y)
    assert f.status[4] == "shared" and (f.a[4], f.b[4]) == f.shared
    x = special.log_softmax(g, axis=1)
    onehot = (y[:, None] == np.arange(c)).astype(float)
    close(f.shared, platt_ref(x.ravel(), onehot.ravel()))


# ---------------------------------------------------------------------------
# Mixture

def mixture_data(n=20000, c=10, w=0.1, seed=5):
    rng = np.random.default_rng(seed)
    g = rng.normal(0, 3, (n, c))
    y = draw(rng, (1 - w) * special.softmax(g, axis=1) + w / c)
    return 2.0 * g, y          # true T = 2, w = 0.1


def mix_ref(z, y):
    n, c = z.shape
    rows = np.arange(n)

    def fun(p):
        beta, w = p
        s = special.softmax(beta * z, axis=1)
        sy = s[rows, y]
        q = (1 - w) * sy + w / c
        dsy = sy * (z[rows, y] - (s * z).sum(axis=1))     # d s_y / d beta
        return (np.mean(-np.log(q)),
                np.array([np.mean(-(1 - w) * dsy / q), np.mean(-(1.0 / c - sy) / q)]))
    return scipy_min(fun, [0.5, 0.01], bounds=[(1e-6, None), (0.0, 1.0)])


def test_mix_recovers_a_known_weight_and_equals_scipy():
    z, y = mixture_data()
    f = mix.fit(z, y)
    assert f.converged
    assert abs(f.temperature - 2.0) < 0.1 and abs(f.weight - 0.1) < 0.02
    beta, w = mix_ref(z, y)
    close([1.0 / f.temperature, f.weight], [beta, w])


def test_mix_without_contamination_is_the_temperature_fit():
    from tests.conftest import make_multiclass
    z, y = make_multiclass(seed=1, n=3000, dtype=np.float64)
    f = mix.fit(z, y)
    t = families.fit("temperature", z, y, "multiclass")
    assert f.weight == 0.0
    assert f.temperature == pytest.approx(t.temperature[0], rel=1e-7)


def test_mix_absorbs_rows_whose_true_class_has_probability_zero():
    from tests.conftest import make_multiclass
    z, y = make_multiclass(seed=2, n=4000, dtype=np.float64)
    logp = special.log_softmax(z / 2.5, axis=1)
    bad = np.arange(0, 4000, 100)                       # 1% of rows: p_y = 0 (as log tiny)
    logp[bad, y[bad]] = np.log(np.finfo(np.float32).tiny)
    t = families.fit("temperature", logp, y, "multiclass").temperature[0]
    f = mix.fit(logp, y)
    assert t > 1.5                  # the zero rows drag a pure temperature up ...
    assert abs(f.temperature - 1.0) < 0.1 and 0.005 < f.weight < 0.03   # ... not the mixture
    close([1.0 / f.temperature, f.weight], mix_ref(logp, y))


# ---------------------------------------------------------------------------
# Vector scaling

def per_class_data(n=20000, c=6, seed=6):
    rng = np.random.default_rng(seed)
    g = rng.normal(0, 3, (n, c))
    a, b = np.linspace(0.5, 1.5, c), np.linspace(-0.6, 0.6, c)
    y = draw(rng, special.softmax(a * special.log_softmax(g, axis=1) + b, axis=1))
    return g, y, a, b


def vector_ref(z, y, a0, lam):
    n, c = z.shape
    x = special.log_softmax(z, axis=1)
    onehot = (y[:, None] == np.arange(c)).astype(float)

    def fun(p):
        a, b = p[:c], p[c:]
        t = a * x + b
        r = special.softmax(t, axis=1) - onehot
        f = np.mean(special.logsumexp(t, axis=1) - (t * onehot).sum(axis=1))
        f += lam * (np.sum((a - a0) ** 2) + np.sum(b ** 2))
        return f, np.concatenate([(r * x).mean(axis=0) + 2 * lam * (a - a0),
                                  r.mean(axis=0) + 2 * lam * b])
    p = scipy_min(fun, np.r_[np.full(c, a0), np.zeros(c)])
    return p[:c], p[c:]


def test_vector_recovers_per_class_scales():
    z, y, a, b = per_class_data(n=80000)
    f = vector.fit(z, y, penalty=1e-7)
    assert f.converged
    # (sampling error at ~13000 rows per class: ~0.015 in a_k, ~0.03 in b_k)
    np.testing.assert_allclose(f.a, a, atol=0.05)
    # b is identified up to a common shift, which the penalty sets to sum 0
    np.testing.assert_allclose(np.asarray(f.b) - np.mean(f.b), b - b.mean(), atol=0.08)


@pytest.mark.parametrize("lam", [1e-3, 1e-5])
def test_vector_equals_scipy(lam):
    z, y, _, _ = per_class_data(n=3000, c=5, seed=7)
    f = vector.fit(z, y, penalty=lam)
    a_ref, b_ref = vector_ref(z, y, 1.0 / f.temperature, lam)
    close(np.r_[f.a, f.b], np.r_[a_ref, b_ref])
    assert abs(np.sum(f.b)) < 1e-8          # the optimum has sum b = 0 (shift invariance)


def test_vector_hessian_sample_reaches_the_same_optimum():
    z, y, _, _ = per_class_data(n=3000, c=5, seed=8)
    full = vector.fit(z, y)
    sampled = vector.fit(z, y, hessian_rows=500)
    close(np.r_[sampled.a, sampled.b], np.r_[full.a, full.b], rtol=1e-6)


def test_vector_float32_equals_scipy():
    z, y, _, _ = per_class_data(n=3000, c=5, seed=9)
    z32 = z.astype(np.float32)
    f = vector.fit(z32, y)
    a_ref, b_ref = vector_ref(z32.astype(np.float64), y, 1.0 / f.temperature, vector.PENALTY)
    close(np.r_[f.a, f.b], np.r_[a_ref, b_ref])


# ---------------------------------------------------------------------------
# Isotonic

def test_isotonic_blocks_equal_scipy_and_sklearn():
    from sklearn.isotonic import IsotonicRegression
    rng = np.random.default_rng(10)
    n = 3000
    h = rng.normal(0, 2, n)
    y = (rng.random(n) < special.expit(h)).astype(np.int64)
    z = np.round(1.5 * h + 1.0, 2)                       # rounded: many tied logits
    distinct, fitted, starts = isotonic.blocks(z, y)
    at_rows = fitted[np.searchsorted(distinct, z)]
    sk = IsotonicRegression().fit(z, y)
    np.testing.assert_allclose(at_rows, sk.predict(z), rtol=0, atol=1e-12)
    # without ties, scipy on the labels sorted by logit gives the same values
    zu = z + rng.uniform(0, 1e-4, n)
    order = np.argsort(zu)
    ref = optimize.isotonic_regression(y[order].astype(float)).x
    d2, f2, _ = isotonic.blocks(zu, y)
    np.testing.assert_allclose(f2, ref, rtol=0, atol=1e-12)
    assert np.all(np.diff(fitted[starts[:-1]]) > 0)    # block values strictly increase


def test_isotonic_map_is_the_documented_interpolation_and_clip():
    rng = np.random.default_rng(11)
    n = 2000
    h = rng.normal(0, 2, n)
    y = (rng.random(n) < special.expit(h)).astype(np.int64)
    z = 2.0 * h
    f = isotonic.fit(z, y)
    distinct, fitted, starts = isotonic.blocks(z, y)
    counts = np.bincount(np.searchsorted(distinct, z), minlength=distinct.size)
    for j in range(starts.size - 1):                  # knots: mean logit of each block
        s, e = starts[j], starts[j + 1]
        assert f.knots[0][j] == pytest.approx(np.average(distinct[s:e], weights=counts[s:e]))
        assert f.values[0][j] == fitted[s]
    lo, hi = 0.5 / n, 1 - 0.5 / n
    knots, vals = np.array(f.knots[0]), np.array(f.values[0])
    assert f.lo == (lo,) and f.hi == (hi,)
    mid = 0.5 * (knots[3] + knots[4])
    q = np.array([knots[0] - 5, knots[3], mid, knots[-1] + 5])
    expect = np.clip([vals[0], vals[3], 0.5 * (vals[3] + vals[4]), vals[-1]], lo, hi)
    np.testing.assert_allclose(f.probabilities(q), expect, rtol=1e-12)
    p = f.probabilities(z)
    assert p.min() >= lo and p.max() <= hi           # no row at 0 or 1: finite NLL
    assert vals[0] == 0.0 and p.min() == lo          # (the lowest block's value is 0 here)


def test_isotonic_multilabel_fits_each_label():
    rng = np.random.default_rng(12)
    z = rng.normal(0, 2, (1000, 2))
    y = (rng.random((1000, 2)) < special.expit(z)).astype(np.int64)
    f = isotonic.fit(z, y, task="multilabel")
    for k in range(2):
        one = isotonic.fit(z[:, k], y[:, k])
        assert f.knots[k] == one.knots[0] and f.values[k] == one.values[0]


# ---------------------------------------------------------------------------

def test_unknown_method_is_refused_naming_the_choices():
    z, y = offset_binary(100)
    with pytest.raises(CalibrateError, match="method: expected one of auto, temperature, "
                                             "platt, isotonic for a binary task, found 'vector'"):
        families.fit("vector", z, y, "binary")
