"""Temperature scaling: exactness against an independent scipy fit, recovery of
a known temperature, and the degenerate outcomes docs/design.md names (separable
data, a model worse than chance)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special

from calibrate import rules
from calibrate.errors import CalibrateError
from calibrate.temperature import (
    MIN_CLASS_COUNT,
    T_MIN,
    fit_sigmoid_temperature,
    fit_softmax_temperature,
    fit_temperature,
)

PROPERTY = settings(max_examples=60, deadline=None, database=None)


# ---------------------------------------------------------------- references
def ref_softmax_nll(z, y, t):
    """Mean softmax cross entropy at temperature t, in float64."""
    a = np.asarray(z, dtype=np.float64) / t
    return float(np.mean(special.logsumexp(a, axis=1) - a[np.arange(len(y)), y]))


def ref_sigmoid_nll(z, y, t):
    """Mean binary cross entropy of each column at temperature t, in float64."""
    a = np.asarray(z, dtype=np.float64) / t
    y = np.asarray(y, dtype=np.float64)
    return np.mean(np.logaddexp(0.0, a) - y * a, axis=0)


def ref_temperature(nll):
    """argmin over T of ``nll(T)`` by bounded Brent in log(1/T) (independent of the library)."""
    res = optimize.minimize_scalar(lambda lb: nll(np.exp(-lb)), bounds=(np.log(1e-3), np.log(1e3)),
                                   method="bounded", options={"xatol": 1e-11, "maxiter": 2000})
    assert res.success
    return float(np.exp(-res.x))


def softmax_data(rng, n, c, t_true, scale=2.0):
    """Labels drawn from softmax(g) (Gumbel-max), logits T_true * g."""
    g = rng.normal(size=(n, c)) * scale
    y = np.argmax(g + rng.gumbel(size=(n, c)), axis=1)
    return g * t_true, y


def sigmoid_data(rng, shape, t_true, scale=2.0):
    """Labels drawn from sigmoid(g), logits T_true * g (t_true may be per column)."""
    g = rng.normal(size=shape) * scale
    y = (rng.random(shape) < special.expit(g)).astype(np.int64)
    return g * np.asarray(t_true), y


# ---------------------------------------------------------------- 1. exactness
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c,n,t_true", [(2, 3000, 1.7), (10, 3000, 0.6), (100, 2000, 2.5)])
def test_softmax_temperature_matches_scipy(c, n, t_true, dtype):
    rng = np.random.default_rng(1000 + c)
    z, y = softmax_data(rng, n, c, t_true)
    z = z.astype(dtype)
    res = fit_softmax_temperature(z, y)
    want = ref_temperature(lambda t: ref_softmax_nll(z, y, t))
    assert res.status == "fitted"
    assert res.converged
    assert res.temperature == pytest.approx(want, rel=1e-5)
    # The dispatcher gives the same fit.
    assert fit_temperature(z, y, "multiclass").temperature == res.temperature


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t_true", [0.4, 3.0])
def test_binary_temperature_matches_scipy(t_true, dtype):
    rng = np.random.default_rng(7)
    z, y = sigmoid_data(rng, (4000,), t_true)
    z = z.astype(dtype)
    res = fit_sigmoid_temperature(z, y)
    want = ref_temperature(lambda t: ref_sigmoid_nll(z, y, t))
    assert res.status == "fitted"
    assert isinstance(res.temperature, float)
    assert res.temperature == pytest.approx(want, rel=1e-5)
    assert fit_temperature(z, y, "binary").temperature == res.temperature


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multilabel_temperature_per_class_matches_scipy(dtype):
    rng = np.random.default_rng(11)
    t_true = np.array([0.5, 1.0, 4.0])
    z, y = sigmoid_data(rng, (3000, 3), t_true)
    z = z.astype(dtype)
    res = fit_sigmoid_temperature(z, y)
    assert list(res.status) == ["fitted"] * 3
    temps = np.asarray(res.temperature)
    assert temps.shape == (3,)
    for j in range(3):
        want = ref_temperature(lambda t, j=j: ref_sigmoid_nll(z[:, j], y[:, j], t))
        assert temps[j] == pytest.approx(want, rel=1e-5)
    # The shared T is the optimum of the NLL summed over all classes.
    want_shared = ref_temperature(lambda t: ref_sigmoid_nll(z, y, t).sum())
    assert res.shared_temperature == pytest.approx(want_shared, rel=1e-5)
    np.testing.assert_array_equal(fit_temperature(z, y, "multilabel").temperature, temps)


# ---------------------------------------------------------------- 2. known T
@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.5])
def test_softmax_recovers_known_temperature(t_true):
    rng = np.random.default_rng(int(t_true * 100))
    z, y = softmax_data(rng, 20000, 10, t_true)
    t = fit_softmax_temperature(z, y).temperature
    assert abs(t - t_true) / t_true < 0.05


@pytest.mark.parametrize("t_true", [0.5, 3.0])
def test_sigmoid_recovers_known_temperature(t_true):
    rng = np.random.default_rng(int(t_true * 100) + 1)
    z, y = sigmoid_data(rng, (20000,), t_true)
    t = fit_sigmoid_temperature(z, y).temperature
    assert abs(t - t_true) / t_true < 0.05
    zm, ym = sigmoid_data(rng, (20000, 2), [t_true, 1.0])
    tm = fit_sigmoid_temperature(zm, ym).temperature
    assert np.all(np.abs(tm - [t_true, 1.0]) / [t_true, 1.0] < 0.05)


# ---------------------------------------------------------------- 3. argmax
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_argmax_unchanged_including_ties(dtype):
    rng = np.random.default_rng(3)
    # Integer logits from a small range: most rows have tied maxima.
    z = rng.integers(-2, 3, size=(600, 5)).astype(dtype)
    z[0] = 1  # a row tied everywhere
    y = np.argmax(z + rng.gumbel(size=z.shape), axis=1)
    fitted = fit_softmax_temperature(z, y).temperature
    want = np.argmax(z, axis=1)  # numpy: first (lowest) index among ties
    assert np.sum(np.sum(z == z.max(axis=1, keepdims=True), axis=1) > 1) > 100
    for t in (T_MIN, 0.3, 1.0, fitted, 50.0):
        k, logp = rules.top_scores(z, t)
        np.testing.assert_array_equal(k, want)
        assert k[0] == 0
        # and the score is the calibrated log-probability of that class
        a = z.astype(np.float64) / t
        ref = a[np.arange(len(z)), want] - special.logsumexp(a, axis=1)
        np.testing.assert_allclose(logp, ref, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- 4. NLL never increases
@PROPERTY
@given(seed=st.integers(0, 2**32 - 1),
       t_true=st.sampled_from([0.3, 0.7, 1.0, 1.5, 4.0]),
       task=st.sampled_from(["multiclass", "binary", "multilabel"]))
def test_nll_never_increases_and_is_optimal(seed, t_true, task):
    rng = np.random.default_rng(seed)
    if task == "multiclass":
        z, y = softmax_data(rng, 300, 4, t_true)
        res = fit_softmax_temperature(z, y)
        ref = lambda t: ref_softmax_nll(z, y, t)  # noqa: E731
    else:
        z, y = sigmoid_data(rng, (300,) if task == "binary" else (300, 3), t_true)
        res = fit_sigmoid_temperature(z, y)
        ref = lambda t: ref_sigmoid_nll(z, y, t)  # noqa: E731
    before, after = np.asarray(res.nll_before), np.asarray(res.nll_after)
    temps = np.asarray(res.temperature)
    assert np.all(after <= before + 1e-12)
    # The reported NLLs are the objective at T = 1 and at the fitted T ...
    np.testing.assert_allclose(before, ref(1.0), rtol=1e-9)
    np.testing.assert_allclose(after, ref(temps), rtol=1e-9)
    # ... and the fitted T beats its neighbours and the true T.
    for t in (temps * (1 - 1e-3), temps * (1 + 1e-3), np.full_like(temps, t_true)):
        assert np.all(after <= ref(t) + 1e-12)


def test_nll_never_increases_float32():
    rng = np.random.default_rng(5)
    for t_true in (0.5, 1.0, 2.0):
        z, y = softmax_data(rng, 2000, 10, t_true)
        res = fit_softmax_temperature(z.astype(np.float32), y)
        assert res.nll_after <= res.nll_before + 1e-12


# ---------------------------------------------------------------- 5. separable -> capped
def _separable_binary(rng, n, lo, hi):
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    z = (2 * y - 1) * rng.uniform(lo, hi, n)
    return z, y


def _separable_multiclass(rng, n, c, lo, hi):
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    z[np.arange(n), y] = z.max(axis=1) + rng.uniform(lo, hi, n)
    return z, y


@pytest.mark.parametrize("margin", [
    (0.01, 0.1),
    (0.1, 1.0),
    (1.0, 10.0),       # Newton alone would creep up by ~1/margin a pass
    (50.0, 1000.0),    # beyond exp's range: NLL, gradient and curvature exactly 0
])
def test_separable_data_is_capped(margin):
    rng = np.random.default_rng(17)
    z, y = _separable_binary(rng, 200, *margin)
    res = fit_sigmoid_temperature(z, y)
    assert res.status == "capped"
    assert res.temperature == T_MIN

    zm, ym = _separable_multiclass(rng, 200, 5, *margin)
    res = fit_softmax_temperature(zm, ym)
    assert res.status == "capped"
    assert res.temperature == T_MIN


def test_separable_multilabel_class_is_capped_alone():
    rng = np.random.default_rng(19)
    z, y = sigmoid_data(rng, (1000, 3), 1.0)
    sep_z, sep_y = _separable_binary(rng, 1000, 0.01, 0.1)
    z[:, 1], y[:, 1] = sep_z, sep_y
    res = fit_sigmoid_temperature(z, y)
    assert res.status[1] == "capped"
    assert res.temperature[1] == T_MIN
    assert res.status[0] == res.status[2] == "fitted"
    assert np.all(np.asarray(res.temperature)[[0, 2]] > 0.5)


# ---------------------------------------------------------------- 6. worse than chance
def test_worse_than_chance_multiclass_is_refused():
    rng = np.random.default_rng(23)
    z, y = softmax_data(rng, 500, 4, 1.0)
    with pytest.raises(CalibrateError, match="better than chance"):
        fit_softmax_temperature(-z, y)
    with pytest.raises(CalibrateError, match="better than chance"):
        fit_temperature(-z.astype(np.float32), y, "multiclass")


def test_worse_than_chance_binary_is_refused():
    rng = np.random.default_rng(29)
    z, y = sigmoid_data(rng, (500,), 1.0)
    with pytest.raises(CalibrateError, match="better than chance"):
        fit_sigmoid_temperature(-z, y)


def test_worse_than_chance_multilabel_names_the_class():
    rng = np.random.default_rng(31)
    z, y = sigmoid_data(rng, (500, 3), 1.0)
    z[:, 2] = -z[:, 2]
    with pytest.raises(CalibrateError, match="better than chance") as info:
        fit_sigmoid_temperature(z, y)
    assert "class 2" in str(info.value)


# ---------------------------------------------------------------- 7. shared temperature
def test_rare_multilabel_class_gets_shared_temperature():
    rng = np.random.default_rng(37)
    n = 2000
    z, y = sigmoid_data(rng, (n, 4), [0.5, 2.0, 1.0, 1.0])
    # class 2: MIN_CLASS_COUNT - 1 positives; class 3: exactly MIN_CLASS_COUNT negatives.
    # The logits agree (a model better than chance), and the rare labels sit among
    # the 40 rows the model finds likeliest: informative, not separable.
    z[:, 2] -= 6.0
    z[:, 3] += 6.0
    y[:, 2] = 0
    y[rng.choice(np.argsort(z[:, 2])[-40:], MIN_CLASS_COUNT - 1, replace=False), 2] = 1
    y[:, 3] = 1
    y[rng.choice(np.argsort(z[:, 3])[:40], MIN_CLASS_COUNT, replace=False), 3] = 0
    res = fit_sigmoid_temperature(z, y)
    assert res.status[2] == "shared"
    assert res.temperature[2] == res.shared_temperature
    assert res.status[3] == "fitted"  # at the boundary it still gets its own T
    assert res.status[0] == res.status[1] == "fitted"
    assert res.temperature[0] != res.shared_temperature
    want_shared = ref_temperature(lambda t: ref_sigmoid_nll(z, y, t).sum())
    assert res.shared_temperature == pytest.approx(want_shared, rel=1e-5)
    want3 = ref_temperature(lambda t: ref_sigmoid_nll(z[:, 3], y[:, 3], t))
    assert res.temperature[3] == pytest.approx(want3, rel=1e-5)


def test_pooled_start_is_the_optimum_of_the_columns_quadratic_models():
    from calibrate.temperature import POOLED_START_SPREAD, _pooled_start
    # f_j(x) = h_j (x - m_j)^2 / 2, seen at beta_j: the pooled sum_j f_j(b r_j)
    # has its optimum at sum_j r_j h_j m_j / sum_j r_j^2 h_j, exactly.
    rng = np.random.default_rng(5)
    h, r = rng.uniform(1, 3, 6), 2.0 ** rng.integers(-2, 3, 6)
    m = (1.0 + 0.01 * rng.standard_normal(6)) * r       # the columns' optima, close
    beta = m * rng.uniform(0.9, 1.1, 6)
    g = h * (beta - m)
    want = np.sum(r * h * m) / np.sum(r * r * h)
    assert _pooled_start(beta, g, h, r) == pytest.approx(want, rel=1e-12)
    # Optima spread widely: the quadratic models say little about the pooled one.
    m_far = m * np.exp(np.linspace(-1, 1, 6))
    assert _pooled_start(beta, h * (beta - m_far), h, r) is None
    assert POOLED_START_SPREAD < 0.1
    assert _pooled_start(beta, g, np.zeros(6), r) is None        # no curvature


@pytest.mark.parametrize("spread", [0.0, 1.0])
def test_shared_temperature_from_the_columns_fits_is_the_optimum(monkeypatch, spread):
    # Large enough for a row sample (8 x 4096 rows): the pooled fit starts from the
    # columns' own fits when they agree (one pass fewer), else from the sample.
    from calibrate import temperature as temp
    rng = np.random.default_rng(43)
    z, y = sigmoid_data(rng, (40_000, 6), 2.0 * np.exp(np.linspace(-spread, spread, 6)))
    z = z.astype(np.float32)
    res = fit_sigmoid_temperature(z, y)
    monkeypatch.setattr(temp, "_pooled_start", lambda *a: None)
    from_sample = fit_sigmoid_temperature(z, y)
    want = ref_temperature(lambda t: ref_sigmoid_nll(z, y, t).sum())
    assert res.shared_temperature == pytest.approx(want, rel=1e-5)
    assert res.shared_temperature == pytest.approx(from_sample.shared_temperature, rel=1e-7)
    np.testing.assert_array_equal(res.temperature, from_sample.temperature)
    assert res.n_passes == from_sample.n_passes - (1 if spread == 0.0 else 0)


def test_few_negatives_also_share():
    rng = np.random.default_rng(41)
    z, y = sigmoid_data(rng, (1000, 2), 1.0)
    z[:, 1] += 6.0
    y[:, 1] = 1
    y[np.argsort(z[:, 1])[:6:2], 1] = 0
    res = fit_sigmoid_temperature(z, y)
    assert list(res.status) == ["fitted", "shared"]
    assert res.temperature[1] == res.shared_temperature


# ---------------------------------------------------------------- 8. float32 stays float32
def test_float32_logits_are_not_promoted():
    rng = np.random.default_rng(43)
    z, y = softmax_data(rng, 1000, 6, 2.0)
    z32 = z.astype(np.float32)
    t = fit_softmax_temperature(z32, y).temperature
    assert z32.dtype == np.float32  # the input is left alone
    p = rules.softmax_proba(z32, t)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p, special.softmax(z32.astype(np.float64) / t, axis=1),
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(np.argmax(p, axis=1), np.argmax(z32, axis=1))

    zs, ys = sigmoid_data(rng, (1000, 2), 2.0)
    zs32 = zs.astype(np.float32)
    ts = fit_sigmoid_temperature(zs32, ys).temperature
    assert rules.sigmoid_proba(zs32, ts).dtype == np.float32


# ---------------------------------------------------------------- warm start, high order
def test_third_and_fourth_derivatives_are_the_curvatures_slopes():
    from calibrate.backends import as_backend
    rng = np.random.default_rng(3)
    z, y = softmax_data(rng, 2000, 7, 1.8)
    b, eps = 0.7, 1e-4
    at = lambda beta: as_backend(z).softmax_pass(y, beta, third=True).stats  # noqa: E731
    mid, lo, hi = at(b), at(b - eps), at(b + eps)
    assert mid.third == pytest.approx((hi.curvature - lo.curvature) / (2 * eps), rel=1e-5)
    assert mid.fourth == pytest.approx((hi.third - lo.third) / (2 * eps), rel=1e-4)
    assert as_backend(z).softmax_pass(y, b).stats.third is None


def test_higher_order_step_solves_the_taylor_model():
    from calibrate.temperature import _higher_order_step
    g, h = np.array([0.03, -0.02, 0.5]), np.array([1.2, 2.0, 1.0])
    t, q = np.array([-2.5, 1.0, 40.0]), np.array([3.0, -1.0, 0.0])
    step = _higher_order_step(g, h, t, q, g / h)
    d = -step
    model = g + h * d + t * d ** 2 / 2 + q * d ** 3 / 6
    assert np.all(np.abs(model[:2]) < 1e-15)
    # the third: the model's root strays beyond a factor 2 of Newton's: Newton's step
    assert step[2] == g[2] / h[2]


def test_a_warm_started_fit_takes_two_full_passes_and_is_exact():
    # 8 x 4096 rows and more: a row-sample warm start, then one pass with the
    # high-order step and one that also makes the summary's metrics at T
    rng = np.random.default_rng(4)
    z, y = softmax_data(rng, 40_000, 20, 2.3)
    z = z.astype(np.float32)
    res = fit_softmax_temperature(z, y, summary_bins=15)
    want = ref_temperature(lambda t: ref_softmax_nll(z, y, t))
    assert res.temperature == pytest.approx(want, rel=1e-7)
    assert res.at_t is not None and res.at_one is not None
    assert res.n_passes == 2


def test_the_warm_start_spends_no_sample_evaluation_on_a_converged_step(monkeypatch):
    # the sample's Newton takes its last small step unevaluated: within each sample
    # stage, consecutive points are never within 5e-4 of each other
    from calibrate import temperature as temp
    seen = []
    real = temp._softmax_values

    def spy(z, y, beta, *args):
        seen.append((z.n_rows, beta))
        return real(z, y, beta, *args)
    monkeypatch.setattr(temp, "_softmax_values", spy)
    rng = np.random.default_rng(8)
    z, y = softmax_data(rng, 40_000, 20, 2.3)
    res = fit_softmax_temperature(z.astype(np.float32), y)
    stages = {n: [b for m, b in seen if m == n] for n, _ in seen}
    assert sorted(stages) == [temp.SAMPLE_ROWS // 4, temp.SAMPLE_ROWS]
    for betas in stages.values():
        steps = np.abs(np.diff(betas)) / np.asarray(betas[1:])
        assert np.all(steps > temp._RTOL_FINAL)
    want = ref_temperature(lambda t: ref_softmax_nll(z.astype(np.float32), y, t))
    assert res.temperature == pytest.approx(want, rel=1e-7) and res.n_passes == 2


def test_sigmoid_statistics_summed_over_slices_of_a_block_equal_the_whole(monkeypatch):
    from calibrate import kernels
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((1001, 7)) * 3).astype(np.float32)
    y = (rng.random((1001, 7)) < 0.4).astype(np.int8)
    beta = rng.uniform(0.3, 2.0, 7)
    whole = kernels.sigmoid_stats(z, y, beta, nll_at_one=True)
    monkeypatch.setattr(kernels, "SIGMOID_SLICE", 7 * 10)     # 101 slices of 10 rows
    assert len(kernels.row_slices_of(1001, 7)) == 101
    sliced = kernels.sigmoid_stats(z, y, beta, nll_at_one=True)
    np.testing.assert_allclose(sliced, whole, rtol=1e-12, atol=1e-9)


def test_sigmoid_third_and_fourth_derivatives_are_those_of_the_nll():
    from calibrate import kernels
    rng = np.random.default_rng(4)
    z = rng.standard_normal((5000, 3)) * 3              # float64: finite differences
    y = (rng.random((5000, 3)) < special.expit(z / 2)).astype(np.int8)
    beta, h = np.array([0.4, 0.7, 1.3]), 1e-4
    st = kernels.sigmoid_stats(z, y, beta, third=True)
    curv = [kernels.sigmoid_stats(z, y, beta + d)[2] for d in (-2 * h, -h, 0, h, 2 * h)]
    third = (curv[3] - curv[1]) / (2 * h)
    fourth = (curv[1] - 2 * curv[2] + curv[3]) / (h * h)
    np.testing.assert_allclose(st[4], third, rtol=1e-6)
    np.testing.assert_allclose(st[5], fourth, rtol=1e-4)


def test_warm_started_multilabel_fit_takes_two_passes_per_label():
    # the first full pass's step of higher order leaves the second the last
    rng = np.random.default_rng(5)
    g = rng.standard_normal((40000, 5)) * 2
    y = (rng.random((40000, 5)) < special.expit(g)).astype(np.int8)
    z = (2 * g).astype(np.float32)
    from calibrate.temperature import fit_sigmoid_temperature
    res = fit_sigmoid_temperature(z, y)
    # per label 2; the shared T 1, from the labels' own fits (they agree)
    assert res.converged and res.n_passes == 3
    b = optimize.brentq(lambda b: np.mean(z * (special.expit(b * z.astype(np.float64)) - y)),
                        0.05, 5, xtol=1e-14)
    assert res.shared_temperature == pytest.approx(1 / b, rel=2e-6)
    for j in range(5):
        zz, yy = z[:, j].astype(np.float64), y[:, j]
        b = optimize.brentq(lambda b, zz=zz, yy=yy: np.mean(zz * (special.expit(b * zz) - yy)),
                            0.05, 5, xtol=1e-14)
        assert res.temperature[j] == pytest.approx(1 / b, rel=2e-6)


def test_pooled_temperature_with_columns_at_different_scales_takes_the_higher_order_step():
    # the pooled objective sum_c NLL_c(b r_c): its k-th derivative is sum_c r_c^k NLL_c^(k)
    from calibrate.temperature import fit_sigmoid_temperature
    rng = np.random.default_rng(0)
    g = rng.standard_normal((40000, 4)) * 2
    y = (rng.random((40000, 4)) < special.expit(g)).astype(np.int8)
    z = 2 * g * np.array([1.0, 300.0, 1 / 500.0, 20.0])
    res = fit_sigmoid_temperature(z, y)

    def pooled_gradient(b):
        return sum(np.mean(z[:, j] * (special.expit(b * z[:, j]) - y[:, j])) for j in range(4))
    b = optimize.brentq(pooled_gradient, 1e-8, 1e6, xtol=1e-300, rtol=1e-15)
    assert res.shared_temperature == pytest.approx(1 / b, rel=1e-7)
    assert res.converged and res.n_passes == 4
