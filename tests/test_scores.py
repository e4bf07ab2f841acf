"""Task and input-kind detection, and lossless recovery of logits."""

import warnings

import numpy as np
import pytest
from scipy import special

from calibrate import scores
from calibrate.errors import CalibrateError
from conftest import make_binary, make_multiclass


def prep(*args, **kw):
    """scores.prepare's fields as a tuple: logits (numpy), labels, task, input kind."""
    r = scores.prepare(*args, **kw)
    return r.logits.to_numpy(), r.labels, r.task, r.input_kind


def test_softmax_probabilities_detected_and_logits_recovered():
    z, y = make_multiclass(n=500)
    p = special.softmax(z.astype(np.float64), axis=1).astype(np.float32)
    lz, _, task, kind = prep(p, y)
    assert (task, kind) == ("multiclass", "probabilities")
    # log p differs from z by a per-row constant: softmax gives back p.
    np.testing.assert_allclose(special.softmax(lz.astype(np.float64), axis=1), p, atol=1e-6)
    assert lz.dtype == np.float32


def test_log_probabilities_detected():
    z, y = make_multiclass(n=500)
    lp = special.log_softmax(z.astype(np.float64), axis=1)
    _, _, _, kind = prep(lp, y)
    assert kind == "log-probabilities"


def test_logits_never_read_as_probabilities():
    z, y = make_multiclass(n=500)
    _, _, _, kind = prep(z, y)
    assert kind == "logits"


def test_saturated_probabilities_keep_their_range():
    # p = 1e-30 in float64 survives as log(1e-30), not clipped at float32 tiny.
    p = np.array([[1 - 1e-30, 1e-30], [0.5, 0.5]])
    lz = scores.to_logits(p, "multiclass", "probabilities")
    assert lz[0, 1] == pytest.approx(np.log(1e-30))
    # zeros map to log(tiny), finite
    p0 = np.array([[1.0, 0.0]], dtype=np.float32)
    assert np.isfinite(scores.to_logits(p0, "multiclass", "probabilities")).all()


def test_task_auto():
    z, y = make_multiclass(n=50)
    assert scores.resolve_task(z, y) == "multiclass"
    assert scores.resolve_task(z[:, :1], y) == "binary"
    assert scores.resolve_task(z[:, 0], y) == "binary"
    assert scores.resolve_task(z[:, :2], y) == "multiclass"   # two columns stay multiclass
    assert scores.resolve_task(z[:, :3], np.zeros((50, 3))) == "multilabel"


def test_sigmoid_probabilities_warn_naming_override():
    z, y = make_binary(n=200, dtype=np.float64)
    p = special.expit(z)
    with pytest.warns(scores.InputKindWarning, match="--input logits"):
        lz, _, task, kind = prep(p, y)
    assert (task, kind) == ("binary", "probabilities")
    # float64 probabilities keep the logit to ~1e-9 up to |z| ~ 30
    np.testing.assert_allclose(lz, z, rtol=1e-7, atol=1e-7)


def test_forced_kind_is_used():
    z, y = make_binary(n=200)
    p = special.expit(z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lz, _, _, kind = prep(p, y, input_kind="logits")
    assert kind == "logits" and lz is not None and np.array_equal(lz, p.reshape(-1))


def test_two_column_binary_is_the_log_odds():
    z, y = make_binary(n=200)
    two = np.stack([np.zeros_like(z), z], axis=1)
    d, _, task, _ = prep(two, y, task="binary")
    assert task == "binary" and np.array_equal(d, z)
    p2 = special.softmax(two.astype(np.float64), axis=1)
    d2, _, _, kind = prep(p2, y, task="binary")
    assert kind == "probabilities"
    np.testing.assert_allclose(d2, z, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bad, found", [
    (np.array([[0.1, np.nan]]), "NaN"),
    (np.array([[0.1, np.inf]]), "+inf"),
    (np.array([[0.1, -np.inf]]), "-inf"),
])
def test_non_finite_refused(bad, found):
    with pytest.raises(CalibrateError,
                       match=r"expected finite scores, found " + found.replace("+", r"\+")):
        scores.prepare(bad, np.array([0]))


def test_minus_inf_allowed_in_log_probabilities():
    with np.errstate(divide="ignore"):
        lp = np.log(np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]))
        z, _, _, kind = prep(lp, np.array([0, 1]))
    assert kind == "log-probabilities" and np.isfinite(z).all()


@pytest.mark.parametrize("labels, msg", [
    (np.array([0, 1, 5]), "class ids in [0, 3), found the value 5"),
    (np.array([0, 1, -1]), "found the value -1"),
    (np.array([0, 1.5, 2]), "integer labels, found non-integer values"),
    (np.array([0, 1]), "3 labels, one per score row, found 2"),
])
def test_bad_labels(labels, msg):
    with pytest.raises(CalibrateError) as e:
        scores.prepare(np.eye(3), labels)
    assert msg in str(e.value)


def test_string_arrays_refused():
    with pytest.raises(CalibrateError, match="numeric array"):
        scores.prepare(np.array([["a", "b"]]), np.array([0]))


def test_float32_probabilities_a_little_above_one_are_probabilities():
    # Seen in real data (IMDB, float32 softmax): maxima of 1.00001.
    z, y = make_multiclass(n=300, c=2, seed=5)
    p = special.softmax(z.astype(np.float64), axis=1).astype(np.float32)
    p[0] = [1.00001, 1e-5]
    _, _, _, kind = prep(p, y)
    assert kind == "probabilities"


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_row_stats_flags_every_non_finite_value_from_min_and_max(dtype):
    # min and max carry NaN and infinities: each kind is found wherever it sits,
    # alone or with the others, and finite blocks report their range
    from calibrate.kernels import row_stats
    rng = np.random.default_rng(2)
    base = rng.uniform(0.1, 0.9, (50, 4)).astype(dtype)
    for bad in ([np.nan], [np.inf], [-np.inf], [np.inf, -np.inf], [np.nan, np.inf]):
        b = base.copy()
        cells = rng.choice(b.size, len(bad), replace=False)
        b.ravel()[cells] = bad
        st = row_stats(b)
        assert (st.nan, st.posinf, st.neginf) == (any(np.isnan(bad)), np.inf in bad,
                                                   -np.inf in bad)
        if not st.nan:
            assert (st.min, st.max) == (float(b.min()), float(b.max()))
    st = row_stats(base)
    assert not (st.nan or st.posinf or st.neginf)
    assert (st.min, st.max) == (float(base.min()), float(base.max()))
    assert st.sum_err == float(np.max(np.abs(base.sum(axis=1, dtype=np.float64) - 1.0)))
