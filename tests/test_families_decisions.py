"""The families' chunk functions: calibrated probabilities, and decision
scores that rank exactly (multiclass: argmax and its calibrated
log-probability, in log space; sigmoid tasks: monotone in the logit)."""

import numpy as np
import pytest
from scipy import special

from calibrate import families, rules
from tests.conftest import make_binary, make_multiclass, make_multilabel


@pytest.fixture(scope="module")
def multiclass_fits():
    z, y = make_multiclass(seed=3, n=2000, c=6)
    return z, {m: families.fit(m, z, y, "multiclass") for m in families.MULTICLASS}


@pytest.fixture(scope="module")
def sigmoid_fits():
    out = {}
    for task, (z, y) in (("binary", make_binary(seed=4, n=2000)),
                         ("multilabel", make_multilabel(seed=5, n=2000))):
        out[task] = z, {m: families.fit(m, z, y, task) for m in families.SIGMOID}
    return out


@pytest.mark.parametrize("method", families.MULTICLASS)
def test_multiclass_probabilities_and_top(multiclass_fits, method):
    z, fits = multiclass_fits
    f = fits[method]
    p = f.probabilities(z)
    assert p.dtype == np.float32 and f.log_probabilities(z).dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    k, logp = f.top(z)
    assert logp.dtype == np.float64
    lp64 = f.log_probabilities(z.astype(np.float64))
    assert np.array_equal(k, lp64.argmax(axis=1))
    np.testing.assert_allclose(logp, lp64[np.arange(len(k)), k], rtol=1e-6, atol=1e-7)


def test_temperature_top_is_the_current_decision_score(multiclass_fits):
    z, fits = multiclass_fits
    t = fits["temperature"]
    k, logp = t.top(z)
    k0, logp0 = rules.top_scores(z, t.temperature[0])
    assert np.array_equal(k, k0) and np.array_equal(logp, logp0)


@pytest.mark.parametrize("method", families.MULTICLASS)
def test_saturated_float32_rows_keep_distinct_scores(multiclass_fits, method):
    # Margins of 60..100 over the runner-up: float32 probabilities all round to
    # 1.0 (ties); the log-space decision score still orders the rows.
    f = multiclass_fits[1][method]
    z = np.zeros((5, 6), np.float32)
    z[:, 2] = np.arange(60, 110, 10, dtype=np.float32)
    if method == "temperature":
        assert np.all(f.probabilities(z)[:, 2] == np.float32(1.0))
    k, logp = f.top(z)
    assert np.all(k == 2)
    assert np.all(np.diff(logp) > 0) and np.all(logp < 0)


@pytest.mark.parametrize("method", families.MULTICLASS)
def test_ties_go_to_the_lowest_index(multiclass_fits, method):
    f = multiclass_fits[1][method]
    z = np.zeros((1, 6), np.float32)
    z[0, [1, 4]] = 3.0
    k, _ = f.top(z)
    p = f.log_probabilities(z.astype(np.float64))
    assert k[0] == int(np.argmax(p[0]))


@pytest.mark.parametrize("task", ["binary", "multilabel"])
@pytest.mark.parametrize("method", families.SIGMOID)
def test_sigmoid_scores_rank_as_the_logits(sigmoid_fits, task, method):
    z, fits = sigmoid_fits[task]
    f = fits[method]
    zz = z.reshape(len(z), -1)
    s = f.scores(z).reshape(zz.shape)
    p = f.probabilities(z)
    assert p.dtype == np.float32 and p.shape == z.shape and s.dtype == np.float64
    for col in range(zz.shape[1]):
        order = np.argsort(zz[:, col], kind="stable")
        zs, ss = zz[order, col], s[order, col]
        strict = np.diff(zs) > 0
        assert np.all(np.diff(ss)[strict] > 0) and np.all(np.diff(ss)[~strict] == 0)
        ps = p.reshape(zz.shape)[order, col].astype(np.float64)
        assert np.all(np.diff(ps) >= -1e-7)               # the probability never falls
    np.testing.assert_allclose(special.expit(f.log_odds(z)), p, rtol=1e-6, atol=1e-7)


def test_nll_rows_match_the_probabilities(multiclass_fits, sigmoid_fits):
    z, y = make_multiclass(seed=3, n=2000, c=6)
    for f in multiclass_fits[1].values():
        p = f.probabilities(z.astype(np.float64))
        np.testing.assert_allclose(families.nll_rows(f, z, y), -np.log(p[np.arange(len(y)), y]),
                                   rtol=1e-5, atol=3e-7)    # float32 log-probabilities
    z, y = make_binary(seed=4, n=2000)
    for f in sigmoid_fits["binary"][1].values():
        p = f.probabilities(z.astype(np.float64))
        expect = -np.log(np.where(y == 1, p, 1 - p))
        np.testing.assert_allclose(families.nll_rows(f, z, y), expect, rtol=1e-6)
