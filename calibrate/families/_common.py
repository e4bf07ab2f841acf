"""Small pure helpers shared by the family modules."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ..errors import CalibrateError
from ._passes import float_dtype, scratch


def as_columns(z: npt.ArrayLike) -> np.ndarray:
    """Sigmoid-task scores as (N, C): binary (N,) becomes one column."""
    z = np.asarray(z)
    return z.reshape(-1, 1) if z.ndim == 1 else z


def unflatten(out: np.ndarray, z: npt.ArrayLike) -> np.ndarray:
    """Undo :func:`as_columns` on a result for the scores ``z``."""
    return out.reshape(-1) if np.ndim(z) == 1 else out


def sigmoid_nll(log_odds: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise binary NLL -log sigmoid(+-l): softplus(l) - y l, stably."""
    return np.logaddexp(0.0, np.where(y == 1, -log_odds, log_odds))


def log_softmax(zc: np.ndarray, slot: int = 0) -> np.ndarray:
    """Row-wise log-softmax of a chunk in its float dtype (a scratch buffer in
    ``slot`` and ``slot + 1``): x = u - log sum exp u with u = z - max z."""
    dt = float_dtype(zc.dtype)
    x = scratch(zc.shape, dt, slot)
    e = scratch(zc.shape, dt, slot + 1)
    np.subtract(zc, zc.max(axis=1, keepdims=True), out=x)
    np.exp(x, out=e)
    lse = np.log(e.sum(axis=1, keepdims=True))
    np.subtract(x, lse, out=x)
    return x


def refuse_chance(which: object = None) -> CalibrateError:
    """The refusal for scores that do not favour their labels (as the
    temperature fit words it), naming the label when there are several."""
    if which is None:
        return CalibrateError(
            "scores: expected a model better than chance, found logits that do not "
            "favour the true labels; check that labels and score columns match")
    return CalibrateError(
        f"scores: expected a model better than chance for every class, found class "
        f"{which} whose logits do not favour its positives; check the label columns")


def tup(a: npt.ArrayLike) -> tuple[float, ...]:
    """A float array as a tuple of Python floats (frozen, JSON-exact)."""
    return tuple(float(v) for v in np.ravel(a))


def col_sums(m: np.ndarray) -> npt.NDArray[np.float64]:
    """Column sums of a chunk as float64, by pairwise halving (add the bottom
    half of the rows to the top half until 16 rows remain): float32 rounding
    stays ~1e-8 relative, at the cost of one elementwise pass.  (numpy's
    axis-0 sum adds row after row, ~1e-6 off for 1000 rows, or 4x slower with
    a float64 accumulator; a BLAS product spins up BLAS threads that fight the
    pass's own threads.)"""
    if m.dtype == np.float64:
        return m.sum(axis=0)
    buf = scratch((max(m.shape[0] // 2, 1), m.shape[1]), m.dtype, 9)
    while m.shape[0] > 16:
        h = m.shape[0] // 2
        out = buf[:h]
        np.add(m[:h], m[h:2 * h], out=out)
        if m.shape[0] % 2:
            out[0] += m[2 * h]
        m = out
    return m.sum(axis=0, dtype=np.float64)


def plain(v: Any) -> Any:
    """A parameter as JSON-ready Python values (tuples become lists)."""
    if isinstance(v, tuple):
        return [plain(x) for x in v]
    return v


class ChunkMethods:
    """A fitted family's pure chunk functions as its methods: ``f.top(z)`` is
    ``top(f, z)`` of the module that defines ``f``'s class (multiclass
    families have probabilities, log_probabilities, top; sigmoid ones
    probabilities, log_odds, scores), and the family's file form.

    ``PARAMS`` names the fields that determine the map (what the threshold
    file stores); the other fields describe the fit and are None for a
    family read from a file.  ``SCORES_ARE_LOG_ODDS`` says whether a sigmoid
    family's decision score is its calibrated log-odds (else the calibrated
    probabilities are ``probabilities``, the scores only rank).
    """
    PARAMS: ClassVar[tuple] = ()
    SCORES_ARE_LOG_ODDS: ClassVar[bool] = True
    #: The family's name (each family's class sets it) and the task it was fitted
    #: for (a field of each family's dataclass).
    method: ClassVar[str]
    task: str

    def _call(self, name: str, z: npt.ArrayLike) -> Any:
        return getattr(sys.modules[type(self).__module__], name)(self, z)

    def probabilities(self, z: npt.ArrayLike) -> np.ndarray:
        return self._call("probabilities", z)

    def log_probabilities(self, z: npt.ArrayLike) -> np.ndarray:
        return self._call("log_probabilities", z)

    def top(self, z: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        return self._call("top", z)

    def log_odds(self, z: npt.ArrayLike) -> np.ndarray:
        return self._call("log_odds", z)

    def scores(self, z: npt.ArrayLike) -> np.ndarray:
        return self._call("scores", z)

    def to_dict(self) -> dict[str, Any]:
        """The method and its parameters, as the threshold file holds them
        (floats exact: a file reads back to an equal map)."""
        return {"method": self.method} | {k: plain(getattr(self, k)) for k in self.PARAMS}

    def threshold_probability(self, tau: float | None, column: int) -> float | None:
        """A per-class decision threshold as the calibrated probability it
        stands for (None: never predicted)."""
        from ..schema import to_probability
        return to_probability(tau, self.task)

    def column_thresholds(self, tau: float | None, n_columns: int) -> npt.NDArray[np.float64]:
        """The global rule's one threshold ``tau`` (in the global rule's
        space) as a threshold per scored column, in the per-class space."""
        return np.full(n_columns, np.inf if tau is None else float(tau))


#: A fitted calibration family: the base class of every family's dataclass.
Family = ChunkMethods
