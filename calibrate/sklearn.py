"""scikit-learn integration: calibration and precision thresholds for a fitted classifier.

Needs scikit-learn (``pip install 'calibrate-thresholds[sklearn]'``); ``import calibrate``
never imports this module or scikit-learn.

>>> clf = LogisticRegression().fit(X_train, y_train)
>>> tc = ThresholdClassifier(clf, precision=0.9).fit(X_val, y_val)
>>> tc.predict(X_test)          # class labels, or -1 where no class is sure enough
>>> tc.predict_proba(X_test)    # calibrated probabilities
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

from . import fitting, params

__all__ = ["ThresholdClassifier"]

class ThresholdClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Wrap a fitted classifier; learn a calibration (temperature scaling by
    default) and decision thresholds for a precision target from held-out data.

    ``fit(X_val, y_val)`` computes the wrapped classifier's scores on the
    held-out rows (``decision_function`` as logits, or ``predict_proba``
    converted to logits without loss: log p for several classes, log p1 -
    log p0 for two) and runs :func:`calibrate.fit` on them.  ``predict``
    then returns the class label, or ``abstain_label`` where the argmax
    class's calibrated probability is below its threshold (binary problems
    never abstain: the positive class is predicted when its probability
    reaches the threshold, the negative class otherwise).

    Parameters
    ----------
    estimator : classifier
        Already fitted on training data (``cv="prefit"``).  To keep it fitted
        through ``clone`` (grid searches, ``cross_validate``), wrap it in
        ``sklearn.frozen.FrozenEstimator``.  With ``cv`` set instead, an
        unfitted classifier is fitted here (see ``cv``).
    precision : float in (0, 1), default 0.9
        Precision target, per class (``rule="per-class"``) or over all
        predictions (``rule="global"``).
    confidence : float in (0, 1) or None, default 0.95
        Probability that the target holds on new data (Clopper-Pearson with
        fixed-sequence testing); None for the plain held-out estimate.
    rule : {"per-class", "global"}, default "per-class"
    simultaneous : bool, default False
        Make the per-class guarantee hold for all classes at once.
    method : str, default "temperature"
        The calibration family (``calibrate.fit(method=...)``): "temperature",
        for several classes "mix", "vector", "ovr-platt", for two "platt",
        "isotonic", or "auto" (the lowest 5-fold cross-validated NLL).
    response_method : {"auto", "decision_function", "predict_proba"}, default "auto"
        Which scores to calibrate; "auto" prefers ``decision_function``.
    cv : "prefit", int or cross-validation splitter, default "prefit"
        "prefit": ``estimator`` is fitted and ``X``, ``y`` given to ``fit``
        are held-out data.  Otherwise ``fit(X, y)`` gets the training data:
        the temperature and thresholds are learned from out-of-fold scores
        (``cross_val_predict``), then the classifier is refitted on all of it.
    abstain_label : default -1
        What ``predict`` returns for an abstention.  Must not be a class label.
        With string class labels, pass a string (otherwise predictions come
        back as an object array).

    Attributes
    ----------
    estimator_ : the fitted classifier whose scores are calibrated
    classes_ : ndarray, the class labels (those of ``estimator_``)
    calibrator_ : :class:`calibrate.Calibrator` (``calibrator_.save(path)``
        writes the threshold file for ``calibrate apply`` / ``ThresholdHead``)
    temperature_ : float, or None for a family other than temperature
    thresholds_ : dict, probability thresholds ``{"per_class": [...], "global": t}``
        (None: the class is never predicted)
    response_method_ : str, the scores used
    n_features_in_, feature_names_in_ : as the wrapped classifier's, when it has them
    """

    def __init__(self, estimator: Any, *, precision: float = 0.9, confidence: float | None = 0.95,
                 rule: str = "per-class", simultaneous: bool = False, method: str = "temperature",
                 response_method: str = "auto", cv: Any = "prefit", abstain_label: Any = -1
                 ) -> None:
        self.estimator = estimator
        self.precision = precision
        self.confidence = confidence
        self.rule = rule
        self.simultaneous = simultaneous
        self.method = method
        self.response_method = response_method
        self.cv = cv
        self.abstain_label = abstain_label

    # -- fitting --------------------------------------------------------------
    def _method(self, est: Any) -> str:
        if self.response_method != "auto":
            if not hasattr(est, self.response_method):
                raise ValueError(f"response_method: {type(est).__name__} has no "
                                 f"{self.response_method}")
            return self.response_method
        for m in ("decision_function", "predict_proba"):
            if hasattr(est, m):
                return m
        raise ValueError(f"estimator: expected a classifier with decision_function or "
                         f"predict_proba, found {type(est).__name__}")

    def fit(self, X: Any, y: npt.ArrayLike) -> ThresholdClassifier:
        """Learn the temperature and thresholds.

        ``X``, ``y``: held-out data (``cv="prefit"``), or training data (``cv``
        set).  Returns self.
        """
        params.validate({k: getattr(self, k) for k in params.CLASSIFIER}, params.CLASSIFIER)
        y = self._check_target(y)
        est, method, scores = self._held_out_scores(X, y)
        classes = np.asarray(est.classes_)
        if len(classes) < 2:
            raise ValueError(f"estimator: expected a classifier of at least 2 classes, "
                             f"found {len(classes)}")
        pos = self._class_index(classes, y)
        if len(classes) > 2 and self._abstain_is_a_class(classes):
            raise ValueError(f"abstain_label: {self.abstain_label!r} is one of the classes; "
                             "choose another value")
        scores = self._as_logit_input(scores, method, len(classes))
        self.calibrator_ = fitting.fit(
            scores, pos, precision=self.precision, confidence=self.confidence,
            rule=self.rule, task="binary" if len(classes) == 2 else "multiclass",
            input_kind="logits" if method == "decision_function" else "probabilities",
            classes=[str(c) for c in classes], simultaneous=self.simultaneous,
            method=self.method)
        self.estimator_ = est
        self.classes_ = classes
        self.response_method_ = method
        t: Any = self.calibrator_.temperature   # one float (binary, multiclass) or None
        self.temperature_ = None if t is None else float(t)
        self.thresholds_ = self.calibrator_.thresholds
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(est, attr):
                setattr(self, attr, getattr(est, attr))
        return self

    @staticmethod
    def _check_target(y: npt.ArrayLike) -> np.ndarray:
        target = type_of_target(y, input_name="y")
        if target == "unknown":
            raise ValueError(f"y: Unknown label type: expected class labels, found dtype "
                             f"{np.asarray(y).dtype} values sklearn cannot classify")
        if target not in ("binary", "multiclass"):
            raise ValueError(f"y: expected binary or multiclass labels, found {target} "
                             "(multilabel targets are not supported by ThresholdClassifier)")
        return column_or_1d(y, warn=True)

    def _held_out_scores(self, X: Any, y: np.ndarray) -> tuple[Any, str, Any]:
        """(fitted classifier, response method, its scores of the held-out rows):
        the wrapped classifier's own (prefit), or out-of-fold ones (``cv`` set)."""
        if not isinstance(self.cv, str):
            from sklearn.model_selection import cross_val_predict
            method = self._method(self.estimator)
            scores = cross_val_predict(clone(self.estimator), X, y, cv=self.cv, method=method)
            return clone(self.estimator).fit(X, y), method, scores
        if self.cv != "prefit":
            raise ValueError(f"cv: expected 'prefit', an int or a splitter, found {self.cv!r}")
        try:
            check_is_fitted(self.estimator)
        except Exception as exc:  # NotFittedError, TypeError for non-estimators
            raise type(exc)(
                f"{exc} ThresholdClassifier with cv='prefit' wraps a fitted classifier "
                "(wrap it in sklearn.frozen.FrozenEstimator to keep it fitted through "
                "clone), or set cv to fit it here with out-of-fold calibration.") from exc
        method = self._method(self.estimator)
        return self.estimator, method, getattr(self.estimator, method)(X)

    @staticmethod
    def _class_index(classes: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        """Each label's index in ``classes``, refusing labels the classifier never saw."""
        try:
            pos = np.searchsorted(classes, y)
            known = (pos < len(classes)) & (classes[np.minimum(pos, len(classes) - 1)] == y)
        except TypeError:  # e.g. string labels for a classifier fitted on numbers
            pos, known = None, np.zeros(len(y), bool)
        if not known.all():
            raise ValueError(f"y: expected labels among the estimator's classes_ "
                             f"{classes.tolist()}, found {y[~known][0].tolist()!r}")
        return pos

    def _abstain_is_a_class(self, classes: np.ndarray) -> bool:
        return bool(np.any(classes == self.abstain_label))

    @staticmethod
    def _as_logit_input(scores: npt.ArrayLike, method: str, n_classes: int) -> np.ndarray:
        s = np.asarray(scores)
        if s.dtype.kind not in "biuf":
            s = s.astype(np.float64)
        if method == "decision_function" and n_classes == 2 and s.ndim == 2 and s.shape[1] == 1:
            s = s[:, 0]
        return s

    # -- predicting -----------------------------------------------------------
    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "calibrator_")
        s = getattr(self.estimator_, self.response_method_)(X)
        return self._as_logit_input(s, self.response_method_, len(self.classes_))

    def _output_dtype(self) -> Any:
        c, a = self.classes_.dtype, self.abstain_label
        if c.kind in "US":
            return np.result_type(c, np.asarray(a).dtype) if isinstance(a, str) else object
        if isinstance(a, (numbers.Number, np.number)) and not isinstance(a, bool):
            return np.result_type(c, np.asarray(a).dtype)
        return object

    def predict(self, X: Any) -> np.ndarray:
        """Class labels; ``abstain_label`` where no class reaches its threshold."""
        check_is_fitted(self, "calibrator_")
        d = self.calibrator_.predict(self._scores(X))
        if self.calibrator_.task == "binary":
            return self.classes_[d]
        out = np.empty(d.shape, dtype=self._output_dtype())
        keep = d >= 0
        out[keep] = self.classes_[d[keep]]
        out[~keep] = self.abstain_label
        return out

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of :meth:`predict`: the (weighted) share of rows predicted as
        their label, an abstention counting as an error.  Compared element by
        element, so string labels with a numeric ``abstain_label`` (predictions
        an object array) score too (scikit-learn's accuracy refuses mixed types)."""
        pred = self.predict(X)
        y = np.asarray(y)
        if y.shape != pred.shape:
            raise ValueError(f"y: expected {pred.shape[0]} labels, one per row of X, "
                             f"found shape {y.shape}")
        right = np.array([a == b for a, b in zip(pred.tolist(), y.tolist(), strict=True)],
                         dtype=bool)
        return float(np.average(right, weights=sample_weight))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities, one column per class of ``classes_``."""
        check_is_fitted(self, "calibrator_")
        p = self.calibrator_.predict_proba(self._scores(X))
        if self.calibrator_.task == "binary":
            p = np.stack([1.0 - p, p], axis=1)
        return p

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import get_tags
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.classifier_tags.multi_label = False
        return tags
