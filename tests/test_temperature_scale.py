"""The temperature at any scale of the logits: T(c z) = c T(z), caps only on
separable data, and a fit that does not converge says so."""

import warnings

import numpy as np
import pytest
from scipy import optimize, special

from calibrate import temperature as temp
from calibrate.errors import CalibrateError
from calibrate.temperature import (
    T_MIN,
    TemperatureWarning,
    fit_sigmoid_temperature,
    fit_softmax_temperature,
)
from conftest import make_binary, make_multiclass, make_multilabel

SCALES = [1e-6, 1e-4, 1e-3, 1e-2, 0.1, 3.0, 1e3, 1e6, 1e12, 1e20]


@pytest.fixture(scope="module")
def references():
    out = {}
    for dtype in (np.float32, np.float64):
        z, y = make_multiclass(n=3000, dtype=dtype)
        zb, yb = make_binary(n=3000, dtype=dtype)
        zm, ym = make_multilabel(n=3000, dtype=dtype)
        out[dtype] = dict(
            multiclass=(z, y, fit_softmax_temperature(z, y).temperature),
            binary=(zb, yb, fit_sigmoid_temperature(zb, yb).temperature),
            multilabel=(zm, ym, fit_sigmoid_temperature(zm, ym).temperature))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", SCALES)
def test_temperature_scales_exactly_with_the_logits(references, dtype, c):
    ref = references[dtype]
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no overflow, no "did not converge"
        z, y, t = ref["multiclass"]
        r = fit_softmax_temperature((z * dtype(c)).astype(dtype), y)
        assert r.status == "fitted" and r.temperature == pytest.approx(c * t, rel=1e-6)
        z, y, t = ref["binary"]
        r = fit_sigmoid_temperature((z * dtype(c)).astype(dtype), y)
        assert r.status == "fitted" and r.temperature == pytest.approx(c * t, rel=1e-6)
        z, y, t = ref["multilabel"]
        r = fit_sigmoid_temperature((z * dtype(c)).astype(dtype), y)
        np.testing.assert_allclose(r.temperature, c * np.asarray(t), rtol=1e-6)
        assert r.status == ["fitted"] * 3


def test_huge_logits_reach_the_optimum_not_a_cap():
    # 1e20 x logits used to stop at T = 2^60 with an NLL 100x the optimum
    z, y = make_multiclass(n=2000, dtype=np.float64)
    zc = z * 1e20
    r = fit_softmax_temperature(zc, y)
    zy = zc[np.arange(len(y)), y]
    nll = lambda t: np.mean(special.logsumexp(zc / t, axis=1) - zy / t)  # noqa: E731
    best = optimize.minimize_scalar(lambda s: nll(np.exp(s)), bounds=(30, 60),
                                    method="bounded", options={"xatol": 1e-12})
    assert r.temperature == pytest.approx(np.exp(best.x), rel=1e-5)
    assert r.nll_after == pytest.approx(best.fun, rel=1e-9)


def test_small_temperature_that_is_not_separable_is_found_not_capped():
    # cosine-similarity scale with a peaked model: T* ~ 0.005 < T_MIN, not separable
    rng = np.random.default_rng(0)
    g = rng.normal(size=(3000, 5))
    y = (special.softmax(g * 20, axis=1).cumsum(1) > rng.random((3000, 1))).argmax(1)
    z = g * 0.1
    r = fit_softmax_temperature(z, y)
    best = optimize.minimize_scalar(
        lambda t: np.mean(special.logsumexp(z / t, axis=1) - z[np.arange(3000), y] / t),
        bounds=(1e-4, 1), method="bounded", options={"xatol": 1e-12})
    assert r.status == "fitted" and r.temperature < T_MIN
    assert r.temperature == pytest.approx(best.x, rel=1e-6)
    gb = rng.normal(size=3000)
    yb = (rng.random(3000) < special.expit(gb * 30)).astype(int)
    rb = fit_sigmoid_temperature(gb * 0.1, yb)
    assert rb.status == "fitted" and rb.temperature < T_MIN


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e6])
def test_separable_data_is_capped_at_any_scale(scale):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 500)
    z = rng.normal(size=(500, 4))
    z[np.arange(500), y] = z.max(axis=1) + rng.uniform(0.5, 2.0, 500)
    r = fit_softmax_temperature(z * scale, y)
    assert r.status == "capped"
    unit = temp.unit_of(temp._softmax_scale(z * scale))
    assert r.temperature == pytest.approx(T_MIN * unit)


def test_a_fit_that_does_not_converge_warns_with_its_figures(monkeypatch):
    z, y = make_multiclass(n=2000)
    monkeypatch.setattr(temp, "_MAX_PASSES", 2)
    with pytest.warns(TemperatureWarning, match=r"did not converge in 2 passes: T = [\d.]+"):
        r = fit_softmax_temperature(z, y)
    assert r.converged is False


@pytest.mark.parametrize("c", [1e200, 1e-200])
@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_temperature_scales_exactly_far_out(references, task, c):
    # float64 logits near the ends of the usable range, with units that do not
    # invert in float32 either
    z, y, t = references[np.float64][task]
    fit = fit_softmax_temperature if task == "multiclass" else fit_sigmoid_temperature
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert fit(z * c, y).temperature == pytest.approx(c * t, rel=1e-6)


@pytest.mark.parametrize("c", [1e-252, 1e-310, 1e252, 1e306])
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel"])
def test_logits_beyond_the_usable_scale_are_refused_not_fitted_wrong(references, task, c):
    # near the ends of the float range probabilities cannot be computed exactly:
    # a clear refusal, never a wrong temperature (1e306 once gave T off by 1e-285,
    # 1e-310 a division by zero)
    z, y, _ = references[np.float64][task]
    fit = fit_softmax_temperature if task == "multiclass" else fit_sigmoid_temperature
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(CalibrateError, match=r"^scores: expected logits spread between "
                                                 r"1e-250 and 1e\+250 .*found "):
            fit(z * c, y)
