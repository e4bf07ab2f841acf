"""calibrate.fit / predict / predict_proba as a pipeline uses them."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import special

import calibrate
from calibrate import CalibrateError
from conftest import make_multiclass, make_multilabel


def test_multiclass_end_to_end():
    z, y = make_multiclass(n=4000, seed=21)
    cal = calibrate.fit(z, y, precision=0.9, confidence=0.95)
    assert cal.task == "multiclass" and cal.input_kind == "logits"
    assert abs(cal.temperature - 2.5) / 2.5 < 0.05          # sample made with T = 2.5
    assert cal.summary["nll"]["after"] < cal.summary["nll"]["before"]
    assert cal.summary["ece"]["after"] < cal.summary["ece"]["before"]
    d = cal.predict(z)
    assert d.dtype == np.int64 and d.min() >= -1 and d.max() < 10
    p = cal.predict_proba(z)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, special.softmax(z.astype(np.float64) / cal.temperature, axis=1),
                               atol=1e-6)
    # the decision rule: argmax, then that class's threshold
    t = np.array([np.inf if v is None else v for v in cal.thresholds["per_class"]])
    k = z.argmax(1)
    conf = p.max(1).astype(np.float64)
    far = np.abs(conf - t[k]) > 1e-6
    assert np.array_equal(d[far], np.where(conf[far] >= t[k][far], k[far], -1))


def test_probabilities_in_give_the_same_result_as_logits():
    z, y = make_multiclass(n=3000, seed=22, dtype=np.float64)
    a = calibrate.fit(z, y)
    b = calibrate.fit(special.softmax(z, axis=1), y)
    assert b.input_kind == "probabilities"
    assert b.temperature == pytest.approx(a.temperature, rel=1e-6)
    assert np.array_equal(a.predict(z), b.predict(special.softmax(z, axis=1)))


def test_global_rule_is_selective_accuracy():
    z, y = make_multiclass(n=4000, seed=23)
    cal = calibrate.fit(z, y, rule="global", confidence=None)
    d = cal.predict(z)
    kept = d >= 0
    assert (d[kept] == y[kept]).mean() >= 0.9
    assert kept.mean() == pytest.approx(cal.summary["global"]["coverage"])
    per = cal.predict(z, rule="per-class")
    assert not np.array_equal(per, d)


def test_multilabel_each_class_on_its_own():
    z, y = make_multilabel(n=4000, seed=24)
    cal = calibrate.fit(z, y, confidence=None)
    assert cal.task == "multilabel" and len(cal.temperature) == 3
    d = cal.predict(z)
    assert d.dtype == bool and d.shape == z.shape
    for k in range(3):
        assert (y[d[:, k], k] == 1).mean() >= 0.9
    dg = cal.predict(z, rule="global")
    assert (y[dg] == 1).mean() >= 0.9                  # micro precision


def test_unreachable_class_is_never_predicted():
    z, y = make_multiclass(n=3000, seed=25)
    y = y.copy()
    rng = np.random.default_rng(0)
    noisy = (z.argmax(1) == 3)
    y[noisy] = rng.integers(0, 10, noisy.sum())           # class 3 predictions are noise
    cal = calibrate.fit(z, y, confidence=None)
    assert cal.thresholds["per_class"][3] is None
    assert cal.summary["per_class"][3]["status"] == "unreachable"
    assert not (cal.predict(z) == 3).any()


def test_torch_tensors_accepted():
    torch = pytest.importorskip("torch")
    z, y = make_multiclass(n=2000, seed=26)
    a = calibrate.fit(z, y)
    b = calibrate.fit(torch.from_numpy(z), torch.from_numpy(y))
    assert a.temperature == b.temperature
    assert np.array_equal(a.predict(z), b.predict(torch.from_numpy(z)))


@pytest.mark.parametrize("kw, message", [
    ({"precision": 1.0}, "precision: expected a number strictly between 0 and 1, found 1.0"),
    ({"precision": 0}, "precision: expected"),
    ({"confidence": 1.5}, "confidence: expected"),
    ({"rule": "max"}, "rule: expected per-class or global, found 'max'"),
    ({"task": "ranking"}, "task: expected one of auto"),
    ({"input_kind": "odds"}, "input: expected one of auto"),
    ({"classes": ["a", "b"]}, "classes: expected 10 class names for multiclass scores, found 2"),
])
def test_bad_parameters(kw, message):
    z, y = make_multiclass(n=200, seed=27)
    with pytest.raises(CalibrateError) as e:
        calibrate.fit(z, y, **kw)
    assert message in str(e.value)


def test_import_loads_no_heavy_dependency():
    code = ("import sys, calibrate, calibrate_cli.main; "
            "heavy = {m.split('.')[0] for m in sys.modules} & {'torch', 'sklearn', 'matplotlib'}; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("call, message", [
    (lambda z, y: calibrate.guarantee.lower_bound(11, 10, 0.95),
     "n_correct: expected counts from 0 to n"),
    (lambda z, y: calibrate.guarantee.lower_bound(5, 10, 2.0),
     "confidence: expected a number strictly between 0 and 1, found 2.0"),
    (lambda z, y: calibrate.metrics.ece(np.random.rand(10), np.zeros(5)),
     r"outcomes: expected one per probability \(10\), found 5"),
    (lambda z, y: calibrate.metrics.ece(np.array([1.5, 0.2]), np.ones(2)),
     r"probabilities: expected values in \[0, 1\], found values from 0.2 to 1.5"),
    (lambda z, y: calibrate.metrics.ece(np.random.rand(4), np.ones(4), n_bins=0),
     "n_bins: expected an integer >= 1, found 0"),
    (lambda z, y: calibrate.thresholds.search(np.zeros(3), np.zeros(4, bool), 0.9),
     r"correct: expected one per score \(3\), found 4"),
    (lambda z, y: calibrate.thresholds.search(np.arange(9.0), np.ones(9, bool), -0.5),
     "precision: expected a number strictly between 0 and 1"),
    (lambda z, y: calibrate.thresholds.search(np.full(9, np.nan), np.ones(9, bool), 0.9),
     "scores: expected scores that are numbers, found NaN"),
    (lambda z, y: calibrate.temperature.fit_temperature(z, y[:10], "multiclass"),
     r"labels: expected 3000 labels, one per score row, found shape \(10,\)"),
    (lambda z, y: calibrate.temperature.fit_temperature(z, y + 3, "multiclass"),
     r"labels: expected class ids \(N,\) in \[0, 10\)"),
    (lambda z, y: calibrate.temperature.fit_temperature(z, y, "foo"),
     "task: expected one of multiclass, binary, multilabel, found 'foo'"),
    (lambda z, y: calibrate.families.fit("vector", z, y[:10], "multiclass"),
     "labels: expected 3000 labels"),
    (lambda z, y: calibrate.families.auto(z, y[:10], "multiclass"), "labels: expected 3000"),
    (lambda z, y: calibrate.rules.top_scores(z, 0.0),
     "temperature: expected a positive finite number, found 0.0"),
    (lambda z, y: calibrate.rules.top_scores(z[0], 1.0),
     r"logits: expected multiclass logits of shape \(N, C\), found shape \(10,\)"),
])
def test_building_blocks_refuse_bad_arguments_by_name(call, message):
    # they raised IndexError, ZeroDivisionError or returned NaN / "accept all"
    import calibrate.families
    import calibrate.guarantee
    import calibrate.rules
    import calibrate.temperature
    import calibrate.thresholds
    z, y = make_multiclass(n=3000)
    with pytest.raises(calibrate.CalibrateError, match="^" + message):
        call(z, y)


def test_setup_cfg_installs_every_package():
    # the Quick start's plain `pip install .` left out calibrate.backends and
    # calibrate.families (an editable install, as the tests use, hid it)
    import configparser
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    listed = {p.strip() for p in cfg["options"]["packages"].replace("\n", ",").split(",")
              if p.strip()}
    found = {".".join(p.parent.relative_to(root).parts)
             for p in (root / "calibrate").rglob("__init__.py")} | {"calibrate_cli"}
    assert found == listed
