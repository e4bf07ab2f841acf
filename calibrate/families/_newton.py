"""Damped Newton for many small independent problems, one pass per step.

Platt scaling (per label), one-vs-rest Platt (per class) and the mixture
(per fit) each minimise a smooth objective of two parameters; a pass over the
rows gives, for every problem at once, its value, gradient and Hessian.
Newton converges quadratically from the warm starts used here, so a fit is a
handful of passes.  Safeguards, per problem:

* a step that raises the objective (beyond float noise) is halved and
  re-evaluated (backtracking; convex problems rarely need it);
* an indefinite Hessian (the mixture is not convex everywhere) has its
  eigenvalues replaced by their absolute values, floored at 1e-10 of the
  largest (a descent direction that is Newton's where H is positive definite);
* box bounds: a step that would leave the box is shortened to reach its
  edge; a coordinate at a bound whose gradient points outwards is held there
  and the others take a reduced Newton step (projected Newton);
* a step below ``final`` relative is taken without another pass: quadratic
  convergence leaves about its square.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_MAX_PASSES = 100
_F_NOISE = 1e-12   # relative rise of the objective still read as no rise
_MAX_HALVINGS = 10


@dataclass(frozen=True)
class Expansion:
    """What one pass gives :func:`newton` for m problems of d parameters: the
    objectives ``f`` (m,), gradients ``g`` (m, d) and Hessians ``h`` (m, d, d)."""
    f: np.ndarray
    g: np.ndarray
    h: np.ndarray


@dataclass(frozen=True)
class NewtonFit:
    """The end of :func:`newton`: parameters ``x`` (m, d), objective ``f`` and
    gradient ``g`` at the last accepted point (f is the second-order value
    at a final step taken without a pass), the ``passes`` used, and (m,)
    masks of the problems that ``converged`` and that ended ``at_bound``."""
    x: np.ndarray
    f: np.ndarray
    g: np.ndarray
    passes: int
    converged: np.ndarray
    at_bound: np.ndarray

    def to_dict(self) -> dict:
        return {"x": self.x.tolist(), "f": self.f.tolist(), "passes": self.passes,
                "converged": self.converged.tolist(), "at_bound": self.at_bound.tolist()}


def _scale(x: np.ndarray) -> np.ndarray:
    return np.abs(x) + 1.0


def _step(g: np.ndarray, h: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Newton step H^-1 g on the free coordinates (0 on the held ones), with
    |eigenvalues| floored, for stacked (m, d) gradients and (m, d, d) Hessians."""
    d = g.shape[1]
    eye = np.eye(d, dtype=bool)
    hf = np.where(free[:, :, None] & free[:, None, :], h, 0.0)
    hf = np.where(~free[:, :, None] & eye, 1.0, hf)   # held coordinates: identity rows
    gf = np.where(free, g, 0.0)
    hf = np.where(np.isfinite(hf), hf, 0.0)
    lam, vec = np.linalg.eigh(hf)
    top = np.abs(lam).max(axis=1, keepdims=True)
    lam = np.maximum(np.abs(lam), 1e-10 * np.maximum(top, 1e-300))
    # (a huge gradient over a floored eigenvalue may overflow: such a step is
    # cut to the box's edge by _into_box)
    with np.errstate(over="ignore", invalid="ignore"):
        coef = np.einsum("mji,mj->mi", vec, gf) / lam
        return np.where(free, np.einsum("mij,mj->mi", vec, coef), 0.0)


def _into_box(x: np.ndarray, step: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """x - step, the step shortened to reach the box's edge when it would
    leave it (the direction stays Newton's, a descent direction; clipping
    coordinates would not), landing exactly on the bound it meets."""
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(step > 0, (x - lo) / step, np.where(step < 0, (x - hi) / step, np.inf))
    alpha = np.minimum(1.0, room.min(axis=1))
    with np.errstate(invalid="ignore"):   # (an infinite step: 0 * inf, replaced below)
        new = np.clip(x - alpha[:, None] * step, lo, hi)
    edge = (room <= alpha[:, None]) & (alpha[:, None] < 1.0)
    return np.where(edge, np.where(step > 0, lo, hi), new)


# long: one damped-Newton loop; backtracking, bounds and the final step share its state
def newton(evaluate: Callable[[np.ndarray], Expansion], x0: npt.ArrayLike,
           lower: npt.ArrayLike | None = None, upper: npt.ArrayLike | None = None,
           rtol: float = 1e-10, final: float = 1e-5, max_passes: int = _MAX_PASSES) -> NewtonFit:
    """Minimise m independent objectives of d parameters by damped Newton.

    ``evaluate(X)`` takes (m, d) parameters and returns, from one pass, an
    :class:`Expansion`: objectives f (m,), gradients (m, d), Hessians (m, d, d).  ``lower`` /
    ``upper`` are (d,) or (m, d) bounds (None: unbounded).  Stops a problem
    when its step is below ``rtol`` (|x| + 1) in every coordinate, or below
    ``final`` (|x| + 1) after taking it.

    Returns a :class:`NewtonFit`.
    """
    x = np.array(x0, dtype=np.float64)
    m, d = x.shape
    lo = np.broadcast_to(-np.inf if lower is None else np.asarray(lower, float), (m, d))
    hi = np.broadcast_to(np.inf if upper is None else np.asarray(upper, float), (m, d))
    x = np.clip(x, lo, hi)
    x_acc = x.copy()
    f_acc = np.full(m, np.inf)
    g_acc = np.zeros((m, d))
    done = np.zeros(m, bool)
    converged = np.zeros(m, bool)
    at_bound = np.zeros(m, bool)
    halvings = np.zeros(m, np.int64)
    passes = 0
    while passes < max_passes and not done.all():
        e = evaluate(x)
        f, g, h = (np.asarray(v, dtype=np.float64) for v in (e.f, e.g, e.h))
        passes += 1
        live = ~done
        # A rise within float noise, or one the gradients call a fall (the
        # trapezoid estimate (g_acc + g) . s / 2 of the change, exact for a
        # quadratic and free of the rounding in f), is no rise.
        trap = np.einsum("mi,mi->m", g_acc + g, x - x_acc)
        rose = live & ~(f <= f_acc + _F_NOISE * (1.0 + np.abs(f_acc))) & ~(trap <= 0)
        good = live & ~rose
        x_acc[good], f_acc[good], g_acc[good] = x[good], f[good], g[good]
        # Backtrack the problems whose step raised the objective.
        x = np.where(rose[:, None], x_acc + 0.5 * (x - x_acc), x)
        halvings = np.where(rose, halvings + 1, 0)
        tiny = np.all(np.abs(x - x_acc) <= rtol * _scale(x_acc), axis=1)
        converged |= rose & tiny               # at the float noise floor
        done |= rose & (tiny | (halvings > _MAX_HALVINGS))
        if not good.any():
            continue
        held = ((x_acc <= lo) & (g > 0)) | ((x_acc >= hi) & (g < 0))
        step = _step(g, h, ~held)
        new = _into_box(x_acc, step, lo, hi)
        moved = np.abs(new - x_acc)
        small = np.all(moved <= rtol * _scale(x_acc), axis=1)
        last = np.all(moved <= final * _scale(x_acc), axis=1) & ~small
        # f at the final step: its second-order value f - g.s + s.H.s / 2
        s = x_acc - new
        quad = f - np.einsum("mi,mi->m", g, s) + 0.5 * np.einsum("mi,mij,mj->m", s, h, s)
        finish = good & (small | last)
        f_acc = np.where(good & last, np.minimum(quad, f_acc), f_acc)
        x_acc = np.where((good & last)[:, None], new, x_acc)
        at_bound |= finish & np.any((x_acc <= lo) | (x_acc >= hi), axis=1)
        done |= finish
        converged |= finish
        x = np.where((good & ~finish)[:, None], new, x)
    return NewtonFit(x_acc, f_acc, g_acc, passes, converged, at_bound)


def two_params(f: npt.ArrayLike, ga: npt.ArrayLike, gb: npt.ArrayLike, haa: npt.ArrayLike,
               hab: npt.ArrayLike, hbb: npt.ArrayLike, *, pooled: bool = False) -> Expansion:
    """The :class:`Expansion` that :func:`newton` takes, from per-problem arrays of the
    value, the two gradient and the three Hessian entries; ``pooled`` sums
    them into one problem (one pair of parameters shared by all)."""
    parts = (f, ga, gb, haa, hab, hbb)
    if pooled:
        parts = tuple(np.atleast_1d(np.sum(v)) for v in parts)
    f, ga, gb, haa, hab, hbb = (np.atleast_1d(v) for v in parts)
    g = np.stack([ga, gb], axis=1)
    h = np.stack([np.stack([haa, hab], 1), np.stack([hab, hbb], 1)], 1)
    return Expansion(f, g, h)
