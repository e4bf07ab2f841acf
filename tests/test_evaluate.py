"""calibrate.evaluation.evaluate and ``calibrate evaluate``: a threshold file checked
on labelled data, next to what it promised."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import special, stats

import calibrate
from calibrate import CalibrateError, metrics
from calibrate.evaluation import evaluate, upper_bound
from calibrate_cli.main import cli
from conftest import make_binary, make_multiclass, make_multilabel


def invoke(args, code=0):
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    res = runner.invoke(cli, [str(a) for a in args], prog_name="calibrate")
    detail = f"args={args}\nstdout={res.stdout!r}\nstderr={res.stderr!r}\nexc={res.exception!r}"
    assert res.exception is None or isinstance(res.exception, SystemExit), detail
    assert res.exit_code == code, detail
    return res


@pytest.fixture(scope="module")
def mc():
    z, y = make_multiclass(seed=31, n=4000)
    zt, yt = make_multiclass(seed=32, n=4000)
    return calibrate.fit(z, y), z, y, zt, yt


# ------------------------------------------------------------------ the library

def test_on_its_own_held_out_data_it_reproduces_the_file(mc):
    cal, z, y, _, _ = mc
    r = evaluate(cal, z, y)
    for got, want in zip(r["per_class"], cal.summary["per_class"], strict=True):
        assert got["held_out"] == {k: want[k] for k in got["held_out"]}
        for key in ("threshold", "precision", "recall", "coverage", "support", "predicted"):
            assert got[key] == want[key], (got["class"], key)
        assert got["status"] == ("no-threshold" if want["threshold"] is None else "held")
    g, gw = r["global"], cal.summary["global"]
    for key in ("threshold", "precision", "recall", "coverage", "support", "predicted"):
        assert g[key] == gw[key], key


def test_counts_overall_and_decisions_agree_with_predict(mc):
    cal, _, _, zt, yt = mc
    r = evaluate(cal, zt, yt)
    d = cal.predict(zt)
    kept = d >= 0
    o = r["overall"]
    assert o["predicted"] == kept.sum() and o["correct"] == (d[kept] == yt[kept]).sum()
    assert o["coverage"] == kept.mean() and o["recall"] == o["correct"] / 4000
    for k, row in enumerate(r["per_class"]):
        assert row["predicted"] == (d == k).sum()
        assert row["correct"] == ((d == k) & (yt == k)).sum()
        assert row["support"] == (yt == k).sum()
    dg = cal.predict(zt, rule="global")
    assert r["global"]["predicted"] == (dg >= 0).sum()
    assert sum(r["counts"].values()) == 10
    assert r["counts"]["no-threshold"] == sum(t is None for t in cal.thresholds["per_class"])
    assert r["expected_violations"] == pytest.approx(0.05 * (10 - r["counts"]["no-threshold"]))


def test_verdicts_held_missed_violated():
    # the one-sided 95% Clopper-Pearson upper bound decides missed / violated
    assert upper_bound(9, 10) == pytest.approx(stats.beta.ppf(0.95, 10, 1))
    assert upper_bound(10, 10) == 1.0
    z, y = make_multiclass(seed=33, n=4000)
    cal = calibrate.fit(z, y, confidence=None)
    zt, yt = z.copy(), y.copy()
    # class 0: make half of its accepted predictions wrong (violated);
    # class 1: a handful wrong (missed: within noise of 0.9)
    d = cal.predict(zt)
    i0 = np.flatnonzero(d == 0)
    yt[i0[: len(i0) // 2]] = 5
    i1 = np.flatnonzero((d == 1) & (yt == 1))
    n1 = (d == 1).sum()
    wrong_now = n1 - len(i1)
    need = int(np.ceil(n1 * 0.1 - wrong_now)) + 1       # just below 0.9
    yt[i1[:need]] = 6
    r = evaluate(cal, zt, yt)
    s = {row["class"]: row for row in r["per_class"]}
    assert s["0"]["status"] == "violated" and s["0"]["upper_bound"] < 0.9
    assert s["1"]["status"] == "missed" and s["1"]["precision"] < 0.9 <= s["1"]["upper_bound"]
    assert s["2"]["status"] == "held" and s["2"]["precision"] >= 0.9


def test_metrics_before_and_after_on_the_new_data(mc):
    cal, _, _, zt, yt = mc
    m = evaluate(cal, zt, yt)["metrics"]
    before = metrics.all_metrics(special.softmax(zt.astype(np.float64), axis=1), yt)
    after = metrics.all_metrics(special.softmax(zt.astype(np.float64) / cal.temperature,
                                                axis=1), yt)
    assert list(m) == list(metrics.LABELS)
    for key in m:
        # float32 logits: agreement to float32 rounding
        assert m[key]["before"] == pytest.approx(before[key], rel=1e-5, abs=1e-6)
        assert m[key]["after"] == pytest.approx(after[key], rel=1e-5, abs=1e-6)


def test_bootstrap_intervals_on_request(mc):
    cal, _, _, zt, yt = mc
    m = evaluate(cal, zt[:500], yt[:500], bootstrap=30, seed=3)["metrics"]
    for key in metrics.ECE_KEYS:
        for side in ("before", "after"):
            lo, hi = m[key][side + "_ci"]
            assert 0 <= lo <= hi, (key, side)
    for key in ("ece_15_equal_width", "ece_15_equal_mass", "smooth_ece"):
        lo, hi = m[key]["before_ci"]
        assert lo <= m[key]["before"] <= hi, key      # ECE ~ 15% before: far from noise
    assert "before_ci" not in m["nll"]
    with pytest.raises(CalibrateError, match="bootstrap"):
        evaluate(cal, zt, yt, bootstrap=-1)


def test_binary_and_multilabel():
    z, y = make_binary(seed=34, n=3000)
    zt, yt = make_binary(seed=35, n=3000)
    cal = calibrate.fit(z, y)
    r = evaluate(cal, zt, yt)
    assert [row["class"] for row in r["per_class"]] == ["1"]
    d = cal.predict(zt)
    assert r["per_class"][0]["predicted"] == d.sum()
    assert r["per_class"][0]["coverage"] == d.mean()
    assert r["global"]["precision"] == r["per_class"][0]["precision"]
    assert "top_label_ece_15_equal_width" in r["metrics"]

    z, y = make_multilabel(seed=36, n=3000)
    zt, yt = make_multilabel(seed=37, n=3000)
    cal = calibrate.fit(z, y)
    r = evaluate(cal, zt, yt)
    d = cal.predict(zt)
    assert len(r["per_class"]) == 3
    assert r["overall"]["predicted"] == d.sum()
    assert r["overall"]["coverage"] == d.mean()               # share of (row, class) pairs
    assert r["overall"]["precision"] == (yt[d] == 1).mean()
    assert isinstance(r["temperature"], list) and len(r["temperature"]) == 3
    assert "top_label_ece_15_equal_width" not in r["metrics"]


def test_refuses_mismatched_data(mc):
    cal, _, _, zt, yt = mc
    with pytest.raises(CalibrateError, match="10 score columns"):
        evaluate(cal, zt[:, :5], yt)
    with pytest.raises(CalibrateError, match="4000 labels"):
        evaluate(cal, zt, yt[:10])
    with pytest.raises(CalibrateError, match=r"class ids in \[0, 10\)"):
        evaluate(cal, zt, yt + 5)


def test_a_file_without_summary_still_evaluates(mc, tmp_path):
    cal, _, _, zt, yt = mc
    d = cal.to_dict()
    del d["summary"]
    r = evaluate(calibrate.Calibrator.from_dict(d), zt, yt)
    assert all(row["held_out"] is None for row in r["per_class"])
    assert r["global"]["held_out"] is None
    assert r["per_class"][0]["precision"] is not None or r["per_class"][0]["predicted"] == 0


def test_exported_from_the_package():
    assert calibrate.evaluate is evaluate


# ------------------------------------------------------------------ the command line

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ev")
    z, y = make_multiclass(seed=38, n=3000)
    zt, yt = make_multiclass(seed=39, n=3000)
    for name, a in (("val", z), ("val_y", y), ("test", zt), ("test_y", yt)):
        np.save(d / f"{name}.npy", a)
    np.savez(d / "test.npz", logits=zt, labels=yt)
    out = d / "t.json"
    invoke(["fit", d / "val.npy", "--labels", d / "val_y.npy", "-o", out])
    return d, out


def test_cli_human_report(files):
    d, out = files
    res = invoke(["evaluate", out, d / "test.npy", "--labels", d / "test_y.npy"])
    lines = res.stdout.splitlines()
    assert lines[0] == (f"evaluated {out} on 3000 labelled rows   task: multiclass   "
                        "classes scored: 10")
    r = evaluate(calibrate.load(out), np.load(d / "test.npy"), np.load(d / "test_y.npy"))
    labels = [ln[:22].strip() for ln in lines]
    for label in metrics.LABELS.values():
        assert label in labels
    row0 = next(ln for ln in lines if ln.startswith("0 "))
    assert row0.split()[-1] == r["per_class"][0]["status"]
    assert f"{r['per_class'][0]['predicted']:>10}" in row0
    assert any(ln.startswith("(global)") for ln in lines)
    assert any(ln.startswith("(all classes)") for ln in lines)
    assert res.stderr == ""


def test_cli_json_equals_the_library_and_labels_from_npz(files):
    d, out = files
    res = invoke(["evaluate", out, d / "test.npz", "--json"])
    got = json.loads(res.stdout)
    assert got.pop("thresholds") == str(out)
    want = evaluate(calibrate.load(out), np.load(d / "test.npy"), np.load(d / "test_y.npy"))
    assert got == json.loads(json.dumps(want.to_dict()))


def test_cli_exit_code_is_0_when_the_target_fails(files, tmp_path):
    d, out = files
    yt = np.load(d / "test_y.npy")
    bad = (yt + 1) % 10                                       # every label wrong
    np.save(tmp_path / "bad.npy", bad)
    res = invoke(["evaluate", out, d / "test.npy", "--labels", tmp_path / "bad.npy", "--json"])
    r = json.loads(res.stdout)
    assert r["counts"]["violated"] > 0 and r["counts"]["held"] == 0


def test_cli_errors(files, tmp_path):
    d, out = files
    res = invoke(["evaluate", out, d / "test.npy"], code=2)
    assert "Missing option '--labels'" in res.stderr
    np.save(tmp_path / "five.npy", np.load(d / "test.npy")[:, :5])
    res = invoke(["evaluate", out, tmp_path / "five.npy", "--labels", d / "test_y.npy"], code=1)
    assert res.stderr.startswith(f"Error: scores file '{tmp_path / 'five.npy'}': ")
    assert "10 score columns" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    np.save(tmp_path / "short_y.npy", np.load(d / "test_y.npy")[:10])
    res = invoke(["evaluate", out, d / "test.npy", "--labels", tmp_path / "short_y.npy"], code=1)
    assert res.stderr == (f"Error: labels file '{tmp_path / 'short_y.npy'}': expected 3000 "
                          "labels, one per score row, found 10\n")
    res = invoke(["evaluate", out, d / "test.npy", "--labels", d / "test_y.npy",
                  "--plot", tmp_path / "x.txt"], code=1)
    assert "plot file" in res.stderr and ".png, .pdf or .svg" in res.stderr
    assert not (tmp_path / "x.txt").exists()


def test_fit_summary_lists_every_metric(files):
    d, out = files
    res = invoke(["fit", d / "val.npy", "--labels", d / "val_y.npy", "-o", d / "t2.json"])
    s = json.loads((d / "t2.json").read_text())["summary"]["metrics"]
    lines = res.stdout.splitlines()
    for key, label in metrics.LABELS.items():
        row = next(ln for ln in lines if ln[:22].strip() == label)
        if key in ("nll", "brier"):
            assert row == f"{label:22}{s[key]['before']:>10.4f}{s[key]['after']:>10.4f}"
        else:
            assert row == (f"{label:22}{100 * s[key]['before']:>9.2f}%"
                           f"{100 * s[key]['after']:>9.2f}%")
    assert any("top-label confidence" in ln for ln in lines)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_multilabel_families_evaluate_labels_from_their_file(tmp_path, method):
    # the families' path gave the decision counter a row source: AttributeError traceback
    z, y = make_multilabel(n=3000, seed=3)
    cal = calibrate.fit(z[:2000], y[:2000], method=method)
    np.save(tmp_path / "z.npy", z[2000:])
    np.save(tmp_path / "y.npy", y[2000:])
    from_file = evaluate(cal, str(tmp_path / "z.npy"), str(tmp_path / "y.npy")).to_dict()
    assert from_file == evaluate(cal, z[2000:], y[2000:]).to_dict()
    cal.save(tmp_path / "t.json")
    r = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "t.json"), str(tmp_path / "z.npy"),
                                 "--labels", str(tmp_path / "y.npy"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["n"] == 1000


def test_isotonic_thresholds_are_reported_as_the_files_probabilities():
    # evaluate showed sigmoid(the model's logit) for an isotonic file's threshold
    z, y = make_binary(n=4000, seed=2)
    cal = calibrate.fit(z[:3000], y[:3000], method="isotonic")
    rep = evaluate(cal, z[3000:], y[3000:])
    want = cal.thresholds["per_class"][0]
    assert rep.per_class[0].threshold == want and want == rep.per_class[0].held_out["threshold"]
    assert rep.global_rule.threshold == cal.thresholds["global"]


def test_evaluate_takes_a_path_and_refuses_anything_else(mc, tmp_path):
    cal, z, y = mc[0], mc[3], mc[4]
    cal.save(tmp_path / "t.json")
    assert evaluate(str(tmp_path / "t.json"), z, y).to_dict() == evaluate(cal, z, y).to_dict()
    with pytest.raises(CalibrateError, match=r"^cal: expected a Calibrator or a threshold "
                       r"file's path, found int$"):
        evaluate(3, z, y)
    with pytest.raises(CalibrateError, match=r"^path: expected a threshold file's path \(str "
                       r"or os.PathLike\), found NoneType$"):
        calibrate.load(None)
