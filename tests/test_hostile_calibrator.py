"""The threshold file of version 2 is untrusted input too: its ``calibrator``
object (the family and its parameters) is checked field by field -- type,
booleans refused, lengths, ranges, the family's own invariants -- and each
refusal is one line from the CLI and the same message from ``calibrate.load``.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import special

import calibrate
from hostile_helpers import assert_threshold_file_refused, invoke, snapshot
from test_hostile_thresholds import _drop, _set


def _data(tmp):
    """Multilabel logits z.npy with a platt file p.json and an isotonic file
    i.json, and 10-class logits m.npy with a vector file v.json and a mix file
    x.json."""
    rng = np.random.default_rng(7)
    h = rng.normal(0, 2, (600, 3))
    y = (rng.random((600, 3)) < special.expit(h)).astype(np.int64)
    z = (1.5 * h + 1.0).astype(np.float32)
    np.save(tmp / "z.npy", z)
    calibrate.fit(z, y, method="platt", confidence=None).save(tmp / "p.json")
    calibrate.fit(z, y, method="isotonic", confidence=None).save(tmp / "i.json")
    g = rng.normal(0, 3, (600, 10))
    ym = (special.softmax(g, axis=1).cumsum(axis=1) > rng.random((600, 1))).argmax(axis=1)
    np.save(tmp / "m.npy", (2 * g).astype(np.float32))
    calibrate.fit((2 * g).astype(np.float32), ym, method="vector", confidence=None).save(
        tmp / "v.json")
    calibrate.fit((2 * g).astype(np.float32), ym, method="mix", confidence=None).save(
        tmp / "x.json")


def _call(fn):
    def edit(d):
        fn(d)
    return edit


C = "calibrator"
# (id, file, scores, edit, words in the message)
ROWS = [
    ("not-an-object", "p", "z", _set([C], [1, 2]), ["calibrator", "an object of 'method'"]),
    ("no-calibrator", "p", "z", _drop(C), ["a 'calibrator' field (schema_version 2)"]),
    ("temperature-in-v2", "p", "z", _set(["temperature"], 2.0),
     ["only the fields of schema_version 2", "'temperature'"]),
    ("method-unknown", "p", "z", _set([C, "method"], "spline"),
     ["calibrator.method", "one of temperature, platt, isotonic for a multilabel task",
      "'spline'"]),
    ("method-of-another-task", "v", "m", _set([C, "method"], "platt"),
     ["one of temperature, mix, ovr-platt, vector for a multiclass task", "'platt'"]),
    ("method-boolean", "p", "z", _set([C, "method"], True), ["calibrator.method", "true"]),
    ("missing-parameter", "p", "z", _drop(C, "b"), ["a 'b' field for method platt"]),
    ("extra-parameter", "p", "z", _set([C, "c"], [1, 2, 3]),
     ["only the fields method, a, b for method platt", "'c'"]),
    ("a-too-short", "p", "z", _set([C, "a"], [1.0, 1.0]),
     ["calibrator.a", "a list of 3 (one per scored class)"]),
    ("a-boolean", "p", "z", _set([C, "a", 1], True),
     ["calibrator.a[1]: expected a positive finite number, found true"]),
    ("a-zero", "p", "z", _set([C, "a", 0], 0.0), ["calibrator.a[0]", "a positive finite"]),
    ("a-string", "p", "z", _set([C, "a", 2], "0.5"), ["calibrator.a[2]", "'0.5'"]),
    ("b-nested", "p", "z", _set([C, "b", 0], [0.0]), ["calibrator.b[0]", "a finite number"]),
    ("b-huge-integer", "p", "z", _set([C, "b", 0], 10 ** 400), ["calibrator.b[0]"]),
    ("vector-a-length", "v", "m", _call(lambda d: d[C]["a"].pop()), ["calibrator.a",
                                                                    "a list of 10"]),
    ("mix-weight-above-1", "x", "m", _set([C, "weight"], 1.5),
     ["calibrator.weight: expected a number in [0, 1], found 1.5"]),
    ("mix-temperature-list", "x", "m", _set([C, "temperature"], [2.0]),
     ["calibrator.temperature: expected a positive finite number, found [2.0]"]),
    ("mix-temperature-zero", "x", "m", _set([C, "temperature"], 0),
     ["calibrator.temperature", "positive"]),
    ("knots-not-increasing", "i", "z", _call(lambda d: d[C]["knots"][0].reverse()),
     ["calibrator.knots[0]", "strictly increasing knots"]),
    ("knots-repeated", "i", "z", _call(lambda d: d[C]["knots"][1].__setitem__(
        1, d[C]["knots"][1][0])), ["calibrator.knots[1]", "strictly increasing"]),
    ("values-decreasing", "i", "z", _call(lambda d: d[C]["values"][2].reverse()),
     ["calibrator.values[2]", "non-decreasing values"]),
    ("values-above-1", "i", "z", _set([C, "values", 0, -1], 1.25),
     ["calibrator.values[0][", "a number in [0, 1]", "1.25"]),
    ("values-length", "i", "z", _call(lambda d: d[C]["values"][0].pop()),
     ["calibrator.values[0]: expected", "values, one per knot"]),
    ("knots-empty", "i", "z", _call(lambda d: (d[C]["knots"].__setitem__(0, []),
                                               d[C]["values"].__setitem__(0, []))),
     ["calibrator.knots[0]: expected at least one knot, found an empty list"]),
    ("knots-not-lists", "i", "z", _set([C, "knots", 0], 1.0),
     ["calibrator.knots[0]: expected a list of numbers, found 1.0"]),
    ("lo-zero", "i", "z", _set([C, "lo", 0], 0.0),
     ["calibrator.lo[0]", "strictly between 0 and 1"]),
    ("lo-above-hi", "i", "z", _set([C, "lo", 1], 0.9999999),
     ["calibrator.lo[1]", "at most hi[1]"]),
    ("space-of-temperature", "i", "z", _set(["decision_thresholds", "space"], "logit"),
     ["decision_thresholds.space", "'model-logit' for isotonic on a multilabel task"]),
    ("shown-threshold-edited", "i", "z", _set(["thresholds", "per_class", 0], 0.5),
     ["thresholds.per_class[0] to match decision_thresholds.per_class[0]",
      "in model-logit space"]),
    ("schema-version-3", "p", "z", _set(["schema_version"], 3),
     ["expected schema_version 1 or 2, found schema_version 3"]),
]


@pytest.mark.parametrize("name, scores, edit, must",
                         [pytest.param(n, s, e, m, id=i) for i, n, s, e, m in ROWS])
def test_bad_calibrator_refused(tmp_path, monkeypatch, name, scores, edit, must):
    monkeypatch.chdir(tmp_path)
    _data(tmp_path)
    d = json.loads(Path(f"{name}.json").read_text())
    edit(d)
    Path("bad.json").write_text(json.dumps(d))
    assert_threshold_file_refused(tmp_path, snapshot(tmp_path), f"{scores}.npy", "out.npy", must)


def test_the_files_themselves_load_and_apply(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _data(tmp_path)
    for name, scores in (("p", "z"), ("i", "z"), ("v", "m"), ("x", "m")):
        assert invoke(["apply", f"{name}.json", f"{scores}.npy", "-o", "d.npy"]).code == 0
        cal = calibrate.load(f"{name}.json")
        assert np.array_equal(np.load("d.npy"), cal.predict(np.load(f"{scores}.npy")))
