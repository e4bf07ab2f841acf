"""calibrate.fit against scikit-learn's temperature scaling on 50k x 1000 logits.

Prints one table: wall time of the full ``calibrate.fit`` (temperature plus
per-class thresholds at confidence 0.95, summary included), of calibrate's
temperature fit alone, and of scikit-learn's ``_TemperatureScaling`` (the
model behind ``CalibratedClassifierCV(method="temperature")``) on the same
float32 logits, with the temperatures each found.

    python benchmarks/bench_fit.py [rows] [classes]

The goal: the full fit in at most 1/10 of scikit-learn's time, with
the same T to 1e-4.
"""

import sys
import time

import numpy as np

import calibrate
from calibrate import scores
from calibrate.temperature import fit_softmax_temperature


def make(n, c, seed=0, true_t=2.0):
    """Overconfident logits: labels from softmax(g), logits true_t * g (float32)."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, c), dtype=np.float32) * 2.0
    y = rng.integers(0, c, n)
    g[np.arange(n), y] += 4.0  # a model with ~70-80% accuracy
    # relabel a share by sampling from softmax(g) so that T is identifiable
    u = rng.random(n)
    p_top = 1.0 / (1.0 + np.exp(-g.max(1)) * c)
    flip = u > np.clip(p_top * 1.5, 0, 1)
    y[flip] = rng.integers(0, c, flip.sum())
    return (true_t * g).astype(np.float32), y


def timed(fn, repeat=1):
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(n=50_000, c=1000):
    z, y = make(n, c)
    t_full, cal = timed(lambda: calibrate.fit(z, y, precision=0.9, confidence=0.95), repeat=3)
    t_temp, res = timed(lambda: fit_softmax_temperature(z, y), repeat=3)
    t_detect, _ = timed(lambda: scores.detect_input_kind(z, "multiclass"), repeat=3)
    try:
        from sklearn.calibration import _TemperatureScaling
    except ImportError:
        print("scikit-learn is not installed: pip install scikit-learn")
        return
    t_sk, sk = timed(lambda: _TemperatureScaling().fit(z, y), repeat=1)
    T_sk = 1.0 / float(sk.beta_)
    # sklearn evaluates its float32 loss in float32; on float64 logits it is exact
    t_sk64, sk64 = timed(lambda: _TemperatureScaling().fit(z.astype(np.float64), y))
    T_sk64 = 1.0 / float(sk64.beta_)
    T_ref = reference_temperature(z, y)
    T = cal.temperature
    print(f"{n} x {c} float32 logits ({z.nbytes / 2**20:.0f} MiB)")
    print(f"{'what':<52}{'seconds':>9}{'T':>14}")
    print(f"{'calibrate.fit (T + per-class thresholds @0.95, summary)':<52}{t_full:>9.2f}{T:>14.8f}")
    print(f"{'  of which: temperature alone (%d passes)' % res.n_passes:<52}{t_temp:>9.2f}"
          f"{res.temperature:>14.8f}")
    print(f"{'  of which: input-kind detection pass':<52}{t_detect:>9.2f}")
    print(f"{'sklearn _TemperatureScaling (T alone), float32':<52}{t_sk:>9.2f}{T_sk:>14.8f}")
    print(f"{'sklearn _TemperatureScaling, same logits as float64':<52}{t_sk64:>9.2f}{T_sk64:>14.8f}")
    print(f"{'float64 scipy reference optimum (not timed)':<52}{'':>9}{T_ref:>14.8f}")
    print(f"time ratio calibrate.fit / sklearn float32: {t_full / t_sk:.3f} (goal <= 0.1)")
    print(f"relative T difference vs sklearn float64: {abs(T - T_sk64) / T_sk64:.2e}, "
          f"vs sklearn float32: {abs(T - T_sk) / T_sk:.2e} (goal <= 1e-4); "
          f"vs float64 reference: {abs(T - T_ref) / T_ref:.2e}")


def reference_temperature(z, y):
    """The exact optimum: float64 NLL minimised by scipy (bounded Brent)."""
    from scipy import optimize, special
    zy = z[np.arange(len(y)), y].astype(np.float64)

    def nll(t):
        total = 0.0
        for lo in range(0, len(z), 5000):
            zz = z[lo:lo + 5000].astype(np.float64) / t
            total += (special.logsumexp(zz, axis=1) - zy[lo:lo + 5000] / t).sum()
        return total / len(z)
    r = optimize.minimize_scalar(nll, bounds=(0.05, 50.0), method="bounded",
                                 options={"xatol": 1e-10})
    return r.x


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*args)
