"""Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

One scalar T > 0 divides the logits; it minimises the mean negative
log-likelihood of held-out labels.  Written in beta = 1/T the objective is
convex, and its first two derivatives come from the same pass over the data:

softmax (multiclass), with p = softmax(beta z) and u = z - max(z) per row::

    NLL(beta)   = mean_i [ log sum_c exp(beta u_ic) - beta u_iy ]
    NLL'(beta)  = mean_i [ E_p[u_i] - u_iy ]
    NLL''(beta) = mean_i Var_p[u_i]                      (>= 0: convex)

sigmoid (binary, and each class of a multilabel task), with s = sigmoid(beta z)::

    NLL(beta)   = mean_i [ softplus(beta z_i) - y_i beta z_i ]
    NLL'(beta)  = mean_i (s_i - y_i) z_i
    NLL''(beta) = mean_i s_i (1 - s_i) z_i^2             (>= 0: convex)

A safeguarded Newton iteration on beta (Newton steps kept inside a bracket
[lo, hi] of the root of NLL', bisection or expansion otherwise) converges in a
handful of passes.  The passes run on the scores' backend
(:mod:`calibrate.backends`).

Scale: the fit starts at beta = 1 for logits of ordinary size, and at the
power of two nearest 1 / (the logits' scale) for logits far from it
(cosine similarities, 1e20), and every bound is relative to that start, so
T(c z) = c T(z) at any scale.  NLL'(0) >= 0 means the logits point the wrong
way (the model is no better than chance) and is refused.  A gradient still
negative at T = ``T_MIN`` (times that power of two) means the data may be
separable: T is capped there only when they are (the true class holds the
row maximum in every row; for sigmoid tasks, every logit has its label's
sign); otherwise the search goes on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends import Backend, SoftmaxPass, as_array, as_backend, as_labels
from .errors import CalibrateError
from .scores import check_block_arguments

#: Lowest temperature returned for logits of ordinary scale, where separable
#: data would otherwise drive T to 0 (relative to the scale for others).
T_MIN = 1e-2
#: Classes of a multilabel task with fewer positives (or negatives) than this
#: share one temperature fitted on all classes pooled.
MIN_CLASS_COUNT = 10

#: Rows of the sample that warm-starts the fit on large data and sets its scale.
SAMPLE_ROWS = 4096
#: Logits whose scale lies in this range start at beta = 1 (the fit of earlier
#: versions, unchanged); outside it, at the nearest power of two of 1 / scale.
ORDINARY_SCALE = (2.0 ** -6, 2.0 ** 12)
#: The scale (mean max - mean logit of a row) logits are brought near otherwise.
REFERENCE_SCALE = 4.0
#: Logits whose scale lies outside this range are refused: near the ends of the
#: float range their probabilities and temperature cannot be computed exactly.
USABLE_SCALE = (1e-250, 1e250)

FUSE_RTOL = 5e-4      # a pass after a step this small (relative) is likely the last
HIGH_ORDER_FUSE = 5e-2   # ... or after a third-order model's step this small (error ~e^4)
#: Largest spread of the columns' own optima (see _pooled_start) at which the
#: pooled fit starts from their prediction rather than from a row sample.
POOLED_START_SPREAD = 0.05
_RTOL_FINAL = 5e-4    # with final_step: a step this small is taken without a pass
_RTOL = 1e-6          # Newton step relative to beta at which we stop: quadratic
                      # convergence leaves ~1e-12; float32 sums leave ~1e-7
_MAX_PASSES = 60


class TemperatureWarning(UserWarning):
    """The temperature fit stopped without converging."""


@dataclass(frozen=True)
class NewtonResult:
    """Outcome of :func:`newton`, one entry per parameter.

    ``beta`` the minimiser, ``nll`` the objective there, ``nll_at_one`` at
    beta = 1 (from the first pass), ``capped`` whether beta stopped at its cap
    on separable data, ``passes`` how many evaluations ran, ``converged``
    whether every parameter met the stopping rule, ``gradient`` the last
    gradient seen.
    """
    beta: np.ndarray
    nll: np.ndarray
    nll_at_one: np.ndarray
    capped: np.ndarray
    passes: int
    converged: bool
    gradient: np.ndarray

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class TemperatureResult:
    """Outcome of a temperature fit, with its diagnostics.

    ``temperature`` is a float (multiclass, binary) or an array of one T per
    class (multilabel).  ``nll_before`` / ``nll_after`` are mean NLLs at T = 1
    and at the fitted T (per class for multilabel).  ``status`` says
    "fitted", "capped" (separable data, T at its cap) or, per multilabel class,
    "shared" (too few positives or negatives for a T of its own).
    """
    temperature: Any
    nll_before: Any
    nll_after: Any
    status: Any
    n_passes: int
    converged: bool
    shared_temperature: float | None = None
    gradient: Any = field(default=None, repr=False)
    #: The summary metrics' passes at T = 1 and at the fitted T, when the fit
    #: made them on the way (multiclass, asked with ``summary_bins``).
    at_one: SoftmaxPass | None = field(default=None, repr=False)
    at_t: SoftmaxPass | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        def plain(v: Any) -> Any:
            return np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
        return {k: plain(v) for k, v in self.__dict__.items() if k not in ("at_one", "at_t")}


class WorseThanChance(CalibrateError):
    """NLL'(0) >= 0 for the parameters ``index``: the likelihood is best at T = inf."""

    def __init__(self, message: str, index: np.ndarray) -> None:
        super().__init__(message)
        self.index = index


def unit_of(scale: float) -> float:
    """The power of two the logits are divided by (exactly) before the Newton
    iteration: 1 for logits of ordinary scale (so their fit is that of earlier
    versions, bit for bit), else the power of two that brings their scale near
    ``REFERENCE_SCALE``.  A scale outside ``USABLE_SCALE`` is refused."""
    if scale <= 0:                 # constant logits: nothing to scale
        return 1.0
    if not USABLE_SCALE[0] <= scale <= USABLE_SCALE[1]:   # (inf: finite logits overflowed)
        found = f"{scale:.3g}" if math.isfinite(scale) else "more than floats hold"
        raise CalibrateError(
            f"scores: expected logits spread between {USABLE_SCALE[0]:g} and "
            f"{USABLE_SCALE[1]:g} (a row's largest minus its mean), found {found}; "
            f"rescale them")
    lo, hi = ORDINARY_SCALE
    return 1.0 if lo <= scale <= hi else 2.0 ** round(math.log2(scale / REFERENCE_SCALE))


def _softmax_scale(z: np.ndarray) -> float:
    """Mean over rows of max(z) - mean(z): how far logits spread."""
    z = np.asarray(z, dtype=np.float64)
    return float(np.mean(z.max(axis=1) - z.mean(axis=1)))


def _sigmoid_scale(z: np.ndarray) -> np.ndarray:
    """Mean |z| per column."""
    return np.mean(np.abs(np.asarray(z, dtype=np.float64)), axis=0)


# long: one safeguarded Newton loop; caps, bracketing and the final step share its state
def newton(evaluate: Callable, n_params: int, beta0: Any = 1.0, beta_max: Any = 1.0 / T_MIN,
           separable: Callable | None = None, final_step: bool = False,
           done: np.ndarray | None = None, creep: bool = True,
           max_passes: int | None = None, snap: Callable | None = None) -> NewtonResult:
    """Safeguarded Newton on a convex 1-D objective per parameter.

    ``evaluate(beta)`` returns per-parameter arrays (f, g, h, g0), and on its
    first call, when ``beta0`` is not 1, optionally a fifth: f at beta = 1
    (or None), and a sixth and seventh: the third and fourth derivatives.
    The step then goes to the root of the gradient's third-order Taylor
    model (error ~e^4 instead of Newton's ~e^2; used while it stays within
    a factor 2 of Newton's step).
    ``separable()`` (called at most once, when a gradient is still negative
    at ``beta_max``) says per parameter whether the data are separable: those
    are capped there, the others search on beyond.  ``done`` marks parameters
    not to fit (their entries are left as they are).

    With ``final_step``, a Newton step below ``_RTOL_FINAL`` * beta is taken
    without another pass: quadratic convergence leaves ~(5e-4)^2 relative,
    and f there is its second-order value f - g^2 / (2 h).  ``creep=False``
    turns off the doubling meant for separable data (a warm start, whose data
    are not checked for separability, converges faster without it).
    ``snap(beta)`` moves each point to be evaluated to a nearby one (by an ulp).
    """
    snap = snap or (lambda b: b)
    beta = snap(np.broadcast_to(np.asarray(beta0, dtype=np.float64), (n_params,)).copy())
    cap = np.broadcast_to(np.asarray(beta_max, dtype=np.float64), (n_params,)).copy()
    lo = np.zeros(n_params)
    hi = np.full(n_params, np.inf)
    skip = np.zeros(n_params, bool) if done is None else np.asarray(done, bool).copy()
    done = skip.copy()
    capped = np.zeros(n_params, bool)
    sep = None
    f_at = np.full(n_params, np.nan)
    f_one: Any = None   # the objective at beta = 1, from the first pass
    g_last = np.zeros(n_params)
    g_prev = np.full(n_params, np.inf)  # gradient at the previous pass
    passes = 0
    while passes < (max_passes or _MAX_PASSES):
        vals: list[Any] = [None if v is None else np.atleast_1d(np.asarray(v, dtype=np.float64))
                           for v in evaluate(beta)]   # f, g, h, g0 always; then optional ones
        f, g, h, g0 = vals[:4]
        passes += 1
        if f_one is None:
            f_one = vals[4] if len(vals) > 4 and vals[4] is not None else f.copy()
            _refuse_worse_than_chance(g0, skip)
        live = ~done
        f_at[live], g_last[live] = f[live], g[live]
        lo = np.where(live & (g < 0), beta, lo)
        hi = np.where(live & (g > 0), beta, hi)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = np.where(h > 0, g / h, np.nan)
            if len(vals) > 6 and vals[5] is not None:
                step = _higher_order_step(g, h, vals[5], vals[6], step)
        # Saturated logits (every row right by a margin beyond exp's range)
        # give NLL, gradient and curvature exactly 0: separable as well.
        flat = live & (g == 0) & (h == 0) & (f == 0)
        beta = np.where(flat, cap, beta)
        at_cap = live & (beta >= cap) & (g < 0)
        if at_cap.any() and separable is not None:
            sep = np.asarray(separable(), bool) if sep is None else sep
            # not separable: the optimum lies beyond the cap; search on
            cap = np.where(at_cap & ~sep, cap * 2.0 ** 20, cap)
            at_cap &= sep
        at_cap |= flat
        capped |= at_cap
        converged_now = live & ((np.abs(step) <= _RTOL * beta) | (g == 0))
        if final_step:
            last = live & ~converged_now & ~at_cap & (np.abs(step) <= _RTOL_FINAL * beta)
            last &= (beta - step > lo) & (beta - step < hi)
            f_at = np.where(last, f - g * step / 2.0, f_at)   # f - g^2 / (2 h)
            beta = np.where(last, beta - step, beta)
            converged_now |= last
        done |= at_cap | converged_now
        if done.all():
            return NewtonResult(beta, f_at, f_one, capped, passes, True, g_last)
        new = _safeguarded(beta, step, g, g_prev, lo, hi, creep)
        g_prev = np.where(live, g, g_prev)
        new = snap(np.minimum(new, cap))
        beta = np.where(done, beta, new)
    return NewtonResult(beta, f_at, f_one, capped, passes, False, g_last)


def _higher_order_step(g: np.ndarray, h: np.ndarray, t: np.ndarray, q: np.ndarray,
                       newton_step: np.ndarray) -> np.ndarray:
    """-d for the root d of g + h d + t d^2 / 2 + q d^3 / 6 (the gradient's
    Taylor model) nearest 0, by Newton on the model from Newton's -g / h;
    Newton's own step where the model's root strays beyond a factor 2."""
    d = -newton_step
    for _ in range(8):
        d = d - (g + d * (h + d * (t / 2.0 + d * q / 6.0))) / (h + d * (t + d * q / 2.0))
    ratio = -d / newton_step
    return np.where(np.isfinite(d) & (ratio >= 0.5) & (ratio <= 2.0), -d, newton_step)


def _refuse_worse_than_chance(g0: np.ndarray, skip: np.ndarray) -> None:
    """NLL'(0) >= 0: the likelihood is best at T = infinity."""
    bad = np.flatnonzero(~skip & (g0 >= 0))
    if bad.size:
        raise WorseThanChance(
            "scores: expected a model better than chance, found logits that "
            "do not favour the true labels (the likelihood is best at T = "
            "infinity); check that labels and score columns match", bad)


def _safeguarded(beta: np.ndarray, step: np.ndarray, g: np.ndarray, g_prev: np.ndarray,
                 lo: np.ndarray, hi: np.ndarray, creep: bool) -> np.ndarray:
    """The next beta: the Newton step where it stays inside the bracket (lo, hi),
    else bisection (or x4 while there is no upper end)."""
    new = beta - step
    bad_step = ~np.isfinite(new) | (new <= lo) | (new >= hi)
    fallback = np.where(np.isfinite(hi), 0.5 * (lo + hi), 4.0 * beta)
    new = np.where(bad_step, fallback, new)
    # On separable data the gradient fades like exp(-beta * margin) and
    # Newton creeps up by ~1/margin a pass, the gradient shrinking by a
    # constant factor instead of quadratically: then double beta.
    creeping = creep & np.isinf(hi) & (g < 0) & (np.abs(g) > 0.1 * np.abs(g_prev))
    return np.where(creeping, np.maximum(new, 2.0 * beta), new)


def _warn_not_converged(name: str, res: NewtonResult, unit: float = 1.0) -> None:
    live = ~res.capped
    t = unit / res.beta[live]
    warnings.warn(
        f"{name}: the temperature fit did not converge in {res.passes} passes: T = "
        f"{', '.join(f'{v:.6g}' for v in t[:5])}{' ...' if t.size > 5 else ''}, last "
        f"gradient {', '.join(f'{v:.3g}' for v in res.gradient[live][:5])}; the result "
        "may be off in its last digits", TemperatureWarning, stacklevel=3)


def _true_class_is_max(zc: np.ndarray, yc: np.ndarray) -> tuple:
    """Per row: whether the true class holds the row's maximum."""
    zc = np.asarray(zc)
    return (zc[np.arange(zc.shape[0]), yc] >= zc.max(axis=1),)


def _sign_mismatches(zc: np.ndarray, yc: np.ndarray) -> tuple:
    """Per column: rows whose logit has the wrong sign for their label."""
    zc = np.asarray(zc)
    yc = np.asarray(yc).reshape(zc.shape)
    return (((yc == 1) & (zc < 0)) | ((yc == 0) & (zc > 0))).sum(axis=0),


def _positives(acc: np.ndarray, yc: np.ndarray) -> None:
    """Add a block's positives per column into ``acc``."""
    yc = np.asarray(yc)
    acc += (yc.reshape(yc.shape[0], -1) == 1).sum(axis=0)


# long: one fit: the pass closure shares its state with the Newton run and the result
def fit_softmax_temperature(logits: Any, labels: Any, nll_before: bool = True,
                            name: str = "scores", summary_bins: int | None = None
                            ) -> TemperatureResult:
    """Fit one T for multiclass logits (N, C) and integer labels (N,).

    ``logits`` is a backend or anything :func:`calibrate.backends.as_backend`
    takes.  Returns a :class:`TemperatureResult`; T is exact to a relative
    ~1e-7 in beta (1e-5 is required).  ``nll_before=False`` skips the NLL at
    T = 1 (``nll_before`` is then None) for callers that compute it anyway.

    The Newton iteration runs on the logits divided by their power-of-two
    :func:`unit_of` scale (exactly), so every bound is relative to it.  With
    ``summary_bins``, the first pass also makes the summary metrics' pass at
    T = 1, and a pass that is likely the last (the previous step was tiny)
    the one at its own beta: when the fit stops there, the result carries
    them (``at_one``, ``at_t``) and the fit's caller saves a pass each.
    """
    z: Backend = as_backend(logits, name)
    y = as_array(labels)
    sample_z = z.sample(SAMPLE_ROWS)
    unit = unit_of(_softmax_scale(sample_z))
    cap = 1.0 / T_MIN
    separable = lambda: [bool(np.all(z.concat(_true_class_is_max, y)[0]))]  # noqa: E731
    beta0 = _softmax_warm_start(z, y, sample_z, unit, cap)
    at_one = beta0 == unit  # the first pass is at T = 1
    seen: dict = {"prev": None, "at_one": None, "at_beta": None}
    # From a warm start the first pass is close: it also gives the third and
    # fourth derivatives, and its step (error ~e^4) usually leaves the next
    # pass the last one, so that pass makes the metrics at its beta too.
    high_order = beta0 != 1.0

    def evaluate(b: np.ndarray) -> tuple:
        first, prev, beta = seen["prev"] is None, seen["prev"], float(b[0])
        near = not first and abs(beta - prev) <= (
            HIGH_ORDER_FUSE if high_order and seen.get("passes") == 1 else FUSE_RTOL) * beta
        # NLL'(0) and the NLL at T = 1 are needed once, from the first pass.
        fp = z.softmax_pass(
            y, beta, unit, with_g0=first, nll_at_one=first and not at_one and nll_before,
            metrics_at_one=first and summary_bins is not None,
            metrics_at_beta=summary_bins is not None and near,
            n_bins=summary_bins or 15, third=first and high_order)
        seen["passes"] = seen.get("passes", 0) + 1
        seen["prev"] = beta
        if fp.at_one is not None:
            seen["at_one"] = fp.at_one
        if fp.at_beta is not None:
            seen["at_beta"] = (beta, fp.at_beta)
        st = fp.stats
        return (st.nll, st.gradient, st.curvature, st.gradient_at_zero, st.nll_at_one,
                st.third, st.fourth)

    res = newton(evaluate, 1, beta0, cap, separable, final_step=True,
                 snap=lambda b: _round_trip(b, unit))
    if not res.converged:
        _warn_not_converged(name, res, unit)
    before = float(res.nll_at_one[0]) if nll_before or at_one else None
    fused = seen["at_beta"]
    return TemperatureResult(
        temperature=float(unit / res.beta[0]), nll_before=before, nll_after=float(res.nll[0]),
        status="capped" if res.capped[0] else "fitted", n_passes=res.passes,
        converged=res.converged, gradient=float(res.gradient[0]), at_one=seen["at_one"],
        at_t=fused[1] if fused is not None and fused[0] == res.beta[0] else None)


def _softmax_warm_start(z: Backend, y: np.ndarray, sample_z: np.ndarray, unit: float,
                        cap: float) -> float:
    """Where the full-data Newton starts: beta = 1 (in units of ``unit``), or on
    large data the optimum on an evenly spread sample of rows, which costs a
    fraction of a pass and leaves the full-data Newton two or three passes
    from the exact optimum (a quarter of the sample first: most of the way
    for a quarter of the cost).  The sample's Newton takes its last small step
    without evaluating it (``final_step``): the sample's optimum is itself 1-2%
    from the full data's, and the full data's first step, of third order,
    absorbs either start: two sample evaluations fewer, and the same T to
    the fit's accuracy (bit for bit on every data set tried)."""
    beta0 = 1.0
    if z.n_rows >= 8 * SAMPLE_ROWS:
        ys = as_backend(y).sample(SAMPLE_ROWS)
        for rows in (slice(None, None, 4), slice(None)):
            zs, yy = as_backend(sample_z[rows]), ys[rows]
            try:
                beta0 = float(newton(lambda b, zs=zs, yy=yy: _softmax_values(zs, yy, b[0], True,
                                                                            False, unit),
                                     1, beta0, cap, creep=False, max_passes=12,
                                     final_step=True).beta[0])
            except CalibrateError:
                break  # let the full data decide, and word the refusal
    return beta0


def _round_trip(beta: np.ndarray, unit: float) -> np.ndarray:
    """beta moved (by at most an ulp) so that T = unit / beta gives 1 / T =
    beta / unit back exactly: a pass at beta is then a pass at T."""
    return unit * (1.0 / (1.0 / (np.asarray(beta) / unit)))


def _softmax_values(z: Backend, y: np.ndarray, beta: float, with_g0: bool,
                    nll_at_one: bool, unit: float) -> tuple:
    st = z.softmax_stats(y, beta, with_g0=with_g0, nll_at_one=nll_at_one, unit=unit)
    out = (st.nll, st.gradient, st.curvature, st.gradient_at_zero)
    return out + (st.nll_at_one,) if nll_at_one else out


# long: one fit: the per-column Newton, then the pooled T, through one pass closure
def fit_sigmoid_temperature(logits: Any, labels: Any, min_class_count: int = MIN_CLASS_COUNT,
                            classes: list | None = None, name: str = "scores"
                            ) -> TemperatureResult:
    """Fit temperatures for sigmoid logits: binary (N,) or multilabel (N, C).

    Binary gives one T.  Multilabel gives one T per class; classes with fewer
    than ``min_class_count`` positives or negatives share one T fitted on all
    classes pooled (their NLL summed), recorded as status "shared".  Each
    column's Newton runs in units of its own power-of-two scale; on large data
    it starts from the optimum on a row sample.  The NLL at T = 1 comes from
    the first pass, the one at the fitted T from the last.
    """
    z0: Backend = as_backend(logits, name)
    binary = z0.ndim == 1
    z = z0.columns()
    y = as_labels(labels)          # (N,) or (N, C); a row source stays one
    c = z.shape[1]
    pos = as_backend(y).fold(_positives, init=lambda: np.zeros(c, np.int64),
                             label="counting labels")
    own = np.ones(c, bool) if binary else np.minimum(pos, z.n_rows - pos) >= min_class_count
    units = np.array([unit_of(s) for s in _sigmoid_scale(z.sample(SAMPLE_ROWS))])
    separable = lambda: z.sum_blocks(_sign_mismatches, y)[0] == 0  # noqa: E731

    seen: dict = {}

    def per_column(b: np.ndarray, third: bool = False, first: bool = True) -> tuple:
        # the first pass also gives every column's NLL at T = 1; a pass from a
        # warm start, the third and fourth derivatives for a step of higher order;
        # a Newton's first pass, NLL'(0) (the refusal of worse than chance)
        st = z.sigmoid_stats(y, b, units, nll_at_one="one" not in seen, third=third,
                             with_g0=first)
        if st.nll_at_one is not None:
            seen["one"] = st.nll_at_one
        seen["last"] = st.nll
        seen["model"] = (np.array(b, dtype=np.float64), st.gradient, st.curvature)
        return st.nll, st.gradient, st.curvature, st.gradient_at_zero, None, st.third, \
            st.fourth

    temps = np.empty(c)
    nll_after = np.empty(c)
    status = np.array(["fitted"] * c, dtype=object)
    passes, conv, grad = 0, True, np.zeros(c)
    shared_t = None
    on_sample = _sample_statistics(z, y, units)
    beta0 = _sigmoid_warm_start(on_sample, units, own)
    if own.any():
        try:
            res = newton(_first_call(per_column, beta0 is not None), c,
                         1.0 if beta0 is None else beta0, 1.0 / T_MIN,
                         separable, done=~own, final_step=beta0 is not None)
        except WorseThanChance as exc:
            raise (exc if binary else _name_class(exc, classes)) from None
        temps[own], nll_after[own], grad[own] = units[own] / res.beta[own], res.nll[own], \
            res.gradient[own]
        status[own & res.capped] = "capped"
        passes, conv = res.passes, res.converged
    if not own.all() or not binary:
        # every column fitted on its own from a warm start: their last passes'
        # quadratic models predict the pooled optimum (see _pooled_start)
        near = seen["model"] if beta0 is not None and own.all() and not res.capped.any() \
            else None
        shared_t, p, cv = _pooled_temperature(per_column, units, separable, on_sample, near)
        passes += p
        conv = conv and cv
        if not own.all():
            temps[~own] = shared_t
            status[~own] = "shared"
            nll_after[~own] = seen["last"][~own]   # the pooled fit's last pass, at shared T
    if not conv:
        warnings.warn(f"{name}: the temperature fit did not converge in {passes} passes",
                      TemperatureWarning, stacklevel=2)
    before, after = seen["one"], nll_after
    if binary:
        return TemperatureResult(
            temperature=float(temps[0]), nll_before=float(before[0]),
            nll_after=float(after[0]), status=str(status[0]), n_passes=passes,
            converged=conv, gradient=float(grad[0]))
    return TemperatureResult(
        temperature=temps, nll_before=before, nll_after=after, status=list(status),
        n_passes=passes, converged=conv, shared_temperature=shared_t, gradient=grad)


def _first_call(evaluate: Callable, third: bool) -> Callable:
    """``evaluate`` told which call is a Newton's first (the only one whose
    NLL'(0) is used), and asked on it for the third and fourth derivatives
    (when ``third``: from a warm start, whose step of higher order usually
    leaves one pass to go)."""
    calls = [0]

    def once(b: np.ndarray) -> tuple:
        calls[0] += 1
        return evaluate(b, third=third and calls[0] == 1, first=calls[0] == 1)
    return once


def _sample_statistics(z: Backend, y: Any, units: np.ndarray) -> Callable | None:
    """Per-column statistics on an evenly spread sample of rows, or None on data
    too small for a sample to save passes."""
    if z.n_rows < 8 * SAMPLE_ROWS:
        return None
    zs = as_backend(z.sample(SAMPLE_ROWS))
    ys = as_backend(y).sample(SAMPLE_ROWS)

    def on_sample(b: np.ndarray, third: bool = False, first: bool = True) -> tuple:
        st = zs.sigmoid_stats(ys, b, units)
        return st.nll, st.gradient, st.curvature, st.gradient_at_zero, None, None, None
    return on_sample


def _sigmoid_warm_start(on_sample: Callable | None, units: np.ndarray, own: np.ndarray) -> Any:
    """Per column, the optimum on a row sample (in units of the column's scale),
    or None without a sample."""
    if on_sample is None or not own.any():
        return None
    try:
        beta = newton(on_sample, units.size, 1.0, 1.0 / T_MIN, done=~own, creep=False,
                      max_passes=12).beta
    except CalibrateError:
        return None                  # let the full data decide, and word the refusal
    return np.where(own, beta, 1.0)


def _pooled_temperature(per_column: Callable, units: np.ndarray, separable: Callable,
                        on_sample: Callable | None = None,
                        near: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                        ) -> tuple[float, int, bool]:
    """One T for every class, the objective summed over classes; returns
    (T, passes, converged).  The common beta b is in units of the classes'
    typical scale u; class c sees b u_c / u in its own units.  With
    ``on_sample`` (per-column statistics on a row sample) the full-data fit
    starts from the sample's optimum, or with ``near`` (each column's beta,
    gradient and curvature at its own fit's last pass) from the optimum of
    their quadratic models (:func:`_pooled_start`)."""
    u = unit_of(float(np.exp(np.mean(np.log(units)))))
    r = units / u

    def pooled(columns: Callable) -> Callable:
        def evaluate(b: np.ndarray, third: bool = False, first: bool = True) -> tuple:
            f, g, h, g0, _, t, q = columns(np.full(units.size, b[0]) * r, third=third,
                                           first=first)
            return (f.sum(), (g * r).sum(), (h * r * r).sum(), (g0 * r).sum(), None,
                    None if t is None else (t * r ** 3).sum(),
                    None if q is None else (q * r ** 4).sum())
        return evaluate

    beta0 = 1.0
    start = None if near is None or on_sample is None else _pooled_start(*near, r)
    if start is not None:
        beta0 = start
    elif on_sample is not None:
        try:
            beta0 = float(newton(pooled(on_sample), 1, 1.0, 1.0 / T_MIN, creep=False,
                                 max_passes=12).beta[0])
        except CalibrateError:
            on_sample = None
    res = newton(_first_call(pooled(per_column), on_sample is not None), 1, beta0, 1.0 / T_MIN,
                 lambda: [bool(np.all(separable()))], final_step=on_sample is not None)
    return float(u / res.beta[0]), res.passes, res.converged


def _pooled_start(beta: np.ndarray, g: np.ndarray, h: np.ndarray, r: np.ndarray
                  ) -> float | None:
    """The pooled objective's optimum predicted from each column's own fit, or
    None where the prediction may be no closer than a row sample's optimum.

    With column j's NLL near its last pass modelled as quadratic, f_j'(x) ~
    g_j + h_j (x - beta_j), the pooled F(b) = sum_j f_j(b r_j) has F'(b) = 0 at

        b = sum_j r_j (h_j beta_j - g_j) / sum_j r_j^2 h_j.

    The third-order terms left out put it off by about the curvature-weighted
    mean square of d_j = (b r_j - m_j) / m_j, the spread of the columns' own
    optima m_j = beta_j - g_j / h_j around it (measured: 4e-5 at a spread of
    0.006, 3e-3 at 0.06).  At a spread up to :data:`POOLED_START_SPREAD` it
    is used: within 5e-4 of the optimum the pooled Newton needs one pass, not
    two; a row sample's optimum is ~1e-2 off."""
    w = r * r * h
    den = float(np.sum(w))
    if not (den > 0 and np.all(h > 0)):
        return None
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        b = float(np.sum(r * (h * beta - g))) / den
        m = beta - g / h                       # each column's own optimum, by its model
        d = (b * r - m) / m
        spread = float(np.sqrt(np.sum(w * d * d) / den))
    ok = np.isfinite(b) and b > 0 and spread <= POOLED_START_SPREAD
    return b if ok else None


def _name_class(exc: WorseThanChance, classes: list | None = None) -> CalibrateError:
    """The worse-than-chance error naming the first offending class."""
    i = int(exc.index[0])
    which = i if classes is None else f"'{classes[i]}'"
    return CalibrateError(
        f"scores: expected a model better than chance for every class, found class "
        f"{which} whose logits do not favour its positives; check the label columns")


def fit_temperature(logits: Any, labels: Any, task: str, name: str = "scores",
                    classes: list | None = None, nll_before: bool = True,
                    summary_bins: int | None = None) -> TemperatureResult:
    """Dispatch on the task: softmax for multiclass, sigmoid otherwise.

    ``name`` and ``classes`` are how a refusal names the input and a class;
    ``summary_bins`` see :func:`fit_softmax_temperature`.
    """
    check_block_arguments(logits, labels, task)
    try:
        if task == "multiclass":
            return fit_softmax_temperature(logits, labels, nll_before, name=name,
                                           summary_bins=summary_bins)
        return fit_sigmoid_temperature(logits, labels, classes=classes, name=name)
    except CalibrateError as exc:
        msg = str(exc)
        if msg.startswith("scores: ") and name != "scores":
            named = f"{name}: {msg[len('scores: '):]}"
            if isinstance(exc, WorseThanChance):   # (the type says why, for the caller)
                raise WorseThanChance(named, exc.index) from None
            raise CalibrateError(named) from None
        raise
