"""Temperature scaling as a family: p = softmax(z / T) (multiclass) or
sigmoid(z / T) per label (binary, multilabel); Guo et al., "On Calibration
of Modern Neural Networks", ICML 2017.  The fit is
:func:`calibrate.temperature.fit_temperature` (safeguarded Newton on 1/T);
this module only gives it the families' interface.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import special

from .. import temperature as _temperature
from . import _common


@dataclass(frozen=True)
class Temperature(_common.ChunkMethods):
    """Fitted temperature(s): one T (multiclass, binary) or one per label."""
    method: ClassVar[str] = "temperature"
    task: str
    temperature: tuple
    status: tuple
    n_passes: int
    converged: bool

    @property
    def beta(self):
        return 1.0 / np.asarray(self.temperature)


def fit(z, y, task, classes=None):
    """Fit by :func:`calibrate.temperature.fit_temperature`."""
    r = _temperature.fit_temperature(z, y, task, classes=classes)
    status = r.status if isinstance(r.status, list) else [r.status]
    return Temperature(task=task, temperature=_common.tup(r.temperature),
                       status=tuple(status), n_passes=r.n_passes, converged=r.converged)


def log_probabilities(fit, z):
    """Multiclass: log softmax(z / T) per row, in the float dtype of ``z``."""
    dt = _common.float_dtype(z.dtype)
    return _common.log_softmax(np.multiply(z, dt.type(fit.beta[0]), dtype=dt), slot=4).copy()


def probabilities(fit, z):
    """softmax(z / T) (multiclass) or sigmoid(z / T_k), float dtype of ``z``."""
    dt = _common.float_dtype(np.asarray(z).dtype)
    if fit.task == "multiclass":
        return np.exp(log_probabilities(fit, z))
    return special.expit(log_odds(fit, z)).astype(dt)


def top(fit, z):
    """Multiclass decision: argmax z (that of softmax(z / T), ties to the
    lowest index) and its calibrated log-probability (float64)."""
    z = np.asarray(z)
    k = z.argmax(axis=1)
    return k, _common.top_log_prob(z, k, fit.beta[0])


def log_odds(fit, z):
    """Sigmoid tasks: z / T_k (float64)."""
    zz = _common.as_columns(z).astype(np.float64)
    return _common.unflatten(zz * fit.beta, z)


scores = log_odds
