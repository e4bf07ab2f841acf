"""calibrate.sklearn.ThresholdClassifier: conventions, estimator checks, real classifiers."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import special

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from sklearn.utils.validation import _num_samples  # noqa: E402

import calibrate  # noqa: E402
from calibrate.sklearn import ThresholdClassifier  # noqa: E402

# -- sklearn's estimator checks ----------------------------------------------

class InSample:
    """One 'fold' whose test rows are its training rows.

    The checks fit on random labels.  Out-of-fold scores of random labels are
    no better than chance, which calibrate refuses by design (README:
    "a model worse than chance is refused with a message"); in-sample scores
    of a fitted logistic regression never are (its NLL at its optimum is
    below the NLL at T = infinity).  The checks are about API behaviour, so
    they run on in-sample scores.
    """

    def split(self, X, y=None, groups=None):
        n = _num_samples(X)
        yield np.arange(n), np.arange(n)

    def get_n_splits(self, X=None, y=None, groups=None):
        return 1

    def __repr__(self):
        return "InSample()"


EXPECTED_FAILED = {
    "check_classifiers_train": (
        "by design: predict applies precision-targeted thresholds (binary: positive when "
        "the calibrated probability reaches a threshold chosen for the target, not 0.5; "
        "multiclass: abstains below a class's threshold), so it is not "
        "argmax(predict_proba), which this check asserts"),
}


@parametrize_with_checks(
    [ThresholdClassifier(LogisticRegression(), cv=InSample(), confidence=None)],
    expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# -- real classifiers on sklearn's datasets -----------------------------------

def _split(loader, seed=0):
    X, y = loader(return_X_y=True)
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, test_size=0.6, random_state=seed,
                                                  stratify=y)
    X_val, X_te, y_val, y_te = train_test_split(X_rest, y_rest, test_size=0.5,
                                                random_state=seed, stratify=y_rest)
    return X_tr, y_tr, X_val, y_val, X_te, y_te


@pytest.fixture(scope="module")
def digits():
    return _split(load_digits)


@pytest.fixture(scope="module")
def cancer():
    return _split(load_breast_cancer)


def _lr(X, y):
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000)).fit(X, y)


def _mlp(X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(32,), max_iter=300, random_state=0)).fit(X, y)


@pytest.fixture(scope="module")
def digits_models(digits):
    X_tr, y_tr = digits[:2]
    return {"lr": _lr(X_tr, y_tr), "mlp": _mlp(X_tr, y_tr)}


@pytest.fixture(scope="module")
def cancer_models(cancer):
    X_tr, y_tr = cancer[:2]
    return {"lr": _lr(X_tr, y_tr), "mlp": _mlp(X_tr, y_tr)}


@pytest.mark.parametrize("model, method", [("lr", "decision_function"),
                                           ("mlp", "predict_proba")])
def test_multiclass_digits(digits, digits_models, model, method):
    X_tr, y_tr, X_val, y_val, X_te, y_te = digits
    clf = digits_models[model]
    tc = ThresholdClassifier(clf, precision=0.9)
    assert tc.fit(X_val, y_val) is tc
    assert tc.response_method_ == method and tc.estimator_ is clf
    assert np.array_equal(tc.classes_, np.arange(10)) and tc.n_features_in_ == 64
    # the same as calibrate.fit on the classifier's held-out scores
    s_val = getattr(clf, method)(X_val)
    ref = calibrate.fit(s_val, y_val, precision=0.9)
    assert ref.input_kind == ("logits" if method == "decision_function" else "probabilities")
    assert tc.temperature_ == ref.temperature
    assert tc.thresholds_ == ref.thresholds
    s_te = getattr(clf, method)(X_te)
    assert np.array_equal(tc.predict(X_te), ref.predict(s_te))
    # probabilities: softmax(z / T), z = the logits behind the scores
    z = s_te if method == "decision_function" else np.log(np.maximum(s_te, np.finfo(float).tiny))
    p = tc.predict_proba(X_te)
    np.testing.assert_allclose(p, special.softmax(z / tc.temperature_, axis=1), atol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # decisions: a class label or -1; held-out precision of every class >= target
    d_val = tc.predict(X_val)
    assert set(np.unique(d_val)) <= set(range(10)) | {-1}
    for k in range(10):
        if (d_val == k).any():
            assert (y_val[d_val == k] == k).mean() >= 0.9
    d = tc.predict(X_te)
    kept = d != -1
    assert 0.5 < kept.mean() < 1.0
    assert (d[kept] == y_te[kept]).mean() >= 0.9
    assert (d[kept] == y_te[kept]).mean() > (clf.predict(X_te) == y_te).mean()


@pytest.mark.parametrize("model, method", [("lr", "decision_function"),
                                           ("mlp", "predict_proba")])
def test_binary_breast_cancer(cancer, cancer_models, model, method):
    X_tr, y_tr, X_val, y_val, X_te, y_te = cancer
    clf = cancer_models[model]
    tc = ThresholdClassifier(clf, precision=0.97, confidence=None).fit(X_val, y_val)
    assert tc.response_method_ == method and tc.calibrator_.task == "binary"
    s_val, s_te = getattr(clf, method)(X_val), getattr(clf, method)(X_te)
    if method == "predict_proba":
        # converted without loss: the log-odds log p1 - log p0
        d_val = np.log(np.maximum(s_val[:, 1], 1e-308)) - np.log(np.maximum(s_val[:, 0], 1e-308))
        d_te = np.log(np.maximum(s_te[:, 1], 1e-308)) - np.log(np.maximum(s_te[:, 0], 1e-308))
    else:
        d_val, d_te = s_val, s_te
    ref = calibrate.fit(d_val, y_val, precision=0.97, confidence=None)
    assert tc.temperature_ == pytest.approx(ref.temperature, rel=1e-9)
    pred = tc.predict(X_te)
    assert np.array_equal(pred, ref.predict(d_te))             # 0/1: never abstains
    assert set(np.unique(pred)) <= {0, 1}
    p = tc.predict_proba(X_te)
    assert p.shape == (len(X_te), 2)
    np.testing.assert_allclose(p[:, 1], special.expit(d_te / tc.temperature_), atol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    pv = tc.predict(X_val)
    assert (y_val[pv == 1] == 1).mean() >= 0.97                 # the held-out target


def test_string_labels_and_the_abstain_value(digits, digits_models):
    X_tr, y_tr, X_val, y_val, X_te, y_te = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])
    clf = _lr(X_tr[:400], names[y_tr[:400]])
    tc = ThresholdClassifier(clf, precision=0.99, abstain_label="?").fit(X_val, names[y_val])
    d = tc.predict(X_te)
    assert d.dtype.kind == "U" and "?" in d and set(d) <= set(names) | {"?"}
    assert np.array_equal(d == "?", ThresholdClassifier(clf, precision=0.99).fit(
        X_val, names[y_val]).predict(X_te) == -1)
    default = ThresholdClassifier(clf, precision=0.99).fit(X_val, names[y_val]).predict(X_te)
    assert default.dtype == object and -1 in list(default)
    with pytest.raises(ValueError, match="abstain_label: 'two' is one of the classes"):
        ThresholdClassifier(clf, abstain_label="two").fit(X_val, names[y_val])


# -- conventions ----------------------------------------------------------------

def test_get_params_set_params_clone(digits_models):
    clf = digits_models["lr"]
    tc = ThresholdClassifier(clf, precision=0.8, rule="global")
    params = tc.get_params(deep=False)
    assert params == {"estimator": clf, "precision": 0.8, "confidence": 0.95,
                      "rule": "global", "simultaneous": False, "method": "temperature",
                      "response_method": "auto", "cv": "prefit", "abstain_label": -1}
    assert tc.get_params()["estimator__logisticregression__C"] == 0.05
    assert tc.set_params(precision=0.85, estimator__logisticregression__C=0.1) is tc
    assert tc.precision == 0.85 and clf.named_steps["logisticregression"].C == 0.1
    clf.set_params(logisticregression__C=0.05)
    c = clone(tc)
    assert c is not tc and c.get_params(deep=False)["precision"] == 0.85
    assert not hasattr(c, "calibrator_")


def test_fitted_attributes_end_in_underscore(digits, digits_models):
    X_val, y_val = digits[2:4]
    tc = ThresholdClassifier(digits_models["lr"])
    before = set(vars(tc))
    tc.fit(X_val, y_val)
    new = set(vars(tc)) - before
    assert new >= {"estimator_", "classes_", "calibrator_", "temperature_", "thresholds_",
                   "response_method_", "n_features_in_"}
    assert all(a.endswith("_") for a in new)


def test_prefit_needs_a_fitted_classifier_and_frozen_survives_clone(digits, digits_models):
    X_tr, y_tr, X_val, y_val, X_te, y_te = digits
    with pytest.raises(NotFittedError, match="FrozenEstimator"):
        ThresholdClassifier(LogisticRegression()).fit(X_val, y_val)
    # clone() unfits a plain classifier inside; FrozenEstimator keeps it fitted
    plain = ThresholdClassifier(digits_models["lr"])
    with pytest.raises(NotFittedError):
        clone(plain).fit(X_val, y_val)
    frozen = ThresholdClassifier(FrozenEstimator(digits_models["lr"]))
    a = clone(frozen).fit(X_val, y_val)
    assert np.array_equal(a.predict(X_te), plain.fit(X_val, y_val).predict(X_te))
    # ... so grid searches over the target run on held-out data only
    gs = GridSearchCV(frozen, {"precision": [0.8, 0.99]}, cv=3).fit(X_val, y_val)
    assert gs.best_params_ == {"precision": 0.8}      # accuracy counts abstentions as wrong


def test_in_a_pipeline_with_out_of_fold_calibration(digits):
    X_tr, y_tr, X_val, y_val, X_te, y_te = digits
    X = np.vstack([X_tr, X_val])
    y = np.concatenate([y_tr, y_val])
    pipe = Pipeline([("scale", StandardScaler()),
                     ("thr", ThresholdClassifier(LogisticRegression(C=0.05, max_iter=2000),
                                                 cv=3, precision=0.95))])
    assert pipe.fit(X, y) is pipe
    tc = pipe.named_steps["thr"]
    assert 0.1 < tc.temperature_ < 10.0 and tc.calibrator_.summary["n"] == len(X)
    d = pipe.predict(X_te)
    kept = d != -1
    assert 0.5 < kept.mean() < 1.0 and (d[kept] == y_te[kept]).mean() >= 0.95
    assert pipe.predict_proba(X_te).shape == (len(X_te), 10)


@pytest.mark.parametrize("kw, y_fn, message", [
    ({}, lambda y: np.where(y == 3, 11, y), "y: expected labels among the estimator's classes_"),
    ({}, lambda y: np.eye(10)[y].astype(int), "multilabel targets are not supported"),
    ({"precision": 1.5}, lambda y: y, "precision: expected a number strictly between 0 and 1"),
    ({"response_method": "predict_log"}, lambda y: y, "response_method: expected one of"),
    ({"cv": "later"}, lambda y: y, "cv: expected 'prefit'"),
])
def test_bad_input_raises_value_error(digits, digits_models, kw, y_fn, message):
    X_val, y_val = digits[2:4]
    with pytest.raises(ValueError, match=message):
        ThresholdClassifier(digits_models["lr"], **kw).fit(X_val, y_fn(y_val))


def test_importing_calibrate_sklearn_does_not_import_torch():
    code = ("import sys, calibrate.sklearn; assert 'torch' not in sys.modules; "
            "assert calibrate.sklearn.ThresholdClassifier.__module__ == 'calibrate.sklearn'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_score_with_string_labels_and_the_default_abstain_label():
    # predictions mix the strings with -1 (an object array): scikit-learn's accuracy
    # raised TypeError comparing them; an abstention is an error
    from sklearn.metrics import accuracy_score
    X, y = load_digits(return_X_y=True)
    names = np.array(list("abcdefghij"))
    Xtr, Xr, ytr, yr = train_test_split(X, y, test_size=0.6, random_state=0)
    Xv, Xt, yv, yt = train_test_split(Xr, yr, test_size=0.5, random_state=0)
    est = LogisticRegression(max_iter=2000).fit(Xtr, names[ytr])
    tc = ThresholdClassifier(FrozenEstimator(est)).fit(Xv, names[yv])
    pred = tc.predict(Xt)
    assert pred.dtype == object and (pred == -1).any()
    want = float(np.mean([p == t for p, t in zip(pred, names[yt], strict=True)]))
    assert tc.score(Xt, names[yt]) == want and 0.5 < want < 1
    w = np.linspace(0.5, 2.0, len(yt))
    assert tc.score(Xt, names[yt], sample_weight=w) == pytest.approx(
        np.average([p == t for p, t in zip(pred, names[yt], strict=True)], weights=w))
    num = ThresholdClassifier(FrozenEstimator(LogisticRegression(max_iter=2000)
                                              .fit(Xtr, ytr))).fit(Xv, yv)
    assert num.score(Xt, yt) == accuracy_score(yt, num.predict(Xt))
