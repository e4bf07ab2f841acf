"""One logit + sigmoid and two logits + softmax are the same model."""

import numpy as np
import pytest
from scipy import special

import calibrate
from conftest import make_binary


@pytest.mark.parametrize("confidence", [None, 0.95])
def test_two_columns_equal_one_logit_exactly(confidence):
    z, y = make_binary(n=4000, seed=3)
    one = calibrate.fit(z, y, confidence=confidence)
    col = calibrate.fit(z[:, None], y, confidence=confidence)
    two = calibrate.fit(np.stack([np.zeros_like(z), z], 1), y, task="binary",
                        confidence=confidence)
    half = calibrate.fit(np.stack([-z / 2, z / 2], 1), y, task="binary", confidence=confidence)
    for other in (col, two, half):
        assert other.temperature == one.temperature
        assert other.decision_thresholds == one.decision_thresholds
        assert other.task == "binary"
    d1 = one.predict(z)
    assert np.array_equal(d1, two.predict(np.stack([np.zeros_like(z), z], 1)))
    assert np.array_equal(d1, one.predict(np.stack([-z / 2, z / 2], 1)))  # any shape applies
    np.testing.assert_array_equal(one.predict_proba(z),
                                  two.predict_proba(np.stack([np.zeros_like(z), z], 1)))


def test_softmax_of_two_is_sigmoid_of_difference():
    z, y = make_binary(n=1000, seed=4)
    cal = calibrate.fit(z, y)
    two = np.stack([np.zeros_like(z), z], 1).astype(np.float64)
    p = special.softmax(two / cal.temperature, axis=1)[:, 1]
    np.testing.assert_allclose(cal.predict_proba(two), p, rtol=1e-6)


def test_binary_decision_rule():
    z, y = make_binary(n=3000, seed=5)
    cal = calibrate.fit(z, y, confidence=None)
    t = cal.thresholds["per_class"][0]
    p = special.expit(z.astype(np.float64) / cal.temperature)
    d = cal.predict(z)
    assert set(np.unique(d)) <= {0, 1}
    # Away from the threshold the probability rule and the logit rule agree.
    far = np.abs(p - t) > 1e-9
    assert np.array_equal(d[far], (p[far] >= t).astype(int))
    assert (y[d == 1] == 1).mean() >= 0.9


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_binary_labels_are_kept_as_int8_and_fit_as_int64_would(method):
    from calibrate import scores
    rng = np.random.default_rng(0)
    g = rng.normal(0.3, 2.0, 6000)
    y = (rng.random(6000) < 1 / (1 + np.exp(-g))).astype(np.int64)
    z = (2 * g).astype(np.float32)
    assert scores.check_labels(y, "binary", 6000, 1).dtype == np.int8
    assert scores.check_labels(y % 3, "multiclass", 6000, 3).dtype == np.int64
    a = calibrate.fit(z, y, precision=0.8, confidence=0.9, method=method).to_dict()
    b = calibrate.fit(z, y.astype(np.float64), precision=0.8, confidence=0.9,
                      method=method).to_dict()
    a.pop("created", None)
    b.pop("created", None)
    assert a == b
