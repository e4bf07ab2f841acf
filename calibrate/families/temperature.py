"""Temperature scaling as a family: p = softmax(z / T) (multiclass) or
sigmoid(z / T) per label (binary, multilabel); Guo et al., "On Calibration
of Modern Neural Networks", ICML 2017.  The fit is
:func:`calibrate.temperature.fit_temperature` (safeguarded Newton on 1/T);
this module only gives it the families' interface.  Its decision scores are
exactly those of the threshold files of version 1 (:func:`calibrate.kernels.top_scores`
and :func:`calibrate.kernels.sigmoid_scores`), and so are its probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .. import kernels
from .. import temperature as _temperature
from . import _common


@dataclass(frozen=True)
class Temperature(_common.ChunkMethods):
    """Fitted temperature(s): one T (multiclass, binary) or one per label."""
    method: ClassVar[str] = "temperature"
    PARAMS: ClassVar[tuple] = ("temperature",)
    task: str
    temperature: tuple
    status: tuple | None = None
    n_passes: int | None = None
    converged: bool | None = None

    @property
    def value(self) -> float | npt.NDArray[np.float64]:
        """T as the threshold file of version 1 holds it: a float, or an
        array of one per label (multilabel)."""
        if self.task == "multilabel":
            return np.asarray(self.temperature, dtype=np.float64)
        return float(self.temperature[0])

    @property
    def beta(self) -> np.ndarray:
        return 1.0 / np.asarray(self.temperature)


def fit(z: Any, y: Any, task: str, classes: list[str] | None = None) -> Temperature:
    """Fit by :func:`calibrate.temperature.fit_temperature`."""
    return from_result(_temperature.fit_temperature(z, y, task, classes=classes), task)


def start(z: Any, y: npt.ArrayLike) -> tuple[float, int]:
    """``(T, passes)``: the multiclass temperature fit where the other
    families start (mix, ovr-platt) or centre their penalty (vector); T = 1
    where rows whose true class has probability ~0 make every temperature
    worse than none (they can still fit, the mixture best)."""
    try:
        r = _temperature.fit_softmax_temperature(z, y, nll_before=False)
    except _temperature.WorseThanChance:
        return 1.0, 1
    return r.temperature, r.n_passes


def from_result(r: _temperature.TemperatureResult, task: str) -> Temperature:
    """The family of a :class:`calibrate.temperature.TemperatureResult`."""
    status = r.status if isinstance(r.status, list) else [r.status]
    return Temperature(task=task, temperature=_common.tup(r.temperature),
                       status=tuple(status), n_passes=r.n_passes, converged=r.converged)


def log_probabilities(fit: Temperature, z: np.ndarray) -> np.ndarray:
    """Multiclass: log softmax(z / T) per row, in the float dtype of ``z``."""
    dt = _common.float_dtype(z.dtype)
    return _common.log_softmax(np.multiply(z, dt.type(fit.beta[0]), dtype=dt), slot=4).copy()


def probabilities(fit: Temperature, z: npt.ArrayLike) -> np.ndarray:
    """softmax(z / T) (multiclass) or sigmoid(z / T_k), float dtype of ``z``:
    :func:`calibrate.kernels.proba`."""
    return kernels.proba(z, fit.task, fit.value)


def top(fit: Temperature, z: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Multiclass decision: argmax z (that of softmax(z / T), ties to the
    lowest index) and its calibrated log-probability (float64):
    :func:`calibrate.kernels.top_scores`."""
    return kernels.top_scores(z, fit.value)


def log_odds(fit: Temperature, z: npt.ArrayLike) -> np.ndarray:
    """Sigmoid tasks: z / T_k (float64): :func:`calibrate.kernels.sigmoid_scores`."""
    return kernels.sigmoid_scores(z, fit.value)


scores = log_odds
