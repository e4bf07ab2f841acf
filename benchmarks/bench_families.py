"""Calibration families: held-out quality against scikit-learn, and speed.

    python benchmarks/bench_families.py [quality|speed|all]

Everything goes through the real entry point, ``calibrate.fit(...,
method=m)`` (with ``groups`` for the COCO detections), and its
``predict_proba`` on the other half.

Quality: each set is split in halves with a fixed seed (four seeds: four
splits; the COCO detections by image, so that no image is on both sides);
every family and ``auto`` are fitted on one half and scored on the other
(NLL, and the 15-bin ECE on the task's pairs), next to scikit-learn's
temperature, sigmoid and isotonic calibration fitted on the same half:

* temperature: ``sklearn.calibration._TemperatureScaling`` (the model behind
  ``CalibratedClassifierCV(method="temperature")``) on the model's outputs
  (probabilities, which it turns into log p; binary probabilities as the two
  columns (1 - p, p), as CalibratedClassifierCV does);
* sigmoid / isotonic: what ``CalibratedClassifierCV(FrozenEstimator(clf),
  method=...)`` does with a classifier whose ``predict_proba`` returns these
  outputs (logits for the synthetic sets, as ``decision_function``): one
  ``_SigmoidCalibration`` / ``IsotonicRegression(out_of_bounds="clip")`` per
  class on that class's column, the columns renormalised to sum 1 (binary:
  one calibrator on the positive column).

The real sets are read from ``shared/data`` beside the project when it is
there (skipped otherwise); the synthetic ones are generated (seeded): a known
temperature, a known offset (binary and multilabel), a known per-class
scale, and a known uniform mixture.

Speed: 50,000 x 1000 float32 logits (the overconfident set of
``bench_fit.py``): scikit-learn's temperature scaling alone against the whole
``calibrate.fit`` with each method (the calibration, both rules' thresholds
and the summary), ``auto`` included.
"""

import sys
import time
from pathlib import Path

import numpy as np
from scipy import special

import calibrate
from calibrate import families, metrics

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPLITS = (0, 1, 2, 3)
NLL_TOL = 0.01      # auto's NLL within 1% of the best scikit-learn calibrator
ECE_TOL = 0.005     # auto's ECE within 0.5 points of the best one


# ---------------------------------------------------------------------------
# Data sets: (name, task, model outputs, labels, groups, kind of outputs)

def real_sets():
    out = []
    d = DATA / "cifar100_densenet"
    if (d / "probs.npy").exists():
        out.append(("cifar100", "multiclass", np.load(d / "probs.npy"), np.load(d / "labels.npy"),
                    None, "probabilities"))
    d = DATA / "coco_detections_frcnn"
    if (d / "probs.npy").exists():
        out.append(("coco-frcnn", "binary", np.load(d / "probs.npy"), np.load(d / "labels.npy"),
                    np.load(d / "image_index.npy"), "probabilities"))
    d = DATA / "imdb_sentiment"
    if (d / "probs.npy").exists():
        out.append(("imdb", "binary", np.load(d / "probs.npy"), np.load(d / "labels.npy"),
                    None, "probabilities"))
    return out


def _draw(rng, p):
    return (p.cumsum(axis=1) > rng.random((p.shape[0], 1))).argmax(axis=1)


def synthetic_sets(n=10_000, c=10):
    rng = np.random.default_rng(12345)
    g = rng.normal(0, 3, (n, c))
    temp = ("synth-temperature", "multiclass", (2.5 * g).astype(np.float32),
            _draw(rng, special.softmax(g, axis=1)), None, "logits")
    x = special.log_softmax(g, axis=1)
    a, b = np.linspace(0.4, 1.6, c), np.linspace(-1, 1, c)
    scale = ("synth-per-class", "multiclass", g.astype(np.float32),
             _draw(rng, special.softmax(a * x + b, axis=1)), None, "logits")
    q = 0.95 * special.softmax(g, axis=1) + 0.05 / c
    mixed = ("synth-mixture", "multiclass", (2.0 * g).astype(np.float32), _draw(rng, q), None,
             "logits")
    h = rng.normal(0, 2, n)
    offset = ("synth-offset", "binary", (1.5 * h + 2.0).astype(np.float32),
              (rng.random(n) < special.expit(h)).astype(np.int64), None, "logits")
    hm = rng.normal(0, 2, (n, 4))
    multi = ("synth-offset-multilabel", "multilabel",
             (hm + np.array([1.0, -1.0, 2.0, 0.0])).astype(np.float32),
             (rng.random((n, 4)) < special.expit(hm)).astype(np.int64), None, "logits")
    return [temp, scale, mixed, offset, multi]


def halves(n, groups, seed):
    """A boolean mask of the fitting half: rows, or whole groups, at random."""
    rng = np.random.default_rng(seed)
    if groups is None:
        mask = np.zeros(n, bool)
        mask[rng.permutation(n)[: n // 2]] = True
        return mask
    ids = np.unique(groups)
    return np.isin(groups, rng.permutation(ids)[: ids.size // 2])


# ---------------------------------------------------------------------------
# Scoring

def score(p, y, task):
    """Held-out NLL and 15-bin ECE of calibrated probabilities p."""
    p = np.asarray(p, dtype=np.float64)
    conf, outcome = metrics.calibration_pairs(p, y, task)
    return metrics.log_loss(p, y, task), metrics.ece(conf, outcome)


def sklearn_probs(method, x_fit, y_fit, x_test, task, kind):
    """scikit-learn's calibrators, as CalibratedClassifierCV applies them."""
    from sklearn.calibration import _SigmoidCalibration, _TemperatureScaling
    from sklearn.isotonic import IsotonicRegression
    if task == "multilabel":   # one binary calibrator per label
        return np.column_stack([sklearn_probs(method, x_fit[:, k], y_fit[:, k], x_test[:, k],
                                              "binary", kind) for k in range(x_fit.shape[1])])
    binary = task == "binary"
    if binary and x_fit.ndim == 2:            # two softmax columns: predict_proba
        x_fit, x_test = x_fit[:, 1], x_test[:, 1]
    if method == "temperature":
        if binary:
            two = (lambda v: np.column_stack([1 - v, v])) if kind == "probabilities" else (
                lambda v: v)
            ts = _TemperatureScaling().fit(two(x_fit), y_fit)
            return ts.predict(two(x_test))[:, 1]
        ts = _TemperatureScaling().fit(x_fit, y_fit)
        return ts.predict(x_test)
    make = _SigmoidCalibration if method == "sigmoid" else (
        lambda: IsotonicRegression(out_of_bounds="clip"))
    if binary:
        return make().fit(x_fit, y_fit).predict(x_test)
    c = x_fit.shape[1]
    p = np.column_stack([make().fit(x_fit[:, k], (y_fit == k).astype(float)).predict(x_test[:, k])
                         for k in range(c)])
    s = p.sum(axis=1, keepdims=True)
    return np.divide(p, s, out=np.full_like(p, 1.0 / c), where=s != 0)


def fitted(x, y, task, kind, method, groups=None):
    """``calibrate.fit`` as a user calls it (its thresholds and summary included)."""
    return calibrate.fit(x, y, task=task, input_kind=kind, method=method, groups=groups)


def quality_rows(name, task, x, y, groups, kind):
    rows = []
    for seed in SPLITS:
        fit_half = halves(len(y), groups, seed)
        xf, xt, yf, yt = x[fit_half], x[~fit_half], y[fit_half], y[~fit_half]
        row = {"set": name, "split": seed}
        for m in families.methods(task):
            row[m] = score(fitted(xf, yf, task, kind, m).predict_proba(xt), yt, task)
        t0 = time.perf_counter()
        cal = fitted(xf, yf, task, kind, "auto", None if groups is None else groups[fit_half])
        row["auto_seconds"] = time.perf_counter() - t0
        row["auto"] = score(cal.predict_proba(xt), yt, task)
        cv = cal.summary["cross_validation"]
        row["choice"] = cv["choice"]
        row["cv"] = [families.FamilyScore(r["method"], r["cv_nll"], r["cv_ece"], r["se"],
                                          0.0, r.get("skipped", ""))
                     for r in cv["families"]]
        for m in ("temperature", "sigmoid", "isotonic"):
            row["sk-" + m] = score(sklearn_probs(m, x[fit_half], yf, x[~fit_half], task, kind),
                                   yt, task)
        rows.append(row)
    return rows


def print_quality(rows):
    cols = ["temperature", "mix", "ovr-platt", "vector", "platt", "isotonic", "auto",
            "sk-temperature", "sk-sigmoid", "sk-isotonic"]
    print("held-out NLL / ECE (%) per set and split; fitted on the other half")
    print(f"{'set':<24}{'sp':>3} " + "".join(f"{c:>15}" for c in cols) + "  auto chose")
    misses = []
    for r in rows:
        cells = "".join(f"{'':>15}" if c not in r else f"{r[c][0]:>8.4f}/{100 * r[c][1]:>5.2f}"
                        .rjust(15) for c in cols)
        print(f"{r['set']:<24}{r['split']:>3} {cells}  {r['choice']} ({r['auto_seconds']:.2f} s)")
        sk = [r[c] for c in ("sk-temperature", "sk-sigmoid", "sk-isotonic")]
        best_nll, best_ece = min(s[0] for s in sk), min(s[1] for s in sk)
        if r["auto"][0] > best_nll * (1 + NLL_TOL):
            worse = 100 * (r["auto"][0] / best_nll - 1)
            misses.append(f"{r['set']} split {r['split']}: auto NLL {r['auto'][0]:.4f} vs best "
                          f"scikit-learn {best_nll:.4f} (+{worse:.2f}%)")
        if r["auto"][1] > best_ece + ECE_TOL:
            misses.append(f"{r['set']} split {r['split']}: auto ECE {100 * r['auto'][1]:.2f}% vs "
                          f"best scikit-learn {100 * best_ece:.2f}%")
    n_ece = sum(1 for m in misses if "ECE" in m)
    print(f"\nauto within {100 * NLL_TOL:.0f}% NLL of the best scikit-learn calibrator on "
          f"{len(rows) - sum(1 for m in misses if 'NLL' in m)} of {len(rows)} splits, within "
          f"{100 * ECE_TOL:.1f} ECE points on {len(rows) - n_ece} of {len(rows)}")
    for m in misses:
        print("  " + m)
    print("\ncross-validated NLL / ECE (%) on the fitting half (split 0), as auto saw them")
    for r in rows:
        if r["split"] == 0:
            print(f"  {r['set']:<24}" + "  ".join(
                f"{s.method} {s.cv_nll:.4f}/{100 * s.cv_ece:.2f}" if s.cv_nll is not None
                else f"{s.method} skipped ({s.note})" for s in r["cv"]))


# ---------------------------------------------------------------------------
# Speed

def speed(n=50_000, c=1000):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_fit import make_easy as make
    from machine import speed_line
    from sklearn.calibration import _TemperatureScaling
    print(speed_line("before"))
    z, y = make(n, c)
    t0 = time.perf_counter()
    _TemperatureScaling().fit(z, y)
    t_sk = time.perf_counter() - t0
    calibrate.fit(z[:2000], y[:2000])                  # imports and thread pool warm
    times, cals = {}, {}
    for m in families.MULTICLASS + ("auto",):
        t0 = time.perf_counter()
        cals[m] = calibrate.fit(z, y, method=m)
        times[m] = time.perf_counter() - t0
    print(f"\n{n} x {c} float32 logits: calibrate.fit seconds (calibration, thresholds, "
          "summary)")
    print(f"  scikit-learn _TemperatureScaling alone   {t_sk:8.2f}")
    for m in families.MULTICLASS:
        c_ = cals[m].summary["calibration"]
        print(f"  method={m:<12}                    {times[m]:8.2f}   "
              f"({c_.get('passes', '?')} calibration passes; {times[m] / t_sk:.3f} of "
              "scikit-learn's)")
    s = cals["auto"].summary
    cv = s["cross_validation"]
    print(f"  method=auto                              {times['auto']:8.2f}   "
          f"chose {cv['choice']}; ratio to scikit-learn {times['auto'] / t_sk:.2f} (goal <= 1)")
    print(f"    cross-validation on {cv['rows']} rows, {cv['folds']} folds"
          + (f", split-half z = {cv['signal_z']:.2f}" if cv["signal_z"] is not None else "")
          + ":")
    for r in cv["families"]:
        what = (f"CV NLL {r['cv_nll']:.4f}, ECE {100 * r['cv_ece']:.2f}%"
                if r["cv_nll"] is not None else f"skipped: {r['skipped']}")
        print(f"      {r['method']:<12}{what}")
    print(f"  default temperature fit / scikit-learn: {times['temperature'] / t_sk:.3f} "
          "(goal <= 1/20 = 0.05)")
    print(speed_line("after"))


def main(what="all"):
    if what in ("quality", "all"):
        rows = []
        sets = real_sets() + synthetic_sets()
        if len(sets) == len(synthetic_sets()):
            print(f"(no real sets under {DATA}: synthetic sets only)")
        for s in sets:
            rows += quality_rows(*s)
        print_quality(rows)
    if what in ("speed", "all"):
        speed()


if __name__ == "__main__":
    main(*sys.argv[1:2])
