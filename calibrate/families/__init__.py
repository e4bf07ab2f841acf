"""Calibration families: each a frozen dataclass of fitted parameters, a pure
fit function, and pure chunk functions (numpy in, numpy out).

multiclass (logits (N, C), labels (N,)):

* ``temperature`` softmax(z / T) -- :mod:`.temperature` (Guo et al. 2017)
* ``mix``         (1 - w) softmax(z / T) + w / C -- :mod:`.mix`
* ``vector``      softmax(a * log_softmax(z) + b), penalised -- :mod:`.vector`
* ``ovr-platt``   sigmoid(a_k x_k + b_k) per class, renormalised -- :mod:`.ovr_platt`

binary (logits (N,)) and multilabel (logits (N, C), 0/1 labels (N, C)):

* ``temperature`` sigmoid(z / T) per label
* ``platt``       sigmoid(a z + b) per label -- :mod:`.platt` (Platt 1999)
* ``isotonic``    clipped piecewise-linear isotonic map -- :mod:`.isotonic`

and ``auto`` (:mod:`.crossval`): the family with the lowest cross-validated NLL.

Chunk functions of a fitted family ``f`` (also its methods):
multiclass ``f.probabilities(z)``, ``f.log_probabilities(z)`` and
``f.top(z) -> (argmax, its calibrated log-probability)``; sigmoid tasks
``f.probabilities(z)``, ``f.log_odds(z)`` (calibrated, float64) and
``f.scores(z)``, a decision score strictly increasing in each label's logit.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from ..scores import check_block_arguments
from . import isotonic, mix, ovr_platt, platt, temperature, vector
from ._common import Family, sigmoid_nll

#: Families per kind of task, simplest first (auto breaks exact ties this way).
MULTICLASS = ("temperature", "mix", "ovr-platt", "vector")
SIGMOID = ("temperature", "platt", "isotonic")

_MODULES = {"temperature": temperature, "mix": mix, "vector": vector,
            "ovr-platt": ovr_platt, "platt": platt, "isotonic": isotonic}
_CLASSES = {"temperature": temperature.Temperature, "mix": mix.Mix, "vector": vector.Vector,
            "ovr-platt": ovr_platt.OvrPlatt, "platt": platt.Platt,
            "isotonic": isotonic.Isotonic}


def methods(task: str) -> tuple[str, ...]:
    """The family names that fit ``task``."""
    return MULTICLASS if task == "multiclass" else SIGMOID


def check_method(method: str, task: str) -> str:
    """``method`` if it fits ``task``, else a :class:`CalibrateError`."""
    from ..errors import invalid
    names = methods(task)
    if method not in names + ("auto",):
        raise invalid("method", f"one of auto, {', '.join(names)} for a {task} task",
                      repr(method))
    return method


@overload
def fit(method: Literal["temperature"], z: Any, y: Any, task: str,
        temperature: float | None = None, init: Any = None, classes: Any = None,
        **options: Any) -> temperature.Temperature: ...
@overload
def fit(method: str, z: Any, y: Any, task: str, temperature: float | None = None,
        init: Any = None, classes: Any = None, **options: Any) -> Family: ...
def fit(method: str, z: Any, y: Any, task: str, temperature: float | None = None,
        init: Any = None, classes: Any = None, **options: Any) -> Family:
    """Fit family ``method`` to logits ``z`` and labels ``y`` of ``task``.

    ``temperature``: an already fitted T (multiclass families that start
    from or centre on it); ``init``: a warm start in the family's own
    parameters (see each ``fit``); ``options``: family options (``penalty``
    for vector).
    """
    check_method(method, task)
    check_block_arguments(z, y, task)
    if method == "temperature":
        return _MODULES[method].fit(z, y, task, classes=classes)
    if method == "isotonic":
        return isotonic.fit(z, y, task)
    if method == "platt":
        return platt.fit(z, y, task, init=init, classes=classes)
    return _MODULES[method].fit(z, y, temperature=temperature, init=init, **options)


def from_params(method: str, task: str, params: dict[str, Any]) -> Family:
    """A fitted family from its parameters (as :meth:`to_dict` gives them,
    already checked: see :mod:`calibrate.schema`); its fit diagnostics are None."""
    return _CLASSES[method](task=task, **params)


def identity(task: str, n_scored: int = 1) -> temperature.Temperature:
    """The uncalibrated model as a family: T = 1 (per label for multilabel)."""
    return temperature.Temperature(task, (1.0,) * (n_scored if task == "multilabel" else 1))


def temperature_of(fitted: Any) -> float | np.ndarray | None:
    """T of a temperature family as version 1 files hold it (a float, or an
    array per label), or None for another family."""
    return fitted.value if fitted.method == "temperature" else None


def describe(fitted: Any) -> dict[str, Any]:
    """What a fitted family found, for the fit summary: its parameters in
    brief (per-class ones as their range), status, passes and convergence."""
    m = fitted.method
    d = {"method": m}
    if m == "temperature":
        v = fitted.value
        d["temperature"] = v if np.ndim(v) == 0 else [float(t) for t in v]
    elif m == "mix":
        d |= {"temperature": fitted.temperature, "weight": fitted.weight}
    elif m == "platt":
        d |= {"a": list(fitted.a), "b": list(fitted.b)}
    elif m in ("vector", "ovr-platt"):
        d |= {"a_range": [min(fitted.a), max(fitted.a)], "b_range": [min(fitted.b), max(fitted.b)]}
        if m == "vector":
            d |= {"penalty": fitted.penalty, "centre_temperature": fitted.temperature}
    elif m == "isotonic":
        d["blocks"] = [len(k) for k in fitted.knots]
    for key, name in (("status", "status"), ("shared", "shared"), ("n_passes", "passes"),
                      ("converged", "converged")):
        v = getattr(fitted, key, None)
        if v is not None:
            d[name] = list(v) if isinstance(v, tuple) else v
    return d


def nll_rows(fitted: Family, z: npt.ArrayLike, y: npt.ArrayLike) -> np.ndarray:
    """Per-row NLL of labels ``y`` (float64): -log p_y (multiclass), or per
    (row, label) the binary NLL, shaped as ``z`` (sigmoid tasks)."""
    if fitted.task == "multiclass":
        lp = fitted.log_probabilities(np.asarray(z))
        return -lp[np.arange(lp.shape[0]), np.asarray(y)].astype(np.float64)
    t = fitted.log_odds(z)
    return sigmoid_nll(t, np.asarray(y).reshape(t.shape))


def confidence_pairs(fitted: Family, z: npt.ArrayLike,
                     y: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The (confidence, outcome) pairs of the task's ECE, as in
    :func:`calibrate.metrics.calibration_pairs`: multiclass (max_k p_k,
    argmax correct), binary (p, y), multilabel every (p_ik, y_ik)."""
    if fitted.task == "multiclass":
        k, logp = fitted.top(np.asarray(z))
        return np.exp(logp), (k == np.asarray(y)).astype(np.float64)
    p = fitted.probabilities(z).astype(np.float64)
    return p.ravel(), np.asarray(y, dtype=np.float64).ravel()


from .crossval import AutoResult, FamilyScore, auto, choose, cv_rows, fold_ids  # noqa: E402

__all__ = ["AutoResult", "Family", "FamilyScore", "MULTICLASS", "SIGMOID", "auto", "check_method",
           "choose", "confidence_pairs", "cv_rows", "describe", "fit", "fold_ids", "from_params",
           "identity",
           "isotonic", "methods", "mix", "nll_rows", "ovr_platt", "platt", "temperature",
           "temperature_of", "vector"]
