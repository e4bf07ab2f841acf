"""Where should the Learn-then-Test sequence start?  A simulation.

The population: 10-class logits g ~ N(0, 4^2) (plus class offsets), labels drawn
from softmax(g), the model reports 2.5 g (overconfident).  Each draw fits
calibrate on 4000 rows (target precision 0.9, confidence 0.95) and checks the
chosen per-class thresholds against a 400k-row sample of the population:
the share of (draw, class) pairs whose true precision is below the target,
and the recall kept relative to the best threshold that truly meets it.

    python benchmarks/guarantee_start.py [draws]
"""

import sys

import numpy as np
from scipy import special

from calibrate import guarantee, rules, thresholds
from calibrate.temperature import fit_softmax_temperature

C, N_CAL, N_POP, TARGET, CONF = 10, 4000, 400_000, 0.9, 0.95


def population(rng, n):
    g = rng.normal(0.0, 4.0, size=(n, C)) + OFFSETS
    y = (special.softmax(g, axis=1).cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return (2.5 * g).astype(np.float32), y


def true_precision_recall(k_pop, logp_pop, y_pop, cls, tau):
    acc = (k_pop == cls) & (logp_pop >= tau)
    n = acc.sum()
    prec = (y_pop[acc] == cls).mean() if n else 1.0
    return prec, (acc & (y_pop == cls)).sum() / max(1, (y_pop == cls).sum())


def best_recall(k_pop, logp_pop, y_pop, cls):
    """Recall of the loosest threshold whose population precision meets the target."""
    m = k_pop == cls
    v, n, k, _ = thresholds.candidates(logp_pop[m], y_pop[m] == cls)
    ok = np.flatnonzero(k / n >= TARGET)
    return 0.0 if ok.size == 0 else k[ok[-1]] / max(1, (y_pop == cls).sum())


def strategies(values, n, k, e, alpha):
    p = guarantee.p_values(k, n, TARGET)
    out = {}
    if n[-1] < guarantee.min_certifiable(TARGET, alpha):
        return dict.fromkeys(("start@30", "start@100", "expected-p", "min-p (label-dependent)"))
    for name, start in (("start@30", guarantee.start_index(n, start_predictions=30)),
                        ("start@100", guarantee.start_index(n, start_predictions=100)),
                        ("expected-bound", guarantee.start_index(n, e)),
                        ("min-p (label-dependent)", int(np.argmin(p)))):
        j = guarantee.fixed_sequence(p, alpha, start)
        out[name] = None if j is None else thresholds._midpoint(values[j], values[j + 1]) \
            if j + 1 < len(values) else thresholds.ACCEPT_ALL
    return out


def main(draws=100):
    global OFFSETS
    rng = np.random.default_rng(7)
    OFFSETS = rng.normal(0.0, 0.5, size=C)
    zp, yp = population(rng, N_POP)
    viol, rec, pairs = {}, {}, 0
    for _ in range(draws):
        z, y = population(rng, N_CAL)
        T = fit_softmax_temperature(z, y).temperature
        k, logp = rules.top_scores(z, T)
        kp, lpp = rules.top_scores(zp, T)
        for c in range(C):
            m = k == c
            values, n, kk, e = thresholds.candidates(logp[m], y[m] == c, np.exp(logp[m]))
            best = best_recall(kp, lpp, yp, c)
            pairs += 1
            for name, tau in strategies(values, n, kk, e, 1 - CONF).items():
                if tau is None:
                    prec, r = 1.0, 0.0
                else:
                    prec, r = true_precision_recall(kp, lpp, yp, c, tau)
                viol[name] = viol.get(name, 0) + (prec < TARGET)
                rec[name] = rec.get(name, 0.0) + (r / best if best > 0 else 1.0)
    print(f"{draws} draws x {C} classes, {N_CAL} calibration rows, target {TARGET}, "
          f"confidence {CONF}")
    print(f"{'start of the sequence':<26}{'violations':>12}{'recall / best':>15}")
    for name in viol:
        print(f"{name:<26}{100 * viol[name] / pairs:>11.1f}%{100 * rec[name] / pairs:>14.1f}%")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
