"""Vector scaling: p = softmax(a * x + b) with one scale a_k and offset b_k per
class, on the log-softmax logits x = log_softmax(z) (Guo et al., "On
Calibration of Modern Neural Networks", ICML 2017, section 4.2; Kull et al.,
"Beyond temperature scaling", NeurIPS 2019, on its regularisation).  x and
not z, because a * z is not invariant to adding a constant to a row of
logits; a common a = 1/T gives softmax(z / T), so vector scaling contains
temperature scaling.

The 2C parameters minimise the penalised mean NLL

    J(a, b) = mean_i [ logsumexp_k t_ik - t_iy ] + lam (|a - 1/T|^2 + |b|^2),
    t_ik = a_k x_ik + b_k,

the penalty pulling a toward the fitted temperature's 1/T and b toward 0
(with few rows in a class, unpenalised per-class parameters overfit).  J is
strictly convex.  With p_i = softmax(t_i):

    dJ/da_k = mean_i (p_ik - [y_i = k]) x_ik + 2 lam (a_k - 1/T)
    dJ/db_k = mean_i (p_ik - [y_i = k])      + 2 lam b_k
    H v     = mean_i J_i^T (diag p_i - p_i p_i^T) J_i v + 2 lam v,

J_i v being the direction of the logits, d_ik = va_k x_ik + vb_k.  The full
Hessian costs N C^2; a Hessian-vector product costs one pass.  So the fit is
a truncated Newton method (Nocedal & Wright, Numerical Optimization, 7.1):
each Newton step solves H s = -g by conjugate gradients preconditioned with
the per-class 2 x 2 diagonal blocks of H, takes the step (halved while J
rises), and stops after a step below 1e-7 relative.  Two refinements:

* the likelihood ignores a common shift of b, so the optimum has sum b = 0;
  rho (sum b)^2 is added to J (same minimiser) with rho chosen so that the
  shift direction, otherwise held only by lam, is as stiff as the
  preconditioner expects;
* on many rows, the Hessian-vector products use a fixed, evenly spread
  sample of ``HESSIAN_ROWS`` rows (Byrd et al., "On the use of stochastic
  Hessian information in optimization methods for machine learning", SIAM
  J. Optim. 2011): the gradient stays exact, so the optimum does too, and a
  step costs one full pass plus cheap products on the sample.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .. import kernels
from . import _common
from ._passes import scratch, take, total
from .temperature import start as _start

#: Default L2 penalty lam (per mean-NLL unit).
PENALTY = 1e-3
#: Rows of the Hessian sample on large data.
HESSIAN_ROWS = 8192

_RTOL = 1e-12       # a backtracked step this small is taken as it is
_FINAL = 1e-7       # a step this small (relative) is taken without a pass: the last
_NOISE_STEP = 1e-5   # ... and so is one this small when the gradient stalls
_MAX_NEWTON = 50
_MAX_HALVINGS = 60     # a step halved this often is below any float's resolution
_MAX_CG = 100
_F_NOISE = 1e-12


@dataclass(frozen=True)
class Vector(_common.ChunkMethods):
    """Fitted vector scaling: per-class scales a and offsets b."""
    method: ClassVar[str] = "vector"
    PARAMS: ClassVar[tuple] = ("a", "b")
    task: str
    a: tuple
    b: tuple
    temperature: float | None = None   # the T whose 1/T the penalty pulls a toward
    penalty: float | None = None
    objective: float | None = None     # J at the optimum
    n_passes: int | None = None
    converged: bool | None = None


def _logits(zc: np.ndarray, a: np.ndarray, b: np.ndarray,
            slot: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """t = a * log_softmax(z) + b in the chunk's dtype (scratch ``slot``)."""
    x = _common.log_softmax(zc, slot)
    t = scratch(zc.shape, x.dtype, slot + 2)
    np.multiply(x, a.astype(x.dtype), out=t)
    np.add(t, b.astype(x.dtype), out=t)
    return x, t


def _softmax_inplace(t: np.ndarray) -> npt.NDArray[np.float64]:
    """Row softmax of ``t`` in place; returns logsumexp per row (float64)."""
    m = t.max(axis=1, keepdims=True)
    np.subtract(t, m, out=t)
    np.exp(t, out=t)
    s = t.sum(axis=1, keepdims=True)
    np.divide(t, s, out=t)
    return (m[:, 0].astype(np.float64) + np.log(s[:, 0].astype(np.float64)))


def _grad_kernel(zc: np.ndarray, yc: np.ndarray, a: np.ndarray,
                 b: np.ndarray) -> tuple[Any, ...]:
    """Sums of the NLL, of p x, p, x_y (per class), the class counts, and of
    the diagonal Hessian blocks p(1-p) x^2, p(1-p) x, p(1-p)."""
    r, c = zc.shape
    x, t = _logits(zc, a, b)
    rows = np.arange(r)
    nll = np.sum(-t[rows, yc].astype(np.float64))
    xy = x[rows, yc].astype(np.float64)
    nll += np.sum(_softmax_inplace(t))
    p = t
    w = scratch((r, c), x.dtype, 4)
    np.multiply(p, p, out=w)
    np.subtract(p, w, out=w)                     # p (1 - p)
    v = scratch((r, c), x.dtype, 5)

    col = _common.col_sums
    sp, sw = col(p), col(w)
    np.multiply(p, x, out=v)
    spx = col(v)
    np.multiply(w, x, out=v)
    swx = col(v)
    np.multiply(v, x, out=v)
    return (nll, spx, sp, np.bincount(yc, xy, c), np.bincount(yc, minlength=c).astype(np.float64),
            col(v), swx, sw)


def _hv_kernel(zc: np.ndarray, yc: np.ndarray, a: np.ndarray, b: np.ndarray, va: np.ndarray,
               vb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums of q x and q with q = p (d - E_p d), d = va x + vb: H v per row."""
    r, c = zc.shape
    x, t = _logits(zc, a, b)
    _softmax_inplace(t)
    p = t
    d = scratch((r, c), x.dtype, 4)
    np.multiply(x, va.astype(x.dtype), out=d)
    np.add(d, vb.astype(x.dtype), out=d)
    e = np.einsum("ij,ij->i", p, d)[:, None]
    np.subtract(d, e, out=d)
    np.multiply(d, p, out=d)
    q = d
    sq = _common.col_sums(q)
    np.multiply(q, x, out=q)
    return _common.col_sums(q), sq


class _Problem:
    """J, its gradient and Hessian-vector products at (a, b), by passes."""

    def __init__(self, z: Any, y: np.ndarray, a0: float, lam: float, hessian_rows: int) -> None:
        self.z, self.y, self.n = z, y, z.shape[0]
        self.c = z.shape[1]
        self.a0, self.lam = a0, lam
        if self.n > hessian_rows:
            idx = np.unique(np.linspace(0, self.n - 1, hessian_rows).astype(np.int64))
            self.zh, self.yh = take(z, idx), take(y, idx)
        else:
            self.zh, self.yh = z, y
        self.rho: float | None = None
        self.passes = 0

    def gradient(self, a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """J (with the rho term), its gradient (2, C) and diagonal blocks."""
        f, spx, sp, sxy, cnt, haa, hab, hbb = total(_grad_kernel, self.z, self.y, a, b,
                                                    label="vector scaling pass")
        self.passes += 1
        n, lam = self.n, self.lam
        if self.rho is None:   # stiffness of the shift direction, fixed once
            self.rho = max(float(hbb.sum()) / n, 2 * lam * self.c) / (2 * self.c ** 2)
        sb = b.sum()
        f = f / n + lam * (np.sum((a - self.a0) ** 2) + np.sum(b * b)) + self.rho * sb * sb
        ga = (spx - sxy) / n + 2 * lam * (a - self.a0)
        gb = (sp - cnt) / n + 2 * lam * b + 2 * self.rho * sb
        blocks = np.stack([haa / n + 2 * lam, hab / n, hbb / n + 2 * lam + 2 * self.rho])
        return float(f), np.stack([ga, gb]), blocks

    def hessp(self, a: np.ndarray, b: np.ndarray, v: np.ndarray) -> np.ndarray:
        assert self.rho is not None   # set by the first gradient pass
        qx, q = total(_hv_kernel, self.zh, self.yh, a, b, v[0], v[1],
                      label="vector scaling products")
        if self.zh is self.z:
            self.passes += 1
        m, lam = self.zh.shape[0], self.lam
        return np.stack([qx / m + 2 * lam * v[0],
                         q / m + 2 * lam * v[1] + 2 * self.rho * v[1].sum()])


def _precondition(blocks: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Solve the per-class 2 x 2 systems blocks s = r (blocks: haa, hab, hbb)."""
    haa, hab, hbb = blocks
    det = haa * hbb - hab * hab
    return np.stack([(hbb * r[0] - hab * r[1]) / det, (haa * r[1] - hab * r[0]) / det])


def _cg(hessp: Callable[[np.ndarray], np.ndarray], g: np.ndarray, blocks: np.ndarray,
        tol: float) -> np.ndarray:
    """Preconditioned conjugate gradients for H s = -g, to ||r|| <= tol ||g||."""
    s = np.zeros_like(g)
    r = -g
    zr = _precondition(blocks, r)
    d = zr.copy()
    rz = np.sum(r * zr)
    g_norm = np.sqrt(np.sum(g * g))
    for _ in range(_MAX_CG):
        hd = hessp(d)
        curv = np.sum(d * hd)
        if curv <= 0:   # not for a convex J; float noise at the very end
            break
        alpha = rz / curv
        s += alpha * d
        r -= alpha * hd
        if np.sqrt(np.sum(r * r)) <= tol * g_norm:
            break
        zr = _precondition(blocks, r)
        rz_new = np.sum(r * zr)
        d = zr + (rz_new / rz) * d
        rz = rz_new
    return s


def fit(z: Any, y: npt.ArrayLike, temperature: float | None = None, penalty: float = PENALTY,
        init: npt.ArrayLike | None = None, hessian_rows: int = HESSIAN_ROWS) -> Vector:
    """Fit vector scaling to multiclass logits z (N, C) and labels y (N,).

    ``temperature``: the T of the penalty's centre 1/T (fitted here when
    None).  ``init``: a starting (a, b) as a (2, C) array (default (1/T, 0)).
    Returns a :class:`Vector`; (a, b) minimise J to ~1e-7 relative (float32
    logits: to their gradient's rounding, about as close).
    """
    y = np.asarray(y, dtype=np.int64)
    passes = 0
    if temperature is None:
        temperature, passes = _start(z, y)
    a0 = 1.0 / float(temperature)
    prob = _Problem(z, y, a0, float(penalty), int(hessian_rows))
    c = prob.c
    theta = np.stack([np.full(c, a0), np.zeros(c)]) if init is None else np.array(init, float)
    f, g, blocks = prob.gradient(*theta)
    g0 = g_last = np.sqrt(np.sum(g * g))
    converged = False
    for _ in range(_MAX_NEWTON):
        g_norm = np.sqrt(np.sum(g * g))
        rel = g_norm / max(g0, 1e-300)
        s = _cg(functools.partial(prob.hessp, theta[0], theta[1]), g, blocks,
                min(0.1, np.sqrt(rel)))
        size = np.max(np.abs(s) / (np.abs(theta) + 1.0))
        if not np.isfinite(size):
            break          # non-finite logits or curvature: no step to take
        if size <= _FINAL or (size <= _NOISE_STEP and g_norm > 0.5 * g_last):
            # Newton (superlinear with the sampled Hessian, Byrd et al.) leaves
            # a fraction of this step; a gradient that no longer shrinks is
            # at the float noise floor (float32 sums: ~1e-8).
            theta = theta + s
            f += 0.5 * float(np.sum(g * s))   # second-order value f + g.s / 2
            converged = True
            break
        for _ in range(_MAX_HALVINGS):
            f_new, g_new, b_new = prob.gradient(*(theta + s))
            # (a rise within float noise, or one the gradients call a fall
            # (trapezoid rule), is no rise: see ._newton)
            if (f_new <= f + _F_NOISE * (1.0 + abs(f)) or np.sum((g + g_new) * s) <= 0
                    or np.max(np.abs(s)) <= _RTOL):
                break
            s = 0.5 * s
        else:
            break          # no decrease found (non-finite values): stop, not converged
        theta, f, g, blocks, g_last = theta + s, f_new, g_new, b_new, g_norm
    return Vector(task="multiclass", a=_common.tup(theta[0]), b=_common.tup(theta[1]),
                  temperature=float(temperature), penalty=float(penalty), objective=float(f),
                  n_passes=passes + prob.passes, converged=converged)


def split_half_signal(z: Any, y: npt.ArrayLike, temperature: float, seed: int = 0) -> float:
    """Evidence for per-class parameters, as a z-score, from one pass.

    The rows are split in two random halves A and B (seeded); g_A, g_B are
    each half's gradient of the unpenalised vector-scaling NLL in (a_k, b_k)
    at (1/T, 0), D_k the 2 x 2 diagonal Hessian blocks of both halves, and

        U = sum_k g_Ak^T D_k^-1 g_Bk,   z = U sqrt(n_A n_B / (2C - 2)).

    The halves are independent, so without per-class signal E[U] = 0
    whatever the number of rows per class, and Var U = (2C - 2) / (n_A n_B)
    when the temperature model holds (its two common directions left out);
    a per-class miscalibration shared by both halves makes U positive.  A
    cross-fitted version of Rao's score test (whose chi-square calibration
    fails at a few rows per class).
    """
    y = np.asarray(y, dtype=np.int64)
    n, c = z.shape
    a, b = np.full(c, 1.0 / float(temperature)), np.zeros(c)
    half = np.random.default_rng([seed, 3]).permutation(n) % 2 == 0
    g: list[np.ndarray] = []
    blocks: Any = 0.0          # both halves' diagonal blocks, summed
    m: list[int] = []
    for h in (np.flatnonzero(half), np.flatnonzero(~half)):
        _, spx, sp, sxy, cnt, haa, hab, hbb = total(_grad_kernel, take(z, h), y[h], a, b,
                                                    label="per-class signal test")
        g.append(np.stack([spx - sxy, sp - cnt]) / h.size)
        blocks = blocks + np.stack([haa, hab, hbb]) / (2 * h.size)
        m.append(h.size)
    u = np.sum(g[0] * _precondition(blocks, g[1]))
    return float(u * np.sqrt(m[0] * m[1] / max(2 * c - 2, 1)))


def log_probabilities(fit: Vector, z: npt.ArrayLike) -> np.ndarray:
    """log softmax(a * log_softmax(z) + b), in the float dtype of ``z``."""
    a, b = np.asarray(fit.a), np.asarray(fit.b)
    x, t = _logits(np.asarray(z), a, b, slot=4)
    lse = _softmax_inplace(t)   # t now holds p; recompute t as log p below
    out = np.multiply(x, a.astype(x.dtype))
    out += b.astype(x.dtype)
    out -= lse[:, None].astype(x.dtype)
    return out


def probabilities(fit: Vector, z: npt.ArrayLike) -> np.ndarray:
    """softmax(a * log_softmax(z) + b), in the float dtype of ``z``."""
    a, b = np.asarray(fit.a), np.asarray(fit.b)
    _, t = _logits(np.asarray(z), a, b, slot=4)
    _softmax_inplace(t)
    return t.copy()


def top(fit: Vector, z: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of the calibrated probabilities (= of t = a x + b; ties to the
    lowest index) and its log-probability, in log space (float64)."""
    a, b = np.asarray(fit.a), np.asarray(fit.b)
    _, t = _logits(np.asarray(z), a, b, slot=4)
    return kernels.top_scores(t, 1.0)
