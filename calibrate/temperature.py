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
handful of passes.  NLL'(0) >= 0 means the logits point the wrong way (the
model is no better than chance) and is refused; a gradient still negative at
T = ``T_MIN`` means the held-out data are separable and T is capped there.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import special

from . import _chunks
from .errors import CalibrateError

#: Lowest temperature returned; separable data would otherwise drive T to 0.
T_MIN = 1e-2
#: Classes of a multilabel task with fewer positives (or negatives) than this
#: share one temperature fitted on all classes pooled.
MIN_CLASS_COUNT = 10

#: Rows of the sample that warm-starts the fit on large data.
SAMPLE_ROWS = 4096

_RTOL_FINAL = 1e-4    # with final_step: a step this small is taken without a pass
_RTOL = 1e-6          # Newton step relative to beta at which we stop: quadratic
                      # convergence leaves ~1e-12; float32 sums leave ~1e-7
_MAX_PASSES = 60


@dataclass(frozen=True)
class TemperatureResult:
    """Outcome of a temperature fit, with its diagnostics.

    ``temperature`` is a float (multiclass, binary) or an array of one T per
    class (multilabel).  ``nll_before`` / ``nll_after`` are mean NLLs at T = 1
    and at the fitted T (per class for multilabel).  ``status`` says
    "fitted", "capped" (separable data, T = T_MIN) or, per multilabel class,
    "shared" (too few positives or negatives for a T of its own).
    """
    temperature: object
    nll_before: object
    nll_after: object
    status: object
    n_passes: int
    converged: bool
    shared_temperature: float | None = None
    gradient: object = field(default=None, repr=False)


def softmax_stats(z, y, beta, with_g0=True, nll_at_one=False):
    """Means over rows of NLL, NLL', NLL'' at ``beta``, and NLL'(0), in one pass.

    With ``nll_at_one`` a fifth value is returned: the NLL at beta = 1 (the
    uncalibrated model), computed in the same pass.

    Works on max-shifted logits u = z - max(z) <= 0, so exp never overflows
    and the moments are centred; float32 data stays float32 inside a chunk,
    row results are accumulated in float64.
    """
    if _chunks.is_tensor(z):  # a GPU tensor kept on its device by scores.prepare
        from . import _torch_kernels
        return _torch_kernels.softmax_stats(z, y, beta, with_g0, nll_at_one)
    n, c = z.shape
    b = float(beta)  # a Python float keeps float32 data float32 (NEP 50)
    dt = _chunks.float_dtype(z.dtype)

    def chunk(zc, yc):
        zc = np.asarray(zc)
        r = zc.shape[0]
        u = _chunks.scratch((r, c), dt, 0)
        e = _chunks.scratch((r, c), dt, 1)
        np.subtract(zc, zc.max(axis=1, keepdims=True), out=u)
        uy = u[np.arange(r), yc].astype(np.float64)
        if nll_at_one:
            np.exp(u, out=e)
            nll1 = np.log(_chunks.row_sums(e)) - uy
        np.multiply(u, b, out=e)
        np.exp(e, out=e)
        tot = _chunks.row_sums(e)
        m1 = np.einsum("ij,ij->i", e, u).astype(np.float64) / tot      # E_p[u]
        np.multiply(e, u, out=e)
        m2 = np.einsum("ij,ij->i", e, u).astype(np.float64) / tot      # E_p[u^2]
        nll = np.log(tot) - b * uy
        g0 = _chunks.row_sums(u) / c - uy if with_g0 else np.zeros(r)  # NLL'(0)
        out = (nll, m1 - uy, np.maximum(m2 - m1 * m1, 0), g0)
        return out + (nll1,) if nll_at_one else out

    sums = _chunks.sum_blocks(chunk, z, y, label="temperature pass")
    return tuple(v / n for v in sums)


def sigmoid_stats(z, y, beta):
    """Per-column means of NLL, NLL', NLL'' at ``beta`` (C,), and NLL'(0)."""
    if _chunks.is_tensor(z):
        from . import _torch_kernels
        return _torch_kernels.sigmoid_stats(z, y, beta)
    n, c = z.shape
    bvec = np.asarray(beta, dtype=np.float64)
    bcast = bvec.astype(z.dtype) if z.dtype == np.float32 else bvec

    def chunk(zc, yc):
        zc, yc = np.asarray(zc), np.asarray(yc)
        a = zc * bcast
        sig = special.expit(a)
        # softplus(a) - y a = -log sigmoid(a) for y = 1, -log sigmoid(-a) for y = 0
        nll = np.logaddexp(0, np.where(yc == 1, -a, a))
        r = sig - yc
        return (nll.sum(axis=0, dtype=np.float64),
                (r * zc).sum(axis=0, dtype=np.float64),
                (sig * (1 - sig) * zc * zc).sum(axis=0, dtype=np.float64),
                ((0.5 - yc) * zc).sum(axis=0, dtype=np.float64))

    f, g, h, g0 = _chunks.sum_blocks(chunk, z, y, per_row=False, label="temperature pass")
    return f / n, g / n, h / n, g0 / n


def _newton(evaluate, n_params, beta_max=1.0 / T_MIN, beta0=1.0, final_step=False):
    """Safeguarded Newton on a convex 1-D objective per parameter.

    ``evaluate(beta)`` returns per-parameter arrays (f, g, h, g0), and on its
    first call, when ``beta0`` is not 1, a fifth: f at beta = 1.  Returns
    beta, f at beta, f at beta = 1, capped mask, passes, converged, gradient.

    With ``final_step``, a Newton step below ``_RTOL_FINAL`` * beta is taken
    without another pass: quadratic convergence leaves ~(1e-4)^2 relative,
    and f there is its second-order value f - g^2 / (2 h).
    """
    beta = np.full(n_params, float(beta0))
    lo = np.zeros(n_params)
    hi = np.full(n_params, np.inf)
    done = np.zeros(n_params, bool)
    capped = np.zeros(n_params, bool)
    f_at = np.full(n_params, np.nan)
    f_one = None
    g_last = np.zeros(n_params)
    g_prev = np.full(n_params, np.inf)  # gradient at the previous pass
    passes = 0
    while passes < _MAX_PASSES:
        vals = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in evaluate(beta)]
        f, g, h, g0 = vals[:4]
        passes += 1
        if f_one is None:
            f_one = vals[4] if len(vals) > 4 else f.copy()
            if np.any(g0 >= 0):
                raise CalibrateError(
                    "scores: expected a model better than chance, found logits that "
                    "do not favour the true labels (the likelihood is best at T = "
                    "infinity); check that labels and score columns match")
        live = ~done
        f_at[live], g_last[live] = f[live], g[live]
        lo = np.where(live & (g < 0), beta, lo)
        hi = np.where(live & (g > 0), beta, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(h > 0, g / h, np.nan)
        # Saturated logits (every row right by a margin beyond exp's range)
        # give NLL, gradient and curvature exactly 0: separable as well.
        flat = live & (g == 0) & (h == 0) & (f == 0)
        beta = np.where(flat, beta_max, beta)
        at_cap = live & (((beta >= beta_max) & (g < 0)) | flat)
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
            return beta, f_at, f_one, capped, passes, True, g_last
        new = beta - step
        bad = ~np.isfinite(new) | (new <= lo) | (new >= hi)
        fallback = np.where(np.isfinite(hi), 0.5 * (lo + hi), 4.0 * beta)
        new = np.where(bad, fallback, new)
        # On separable data the gradient fades like exp(-beta * margin) and
        # Newton creeps up by ~1/margin a pass, the gradient shrinking by a
        # constant factor instead of quadratically: then double beta.
        creeping = np.isinf(hi) & (g < 0) & (np.abs(g) > 0.1 * np.abs(g_prev))
        new = np.where(creeping, np.maximum(new, 2.0 * beta), new)
        g_prev = np.where(live, g, g_prev)
        new = np.minimum(new, beta_max)
        beta = np.where(done, beta, new)
    return beta, f_at, f_one, capped, passes, False, g_last


def fit_softmax_temperature(logits, labels, nll_before=True):
    """Fit one T for multiclass logits (N, C) and integer labels (N,).

    Returns a :class:`TemperatureResult`; T is exact to a relative ~1e-7 in
    beta (1e-5 is required).  ``nll_before=False`` skips the NLL at
    T = 1 (``nll_before`` is then None) for callers that compute it anyway.
    """
    z = logits
    y = np.asarray(labels)
    beta0 = 1.0
    if not _chunks.is_tensor(z) and z.shape[0] >= 8 * SAMPLE_ROWS:
        # Warm start: the optimum on an evenly spread sample of rows costs a
        # fraction of a pass and leaves the full-data Newton two or three
        # passes from the exact optimum.
        zs, ys = _chunks.sample_rows(z, SAMPLE_ROWS), _chunks.sample_rows(y, SAMPLE_ROWS)
        try:
            beta0 = float(_newton(lambda b: softmax_stats(zs, ys, b[0]), 1)[0][0])
        except CalibrateError:
            beta0 = 1.0  # let the full data decide, and word the refusal
    first = [True]

    def evaluate(b):
        # NLL'(0) and the NLL at T = 1 are needed once, from the first pass.
        want_one = first[0] and beta0 != 1.0 and nll_before
        out = softmax_stats(z, y, b[0], with_g0=first[0], **({"nll_at_one": True} if want_one else {}))
        first[0] = False
        return out

    beta, f, f1, capped, passes, conv, g = _newton(evaluate, 1, beta0=beta0, final_step=True)
    before = float(f1[0]) if nll_before or beta0 == 1.0 else None
    return TemperatureResult(
        temperature=float(1.0 / beta[0]), nll_before=before, nll_after=float(f[0]),
        status="capped" if capped[0] else "fitted", n_passes=passes, converged=conv,
        gradient=float(g[0]))


def fit_sigmoid_temperature(logits, labels, min_class_count=MIN_CLASS_COUNT, classes=None):
    """Fit temperatures for sigmoid logits: binary (N,) or multilabel (N, C).

    Binary gives one T.  Multilabel gives one T per class; classes with fewer
    than ``min_class_count`` positives or negatives share one T fitted on all
    classes pooled (their NLL summed), recorded as status "shared".
    """
    binary = logits.ndim == 1
    z = logits.reshape(-1, 1) if binary else logits
    # (a tensor's labels go to its device as its dtype, in the torch kernel)
    fdt = np.float64 if _chunks.is_tensor(z) or z.dtype.kind != "f" else z.dtype
    y = np.asarray(labels).reshape(z.shape).astype(fdt)
    c = z.shape[1]
    pos = y.sum(axis=0)
    own = np.ones(c, bool) if binary else np.minimum(pos, y.shape[0] - pos) >= min_class_count

    temps = np.empty(c)
    nll_after = np.empty(c)
    status = np.array(["fitted"] * c, dtype=object)
    passes, conv, grad = 0, True, np.zeros(c)
    shared_t = None
    if own.any():
        idx = np.flatnonzero(own)
        zs, ys = z[:, idx], y[:, idx]
        try:
            beta, f, f1, capped, p, cv, g = _newton(lambda b: sigmoid_stats(zs, ys, b), len(idx))
        except CalibrateError as exc:
            raise (exc if binary else _name_class(exc, idx, zs, ys, classes)) from None
        temps[idx], nll_after[idx], grad[idx] = 1.0 / beta, f, g
        status[idx[capped]] = "capped"
        passes, conv = p, cv
    if not own.all() or not binary:
        # The pooled T: one beta for every class, objective summed over classes.
        def pooled(b):
            f, g, h, g0 = sigmoid_stats(z, y, np.full(c, b[0]))
            return f.sum(), g.sum(), h.sum(), g0.sum()
        beta, f, f1, capped, p, cv, g = _newton(pooled, 1)
        shared_t = float(1.0 / beta[0])
        passes += p
        conv = conv and cv
        if not own.all():
            idx = np.flatnonzero(~own)
            temps[idx] = shared_t
            status[idx] = "shared"
    before = sigmoid_stats(z, y, np.ones(c))[0]
    after = sigmoid_stats(z, y, 1.0 / temps)[0]
    passes += 2
    if binary:
        return TemperatureResult(
            temperature=float(temps[0]), nll_before=float(before[0]),
            nll_after=float(after[0]), status=str(status[0]), n_passes=passes,
            converged=conv, gradient=float(grad[0]))
    return TemperatureResult(
        temperature=temps, nll_before=before, nll_after=after, status=list(status),
        n_passes=passes, converged=conv, shared_temperature=shared_t, gradient=grad)


def _name_class(exc, idx, z, y, classes=None):
    """Re-raise a worse-than-chance error naming the first offending class."""
    if _chunks.is_tensor(z):
        z = z.detach().cpu().numpy()
    g0 = ((0.5 - y) * z).mean(axis=0, dtype=np.float64)
    bad = idx[np.flatnonzero(g0 >= 0)]
    if bad.size == 0:
        return exc
    which = int(bad[0]) if classes is None else f"'{classes[int(bad[0])]}'"
    return CalibrateError(
        f"scores: expected a model better than chance for every class, found class "
        f"{which} whose logits do not favour its positives; check the label columns")


def fit_temperature(logits, labels, task, name="scores", classes=None, nll_before=True):
    """Dispatch on the task: softmax for multiclass, sigmoid otherwise.

    ``name`` and ``classes`` are how a refusal names the input and a class.
    """
    try:
        if task == "multiclass":
            return fit_softmax_temperature(logits, labels, nll_before)
        return fit_sigmoid_temperature(logits, labels, classes=classes)
    except CalibrateError as exc:
        msg = str(exc)
        if msg.startswith("scores: ") and name != "scores":
            raise CalibrateError(f"{name}: {msg[len('scores: '):]}") from None
        raise
