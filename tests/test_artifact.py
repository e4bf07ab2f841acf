"""The threshold file: bit-exact floats, exact reproduction, refusals."""

import json
import warnings

import numpy as np
import pytest

import calibrate
from calibrate import CalibrateError
from calibrate.artifact import Calibrator
from conftest import make_binary, make_multiclass, make_multilabel


@pytest.mark.parametrize("make", [make_multiclass, make_binary, make_multilabel])
def test_round_trip_is_exact(tmp_path, make):
    z, y = make(n=2000, seed=11)
    cal = calibrate.fit(z, y, confidence=0.9)
    path = tmp_path / "t.json"
    cal.save(path)
    back = calibrate.load(path)
    assert np.array_equal(np.asarray(back.temperature), np.asarray(cal.temperature))
    assert back.decision_thresholds == cal.decision_thresholds   # bit for bit
    assert back.thresholds == cal.thresholds
    assert np.array_equal(back.predict(z), cal.predict(z))
    assert back.to_dict() == json.loads(path.read_text())


def test_applying_the_file_reproduces_fitted_decisions(tmp_path):
    z, y = make_multiclass(n=3000, seed=12)
    cal = calibrate.fit(z, y, confidence=None)
    cal.save(tmp_path / "t.json")
    d = calibrate.load(tmp_path / "t.json").predict(z)
    for c, row in enumerate(cal.summary["per_class"]):
        # the decisions on the held-out set are exactly those the summary counted
        assert int((d == c).sum()) == row["predicted"]
        if row["predicted"]:
            assert (y[d == c] == c).mean() == pytest.approx(row["precision"])
            assert row["precision"] >= 0.9


def test_file_fields(tmp_path):
    z, y = make_multiclass(n=1000, seed=13)
    cal = calibrate.fit(z, y, classes=[f"c{i}" for i in range(10)])
    cal.save(tmp_path / "t.json")
    d = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert d["schema_version"] == 1
    assert d["task"] == "multiclass" and d["input_kind"] == "logits"
    assert d["classes"][3] == "c3" and d["abstain_label"] == -1
    assert d["decision_thresholds"]["space"] == "log-probability"
    assert d["target"] == {"precision": 0.9, "confidence": 0.95, "simultaneous": False}
    for p, lp in zip(d["thresholds"]["per_class"], d["decision_thresholds"]["per_class"],
                     strict=True):
        assert (p is None) == (lp is None)
        if p is not None:
            assert p == pytest.approx(np.exp(lp))


def _write(tmp_path, d):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(d) if not isinstance(d, str) else d)
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema_version=99),
     "expected schema_version 1 or 2, found schema_version 99"),
    (lambda d: d.pop("schema_version"), "expected a 'schema_version' field"),
    (lambda d: d.pop("task"), "expected a 'task' field, found none"),
    (lambda d: d.pop("temperature"), "expected a 'temperature' field"),
    (lambda d: d.update(task="regression"), "expected task multiclass"),
    (lambda d: d["decision_thresholds"]["per_class"].pop(), "expected 10 per-class thresholds"),
    (lambda d: d.update(temperature=-1.0), "positive finite temperatures"),
    (lambda d: d.update(temperature=True), "positive finite temperatures"),
    (lambda d: d.update(temperature=1e-320), "positive finite temperatures"),
    (lambda d: d.update(target=5), "'target' as an object"),
    (lambda d: d.update(target={}), "'target' as an object"),
    (lambda d: d["target"].update(precision=1.5), "target.precision: expected a number"),
    (lambda d: d["target"].update(simultaneous="yes"), "target.simultaneous true or false"),
    (lambda d: d["decision_thresholds"].update({"global": True}), "finite numbers or null"),
    (lambda d: d["thresholds"]["per_class"].__setitem__(0, 0.99),
     "thresholds.per_class[0] to match decision_thresholds.per_class[0]"),
    (lambda d: d["decision_thresholds"].update({"global": "high"}), "numbers or null"),
])
def test_malformed_files_refused(tmp_path, mutate, message):
    z, y = make_multiclass(n=500, seed=14)
    d = calibrate.fit(z, y).to_dict()
    mutate(d)
    with pytest.raises(CalibrateError, match="threshold file") as e:
        calibrate.load(_write(tmp_path, d))
    assert message in str(e.value)


def test_huge_numbers_refused(tmp_path):
    z, y = make_multiclass(n=500, seed=14)
    text = json.dumps(calibrate.fit(z, y).to_dict())
    for bad in ('"temperature": 1e400', '"temperature": ' + "9" * 400):
        fitted = json.dumps(calibrate.fit(z, y).to_dict()["temperature"])
        t = text.replace('"temperature": ' + fitted, bad, 1)
        with pytest.raises(CalibrateError, match="positive finite temperatures"):
            calibrate.load(_write(tmp_path, t))


@pytest.mark.parametrize("text", ["{", "", '{"schema_version": NaN}', "\xff"])
def test_broken_json_refused(tmp_path, text):
    path = tmp_path / "t.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(CalibrateError, match="expected valid JSON"):
        calibrate.load(path)


def test_class_count_mismatch_refused():
    z, y = make_multiclass(n=500, seed=15)
    cal = calibrate.fit(z, y)
    with pytest.raises(CalibrateError,
                       match="expected 10 score columns, as in the threshold file, found 5"):
        cal.predict(z[:, :5])


def test_save_is_atomic_and_leaves_nothing_behind(tmp_path):
    z, y = make_multiclass(n=500, seed=16)
    cal = calibrate.fit(z, y)
    cal.save(tmp_path / "t.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_from_dict_rejects_non_object():
    with pytest.raises(CalibrateError, match="expected a JSON object, found list"):
        Calibrator.from_dict([1, 2])


def test_softmax_probabilities_given_to_a_file_fitted_on_logits_are_refused():
    # the file's input kind is the default at apply, but rows in [0, 1] summing to
    # 1 are never logits: applied as such they gave "0 predicted", exit 0
    from scipy import special
    z, y = make_multiclass(n=3000)
    cal = calibrate.fit(z, y, confidence=None)
    p = special.softmax(z.astype(np.float64), axis=1)
    with pytest.raises(CalibrateError, match=r"^scores: expected logits, as the threshold "
                       r"file was fitted on, found rows in \[0, 1\] summing to 1.*"
                       r"--input probabilities"):
        cal.predict(p)
    assert np.array_equal(cal.predict(p, input_kind="probabilities"), cal.predict(z))
    cal.predict(p, input_kind="logits")                     # said so: taken as given
    zb, yb = make_binary(n=3000)
    two = np.stack([special.expit(-zb.astype(np.float64)), special.expit(zb)], axis=1)
    with pytest.raises(CalibrateError, match="expected logits"):
        calibrate.fit(zb, yb).predict(two)


def test_sigmoid_scores_all_in_the_unit_interval_given_to_a_logits_file_warn():
    from scipy import special
    z, y = make_multilabel(n=3000)
    cal = calibrate.fit(z, y, confidence=None)
    with pytest.warns(calibrate.scores.InputKindWarning, match="yet read as logits"):
        cal.predict(special.expit(z))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal.predict(special.expit(z[:5]))           # a few logits can all lie there
        cal.predict(z)


def test_rounded_probabilities_given_to_a_logits_file_are_refused_too():
    from scipy import special
    z, y = make_multiclass(n=3000)
    cal = calibrate.fit(z, y, confidence=None)
    p = np.round(special.softmax(z.astype(np.float64), axis=1), 2)
    with pytest.raises(CalibrateError, match=r"expected logits, as the threshold file was "
                       r"fitted on, found values all within \[0, 1\].*--input probabilities"):
        cal.predict(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (cal.predict(p, input_kind="probabilities") == cal.predict(z)).mean() > 0.9
