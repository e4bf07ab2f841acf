"""Temperature scaling with a uniform mixture: p = (1 - w) softmax(z / T) + w / C.

A small weight w on the uniform distribution bounds every probability below
by w / C.  Held-out rows whose true class has probability ~0 (a model, or a
probability file, that rounds to exactly 0) cost -log p = infinity-like
amounts under a pure temperature and drag T above 1 for everyone; the
mixture absorbs them at a cost of -log(w / C) each and leaves T to the rest.
It is the "epsilon-contamination" of robust statistics (Huber 1964) applied
to Guo et al.'s temperature scaling (ICML 2017).

(beta = 1/T, w) jointly minimise the mean NLL, with u = z - max z,
s = softmax(beta u), q = (1 - w) s_y + w / C:

    NLL = mean_i -log q_i.

One pass gives per row log s_y, m1 = E_s[u], v = Var_s[u], and from them
(A = (1 - w) s_y / q, B = (1 / C) / q, d = u_y - m1):

    dNLL/dbeta = -A d                 dNLL/dw = A / (1 - w) - B
    H_bb = A^2 d^2 - A (d^2 - v)      H_ww = (B - A / (1 - w))^2
    H_bw = A d / (1 - w) + A d (B - A / (1 - w))

(means over rows).  The objective is not convex everywhere, so Newton
(:mod:`._newton`) uses |eigenvalues| and backtracking; it starts at
(1/T of the temperature fit, 1e-3) with w kept in [0, 1].  At w = 0 it is
the temperature fit.  softmax(z / T) is monotone in z, and so is p: the
argmax is that of z.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .. import kernels
from .. import temperature as _temperature
from . import _common
from ._newton import newton, two_params
from ._passes import float_dtype, scratch, total
from .temperature import start as _start

#: Starting weight of the uniform component.
W0 = 1e-3
_BETA_MIN = 1e-12     # beta = 1/T kept positive


@dataclass(frozen=True)
class Mix(_common.ChunkMethods):
    """Fitted mixture: temperature T and uniform weight w."""
    method: ClassVar[str] = "mix"
    PARAMS: ClassVar[tuple] = ("temperature", "weight")
    task: str
    temperature: float
    weight: float
    nll: float | None = None
    n_passes: int | None = None
    converged: bool | None = None


def _row_terms(zc: np.ndarray, yc: np.ndarray,
               beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, float64: log s_y, d = u_y - E_s[u], v = Var_s[u] at beta."""
    r, c = zc.shape
    dt = float_dtype(zc.dtype)
    u = scratch((r, c), dt, 0)
    e = scratch((r, c), dt, 1)
    np.subtract(zc, zc.max(axis=1, keepdims=True), out=u)
    uy = u[np.arange(r), yc].astype(np.float64)
    np.multiply(u, dt.type(beta), out=e)
    np.exp(e, out=e)
    tot = e.sum(axis=1).astype(np.float64)
    m1 = np.einsum("ij,ij->i", e, u).astype(np.float64) / tot
    np.multiply(e, u, out=e)
    m2 = np.einsum("ij,ij->i", e, u).astype(np.float64) / tot
    return beta * uy - np.log(tot), uy - m1, np.maximum(m2 - m1 * m1, 0.0)


def _kernel(zc: np.ndarray, yc: np.ndarray, beta: float, w: float) -> tuple[Any, ...]:
    """Sums of the NLL, its gradient (2) and Hessian (3) at (beta, w)."""
    c = zc.shape[1]
    ls, d, v = _row_terms(zc, yc, beta)
    with np.errstate(divide="ignore"):
        l1w, lwc = np.log1p(-w), np.log(w / c)
    logq = np.logaddexp(l1w + ls, lwc)
    r = np.exp(ls - logq)                  # s_y / q = A / (1 - w): finite at w = 1
    a = (1.0 - w) * r
    bq = np.exp(np.minimum(-np.log(c) - logq, 700.0))
    gw = r - bq
    ad = a * d
    # (near w = 0 a row the model gave the true class ~0 has bq ~ e^700: its
    # curvature terms overflow to inf, which the Newton step sets aside)
    with np.errstate(over="ignore", invalid="ignore"):
        return (-logq.sum(), -ad.sum(), gw.sum(), (ad * ad - a * (d * d - v)).sum(),
                (r * d - ad * gw).sum(), (gw * gw).sum())


def _evaluate(z: Any, y: np.ndarray) -> Callable[[np.ndarray], Any]:
    n = z.shape[0]

    def evaluate(x: np.ndarray) -> Any:
        return two_params(*(v / n for v in total(_kernel, z, y, x[0, 0], x[0, 1],
                                                 label="mixture pass")))
    return evaluate


def fit(z: Any, y: npt.ArrayLike, temperature: float | None = None,
        init: tuple[float, float] | None = None) -> Mix:
    """Fit (T, w) to multiclass logits z (N, C) and labels y (N,).

    ``temperature``: the T of the start (1/T, ``W0``) (fitted here when
    None; T = 1 where rows of true-class probability ~0 make every
    temperature worse than none, which the mixture can still fit);
    ``init``: a starting (T, w) instead.
    """
    y = np.asarray(y, dtype=np.int64)
    passes = 0
    if init is None:
        if temperature is None:
            temperature, passes = _start(z, y)
        init = (float(temperature), W0)
    x0 = np.array([[1.0 / float(init[0]), float(init[1])]])
    r = newton(_evaluate(z, y), x0, lower=[_BETA_MIN, 0.0],
               upper=[1.0 / _temperature.T_MIN, 1.0])
    return Mix(task="multiclass", temperature=float(1.0 / r.x[0, 0]), weight=float(r.x[0, 1]),
               nll=float(r.f[0]), n_passes=passes + r.passes, converged=bool(r.converged[0]))


def _log_mix(fit: Mix, ls: np.ndarray, c: int) -> np.ndarray:
    """log((1 - w) exp(ls) + w / C) for log-softmax values ``ls``."""
    w = fit.weight
    if w <= 0:
        return ls
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log1p(-w) + ls, np.log(w / c))


def log_probabilities(fit: Mix, z: npt.ArrayLike) -> np.ndarray:
    """log p, in the float dtype of ``z``."""
    z = np.asarray(z)
    dt = float_dtype(z.dtype)
    ls = _common.log_softmax(np.multiply(z, dt.type(1.0 / fit.temperature), dtype=dt), 4)
    return _log_mix(fit, ls, z.shape[1]).astype(dt)


def probabilities(fit: Mix, z: npt.ArrayLike) -> np.ndarray:
    """(1 - w) softmax(z / T) + w / C, in the float dtype of ``z``."""
    return np.exp(log_probabilities(fit, z))


def top(fit: Mix, z: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """argmax z (that of p; ties to the lowest index) and log p there
    (float64, in log space)."""
    z = np.asarray(z)
    k, logp = kernels.top_scores(z, fit.temperature)
    return k, _log_mix(fit, logp, z.shape[1])
