"""Smooth ECE (Blasiok & Nakkiran, "Smooth ECE: Principled Reliability Diagrams via
Kernel Smoothing", ICLR 2024): the calibration error of the kernel-smoothed
reliability curve, at the bandwidth where it equals itself.

Computed on a grid (linear binning of the residuals, FFT convolution with a
Gaussian reflected at 0 and 1, trapezoid rule), so its cost is one pass over
the (confidence, outcome) pairs plus a few FFTs.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

_SMOOTH_PTS_PER_SIGMA = 40     # grid points per kernel width
_SMOOTH_MIN_GRID = 512         # grid intervals at least
_SMOOTH_SIGMA_MIN = 1e-3       # below this the data are calibrated to the grid's resolution


#: The finest grid any bandwidth needs (40 points per sigma at sigma = 1e-3).
FINEST_GRID = 1 << 16


def binned(p: np.ndarray, r: np.ndarray, m: int, in_unit: bool = False) -> np.ndarray:
    """Linear binning of weights r at positions p in [0, 1] onto the grid j / m,
    j = 0..m: each point's weight split between its two neighbouring nodes.
    Sums of blocks' binnings are the binning of all of them.  ``in_unit``: the
    caller vouches that every p is in [0, 1] (probabilities from expit)."""
    pos = (p if in_unit else np.clip(p, 0.0, 1.0)) * m
    node = np.floor(pos, dtype=np.float64)  # (a float: pos - node needs no conversion)
    np.minimum(node, m - 1, out=node)
    j = node.astype(np.intp)
    upper = np.subtract(pos, node, out=pos)    # the fraction past the node ...
    upper *= r                                 # ... times r
    out = np.bincount(j, weights=r - upper, minlength=m + 1)
    out[1:] += np.bincount(j, weights=upper, minlength=m)
    return out


def _coarser(w: np.ndarray) -> np.ndarray:
    """The binning on the grid of half as many intervals, from this one's
    (full weighting: a coarse node takes its fine node and half of each fine
    neighbour, exactly what binning the points on the coarse grid gives)."""
    out = w[::2].copy()
    out[:-1] += 0.5 * w[1::2]
    out[1:] += 0.5 * w[1::2]
    return out


def _reflected_grid(p: np.ndarray, r: np.ndarray, m: int) -> np.ndarray:
    """Linear binning of weights r at positions p onto the grid j / m, j = 0..m,
    as the even periodic extension of period 2 (length 2m): the reflected
    kernel of a point is the wrapped Gaussian over its images +-p + 2z, and the
    images of a point at 0 or 1 coincide, hence the doubled end points."""
    return _extended(binned(p, r, m), m)


def _extended(w: np.ndarray, m: int) -> np.ndarray:
    ext = np.concatenate([w, w[-2:0:-1]])
    ext[0] *= 2
    ext[m] *= 2
    return ext


def _wrapped_gaussian_dft(m: int, sigma: float) -> npt.NDArray[np.float64]:
    """The real DFT (``rfft``) of the Gaussian density of width sigma wrapped on
    the circle of length 2, sampled at the 2m grid offsets j / m.

    The wrapped Gaussian's Fourier coefficients are exp(-(pi k sigma)^2 / 2) / 2,
    so the DFT of its 2m samples is m * sum_l exp(-(pi (q + 2 m l) sigma)^2 / 2);
    with at least 40 grid points per sigma every alias term l != 0 is below
    exp(-(40 pi)^2 / 2) and vanishes in float64.
    """
    q = np.arange(m + 1, dtype=np.float64)
    return m * np.exp(-0.5 * (np.pi * sigma * q) ** 2)


class _Smoother:
    """Binned residuals per grid size, so that the bandwidth search bins once per grid."""

    p: Any              # the confidences (None when built from binned residuals)
    _fine: np.ndarray   # the residuals binned on the finest grid (from_binned only)

    def __init__(self, p: npt.ArrayLike, o: npt.ArrayLike | None = None) -> None:
        """Weights (o_i - p_i) / n, or 1 / n without outcomes (the density)."""
        self.p = np.asarray(p, dtype=np.float64).ravel()
        n = max(self.p.size, 1)
        self.r = (np.full(self.p.size, 1.0 / n) if o is None
                  else (np.asarray(o, dtype=np.float64).ravel() - self.p) / n)
        self._grids: dict[int, np.ndarray] = {}

    @classmethod
    def from_binned(cls, w: npt.ArrayLike) -> _Smoother:
        """A smoother from residuals already binned on the :data:`FINEST_GRID`
        (:func:`binned` of (o - p) / n, summed over blocks of rows)."""
        sm = cls(np.empty(0))
        sm._fine = np.asarray(w, dtype=np.float64)
        sm.p = None
        return sm

    def grid(self, sigma: float) -> tuple[int, np.ndarray]:
        need = max(_SMOOTH_MIN_GRID, int(np.ceil(_SMOOTH_PTS_PER_SIGMA / sigma)))
        m = 1 << int(np.ceil(np.log2(need)))
        if m not in self._grids:
            fine = getattr(self, "_fine", None)
            if fine is None:
                ext = _reflected_grid(self.p, self.r, m)
            else:
                w = fine
                while w.size - 1 > m:
                    w = _coarser(w)
                ext = _extended(w, m)
            self._grids[m] = np.fft.rfft(ext)
        return m, self._grids[m]

    def curve(self, sigma: float) -> tuple[npt.NDArray[np.float64], np.ndarray]:
        """t = j / m and g(t) = mean_i K_sigma(t, p_i) (o_i - p_i), j = 0..m."""
        m, f = self.grid(sigma)
        g = np.fft.irfft(f * _wrapped_gaussian_dft(m, sigma), 2 * m)[:m + 1]
        return np.arange(m + 1) / m, g

    def value(self, sigma: float) -> float:
        t, g = self.curve(sigma)
        a = np.abs(g)
        return float((a.sum() - 0.5 * (a[0] + a[-1])) / (len(t) - 1))  # trapezoid on [0, 1]


def smooth_ece_at(probabilities: npt.ArrayLike, outcomes: npt.ArrayLike, sigma: float) -> float:
    """``smECE_sigma = integral_0^1 |mean_i K_sigma(t, p_i) (o_i - p_i)| dt``.

    ``K_sigma(t, p) = sum_{z in Z} phi_sigma(t - p - 2z) + phi_sigma(t + p - 2z)``
    is the Gaussian of width sigma reflected at 0 and 1 (a density in t on
    [0, 1] for every p).  Written as the kernel-smoothed residual r(t) times
    the kernel density estimate d(t), it is the integral of |r(t)| d(t): the
    ECE of the smoothed reliability curve.  Computed on a grid of at least
    40 points per sigma (linear binning, FFT convolution, trapezoid rule).
    """
    return _Smoother(probabilities, outcomes).value(float(sigma))


@overload
def smooth_ece(probabilities: npt.ArrayLike, outcomes: npt.ArrayLike,
               return_sigma: Literal[False] = False) -> float: ...
@overload
def smooth_ece(probabilities: npt.ArrayLike, outcomes: npt.ArrayLike,
               return_sigma: Literal[True]) -> tuple[float, float]: ...
def smooth_ece(probabilities: npt.ArrayLike, outcomes: npt.ArrayLike,
               return_sigma: bool = False) -> float | tuple[float, float]:
    """Smooth ECE (Blasiok & Nakkiran, ICLR 2024): :func:`smooth_ece_at` at the
    bandwidth sigma* where ``smECE_sigma* = sigma*``.

    smECE_sigma does not increase with sigma (Gaussian smoothing never
    increases an L1 norm), so the fixed point is unique; it is found by
    bisection on log sigma in [1e-3, 1] to a relative 1e-4.  When smECE_sigma <
    sigma already at sigma = 1e-3 the data are calibrated to that resolution
    and smECE at 1e-3 is returned.  With ``return_sigma`` returns
    ``(smece, sigma)``.
    """
    sm = _Smoother(probabilities, outcomes)
    if sm.p.size == 0:
        return (float("nan"), float("nan")) if return_sigma else float("nan")
    return _fixed_point(sm, return_sigma)


def smooth_ece_binned(w: npt.ArrayLike,
                      return_sigma: bool = False) -> float | tuple[float, float]:
    """:func:`smooth_ece` from the residuals (o - p) / n binned on the
    :data:`FINEST_GRID` (:func:`binned`, summed over blocks of rows): the same
    value up to float rounding, without holding the pairs."""
    return _fixed_point(_Smoother.from_binned(w), return_sigma)


def _fixed_point(sm: _Smoother, return_sigma: bool) -> float | tuple[float, float]:
    """smECE at the bandwidth where it equals the bandwidth (see :func:`smooth_ece`)."""
    lo, hi = _SMOOTH_SIGMA_MIN, 1.0
    if sm.value(lo) <= lo:
        sigma = lo
    elif sm.value(hi) >= hi:  # cannot happen for probabilities: smECE <= E|o - p| <= 1
        sigma = hi
    else:
        while hi / lo > 1 + 1e-4:
            mid = np.sqrt(lo * hi)
            if sm.value(mid) > mid:
                lo = mid
            else:
                hi = mid
        sigma = np.sqrt(lo * hi)
    v = sm.value(sigma)
    return (v, float(sigma)) if return_sigma else v


def smooth_reliability(probabilities: npt.ArrayLike, outcomes: npt.ArrayLike,
                       sigma: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The smoothed reliability curve of :func:`smooth_ece`: ``(t, r(t) + t,
    d(t))`` with r the kernel-smoothed residual and d the kernel density,
    at sigma* unless given."""
    sm = _Smoother(probabilities, outcomes)
    if sigma is None:
        sigma = smooth_ece(probabilities, outcomes, return_sigma=True)[1]
    t, g = sm.curve(sigma)
    _, d = _Smoother(sm.p).curve(sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(d > 1e-12, g / d, np.nan)
    return t, r + t, d
