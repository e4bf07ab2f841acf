"""Every calibration family on the real entry points: ``calibrate.fit(method=)``,
the threshold file (version 2), ``calibrate.load(...).predict``, ``calibrate
apply``, ``ThresholdHead`` and ``ThresholdClassifier`` give the same decisions;
and what the summary says about the families (the cross-validation, the hint,
a calibration worse than none, the global rule of isotonic)."""

import json

import numpy as np
import pytest
from scipy import special

import calibrate
from calibrate import families, fitting
from calibrate.errors import CalibrateError
from tests.conftest import make_multiclass
from tests.test_cli import invoke

CASES = [(t, m) for t in ("multiclass", "binary", "multilabel") for m in families.methods(t)]


def offset_data(task, n, seed):
    """Logits miscalibrated by a scale and an offset per label (binary,
    multilabel), or per-class scales (multiclass): no family is exact."""
    rng = np.random.default_rng(seed)
    if task == "multiclass":
        g = rng.normal(0, 3, (n, 5))
        a = np.linspace(0.5, 1.5, 5)
        p = special.softmax(a * special.log_softmax(g, axis=1), axis=1)
        y = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
        return (2.0 * g).astype(np.float32), y
    c = 1 if task == "binary" else 3
    h = rng.normal(0, 2, (n, c))
    y = (rng.random((n, c)) < special.expit(h)).astype(np.int64)
    z = (1.5 * h + np.linspace(1.0, -1.0, c)).astype(np.float32)
    return (z[:, 0], y[:, 0]) if task == "binary" else (z, y)


@pytest.fixture(scope="module")
def data():
    return {t: (offset_data(t, 1500, 1), offset_data(t, 1000, 2))
            for t in ("multiclass", "binary", "multilabel")}


def scores_are_the_input(n_classes):
    """A fitted scikit-learn classifier whose decision_function returns its input."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class ScoresAreTheInput(ClassifierMixin, BaseEstimator):
        def __init__(self, n_classes=2):
            self.n_classes = n_classes

        def fit(self, X, y):
            self.classes_ = np.arange(self.n_classes)
            return self

        def decision_function(self, X):
            return np.asarray(X)
    return ScoresAreTheInput(n_classes).fit(None, None)


@pytest.mark.parametrize("task, method", CASES)
def test_every_family_decides_alike_everywhere(data, tmp_path, task, method):
    torch = pytest.importorskip("torch")
    from calibrate.torch import ThresholdHead
    (z, y), (zt, _) = data[task]
    cal = calibrate.fit(z, y, method=method)
    assert cal.method == method and cal.fit_summary.method == method
    cal.save(tmp_path / "t.json")
    loaded = calibrate.load(tmp_path / "t.json")
    assert loaded.calibrator.to_dict() == cal.calibrator.to_dict()
    # the command line fits the same file from the same data, and applies it alike
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "zt.npy", zt)
    invoke(["fit", tmp_path / "z.npy", "--labels", tmp_path / "y.npy", "--method", method,
            "-o", tmp_path / "cli.json"])
    from_cli = calibrate.load(tmp_path / "cli.json")
    assert from_cli.calibrator.to_dict() == cal.calibrator.to_dict()
    assert from_cli.decision_thresholds == cal.decision_thresholds
    for rule in ("per-class", "global"):
        want = cal.predict(zt, rule=rule)
        assert np.array_equal(loaded.predict(zt, rule=rule), want)
        invoke(["apply", tmp_path / "cli.json", tmp_path / "zt.npy", "--rule", rule,
                "-o", tmp_path / "d.npy"])
        assert np.array_equal(np.load(tmp_path / "d.npy"), want)
        d, p = ThresholdHead(tmp_path / "t.json", rule=rule)(torch.from_numpy(zt))
        assert np.array_equal(d.numpy(), want)
        np.testing.assert_allclose(p.numpy(), cal.predict_proba(zt), rtol=1e-5, atol=1e-6)
    assert np.array_equal(loaded.predict_proba(zt), cal.predict_proba(zt))
    if task != "multilabel":
        from calibrate.sklearn import ThresholdClassifier
        n_cls = 2 if task == "binary" else z.shape[1]
        tc = ThresholdClassifier(scores_are_the_input(n_cls), method=method).fit(z, y)
        assert tc.calibrator_.calibrator.to_dict() == cal.calibrator.to_dict()
        assert np.array_equal(tc.predict(zt), cal.predict(zt))
        assert (tc.temperature_ is None) == (method != "temperature")


@pytest.mark.parametrize("task, method", [c for c in CASES if c[1] != "temperature"])
def test_version_2_files_read_back_bit_for_bit(data, task, method):
    (z, y), _ = data[task]
    cal = calibrate.fit(z, y, method=method)
    d = cal.to_dict()
    assert d["schema_version"] == 2 and "temperature" not in d
    assert d["calibrator"]["method"] == method
    text = calibrate.schema.dumps(cal)
    again = calibrate.Calibrator.from_dict(json.loads(text))
    assert calibrate.schema.dumps(again) == text           # every float exact
    assert again.calibrator.to_dict() == cal.calibrator.to_dict()
    space = {"multiclass": "log-probability"}.get(
        task, "model-logit" if method == "isotonic" else "logit")
    assert d["decision_thresholds"]["space"] == space


def test_temperature_files_stay_version_1(data):
    (z, y), _ = data["binary"]
    d = calibrate.fit(z, y).to_dict()
    assert d["schema_version"] == 1 and "calibrator" not in d and isinstance(d["temperature"],
                                                                             float)
    auto = calibrate.fit(*make_multiclass(n=1500, seed=4), method="auto")
    assert auto.method == "temperature" and auto.to_dict()["schema_version"] == 1


@pytest.mark.parametrize("task", ["binary", "multilabel"])
def test_isotonic_rules_count_on_apply_what_the_fit_counted(data, task):
    # per-class: the model's logit; global: one level of the calibrated
    # probability, applied per label where its map reaches the level
    (z, y), _ = data[task]
    cal = calibrate.fit(z, y, method="isotonic", confidence=None, precision=0.8)
    s, rep = cal.summary, calibrate.evaluate(cal, z, y)
    assert [r["predicted"] for r in rep["per_class"]] == [r["predicted"] for r in s["per_class"]]
    assert rep["global"]["predicted"] == s["global"]["predicted"] > 0
    assert rep["global"]["correct"] / rep["global"]["predicted"] == s["global"]["precision"]
    level = cal.decision_thresholds["global"]
    p = cal.predict_proba(z).astype(np.float64)
    p64 = cal.calibrator.probabilities(z.astype(np.float64)).reshape(p.shape)
    assert np.array_equal(cal.predict(z, rule="global").astype(bool),
                          p64 >= special.expit(level))
    # each label's global threshold is where its map crosses the level
    tau = cal.rule_thresholds("global")
    for k, t in enumerate(tau):
        if np.isfinite(t) and t > -1e300:
            assert cal.calibrator.threshold_probability(t, k) == pytest.approx(
                special.expit(level), rel=1e-12)


def test_isotonic_threshold_probabilities_are_the_calibrated_ones(data):
    (z, y), _ = data["multilabel"]
    cal = calibrate.fit(z, y, method="isotonic")
    f = cal.calibrator
    for k, (t, shown) in enumerate(zip(cal.decision_thresholds["per_class"],
                                       cal.thresholds["per_class"], strict=True)):
        if t is not None:
            zz = np.zeros((1, 3))
            zz[0, k] = t
            assert shown == pytest.approx(f.probabilities(zz)[0, k], rel=1e-12)


# --------------------------------------------------------------------------- the summary
def test_auto_summary_lists_every_family_the_uncalibrated_model_and_the_choice():
    z, y = offset_data("binary", 3000, 5)
    s = calibrate.fit(z, y, method="auto").summary
    cv = s["cross_validation"]
    assert cv["choice"] == s["method"] == "platt" and s["calibration"]["chosen_by"] == "auto"
    assert [r["method"] for r in cv["families"]] == list(families.SIGMOID)
    best = min(r["cv_nll"] for r in cv["families"])
    assert cv["families"][1]["cv_nll"] == best
    assert cv["uncalibrated"]["cv_nll"] > best and cv["folds"] == 5 and cv["rows"] == 3000


def test_the_default_fit_hints_at_a_clearly_better_family():
    z, y = offset_data("binary", 3000, 6)
    notes = calibrate.fit(z, y).summary["notes"]
    assert len(notes) == 1 and notes[0].startswith("hint: method platt fits these data clearly "
                                                   "better (5-fold cross-validated NLL ")
    out = invoke(["fit", "--help"]).stdout
    assert "--method" in out and "--groups" in out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_hint_or_warning_where_the_temperature_is_right(seed):
    z, y = make_multiclass(seed=seed, n=3000)
    s = calibrate.fit(z, y).summary
    assert s["notes"] == [] and s["cross_validation"]["choice"] in families.MULTICLASS


def test_a_calibration_worse_than_none_is_said():
    # calibrated logits, and a vector scaling fitted on 60 rows of 10 classes:
    # its out-of-fold NLL is worse than leaving the model alone
    rng = np.random.default_rng(0)
    g = rng.normal(0, 1.0, (60, 10))
    y = (special.softmax(g, axis=1).cumsum(axis=1) > rng.random((60, 1))).argmax(axis=1)
    s = calibrate.fit(g, y, method="vector", confidence=None).summary
    base = s["cross_validation"]["uncalibrated"]
    vec = next(r for r in s["cross_validation"]["families"] if r["method"] == "vector")
    assert vec["cv_nll"] > base["cv_nll"] and vec["cv_ece"] > base["cv_ece"]
    assert (f"warning: vector makes the cross-validated NLL {vec['cv_nll']:.4f} vs "
            f"{base['cv_nll']:.4f} and ECE {100 * vec['cv_ece']:.2f}% vs "
            f"{100 * base['cv_ece']:.2f}% worse than no calibration at all") in s["notes"]


def test_large_data_skip_the_comparison(monkeypatch):
    z, y = make_multiclass(n=2000, seed=8)
    monkeypatch.setattr(fitting, "COMPARE_ELEMENTS", 10_000)
    s = calibrate.fit(z, y).summary
    assert "choice" not in s["cross_validation"]
    assert s["cross_validation"]["skipped"].startswith("20,000 scores, more than 10,000")
    assert calibrate.fit(z, y, method="auto").summary["cross_validation"]["rows"] == 2000


def test_accuracy_before_and_after(data):
    (z, y), _ = data["multiclass"]
    for method in families.MULTICLASS:
        cal = calibrate.fit(z, y, method=method)
        acc = cal.summary["accuracy"]
        assert acc["before"] == np.mean(z.argmax(axis=1) == y)
        k, _ = cal.calibrator.top(z)
        assert acc["after"] == np.mean(k == y)
    assert "accuracy" not in calibrate.fit(*data["binary"][0]).summary


def test_rows_whose_true_class_has_probability_zero():
    z, y = make_multiclass(seed=2, n=3000, c=10)
    p = special.softmax(z.astype(np.float64) / 2.5, axis=1).astype(np.float32)
    bad = np.arange(0, 3000, 100)                      # 1% of rows: p_y = 0
    p[bad, y[bad]] = 0.0
    p /= p.sum(axis=1, keepdims=True)
    s = calibrate.fit(p, y).summary
    lost = s["lost_probability"]
    assert lost["count"] == 30 and lost["of"] == 3000 and lost["unit"] == "rows"
    t = lost["temperature"]
    assert t["fit_with_them"] > 1.5 and abs(t["fit_without_them"] - 1.0) < 0.1
    o = lost["nll_other_rows"]
    assert o["fit_without_them"] < o["fit_with_them"]
    note = next(n for n in s["notes"] if n.startswith("note: 30 of 3000 rows"))
    assert note.endswith("--method mix (or auto) absorbs such rows")
    assert abs(calibrate.fit(p, y, method="mix").calibrator.temperature - 1.0) < 0.1
    assert "lost_probability" not in calibrate.fit(z, y).summary     # logits: no such rows


def test_rows_that_make_every_temperature_worse_than_none():
    # probabilities of exactly 0 become logits of -87.3: 10% of such rows make
    # NLL'(0) > 0, so no temperature fits; the mixture does
    z, y = make_multiclass(seed=2, n=2000, c=10)
    p = special.softmax(z.astype(np.float64) / 2.5, axis=1)
    p[np.arange(0, 2000, 10), y[::10]] = 0.0
    p /= p.sum(axis=1, keepdims=True)
    with pytest.raises(CalibrateError, match=r"better than chance.*; 200 of 2000 rows give the "
                                             r"true class probability 0, .*--method mix \(or "
                                             r"auto\) absorbs them$"):
        calibrate.fit(p, y)
    mixed = calibrate.fit(p, y, method="mix")
    assert abs(mixed.calibrator.temperature - 1.0) < 0.2 and mixed.calibrator.weight > 0.05
    auto = calibrate.fit(p, y, method="auto")
    assert auto.method == "mix"
    assert "skipped" in auto.summary["cross_validation"]["families"][0]   # temperature


def test_probabilities_of_zero_and_one_fit_alike_in_every_float_type_and_shape():
    # 0 and 1 had logits that followed the float type (-87.3 / -708.4 for 0, 15.9 /
    # 36.0 for a sigmoid 1) and the shape (+87.3 for two softmax columns (0, 1)):
    # the same probabilities gave T = 147, 7.5 or 22 and other decisions, exit 0
    rng = np.random.default_rng(0)
    h = rng.normal(0, 2.5, 4000)
    y = (rng.random(4000) < special.expit(h)).astype(np.int64)
    p = np.clip(np.round(special.expit(1.5 * h) * 20) / 20, 0, 1)   # a forest's votes
    assert (p == 0).any() and (p == 1).any()
    fits = [calibrate.fit(s, y, task="binary", precision=0.96, confidence=None)
            for s in (p, p.astype(np.float32), np.stack([1 - p, p], 1),
                      np.stack([1 - p, p], 1).astype(np.float32))]
    for cal in fits[1:]:
        assert cal.temperature == pytest.approx(fits[0].temperature, rel=1e-6)
        for s in (p, p.astype(np.float32), np.stack([1 - p, p], 1).astype(np.float32)):
            assert np.array_equal(cal.predict(s), fits[0].predict(s))
    assert 0 < fits[0].predict(p).sum() < len(p)
    # multiclass: float32 and float64 storage of probabilities with zeros fit alike
    z, yc = make_multiclass(seed=4, n=2000, c=10)
    q = special.softmax(2.0 * z.astype(np.float64), axis=1)
    q[q < 1e-4] = 0.0
    q /= q.sum(axis=1, keepdims=True)
    t64, t32 = (calibrate.fit(q.astype(dt), yc).temperature for dt in (np.float64, np.float32))
    assert t32 == pytest.approx(t64, rel=1e-6)


def test_sigmoid_probabilities_of_zero_and_one_are_counted():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, 2000).astype(np.float32)
    y = (rng.random(2000) < p).astype(np.int64)
    p[:7], y[:7] = 0.0, 1           # a positive given probability 0
    p[7:12], y[7:12] = 1.0, 0       # a negative given probability 1
    s = calibrate.fit(p, y, input_kind="probabilities").summary
    assert s["lost_probability"]["count"] == 12


# --------------------------------------------------------------------------- groups, refusals
def test_groups_keep_whole_groups_in_one_fold(tmp_path):
    z, y = offset_data("binary", 2000, 9)
    groups = np.repeat(np.arange(200), 10)
    s = calibrate.fit(z, y, method="auto", groups=groups).summary
    assert s["cross_validation"]["grouped"] is True
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "g.npy", groups)
    invoke(["fit", tmp_path / "z.npy", "--labels", tmp_path / "y.npy", "--method", "auto",
            "--groups", tmp_path / "g.npy", "-o", tmp_path / "t.json"])
    cv = json.loads((tmp_path / "t.json").read_text())["summary"]["cross_validation"]
    assert cv == s["cross_validation"] | {"families": cv["families"]}
    assert [r["cv_nll"] for r in cv["families"]] == [r["cv_nll"] for r in
                                                     s["cross_validation"]["families"]]
    np.save(tmp_path / "g.npy", groups[:-1])
    res = invoke(["fit", tmp_path / "z.npy", "--labels", tmp_path / "y.npy", "--groups",
                  tmp_path / "g.npy", "-o", tmp_path / "t.json"], code=1)
    assert res.stderr.strip() == (f"Error: groups file '{tmp_path}/g.npy': expected one group id "
                                  "per score row (2000), found shape (1999,)")


def test_methods_that_do_not_fit_the_task_are_refused_in_one_line(tmp_path):
    z, y = offset_data("binary", 300, 1)
    with pytest.raises(CalibrateError, match=r"^method: expected one of auto, temperature, "
                                             r"platt, isotonic for a binary task, found 'mix'$"):
        calibrate.fit(z, y, method="mix")
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    res = invoke(["fit", tmp_path / "z.npy", "--labels", tmp_path / "y.npy", "--method",
                  "vector", "-o", tmp_path / "t.json"], code=1)
    assert res.stderr.strip().startswith("Error: method: expected one of auto, temperature")
    assert not (tmp_path / "t.json").exists()
    res = invoke(["fit", tmp_path / "z.npy", "--method", "spline"], code=2)
    assert "Invalid value for '--method'" in res.stderr


# --------------------------------------------------------------------------- the documentation
def _table_rows(heading):
    """The rows of the first table under ``heading`` in docs/file-format.md, as
    lists of cells."""
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "docs" / "file-format.md").read_text()
    part = text[text.index(heading):]
    rows = []
    for line in part.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows[1:]                                     # without the header


def test_file_format_documents_every_calibrator_field():
    import re
    documented = {}
    for method, fields, *_ in _table_rows("## Version 2: the calibrator"):
        documented.setdefault(method, set()).update(re.findall(r"`([^`]+)`", fields))
    assert documented == {m: set(f) for m, f in calibrate.schema.CALIBRATOR.items()}


def test_file_format_documents_the_summary_fields_of_some_fits(data, monkeypatch):
    """Fields that only some fits write: in the table "Summary fields of some
    fits", which lists exactly those (the main tables are checked against the
    sample fits by test_readme)."""
    import re

    from tests.test_readme import ROOT, _field_paths, _table_keys
    main = _table_keys(ROOT / "docs" / "file-format.md")
    listed = set()
    for _, fields, *_ in _table_rows("### Summary fields of some fits"):
        listed |= set(re.findall(r"`([^`]+)`", fields))
    files = []
    for task, method in CASES:
        (z, y), _ = data[task]
        files.append(calibrate.fit(z, y, method=method).to_dict())
    rng = np.random.default_rng(4)                    # rare classes: a shared pair
    g = rng.normal(0, 2, (2000, 5))
    g[:, 4] -= 6
    yr = (special.softmax(g, axis=1).cumsum(axis=1) > rng.random((2000, 1))).argmax(axis=1)
    files.append(calibrate.fit(g, yr, method="ovr-platt").to_dict())
    z, y = make_multiclass(seed=2, n=2000, c=10)
    p = special.softmax(z.astype(np.float64) / 2.5, axis=1).astype(np.float32)
    p[np.arange(0, 2000, 100), y[::100]] = 0.0
    files.append(calibrate.fit(p / p.sum(axis=1, keepdims=True), y).to_dict())
    monkeypatch.setattr(fitting, "COMPARE_ELEMENTS", 100)
    files.append(calibrate.fit(z, y).to_dict())
    real = set()
    for d in files:
        real |= {f for f in _field_paths(d) if not f.endswith("[]")}
    real = {f for f in real if f.startswith("summary.")}
    assert real - main == listed
