"""One-vs-rest Platt scaling for multiclass logits: per class k a sigmoid
s_k = sigmoid(a_k x_k + b_k) of its log-softmax logit x_k = log_softmax(z)_k,
fitted as a binary problem (class k against the rest), and the calibrated
distribution p_k = s_k / sum_l s_l (Zadrozny & Elkan, KDD 2002; Platt 1999;
scikit-learn's ``CalibratedClassifierCV(method="sigmoid")`` on multiclass).

Each class's (a_k, b_k) minimises its binary NLL

    NLL_k = mean_i [ softplus(t_ik) - [y_i = k] t_ik ],  t_ik = a_k x_ik + b_k,

convex in (a_k, b_k); one pass gives every class's gradient and 2 x 2
Hessian, so all classes take their Newton steps together (:mod:`._newton`),
from (1/T, 0) with T the temperature fit, where the classes start near their
optimum (an undamped Newton from (1, 0) diverged in a prototype: sigmoid of
a log-probability is at most 1/2).  Classes with fewer than
``temperature.MIN_CLASS_COUNT`` positives or negatives share one (a, b)
fitted on all classes pooled (status "shared").  a_k is kept in
[0, 1 / T_MIN]: "capped" at the top (separable), "flat" at 0 (a class whose
logits do not favour it: its probability no longer depends on them).  The
renormalised p is not the objective: each class's fit is its own binary
likelihood, as in scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy import special

from .. import kernels
from .. import temperature as _temperature
from . import _common
from ._newton import newton, two_params
from ._passes import scratch, total
from .temperature import start as _start


@dataclass(frozen=True)
class OvrPlatt(_common.ChunkMethods):
    """Fitted one-vs-rest Platt scaling: (a_k, b_k) per class."""
    method: ClassVar[str] = "ovr-platt"
    PARAMS: ClassVar[tuple] = ("a", "b")
    task: str
    a: tuple
    b: tuple
    status: tuple | None = None
    n_passes: int | None = None
    converged: bool | None = None
    shared: tuple | None = None


def _logits(zc: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = _common.log_softmax(zc, 0)
    t = scratch(zc.shape, x.dtype, 2)
    np.multiply(x, a.astype(x.dtype), out=t)
    np.add(t, b.astype(x.dtype), out=t)
    return x, t


def _kernel(zc: np.ndarray, yc: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[Any, ...]:
    """Per-class sums of the binary NLL, gradient (2) and Hessian (3)."""
    r, c = zc.shape
    x, t = _logits(zc, a, b)
    rows = np.arange(r)
    ty, xy = t[rows, yc].astype(np.float64), x[rows, yc].astype(np.float64)
    e = scratch((r, c), x.dtype, 4)
    sp = scratch((r, c), x.dtype, 5)
    if np.max(b) < 60.0:
        # t = a x + b <= b (x <= 0, a >= 0): exp(t) cannot overflow, and
        # softplus(t) = log1p(exp(t)), sigmoid(t) = exp(t) / (1 + exp(t)).
        np.exp(t, out=e)
        np.log1p(e, out=sp)
        nll = _common.col_sums(sp) - np.bincount(yc, ty, c)
        np.add(e, 1, out=sp)
        s = np.divide(e, sp, out=sp)
    else:
        nll = _common.col_sums(np.logaddexp(0, t, out=sp)) - np.bincount(yc, ty, c)
        s = special.expit(t, out=sp)
    w = e
    np.multiply(s, s, out=w)
    np.subtract(s, w, out=w)                      # s (1 - s)
    col = _common.col_sums
    ss, sw = col(s), col(w)
    v = scratch((r, c), x.dtype, 6)
    np.multiply(s, x, out=v)
    ssx = col(v)
    np.multiply(w, x, out=v)
    swx = col(v)
    np.multiply(v, x, out=v)
    n_k = np.bincount(yc, minlength=c).astype(np.float64)
    return nll, ssx - np.bincount(yc, xy, c), ss - n_k, col(v), swx, sw


def _evaluate(z: Any, y: np.ndarray, own: np.ndarray | None,
              rest: np.ndarray) -> Callable[[np.ndarray], Any]:
    """The Newton oracle: per-class problems for the classes ``own`` (the
    others held at ``rest`` (a, b) in the pass), or, with ``own`` None, one
    problem whose objective is summed over all classes."""
    n, c = z.shape

    def evaluate(p: np.ndarray) -> Any:
        if own is None:
            a, b = np.full(c, p[0, 0]), np.full(c, p[0, 1])
        else:
            a, b = rest[:, 0].copy(), rest[:, 1].copy()
            a[own], b[own] = p[:, 0], p[:, 1]
        sums = [v / n for v in total(_kernel, z, y, a, b, label="one-vs-rest Platt pass")]
        return two_params(*(sums if own is None else [v[own] for v in sums]),
                          pooled=own is None)
    return evaluate


def fit(z: Any, y: npt.ArrayLike, temperature: float | None = None,
        init: npt.ArrayLike | None = None,
        min_class_count: int = _temperature.MIN_CLASS_COUNT) -> OvrPlatt:
    """Fit one-vs-rest Platt scaling to logits z (N, C) and labels y (N,).

    ``temperature``: the T of the start (1/T, 0) (fitted here when None);
    ``init``: a starting (a, b) per class as a (C, 2) array instead.
    """
    y = np.asarray(y, dtype=np.int64)
    n, c = z.shape
    passes = 0
    if init is None:
        if temperature is None:
            temperature, passes = _start(z, y)
        init = np.tile([1.0 / float(temperature), 0.0], (c, 1))
    x = np.array(init, dtype=np.float64).reshape(c, 2)
    n_k = np.bincount(y, minlength=c)
    own = np.flatnonzero(np.minimum(n_k, n - n_k) >= min_class_count)
    lower, upper = [0.0, -np.inf], [1.0 / _temperature.T_MIN, np.inf]
    status = np.array(["shared"] * c, dtype=object)
    conv, shared = True, None
    if own.size:
        r = newton(_evaluate(z, y, own, x), x[own], lower, upper)
        x[own] = r.x
        status[own] = np.where(r.x[:, 0] <= 0, "flat", np.where(r.at_bound, "capped", "fitted"))
        passes, conv = passes + r.passes, bool(r.converged.all())
    if own.size < c:
        r = newton(_evaluate(z, y, None, x), x.mean(axis=0, keepdims=True), lower, upper)
        shared = (float(r.x[0, 0]), float(r.x[0, 1]))
        x[status == "shared"] = shared
        passes, conv = passes + r.passes, conv and bool(r.converged.all())
    return OvrPlatt(task="multiclass", a=_common.tup(x[:, 0]), b=_common.tup(x[:, 1]),
                    status=tuple(status), n_passes=passes, converged=conv, shared=shared)


def _log_sigmoid(t: np.ndarray) -> np.ndarray:
    """log sigmoid(t) in place: -softplus(-t) = min(t, 0) - log1p(exp(-|t|))."""
    m = np.minimum(t, 0)
    np.abs(t, out=t)
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.log1p(t, out=t)
    np.subtract(m, t, out=t)
    return t


def log_probabilities(fit: OvrPlatt, z: npt.ArrayLike) -> np.ndarray:
    """log p_k = log s_k - log sum_l s_l, in the float dtype of ``z``."""
    _, t = _logits(np.asarray(z), np.asarray(fit.a), np.asarray(fit.b))
    ls = _log_sigmoid(t.copy())
    m = ls.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(ls - m).sum(axis=1, keepdims=True))
    return ls - lse


def probabilities(fit: OvrPlatt, z: npt.ArrayLike) -> np.ndarray:
    """p_k = s_k / sum_l s_l, in the float dtype of ``z``."""
    return np.exp(log_probabilities(fit, z))


def top(fit: OvrPlatt, z: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of p (= of t_k = a_k x_k + b_k, ties to the lowest index) and
    log p_k there, in log space (float64 sums)."""
    _, t = _logits(np.asarray(z), np.asarray(fit.a), np.asarray(fit.b))
    k = t.argmax(axis=1)
    # (k from t: log sigmoid can round distinct large t to the same value)
    ls = _log_sigmoid(t)
    np.subtract(ls, ls[np.arange(ls.shape[0]), k][:, None], out=ls)
    return k, kernels.top_log_prob(np.exp(ls, out=ls), k)
