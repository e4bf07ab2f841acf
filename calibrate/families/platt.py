"""Platt scaling: p = sigmoid(a z + b) per label (Platt, "Probabilistic Outputs
for Support Vector Machines and Comparisons to Regularized Likelihood
Methods", 1999), for binary and multilabel logits.

For each label, (a, b) minimises the mean held-out NLL

    NLL(a, b) = mean_i [ softplus(a z_i + b) - y_i (a z_i + b) ]

which is convex; with s = sigmoid(a z + b) and w = s (1 - s) its gradient and
Hessian come from one pass:

    grad = mean_i (s_i - y_i) (z_i, 1),   H = mean_i w_i (z_i, 1)(z_i, 1)^T.

Newton from (1/T, 0) (the temperature fit, when given) converges in a few
passes (:mod:`._newton`).  Platt's smoothed targets ((N+ + 1) / (N+ + 2)) are
not used: the objective is the plain held-out NLL, as for every family here;
labels with fewer than ``temperature.MIN_CLASS_COUNT`` positives or negatives
share one (a, b) fitted on all labels pooled (status "shared"), as the
temperature fit does.  a is kept in [0, 1 / T_MIN]: logits that do not
favour their labels (the optimum at a <= 0) are refused, and separable data
stop at a = 1 / T_MIN (status "capped").  Every map is strictly increasing in
z, so the decision score a z + b ranks rows exactly as the model's logit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy import special

from .. import temperature as _temperature
from . import _common
from ._newton import newton, two_params
from ._passes import total, whole


@dataclass(frozen=True)
class Platt(_common.ChunkMethods):
    """Fitted Platt scaling: one (a, b) per label (one for binary)."""
    method: ClassVar[str] = "platt"
    PARAMS: ClassVar[tuple] = ("a", "b")
    task: str
    a: tuple
    b: tuple
    status: tuple | None = None
    nll: tuple | None = None          # mean training NLL per label
    n_passes: int | None = None
    converged: bool | None = None
    shared: tuple | None = None   # the pooled (a, b), when fitted


def _stats(zc: np.ndarray, yc: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[Any, ...]:
    """Per-label sums of NLL, gradient (2) and Hessian (3) at (a, b)."""
    zc = zc.astype(np.float64)
    t = zc * a + b
    s = special.expit(t)
    r = s - yc
    w = s * (1.0 - s)
    return (_common.sigmoid_nll(t, yc).sum(axis=0), (r * zc).sum(axis=0), r.sum(axis=0),
            (w * zc * zc).sum(axis=0), (w * zc).sum(axis=0), w.sum(axis=0))


def _evaluate(z: np.ndarray, y: np.ndarray,
              pooled: bool = False) -> Callable[[np.ndarray], Any]:
    """The Newton oracle for :func:`._newton.newton`: per-label problems, or
    one problem (``pooled``) whose objective is summed over labels."""
    n, c = z.shape

    def evaluate(x: np.ndarray) -> Any:
        a, b = (np.full(c, x[0, 0]), np.full(c, x[0, 1])) if pooled else (x[:, 0], x[:, 1])
        return two_params(*(v / n for v in total(_stats, z, y, a, b)), pooled=pooled)
    return evaluate


def _check_direction(z: np.ndarray, y: np.ndarray, names: Callable[[int], object]) -> None:
    """Refuse labels whose best a is <= 0: the gradient in a at (0, logit of
    the base rate) is mean (rate - y) z >= 0 (convexity makes that exact)."""
    rate = y.mean(axis=0)
    g0 = ((rate - y) * z).mean(axis=0)
    bad = np.flatnonzero(g0 >= 0)
    if bad.size:
        raise _common.refuse_chance(names(int(bad[0])) if z.shape[1] > 1 else None)


def fit(z: Any, y: npt.ArrayLike, task: str = "binary", init: npt.ArrayLike | None = None,
        min_class_count: int = _temperature.MIN_CLASS_COUNT,
        classes: Sequence[str] | None = None) -> Platt:
    """Fit Platt scaling to logits z ((N,) binary or (N, C) multilabel) and
    0/1 labels y of the same shape.

    ``init``: per-label starting (a, b) as an array (C, 2), e.g. (1/T, 0)
    from the temperature fit (default (1, 0)).  ``classes`` names labels in a
    refusal.  Returns a :class:`Platt`.
    """
    zz = _common.as_columns(whole(z))
    yy = np.asarray(y).reshape(zz.shape).astype(np.float64)
    n, c = zz.shape
    names = (lambda k: f"'{classes[k]}'") if classes is not None else (lambda k: k)
    pos = yy.sum(axis=0)
    own = np.ones(c, bool) if task == "binary" else np.minimum(pos, n - pos) >= min_class_count
    x0 = np.tile([1.0, 0.0], (c, 1)) if init is None else np.asarray(init, float).reshape(c, 2)
    lower, upper = [0.0, -np.inf], [1.0 / _temperature.T_MIN, np.inf]
    a, b = np.empty(c), np.empty(c)
    status = np.array(["fitted"] * c, dtype=object)
    passes, conv, shared = 0, True, None
    if own.any():
        idx = np.flatnonzero(own)
        zs, ys = zz[:, idx], yy[:, idx]
        _check_direction(zs, ys, lambda k: names(int(idx[k])))
        r = newton(_evaluate(zs, ys), x0[idx], lower, upper)
        a[idx], b[idx] = r.x[:, 0], r.x[:, 1]
        status[idx[r.at_bound]] = "capped"
        passes, conv = r.passes, bool(r.converged.all())
    if not own.all():
        _check_direction(zz.ravel()[:, None], yy.ravel()[:, None], names)
        r = newton(_evaluate(zz, yy, pooled=True), x0[~own].mean(axis=0, keepdims=True),
                   lower, upper)
        shared = (float(r.x[0, 0]), float(r.x[0, 1]))
        a[~own], b[~own] = shared
        status[~own] = "shared"
        passes, conv = passes + r.passes, conv and bool(r.converged.all())
    nll = total(_stats, zz, yy, a, b)[0] / n
    return Platt(task=task, a=_common.tup(a), b=_common.tup(b), status=tuple(status),
                 nll=_common.tup(nll), n_passes=passes, converged=conv, shared=shared)


def log_odds(fit: Platt, z: npt.ArrayLike) -> np.ndarray:
    """Calibrated log-odds a z + b (float64), the shape of ``z``."""
    zz = _common.as_columns(z).astype(np.float64)
    return _common.unflatten(zz * np.asarray(fit.a) + np.asarray(fit.b), z)


def probabilities(fit: Platt, z: npt.ArrayLike) -> np.ndarray:
    """sigmoid(a z + b) in the float dtype of ``z``."""
    dt = _common.float_dtype(np.asarray(z).dtype)
    return special.expit(log_odds(fit, z)).astype(dt)


def scores(fit: Platt, z: npt.ArrayLike) -> np.ndarray:
    """Decision score: a z + b, strictly increasing in z (a > 0) per label."""
    return log_odds(fit, z)
