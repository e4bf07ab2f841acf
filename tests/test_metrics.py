"""calibrate.metrics: hand-computed cases, sklearn agreement, the chunked summary
pass against the plain functions, and the estimators' behaviour on simulated models."""

import itertools
import math

import numpy as np
import pytest
from scipy import special, stats

import calibrate
from calibrate import bootstrap as B
from calibrate import curves
from calibrate import metrics as M
from calibrate.backends import as_backend
from calibrate.summary import metrics_at
from conftest import make_binary, make_multiclass, make_multilabel

# ------------------------------------------------------------------ hand-computed cases
# Two rows, three classes, away from every bin edge (5 bins of width 0.2).
P3 = np.array([[0.70, 0.25, 0.05],
               [0.30, 0.55, 0.15]])
Y3 = np.array([0, 2])


def test_ece_equal_width_by_hand():
    # each p alone in its 15-bin: gaps 0.1, 0.8, 0.1, 0.05
    assert M.ece([0.1, 0.2, 0.9, 0.95], [0, 1, 1, 1]) == pytest.approx(1.05 / 4, abs=1e-15)


def test_ece_bins_are_closed_on_the_right():
    # with 4 bins, p = 0.25 lies in (0, 0.25] and p = 0.26 in (0.25, 0.5]:
    # gaps |1 - 0.25| and |0 - 0.26|; with [lo, hi) bins they would share a bin (0.245)
    assert M.ece([0.25, 0.26], [1, 0], n_bins=4) == pytest.approx((0.75 + 0.26) / 2, abs=1e-15)
    assert M.ece([0.0], [0], n_bins=4) == 0.0          # p = 0 goes to the first bin


def test_mce_is_the_largest_bin_gap():
    assert M.mce([0.25, 0.26], [1, 0], n_bins=4) == pytest.approx(0.75, abs=1e-15)
    assert M.mce([0.1, 0.2, 0.9, 0.95], [0, 1, 1, 1]) == pytest.approx(0.8, abs=1e-15)


def test_ece_equal_mass_by_hand():
    # two bins of two: |0 - 0.15| * 2 and |1 - 0.35| * 2, over 4 rows
    assert M.ece_equal_mass([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], n_bins=2) == pytest.approx(
        (0.3 + 1.3) / 4, abs=1e-15)


def test_ece_equal_mass_keeps_ties_together_and_ignores_row_order():
    p = np.array([0.5, 0.5, 0.5, 0.9])
    o = np.array([1, 0, 1, 1])
    # the three 0.5s share bin 0 (gap 2 - 1.5 = 0.5), 0.9 is bin 1 (gap 0.1)
    assert M.ece_equal_mass(p, o, n_bins=2) == pytest.approx(0.6 / 4, abs=1e-15)
    for perm in ([3, 2, 1, 0], [1, 3, 0, 2]):
        assert M.ece_equal_mass(p[perm], o[perm], n_bins=2) == M.ece_equal_mass(p, o, n_bins=2)


def test_classwise_ece_by_hand():
    # class 0: +0.3 (bin 3) and -0.3 (bin 1); class 1: -0.25 (bin 1), -0.55 (bin 2);
    # class 2: -0.05 + 0.85 in bin 0.  Sum 2.2 over n * C = 6.
    assert M.classwise_ece(P3, Y3, n_bins=5) == pytest.approx(2.2 / 6, abs=1e-15)


def test_top_label_ece_by_hand():
    # row 0: class 0, conf 0.7, right: +0.3; row 1: class 1, conf 0.55, wrong: -0.55
    assert M.top_label_ece(P3, Y3, n_bins=5) == pytest.approx(0.85 / 2, abs=1e-15)
    # Guo's ECE pools both rows' confidences in one set of bins (here different bins)
    conf, o = M.calibration_pairs(P3, Y3)
    assert conf.tolist() == [0.7, 0.55] and o.tolist() == [1.0, 0.0]


def test_top_label_differs_from_confidence_ece_when_classes_share_a_bin():
    p = np.array([[0.8, 0.2], [0.2, 0.8]])
    y = np.array([0, 0])
    # confidence ECE: one bin, gap (1 + 0) - 1.6 = -0.6 -> 0.3; top-label: two bins
    # (classes 0 and 1), gaps +0.2 and -0.8 -> 0.5
    assert M.ece(*M.calibration_pairs(p, y)) == pytest.approx(0.3, abs=1e-15)
    assert M.top_label_ece(p, y) == pytest.approx(0.5, abs=1e-15)
    with pytest.raises(ValueError):
        M.top_label_ece(p, np.array([[0, 1], [1, 0]]))      # multilabel


def test_brier_and_log_loss_by_hand():
    # row 0: 0.3^2 + 0.25^2 + 0.05^2 = 0.155; row 1: 0.3^2 + 0.55^2 + 0.85^2 = 1.115
    assert M.brier(P3, Y3) == pytest.approx((0.155 + 1.115) / 2, abs=1e-15)
    assert M.log_loss(P3, Y3) == pytest.approx(-(math.log(0.7) + math.log(0.15)) / 2, abs=1e-15)
    # binary: positive-class probability
    assert M.brier(np.array([0.2, 0.9]), np.array([0, 1])) == pytest.approx(
        (0.04 + 0.01) / 2, abs=1e-15)
    assert M.log_loss(np.array([0.2, 0.9]), np.array([0, 1])) == pytest.approx(
        -(math.log(0.8) + math.log(0.9)) / 2, abs=1e-15)


def test_binary_classwise_ece_averages_both_classes():
    p = np.array([0.1, 0.35, 0.8])
    y = np.array([0, 1, 1])
    two = np.stack([1 - p, p], axis=1)
    assert M.classwise_ece(p, y) == pytest.approx(M.classwise_ece(two, y, task="multiclass"),
                                                  abs=1e-15)
    # away from bin edges, each class's ECE equals the positive-class ECE
    assert M.classwise_ece(p, y) == pytest.approx(M.ece(p, y), abs=1e-15)


def test_multilabel_variants():
    p = np.array([[0.1, 0.8], [0.6, 0.3]])
    y = np.array([[0, 1], [1, 0]])
    # ECE pools the four (row, class) pairs; classwise averages each label's own ECE
    assert M.ece(*M.calibration_pairs(p, y)) == pytest.approx(
        M.ece(p.ravel(), y.ravel()), abs=1e-15)
    assert M.classwise_ece(p, y) == pytest.approx(
        (M.ece(p[:, 0], y[:, 0]) + M.ece(p[:, 1], y[:, 1])) / 2, abs=1e-15)
    assert M.brier(p, y) == pytest.approx(np.mean((p - y) ** 2), abs=1e-15)
    assert "top_label_ece_15_equal_width" not in M.all_metrics(p, y)


def test_reliability_bins_reproduce_the_ece():
    rng = np.random.default_rng(3)
    p = rng.random(500)
    o = (rng.random(500) < p ** 1.3).astype(float)
    for strategy, fn in (("width", M.ece), ("mass", M.ece_equal_mass)):
        b = M.reliability_bins(p, o, strategy=strategy)
        assert b["count"].sum() == 500
        full = b["count"] > 0
        assert np.sum(b["count"][full] * np.abs(b["gap"][full])) / 500 == pytest.approx(
            fn(p, o), abs=1e-12)
    assert M.mce(p, o) == pytest.approx(np.nanmax(np.abs(M.reliability_bins(p, o)["gap"])))


# ------------------------------------------------------------------ smooth ECE

def test_smooth_ece_of_a_point_mass_is_its_gap():
    # all p = 0.5, 8 of 10 right: the residual 0.3 is constant, smECE_s = 0.3 for all s,
    # so the fixed point is s* = 0.3
    v, s = M.smooth_ece(np.full(10, 0.5), np.array([1] * 8 + [0] * 2), return_sigma=True)
    assert v == pytest.approx(0.3, abs=1e-12)
    assert s == pytest.approx(0.3, rel=1e-4)


def _smooth_ece_brute_force(p, o, sigma):
    """Direct formula: the reflected Gaussian kernel summed over images, Riemann-integrated."""
    t = np.linspace(0, 1, 5001)
    k = sum(stats.norm.pdf(t[:, None] - p[None, :] - 2 * z, scale=sigma)
            + stats.norm.pdf(t[:, None] + p[None, :] - 2 * z, scale=sigma) for z in range(-2, 3))
    g = k @ (o - p) / len(p)
    return np.trapezoid(np.abs(g), t)


def test_smooth_ece_matches_the_definition():
    rng = np.random.default_rng(0)
    p = rng.beta(2, 1, 300)
    o = (rng.random(300) < p ** 1.5).astype(float)
    p[:3] = [0.0, 1.0, 0.999]                 # points on and near the reflecting edges
    for sigma in (0.02, 0.3):
        assert M.smooth_ece_at(p, o, sigma) == pytest.approx(
            _smooth_ece_brute_force(p, o, sigma), rel=2e-4)


def test_smooth_ece_is_the_fixed_point_and_smecs_decreases_with_sigma():
    rng = np.random.default_rng(1)
    p = rng.random(2000)
    o = (rng.random(2000) < np.clip(p + 0.1 * np.sin(6 * p), 0, 1)).astype(float)
    v, s = M.smooth_ece(p, o, return_sigma=True)
    assert v == pytest.approx(s, rel=1e-3)
    vals = [M.smooth_ece_at(p, o, x) for x in (0.005, 0.02, 0.05, 0.1, 0.3)]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(vals))


def test_smooth_reliability_curve_integrates_to_the_smooth_ece():
    rng = np.random.default_rng(2)
    p = rng.beta(3, 1, 1000)
    o = (rng.random(1000) < p ** 2).astype(float)
    v, s = M.smooth_ece(p, o, return_sigma=True)
    t, curve, dens = M.smooth_reliability(p, o, s)
    r = np.abs(curve - t) * dens
    assert np.sum((r[1:] + r[:-1]) / 2 * np.diff(t)) == pytest.approx(v, rel=1e-6)
    assert np.sum((dens[1:] + dens[:-1]) / 2 * np.diff(t)) == pytest.approx(1.0, rel=1e-3)


# ------------------------------------------------------------------ sklearn agreement

def test_agrees_with_sklearn_log_loss_and_brier():
    skm = pytest.importorskip("sklearn.metrics")
    z, y = make_multiclass(seed=4, n=800, dtype=np.float64)
    p = special.softmax(z / 2.0, axis=1)
    assert M.log_loss(p, y) == pytest.approx(skm.log_loss(y, p, labels=range(10)), rel=1e-12)
    assert M.brier(p, y) == pytest.approx(skm.brier_score_loss(y, p, labels=range(10)),
                                          rel=1e-12)
    zb, yb = make_binary(seed=5, n=800, dtype=np.float64)
    pb = special.expit(zb / 2.0)
    assert M.log_loss(pb, yb) == pytest.approx(skm.log_loss(yb, pb), rel=1e-12)
    assert M.brier(pb, yb) == pytest.approx(skm.brier_score_loss(yb, pb), rel=1e-12)


# ------------------------------------------------------------------ the summary pass

@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_chunked_summary_equals_the_plain_functions(temperature):
    # 200 classes: the pass runs over several row chunks
    z, y = make_multiclass(seed=6, n=12000, c=200, scale=1.5)
    got = metrics_at(as_backend(z), y, "multiclass", temperature).values
    want = M.all_metrics(special.softmax(z.astype(np.float64) / temperature, axis=1), y)
    assert set(got) == set(want) == set(M.LABELS)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=2e-6, abs=1e-7), key


@pytest.mark.parametrize("make, task", [(make_binary, "binary"), (make_multilabel, "multilabel")])
def test_sigmoid_summary_equals_the_plain_functions(make, task):
    z, y = make(seed=7, n=2000)
    got = metrics_at(as_backend(z), y, task, 2.0).values
    want = M.all_metrics(special.expit(z.astype(np.float64) / 2.0), y, task)
    assert got == pytest.approx(want, rel=1e-12)


def test_fit_summary_names_every_metric_before_and_after():
    z, y = make_multiclass(seed=8, n=3000)
    s = calibrate.fit(z, y).summary
    m = s["metrics"]
    assert list(m) == list(M.LABELS)
    for key, v in m.items():
        assert set(v) == {"definition", "before", "after"}
        assert v["definition"].startswith(M.NAMES[key][:20])
    assert s["ece"] == {"before": m["ece_15_equal_width"]["before"],
                        "after": m["ece_15_equal_width"]["after"]}
    assert s["nll"] == {"before": m["nll"]["before"], "after": m["nll"]["after"]}
    # the sample is overconfident by 2.5: every calibration error falls
    for key in M.LABELS:
        assert m[key]["after"] < m[key]["before"], key
    assert "top-label confidence" in m["ece_15_equal_mass"]["definition"]


def test_fit_summary_multilabel_has_no_top_label_ece():
    z, y = make_multilabel(seed=9, n=2000)
    m = calibrate.fit(z, y).summary["metrics"]
    assert "top_label_ece_15_equal_width" not in m
    assert "pooled" in m["ece_15_equal_width"]["definition"]


# ------------------------------------------------------------------ bootstrap

def test_bootstrap_interval_is_seeded_contains_the_estimate_and_narrows():
    rng = np.random.default_rng(10)
    p = rng.random(4000)
    o = (rng.random(4000) < p ** 1.4).astype(float)
    lo, hi = B.bootstrap_ci(M.ece, p, o, n_resamples=200, seed=1)
    assert (lo, hi) == B.bootstrap_ci(M.ece, p, o, n_resamples=200, seed=1)
    assert lo < M.ece(p, o) < hi
    lo2, hi2 = B.bootstrap_ci(M.ece, p[:400], o[:400], n_resamples=200, seed=1)
    assert hi2 - lo2 > 2 * (hi - lo)        # ~ 1 / sqrt(n): 10x fewer rows, ~3x wider


def test_bootstrap_metrics_cover_every_ece():
    z, y = make_multiclass(seed=11, n=600, dtype=np.float64)
    p = special.softmax(z, axis=1)              # T = 1: overconfident, ECE ~ 14%
    ci = B.bootstrap_metrics(p, y, n_resamples=40, seed=0)
    assert set(ci) == set(M.ECE_KEYS)
    point = M.all_metrics(p, y)
    for key, (lo, hi) in ci.items():
        assert lo <= point[key] <= hi, key


def test_bootstrap_of_a_small_ece_sits_above_the_estimate():
    # Documented caveat: near perfect calibration an ECE estimate is mostly sampling
    # noise, and resampling adds more, so the percentile interval lies above it.
    z, y = make_multiclass(seed=11, n=600, dtype=np.float64)
    p = special.softmax(z / 2.5, axis=1)        # the true temperature: calibrated
    lo, hi = B.bootstrap_metrics(p, y, n_resamples=40, seed=0)["ece_15_equal_mass"]
    assert M.ece_equal_mass(*M.calibration_pairs(p, y)) < lo < hi


# ------------------------------------------------------------------ curves

def test_precision_and_risk_coverage_curves_by_hand():
    c = curves.precision_curve([0.9, 0.8, 0.8, 0.3], [1, 0, 1, 0], n_positive=4)
    assert c["threshold"].tolist() == [0.9, 0.8, 0.3]        # ties accepted together
    assert c["predicted"].tolist() == [1, 3, 4]
    assert c["correct"].tolist() == [1, 2, 2]
    assert c["precision"].tolist() == [1.0, 2 / 3, 0.5]
    assert c["recall"].tolist() == [0.25, 0.5, 0.5]
    r = curves.risk_coverage([0.9, 0.8, 0.8, 0.3], [1, 0, 1, 0])
    assert r["coverage"].tolist() == [0.25, 0.75, 1.0]
    assert r["risk"] == pytest.approx([0.0, 1 / 3, 0.5], abs=1e-15)
    assert curves.thin(10, 4).tolist() == [0, 3, 6, 9] and curves.thin(3, 4).tolist() == [0, 1, 2]


# ------------------------------------------------------------------ simulated models

def _pairs(rng, n, scale, t, c=10):
    """Top-label pairs of softmax(t g) with labels drawn from softmax(g): calibrated at t = 1."""
    g = rng.normal(0.0, scale, size=(n, c))
    y = (special.softmax(g, axis=1).cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return M.calibration_pairs(special.softmax(t * g, axis=1), y)


def _mean_over_reps(fn, conf, o, n):
    c, oo = conf.reshape(-1, n), o.reshape(-1, n)
    return float(np.mean([fn(c[i], oo[i]) for i in range(c.shape[0])]))


def test_perfectly_calibrated_model_ece_shrinks_with_n():
    rng = np.random.default_rng(12)
    conf, o = _pairs(rng, 40000, 4.0, 1.0)
    for fn in (M.ece, M.ece_equal_mass, M.smooth_ece):
        means = [_mean_over_reps(fn, conf[:40 * n], o[:40 * n], n) for n in (100, 1000)]
        means.append(fn(conf, o))                               # n = 40000
        assert means[0] > 2 * means[1] > 4 * means[2], (fn.__name__, means)
        assert means[2] < 0.01


def test_equal_mass_is_less_biased_when_confidences_crowd_near_one():
    # An overconfident model (softmax(2.5 g), labels from softmax(g)): its top-label
    # confidences pile up near 1.  At n = 100 the equal-mass estimate is closer to its
    # large-sample value than the equal-width one (Roelofs et al. 2022).
    rng = np.random.default_rng(13)
    conf, o = _pairs(rng, 200000, 4.0, 2.5)
    true_w, true_m = M.ece(conf, o), M.ece_equal_mass(conf, o)
    c, oo = _pairs(rng, 100 * 200, 4.0, 2.5)
    bias_w = _mean_over_reps(M.ece, c, oo, 100) - true_w
    bias_m = _mean_over_reps(M.ece_equal_mass, c, oo, 100) - true_m
    assert 0 < bias_m < bias_w - 0.003


def test_equal_mass_is_not_less_biased_for_a_perfectly_calibrated_model():
    # The reverse of the previous test (docs/design.md, "Calibration metrics"): with
    # true ECE 0 the whole estimate is sampling noise, sum_b |sum_{i in b} (o_i - p_i)| / n,
    # of order sum_b sqrt(n_b) / n, which equal-size bins make largest (sqrt is concave).
    rng = np.random.default_rng(14)
    c, oo = _pairs(rng, 100 * 200, 4.0, 1.0)
    assert _mean_over_reps(M.ece_equal_mass, c, oo, 100) > _mean_over_reps(M.ece, c, oo, 100)


def test_nll_from_logits_equals_log_loss_of_probabilities():
    from scipy import special
    from sklearn.metrics import log_loss as sk_log_loss

    from calibrate import metrics
    rng = np.random.default_rng(3)
    z = rng.normal(0, 3, size=(500, 4))
    y = rng.integers(0, 4, 500)
    assert metrics.nll(z, y, "multiclass", 2.0) == pytest.approx(
        sk_log_loss(y, special.softmax(z / 2.0, axis=1), labels=range(4)), rel=1e-10)
    zb, yb = z[:, 0], (z[:, 1] > 0).astype(int)
    assert metrics.nll(zb, yb, "binary", 1.5) == pytest.approx(
        sk_log_loss(yb, special.expit(zb / 1.5)), rel=1e-10)
