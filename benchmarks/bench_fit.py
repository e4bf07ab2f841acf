"""calibrate.fit against scikit-learn's temperature scaling on 50k x 1000 logits.

Two data sets of float32 logits, 50,000 rows x 1000 classes:

* easy: about 5% of rows relabelled at random from an overconfident model
  (the data of earlier versions of this benchmark);
* hard: every class has 50 rows and the argmax is right on about 52% of them.

For each, one table row per step: the full ``calibrate.fit`` (input checks,
temperature, per-class and global thresholds at 95% confidence, the summary
with every metric), then its parts timed on their own, then scikit-learn's
``_TemperatureScaling`` (the model behind
``CalibratedClassifierCV(method="temperature")``) on the same array, with the
temperatures found.  calibrate's times are the best of three runs;
scikit-learn's one run.

Then, in memory as well, binary 5,000,000 logits and multilabel 100,000 x 100
(the full fit against scikit-learn's temperature scaling of the same scores
pooled as one binary problem).

    python benchmarks/bench_fit.py [rows] [classes] [--tasks=multiclass,binary,multilabel]

Goals: the multiclass fit in at most 1/20 of scikit-learn's time, binary and
multilabel in at most 1/5, with the same T.
"""

import sys
import time

import numpy as np
from machine import speed_line

import calibrate
from calibrate import fitting, scores, summary
from calibrate.temperature import fit_temperature


def make_easy(n, c, seed=0, true_t=2.0):
    """Overconfident logits: labels from softmax(g), logits true_t * g (float32)."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, c), dtype=np.float32) * 2.0
    y = rng.integers(0, c, n)
    g[np.arange(n), y] += 4.0
    u = rng.random(n)
    p_top = 1.0 / (1.0 + np.exp(-g.max(1)) * c)
    flip = u > np.clip(p_top * 1.5, 0, 1)
    y[flip] = rng.integers(0, c, flip.sum())
    return (true_t * g).astype(np.float32), y


def make_hard(n, c, seed=0, shift=3.3, true_t=2.0):
    """Every class has n / c rows; the true class's logit is shifted up by
    ``shift`` standard deviations, so the argmax is right on about half of them."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % c)
    g = rng.standard_normal((n, c), dtype=np.float32)
    g[np.arange(n), y] += shift
    return (true_t * g).astype(np.float32), y


def timed(fn, repeat=1):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def parts(z, y):
    """The fit's steps, each timed alone (best of three)."""
    t_prep, p = timed(lambda: scores.prepare(z, y), 3)
    t_temp, temp = timed(lambda: fit_temperature(p.logits, p.labels, p.task, nll_before=False), 3)
    T = temp.temperature
    t_m1, _ = timed(lambda: summary.metrics_at(p.logits, p.labels, p.task, 1.0), 3)
    t_m2, m = timed(lambda: summary.metrics_at(p.logits, p.labels, p.task, T), 3)
    from calibrate import rules
    units = rules.decision_units(p.logits, p.labels, p.task, T, p.n_classes, top=m.top)
    t_thr, _ = timed(lambda: fitting.search_rules(units, 0.9, 0.95, False), 3)
    return [("  input checks and logits (1 pass)", t_prep),
            (f"  temperature ({temp.n_passes} passes after a row-sample warm start)", t_temp),
            ("  metrics at T = 1 (1 pass)", t_m1),
            ("  metrics and decision scores at T (1 pass)", t_m2),
            ("  thresholds: per class and global, 95% confidence", t_thr)]


def run(name, z, y):
    t_full, cal = timed(lambda: calibrate.fit(z, y, precision=0.9, confidence=0.95), 3)
    rows = parts(z, y)
    from sklearn.calibration import _TemperatureScaling
    t_sk, sk = timed(lambda: _TemperatureScaling().fit(z, y))
    T, T_sk = cal.temperature, 1.0 / float(sk.beta_)
    acc = float((z.argmax(1) == y).mean())
    print(f"\n{name}: {z.shape[0]} x {z.shape[1]} float32 logits, argmax accuracy {acc:.1%}, "
          f"rows per class {np.bincount(y).min()}-{np.bincount(y).max()}")
    print(f"| {'step':<62} | {'seconds':>7} | {'T':>12} |")
    print(f"|{'-' * 64}|{'-' * 9}:|{'-' * 13}:|")
    print(f"| {'calibrate.fit (all of it)':<62} | {t_full:>7.3f} | {T:>12.8f} |")
    for label, t in rows:
        print(f"| {label:<62} | {t:>7.3f} | {'':>12} |")
    print(f"| {'scikit-learn _TemperatureScaling (T alone)':<62} | {t_sk:>7.3f} | {T_sk:>12.8f} |")
    print(f"ratio calibrate.fit / scikit-learn: {t_full / t_sk:.4f} (1/{t_sk / t_full:.1f}); "
          f"goal <= 1/20")


def make_binary(n, seed=0):
    """Overconfident binary logits (twice the model's own), labels drawn from it."""
    rng = np.random.default_rng(seed)
    g = rng.normal(0.3, 2.0, n).astype(np.float32)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-g))).astype(np.int8)
    return (2.0 * g).astype(np.float32), y


def make_multilabel(n, c, seed=0):
    """Overconfident multilabel logits, int8 labels drawn from the model."""
    rng = np.random.default_rng(seed)
    shift = rng.normal(-1.0, 1.0, c).astype(np.float32)
    g = rng.standard_normal((n, c), dtype=np.float32) * 2.0 + shift
    y = (rng.random((n, c), dtype=np.float32) < 1.0 / (1.0 + np.exp(-g))).astype(np.int8)
    return (2.0 * g).astype(np.float32), y


def run_sigmoid(name, z, y):
    """The full fit (best of three) against scikit-learn's temperature scaling of
    the same scores as one binary problem (one run)."""
    t_full, cal = timed(lambda: calibrate.fit(z, y, precision=0.9, confidence=0.95), 3)
    from sklearn.calibration import _TemperatureScaling
    zz, yy = z.reshape(-1, 1), y.reshape(-1)
    t_sk, sk = timed(lambda: _TemperatureScaling().fit(zz, yy))
    # scikit-learn reads one column d as the two logits (-d, d): its T is twice ours
    T, T_sk = float(np.mean(cal.temperature)), 0.5 / float(sk.beta_)
    print(f"\n{name}")
    print(f"| {'step':<62} | {'seconds':>7} | {'T':>12} |")
    print(f"|{'-' * 64}|{'-' * 9}:|{'-' * 13}:|")
    print(f"| {'calibrate.fit (all of it; mean T over labels)':<62} | {t_full:>7.3f} "
          f"| {T:>12.8f} |")
    print(f"| {'scikit-learn _TemperatureScaling (T alone, pairs pooled)':<62} | {t_sk:>7.3f} "
          f"| {T_sk:>12.8f} |")
    print(f"ratio calibrate.fit / scikit-learn: {t_full / t_sk:.4f} (1/{t_sk / t_full:.1f}); "
          f"goal <= 1/5")


def main(n=50_000, c=1000, tasks="multiclass,binary,multilabel"):
    print(speed_line("before"))
    if "multiclass" in tasks:
        for name, make in (("easy", make_easy), ("hard", make_hard)):
            z, y = make(n, c)
            run(name, z, y)
    if "binary" in tasks:
        run_sigmoid("binary: 5,000,000 float32 logits, int8 labels", *make_binary(5_000_000))
    if "multilabel" in tasks:
        run_sigmoid("multilabel: 100,000 x 100 float32 logits, int8 labels",
                    *make_multilabel(100_000, 100))
    print(speed_line("after"))


if __name__ == "__main__":
    nums = [int(a) for a in sys.argv[1:] if a.isdigit()]
    named = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--tasks=")]
    main(*nums[:2], **({"tasks": named[0]} if named else {}))
