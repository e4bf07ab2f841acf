"""The ``calibrate`` command line: every command and option, through CliRunner.

Data come from seeded numpy generators written into ``tmp_path``, or from the
committed ``sample_data/`` folder (10-class logits, a binary and a 3-class
multilabel set).  Exact output is asserted wherever it is deterministic.  The
numbers the sample data give (temperature, thresholds, precision, recall,
counts, apply's counts line) are pinned as literals, as the commands print them;
the human summary is also checked against the threshold file written by the same
command.
"""

import csv
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import special

import calibrate
from calibrate_cli.main import cli

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
NAMES = ["airplane", "automobile", "bird", "cat", "deer",
         "dog", "frog", "horse", "ship", "truck"]
TABLE_HEADER = ("class          threshold precision  recall  support predicted lower bd  status")


def runner():
    """A CliRunner with stderr apart from stdout (click >= 8.2 always; 8.1 on request)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


# --------------------------------------------------------------------------- helpers
def invoke(args, code=0):
    """Run the CLI in-process; assert the exit code and that no exception escaped."""
    res = runner().invoke(cli, [str(a) for a in args], prog_name="calibrate")
    detail = f"args={args}\nstdout={res.stdout!r}\nstderr={res.stderr!r}\nexc={res.exception!r}"
    assert res.exception is None or isinstance(res.exception, SystemExit), detail
    assert res.exit_code == code, detail
    assert "Traceback" not in res.output, detail
    return res


def read_json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def multiclass_data(seed=0, n=1500, c=5, t=2.5, dtype=np.float32):
    rng = np.random.default_rng(seed)
    g = rng.normal(0.0, 3.0, size=(n, c))
    y = (special.softmax(g, axis=1).cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return (t * g).astype(dtype), y.astype(np.int64)


def binary_data(seed=1, n=1500, dtype=np.float32):
    rng = np.random.default_rng(seed)
    g = rng.normal(0.3, 2.5, size=n)
    y = (rng.random(n) < special.expit(g)).astype(np.int64)
    return (2.0 * g).astype(dtype), y


@pytest.fixture(scope="module")
def sample():
    """The committed 10-class sample: validation and test logits and labels."""
    return {
        "val": SAMPLE / "val_logits.npy", "val_labels": SAMPLE / "val_labels.npy",
        "test": SAMPLE / "test_logits.npy", "test_labels": SAMPLE / "test_labels.npy",
        "classes": SAMPLE / "classes.txt",
        "binary_val": SAMPLE / "binary_val.npz", "binary_test": SAMPLE / "binary_test.npz",
        "ml_val": SAMPLE / "multilabel_val.npz", "ml_test": SAMPLE / "multilabel_test.npz",
    }


@pytest.fixture(scope="module")
def fitted(sample, tmp_path_factory):
    """One threshold file fitted on the sample with class names (shared by apply tests)."""
    out = tmp_path_factory.mktemp("fitted") / "thresholds.json"
    invoke(["fit", sample["val"], "--labels", sample["val_labels"], "-o", out,
            "--classes", sample["classes"]])
    return out


def _fmt(v, pct=False):
    if v is None:
        return "-"
    return f"{100 * v:.2f}%" if pct else f"{v:.4g}"


def _row(name, r):
    return (f"{str(name)[:13]:<14}{_fmt(r['threshold']):>10}{_fmt(r['precision']):>10}"
            f"{_fmt(r['recall']):>8}{r['support']:>9}{r['predicted']:>10}"
            f"{_fmt(r['lower_bound']):>9}  {r['status']}")


def rounded(values, places=4):
    """Numbers rounded as the summary prints them (None stays None)."""
    return [None if v is None else round(v, places) for v in values]


#: What ``calibrate fit`` prints for the 10-class sample with class names (the
#: README's Quick start), without its last line ("wrote <path>").
SAMPLE_FIT_LINES = [
    "task: multiclass (detected)   input: logits (detected)   rows: 4000   classes: 10",
    "temperature: 2.484",
    "                          before     after",
    "NLL                       1.0298    0.7069",
    "Brier score               0.4021    0.3570",
    "ECE (15 bins)             14.80%     1.76%",
    "ECE (15 equal-mass)       14.73%     1.42%",
    "MCE (15 bins)             68.31%     8.01%",
    "classwise ECE (15)         3.13%     0.94%",
    "top-label ECE (15)        15.23%     5.55%",
    "smooth ECE                14.73%     1.51%",
    "  (ECE, MCE, smooth ECE on the top-label confidence; bins (lo, hi]; --json defines each)",
    "target: precision >= 0.9, 95% confidence per class (Clopper-Pearson, fixed-sequence testing)",
    "rule used by apply: per-class",
    "",
    "class          threshold precision  recall  support predicted lower bd  status",
    "airplane          0.7298    0.9344  0.5253      434       244   0.9021  ok",
    "automobile        0.7533    0.9425  0.4556      360       174   0.9045  ok",
    "bird              0.9182     0.955  0.2637      402       111   0.9076  ok",
    "cat               0.8222    0.9351  0.4277      505       231   0.9018  ok",
    "deer              0.7572    0.9359   0.472      464       234    0.903  ok",
    "dog                    -         -       0      332         0        -  uncertified",
    "frog              0.8221    0.9474  0.4034      357       152    0.907  ok",
    "horse                  -         -       0      338         0        -  uncertified",
    "ship              0.8446    0.9425  0.3814      430       174   0.9045  ok",
    "truck             0.9334    0.9588   0.246      378        97   0.9081  ok",
    "(global)          0.7422    0.9111   0.484     4000      2125   0.9002  ok   coverage 53.12%",
]
#: The sample's per-class figures at precision 0.9, confidence 0.95.
SAMPLE_THRESHOLDS = [0.7298, 0.7533, 0.9182, 0.8222, 0.7572, None, 0.8221, None, 0.8446, 0.9334]
SAMPLE_DECISION_THRESHOLDS = [-0.3149, -0.2833, -0.0854, -0.1958, -0.2781, None, -0.1959, None,
                              -0.1689, -0.0689]
SAMPLE_PRECISION = [0.9344, 0.9425, 0.955, 0.9351, 0.9359, None, 0.9474, None, 0.9425, 0.9588]
SAMPLE_RECALL = [0.5253, 0.4556, 0.2637, 0.4277, 0.472, 0.0, 0.4034, 0.0, 0.3814, 0.246]
SAMPLE_SUPPORT = [434, 360, 402, 505, 464, 332, 357, 338, 430, 378]
SAMPLE_PREDICTED = [244, 174, 111, 231, 234, 0, 152, 0, 174, 97]
SAMPLE_STATUS = ["ok"] * 5 + ["uncertified", "ok", "uncertified", "ok", "ok"]


def no_tmp_left(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".calibrate-")]


# --------------------------------------------------------------------------- fit
def test_fit_multiclass_human_summary_exact(sample, tmp_path):
    out = tmp_path / "thresholds.json"
    res = invoke(["fit", sample["val"], "--labels", sample["val_labels"], "-o", out,
                  "--classes", sample["classes"]])
    assert res.stderr == ""
    d = read_json(out)
    s = d["summary"]
    m = s["metrics"]
    assert d["schema_version"] == 1
    assert d["task"] == "multiclass" and d["input_kind"] == "logits"
    assert d["classes"] == NAMES
    assert d["rule"] == "per-class"
    assert d["target"] == {"precision": 0.9, "confidence": 0.95, "simultaneous": False}
    assert d["abstain_label"] == -1
    assert isinstance(d["temperature"], float) and d["temperature"] > 0
    # The sample was made overconfident by a factor 2.5.
    assert 2.0 < d["temperature"] < 3.0
    assert len(d["thresholds"]["per_class"]) == 10
    assert len(d["decision_thresholds"]["per_class"]) == 10
    assert d["decision_thresholds"]["space"] == "log-probability"

    lines = res.stdout.splitlines()
    expected = [
        "task: multiclass (detected)   input: logits (detected)   rows: 4000   classes: 10",
        f"temperature: {d['temperature']:.4g}",
        f"{'':22}{'before':>10}{'after':>10}",
        f"{'NLL':22}{s['nll']['before']:>10.4f}{s['nll']['after']:>10.4f}",
        f"{'Brier score':22}{m['brier']['before']:>10.4f}{m['brier']['after']:>10.4f}",
        f"{'ECE (15 bins)':22}{_fmt(s['ece']['before'], True):>10}"
        f"{_fmt(s['ece']['after'], True):>10}",
    ] + [
        f"{label:22}{_fmt(m[key]['before'], True):>10}{_fmt(m[key]['after'], True):>10}"
        for key, label in [("ece_15_equal_mass", "ECE (15 equal-mass)"),
                           ("mce_15_equal_width", "MCE (15 bins)"),
                           ("classwise_ece_15_equal_width", "classwise ECE (15)"),
                           ("top_label_ece_15_equal_width", "top-label ECE (15)"),
                           ("smooth_ece", "smooth ECE")]
    ] + [
        "  (ECE, MCE, smooth ECE on the top-label confidence; bins (lo, hi]; --json defines each)",
        "target: precision >= 0.9, 95% confidence per class "
        "(Clopper-Pearson, fixed-sequence testing)",
        "rule used by apply: per-class",
        "",
        TABLE_HEADER,
    ]
    expected += [_row(name, r) for name, r in zip(NAMES, s["per_class"], strict=True)]
    g = s["global"]
    expected.append(_row("(global)", g) + f"   coverage {_fmt(g['coverage'], True)}")
    expected.append(f"wrote {out}")
    assert lines == expected
    # The same output as literals: the sample's real numbers.
    assert lines == SAMPLE_FIT_LINES + [f"wrote {out}"]
    assert f"{d['temperature']:.4g}" == "2.484"
    # six digits, as the fixtures
    assert d["temperature"] == pytest.approx(2.48396441643118, rel=1e-6)
    assert rounded(d["thresholds"]["per_class"]) == SAMPLE_THRESHOLDS
    assert rounded(d["decision_thresholds"]["per_class"]) == SAMPLE_DECISION_THRESHOLDS
    assert round(d["thresholds"]["global"], 4) == 0.7422
    assert round(d["decision_thresholds"]["global"], 4) == -0.2982
    rows = s["per_class"]
    assert rounded([r["precision"] for r in rows]) == SAMPLE_PRECISION
    assert rounded([r["recall"] for r in rows]) == SAMPLE_RECALL
    assert [r["support"] for r in rows] == SAMPLE_SUPPORT
    assert [r["predicted"] for r in rows] == SAMPLE_PREDICTED
    assert [r["status"] for r in rows] == SAMPLE_STATUS
    assert (g["predicted"], g["support"], round(g["precision"], 4), g["recall"]) == (
        2125, 4000, 0.9111, 0.484)
    # One row per class, named, in order; the calibration improved.
    assert [r["class"] for r in s["per_class"]] == NAMES
    assert s["nll"]["after"] < s["nll"]["before"]
    assert s["ece"]["after"] < s["ece"]["before"]
    assert s["n"] == 4000
    assert no_tmp_left(tmp_path) == []


def test_fit_json_output(sample, tmp_path):
    out = tmp_path / "t.json"
    res = invoke(["fit", sample["val"], "--labels", sample["val_labels"], "-o", out, "--json"])
    printed = json.loads(res.stdout)  # the whole of stdout is one JSON document
    for key in ("n", "task", "input_kind", "temperature", "nll", "ece", "per_class", "global"):
        assert key in printed, key
    assert printed["n"] == 4000
    assert printed["task"] == "multiclass"
    assert printed["input_kind"] == "logits"
    assert len(printed["per_class"]) == 10
    assert printed["per_class"][0]["class"] == "0"
    assert set(printed["nll"]) == {"before", "after"}
    assert set(printed["ece"]) == {"before", "after"}
    assert "wrote" not in res.stdout
    # The sample's numbers, as literals.
    assert f"{printed['temperature']['value']:.4g}" == "2.484"
    assert printed["temperature"]["status"] == "fitted"
    assert rounded(r["threshold"] for r in printed["per_class"]) == SAMPLE_THRESHOLDS
    assert rounded(r["precision"] for r in printed["per_class"]) == SAMPLE_PRECISION
    assert [r["predicted"] for r in printed["per_class"]] == SAMPLE_PREDICTED
    assert [r["status"] for r in printed["per_class"]] == SAMPLE_STATUS
    assert printed["global"]["predicted"] == 2125 and printed["global"]["coverage"] == 0.53125
    nll = printed["nll"]
    assert (round(nll["before"], 4), round(nll["after"], 4)) == (1.0298, 0.7069)
    # The printed summary is the one in the file.
    d = read_json(out)
    printed.pop("output", None)
    assert printed == d["summary"]
    assert res.stderr == ""


def test_fit_default_output_in_cwd(sample, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke(["fit", sample["val"], "--labels", sample["val_labels"]])
    assert (tmp_path / "thresholds.json").is_file()
    assert res.stdout.splitlines()[-1] == "wrote thresholds.json"
    assert read_json(tmp_path / "thresholds.json")["task"] == "multiclass"


def test_fit_overwrites_existing_file_atomically(sample, tmp_path):
    out = tmp_path / "t.json"
    out.write_bytes(b"old contents")
    invoke(["fit", sample["val"], "--labels", sample["val_labels"], "-o", out])
    assert read_json(out)["schema_version"] == 1
    assert no_tmp_left(tmp_path) == []


def test_outputs_respect_umask(sample, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "t.json"
        invoke(["fit", sample["val"], "--labels", sample["val_labels"], "-o", out])
        dec = tmp_path / "d.npy"
        invoke(["apply", out, sample["test"], "-o", dec])
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert stat.S_IMODE(dec.stat().st_mode) == 0o644


# --------------------------------------------------------------------------- input formats
def _fit_file(tmp_path, name, args):
    out = tmp_path / name
    res = invoke(["fit", *args, "-o", out])
    return read_json(out), res


def _same_fit(a, b):
    assert a["task"] == b["task"]
    assert a["temperature"] == b["temperature"]
    assert a["decision_thresholds"] == b["decision_thresholds"]
    assert a["thresholds"] == b["thresholds"]


def test_npz_with_logits_and_labels_needs_no_labels_option(tmp_path):
    z, y = multiclass_data()
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "data.npz", logits=z, labels=y)
    from_npz, res = _fit_file(tmp_path, "a.json", [tmp_path / "data.npz"])
    assert res.stdout.startswith("task: multiclass (detected)")
    from_npy, _ = _fit_file(tmp_path, "b.json",
                            [tmp_path / "z.npy", "--labels", tmp_path / "y.npy"])
    _same_fit(from_npz, from_npy)
    assert from_npz["summary"]["n"] == len(y)


def test_npz_scores_key_and_labels_from_npz(tmp_path):
    z, y = multiclass_data()
    np.savez(tmp_path / "s.npz", scores=z)
    np.savez(tmp_path / "l.npz", labels=y)
    a, _ = _fit_file(tmp_path, "a.json", [tmp_path / "s.npz", "--labels", tmp_path / "l.npz"])
    np.savez(tmp_path / "both.npz", logits=z, labels=y)
    b, _ = _fit_file(tmp_path, "b.json", [tmp_path / "both.npz"])
    _same_fit(a, b)


@pytest.mark.parametrize("header", [False, True], ids=["no-header", "header"])
def test_csv_scores_and_labels(tmp_path, header):
    z, y = multiclass_data(dtype=np.float64)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    kw = {"header": ",".join(f"c{j}" for j in range(z.shape[1])), "comments": ""} if header else {}
    np.savetxt(tmp_path / "z.csv", z, delimiter=",", fmt="%.17g", **kw)
    np.savetxt(tmp_path / "y.csv", y, fmt="%d", **({"header": "label", "comments": ""}
                                                   if header else {}))
    a, res = _fit_file(tmp_path, "a.json", [tmp_path / "z.csv", "--labels", tmp_path / "y.csv"])
    assert res.stdout.startswith("task: multiclass (detected)   input: logits (detected)   "
                                 f"rows: {len(y)}   classes: 5")
    b, _ = _fit_file(tmp_path, "b.json", [tmp_path / "z.npy", "--labels", tmp_path / "y.npy"])
    _same_fit(a, b)  # %.17g round-trips float64: the same fit, bit for bit


def test_pt_tensor_and_dict(tmp_path):
    torch = pytest.importorskip("torch")
    z, y = multiclass_data()
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    torch.save(torch.from_numpy(z), tmp_path / "z.pt")
    torch.save(torch.from_numpy(y), tmp_path / "y.pt")
    torch.save({"logits": torch.from_numpy(z), "labels": torch.from_numpy(y)}, tmp_path / "d.pt")
    ref, _ = _fit_file(tmp_path, "ref.json", [tmp_path / "z.npy", "--labels", tmp_path / "y.npy"])
    a, _ = _fit_file(tmp_path, "a.json", [tmp_path / "z.pt", "--labels", tmp_path / "y.pt"])
    b, _ = _fit_file(tmp_path, "b.json", [tmp_path / "d.pt"])
    _same_fit(a, ref)
    _same_fit(b, ref)
    # apply reads .pt too, and gives the .npy answer.
    invoke(["apply", tmp_path / "b.json", tmp_path / "z.pt", "-o", tmp_path / "p1.npy"])
    invoke(["apply", tmp_path / "b.json", tmp_path / "z.npy", "-o", tmp_path / "p2.npy"])
    assert np.array_equal(np.load(tmp_path / "p1.npy"), np.load(tmp_path / "p2.npy"))


# --------------------------------------------------------------------------- tasks
@pytest.mark.parametrize("confidence", ["0.95", "none"])
def test_binary_two_columns_equal_single_logit(tmp_path, confidence):
    rng = np.random.default_rng(7)
    n = 1500
    z2 = rng.normal(0.0, 3.0, size=(n, 2)).astype(np.float32)
    d = z2[:, 1] - z2[:, 0]
    y = (rng.random(n) < special.expit(d / 2.0)).astype(np.int64)
    np.save(tmp_path / "z2.npy", z2)
    np.save(tmp_path / "d.npy", d)
    np.save(tmp_path / "y.npy", y)
    common = ["--labels", tmp_path / "y.npy", "--confidence", confidence]
    two, res2 = _fit_file(tmp_path, "two.json", [tmp_path / "z2.npy", "--task", "binary", *common])
    one, res1 = _fit_file(tmp_path, "one.json", [tmp_path / "d.npy", *common])
    assert two["task"] == one["task"] == "binary"
    assert res2.stdout.startswith("task: binary (given)   input: logits (detected)")
    assert res1.stdout.startswith("task: binary (detected)   input: logits (detected)")
    assert two["temperature"] == one["temperature"]
    assert two["decision_thresholds"] == one["decision_thresholds"]
    assert two["thresholds"] == one["thresholds"]
    # and apply agrees on the two forms
    invoke(["apply", tmp_path / "two.json", tmp_path / "z2.npy", "-o", tmp_path / "a.npy"])
    invoke(["apply", tmp_path / "one.json", tmp_path / "d.npy", "-o", tmp_path / "b.npy"])
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_two_columns_auto_stay_multiclass(tmp_path):
    rng = np.random.default_rng(8)
    z2 = rng.normal(0.0, 3.0, size=(800, 2)).astype(np.float32)
    y = (rng.random(800) < special.expit(z2[:, 1] - z2[:, 0])).astype(np.int64)
    np.savez(tmp_path / "d.npz", logits=z2, labels=y)
    d, res = _fit_file(tmp_path, "t.json", [tmp_path / "d.npz"])
    assert d["task"] == "multiclass"
    assert len(d["thresholds"]["per_class"]) == 2


def test_binary_single_column_sample(sample, tmp_path):
    d, res = _fit_file(tmp_path, "b.json", [sample["binary_val"]])
    assert d["task"] == "binary"
    assert d["classes"] == ["0", "1"]
    assert d["decision_thresholds"]["space"] == "logit"
    assert len(d["decision_thresholds"]["per_class"]) == 1
    lines = res.stdout.splitlines()
    assert lines[0] == ("task: binary (detected)   input: logits (detected)   rows: 4000   "
                        "classes: 2")
    assert lines[1] == f"temperature: {d['temperature']:.4g}"
    i = lines.index(TABLE_HEADER)
    assert lines[i + 1] == _row("1", d["summary"]["per_class"][0])
    assert lines[i + 2].startswith(_row("(global)", d["summary"]["global"]))
    assert lines[-1] == f"wrote {tmp_path / 'b.json'}"
    assert len(lines) == i + 4
    # The binary sample's numbers, as printed.
    assert lines[1] == "temperature: 2.558"
    assert lines[i + 1:i + 3] == [
        "1                 0.7422    0.9124  0.6569     2332      1679   0.9003  ok",
        "(global)          0.7422    0.9124  0.6569     2332      1679   0.9003  ok   "
        "coverage 41.98%"]
    # six digits, as the fixtures
    assert d["temperature"] == pytest.approx(2.557541057899727, rel=1e-6)
    assert round(d["decision_thresholds"]["per_class"][0], 4) == 1.0575
    # apply: 0/1 decisions and a binary message
    res = invoke(["apply", tmp_path / "b.json", sample["binary_test"], "-o", tmp_path / "o.npy"])
    dec = np.load(tmp_path / "o.npy")
    assert set(np.unique(dec)) <= {0, 1}
    test = np.load(sample["binary_test"])["logits"]
    assert np.array_equal(dec, calibrate.load(tmp_path / "b.json").predict(test))
    assert res.stdout == (f"wrote {len(dec)} decisions to {tmp_path / 'o.npy'} (per-class rule): "
                          f"{int((dec == 1).sum())} positive, {int((dec == 0).sum())} negative\n")
    assert res.stdout == (f"wrote 2000 decisions to {tmp_path / 'o.npy'} (per-class rule): "
                          "840 positive, 1160 negative\n")


def test_multilabel_sample(sample, tmp_path):
    d, res = _fit_file(tmp_path, "m.json", [sample["ml_val"]])
    assert d["task"] == "multilabel"
    assert isinstance(d["temperature"], list) and len(d["temperature"]) == 3
    lines = res.stdout.splitlines()
    assert lines[0] == ("task: multilabel (detected)   input: logits (detected)   rows: 4000   "
                        "classes: 3")
    t = d["temperature"]
    assert lines[1].startswith(f"temperature: one per class, {min(t):.4g} to {max(t):.4g}")
    i = lines.index(TABLE_HEADER)
    assert lines[i + 1: i + 4] == [_row(str(k), r) for k, r in
                                   enumerate(d["summary"]["per_class"])]
    assert lines[-1] == f"wrote {tmp_path / 'm.json'}"
    # The multilabel sample's numbers, as printed.
    assert lines[1] == "temperature: one per class, 2.482 to 2.58"
    assert lines[i + 1:i + 5] == [
        "0                 0.8359    0.9203  0.3811     1514       627   0.9001  ok",
        "1                 0.7891    0.9155  0.5348     1924      1124   0.9006  ok",
        "2                 0.7379    0.9117  0.6959     2506      1913   0.9002  ok",
        "(global)          0.7571    0.9082  0.5972     5944      3909   0.9002  ok   "
        "coverage 32.57%"]
    assert rounded(t) == [2.4823, 2.5798, 2.4822]
    assert d["summary"]["temperature"]["status"] == ["fitted"] * 3
    # apply: bool (N, 3) array; csv with one 0/1 column per class
    res = invoke(["apply", tmp_path / "m.json", sample["ml_test"], "-o", tmp_path / "o.npy"])
    dec = np.load(tmp_path / "o.npy")
    test = np.load(sample["ml_test"])["logits"]
    assert dec.shape == test.shape and dec.dtype == bool
    assert np.array_equal(dec, calibrate.load(tmp_path / "m.json").predict(test))
    assert res.stdout == (f"wrote {len(dec)} rows to {tmp_path / 'o.npy'} (per-class rule): "
                          f"{int(dec.sum())} labels predicted, "
                          f"{int((~dec.any(axis=1)).sum())} rows with none\n")
    assert res.stdout == (f"wrote 2000 rows to {tmp_path / 'o.npy'} (per-class rule): "
                          "1894 labels predicted, 582 rows with none\n")
    invoke(["apply", tmp_path / "m.json", sample["ml_test"], "-o", tmp_path / "o.csv"])
    text = (tmp_path / "o.csv").read_text().splitlines()
    assert text[0] == "0,1,2"
    assert text[1:] == [",".join("1" if v else "0" for v in r) for r in dec]
    invoke(["apply", tmp_path / "m.json", sample["ml_test"], "-o", tmp_path / "o.jsonl"])
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert rows == [{"labels": [str(j) for j in np.flatnonzero(r)]} for r in dec]


def test_multilabel_given_task(tmp_path):
    rng = np.random.default_rng(3)
    g = rng.normal(0.0, 2.0, size=(1200, 3))
    y = (rng.random((1200, 3)) < special.expit(g)).astype(np.int64)
    np.save(tmp_path / "z.npy", (2 * g).astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    d, res = _fit_file(tmp_path, "t.json", [tmp_path / "z.npy", "--labels", tmp_path / "y.npy",
                                            "--task", "multilabel"])
    assert d["task"] == "multilabel"
    assert res.stdout.startswith("task: multilabel (given)")


# --------------------------------------------------------------------------- input kinds
def test_input_kind_detection_softmax(tmp_path):
    z, y = multiclass_data(dtype=np.float64)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "p.npy", special.softmax(z, axis=1))
    np.save(tmp_path / "lp.npy", special.log_softmax(z, axis=1))
    lab = ["--labels", tmp_path / "y.npy"]
    ref, res = _fit_file(tmp_path, "z.json", [tmp_path / "z.npy", *lab])
    assert "   input: logits (detected)   " in res.stdout.splitlines()[0]
    p, res = _fit_file(tmp_path, "p.json", [tmp_path / "p.npy", *lab])
    assert "   input: probabilities (detected)   " in res.stdout.splitlines()[0]
    assert p["input_kind"] == "probabilities"
    lp, res = _fit_file(tmp_path, "lp.json", [tmp_path / "lp.npy", *lab])
    assert "   input: log-probabilities (detected)   " in res.stdout.splitlines()[0]
    assert lp["input_kind"] == "log-probabilities"
    # log-probabilities are logits up to a row constant: the same temperature
    assert p["temperature"] == pytest.approx(ref["temperature"], rel=1e-6)
    assert lp["temperature"] == pytest.approx(ref["temperature"], rel=1e-6)
    # forced kinds print "(given)"
    _, res = _fit_file(tmp_path, "g.json", [tmp_path / "p.npy", *lab, "--input", "probabilities"])
    assert "   input: probabilities (given)   " in res.stdout.splitlines()[0]
    _, res = _fit_file(tmp_path, "g2.json", [tmp_path / "z.npy", *lab, "--input", "logits"])
    assert "   input: logits (given)   " in res.stdout.splitlines()[0]
    # apply on probabilities uses the kind of the file, and agrees with logits
    invoke(["apply", tmp_path / "p.json", tmp_path / "p.npy", "-o", tmp_path / "a.npy"])
    assert np.array_equal(np.load(tmp_path / "a.npy"),
                          calibrate.load(tmp_path / "p.json").predict(np.load(tmp_path / "p.npy")))


def test_sigmoid_probabilities_warn_and_override(tmp_path):
    z, y = binary_data(dtype=np.float64)
    np.save(tmp_path / "p.npy", special.expit(z))
    np.save(tmp_path / "y.npy", y)
    d, res = _fit_file(tmp_path, "t.json", [tmp_path / "p.npy", "--labels", tmp_path / "y.npy"])
    assert d["input_kind"] == "probabilities"
    assert "   input: probabilities (detected)   " in res.stdout.splitlines()[0]
    warn = res.stderr.splitlines()
    assert len(warn) == 1, res.stderr
    assert warn[0].startswith("warning: ")
    assert "[0, 1]" in warn[0] and "--input logits" in warn[0]
    # Forcing the kind silences the warning.
    d, res = _fit_file(tmp_path, "u.json", [tmp_path / "p.npy", "--labels", tmp_path / "y.npy",
                                            "--input", "logits"])
    assert d["input_kind"] == "logits"
    assert res.stderr == ""
    assert "   input: logits (given)   " in res.stdout.splitlines()[0]


# --------------------------------------------------------------------------- class names
def test_class_names_in_file_and_outputs(sample, fitted, tmp_path):
    d = read_json(fitted)
    assert d["classes"] == NAMES
    assert [r["class"] for r in d["summary"]["per_class"]] == NAMES
    test = np.load(sample["test"])
    dec = calibrate.load(fitted).predict(test)
    invoke(["apply", fitted, sample["test"], "-o", tmp_path / "o.csv"])
    lines = (tmp_path / "o.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "prediction,label"
    assert lines[1:] == [f"{k},{NAMES[k] if k >= 0 else ''}" for k in dec]
    invoke(["apply", fitted, sample["test"], "-o", tmp_path / "o.jsonl"])
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows == [{"prediction": int(k), "label": NAMES[k] if k >= 0 else None} for k in dec]


def test_class_names_with_comma_are_quoted_in_csv(tmp_path):
    z, y = multiclass_data(c=3)
    np.savez(tmp_path / "d.npz", logits=z, labels=y)
    (tmp_path / "names.txt").write_text('a,b\nsay "hi"\nplain\n', encoding="utf-8")
    invoke(["fit", tmp_path / "d.npz", "--classes", tmp_path / "names.txt",
            "-o", tmp_path / "t.json", "--confidence", "none", "--precision", "0.5"])
    assert read_json(tmp_path / "t.json")["classes"] == ["a,b", 'say "hi"', "plain"]
    invoke(["apply", tmp_path / "t.json", tmp_path / "d.npz", "-o", tmp_path / "o.csv"])
    with open(tmp_path / "o.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    names = ["a,b", 'say "hi"', "plain"]
    dec = calibrate.load(tmp_path / "t.json").predict(z)
    assert rows[0] == ["prediction", "label"]
    assert rows[1:] == [[str(k), names[k] if k >= 0 else ""] for k in dec]


# --------------------------------------------------------------------------- apply
def test_apply_npy_int_with_abstain(sample, fitted, tmp_path):
    out = tmp_path / "d.npy"
    res = invoke(["apply", fitted, sample["test"], "-o", out])
    dec = np.load(out)
    test = np.load(sample["test"])
    assert dec.shape == (len(test),)
    assert dec.dtype.kind == "i"
    assert dec.min() == -1 and dec.max() <= 9
    assert np.array_equal(dec, calibrate.load(fitted).predict(test))
    n_pred, n_abs = int((dec >= 0).sum()), int((dec < 0).sum())
    assert res.stdout == (f"wrote {len(dec)} decisions to {out} (per-class rule): "
                          f"{n_pred} predicted, {n_abs} abstained\n")
    assert res.stdout == (f"wrote 2000 decisions to {out} (per-class rule): "
                          "663 predicted, 1337 abstained\n")
    assert np.bincount(dec[dec >= 0], minlength=10).tolist() == [
        148, 124, 41, 73, 112, 0, 67, 0, 62, 36]
    assert res.stderr == ""
    assert no_tmp_left(tmp_path) == []


def test_apply_to_stdout_jsonl(sample, fitted):
    res = invoke(["apply", fitted, sample["test"]])
    dec = calibrate.load(fitted).predict(np.load(sample["test"]))
    lines = res.stdout.splitlines()
    assert len(lines) == len(dec)
    assert [json.loads(x) for x in lines] == [
        {"prediction": int(k), "label": NAMES[k] if k >= 0 else None} for k in dec]
    assert res.stderr == ""


@pytest.mark.parametrize("ext", [".npy", ".csv"])
def test_apply_probabilities_equal_softmax_over_t(sample, fitted, tmp_path, ext):
    out = tmp_path / "d.npy"
    proba = tmp_path / f"p{ext}"
    res = invoke(["apply", fitted, sample["test"], "-o", out, "--probabilities", proba])
    assert res.stdout.rstrip("\n").endswith(f"; probabilities to {proba}")
    p = np.load(proba) if ext == ".npy" else np.loadtxt(proba, delimiter=",")
    z = np.load(sample["test"]).astype(np.float64)
    T = read_json(fitted)["temperature"]
    want = special.softmax(z / T, axis=1)
    assert p.shape == z.shape
    # float32 logits give float32 probabilities: equal to float32 precision
    np.testing.assert_allclose(p, want, rtol=2e-6, atol=2e-7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(np.load(out), calibrate.load(fitted).predict(np.load(sample["test"])))


def test_apply_rule_global_vs_per_class(sample, fitted, tmp_path):
    test = np.load(sample["test"])
    cal = calibrate.load(fitted)
    res_g = invoke(["apply", fitted, sample["test"], "-o", tmp_path / "g.npy",
                    "--rule", "global"])
    res_p = invoke(["apply", fitted, sample["test"], "-o", tmp_path / "p.npy",
                    "--rule", "per-class"])
    g, p = np.load(tmp_path / "g.npy"), np.load(tmp_path / "p.npy")
    assert np.array_equal(g, cal.predict(test, rule="global"))
    assert np.array_equal(p, cal.predict(test, rule="per-class"))
    assert np.array_equal(p, cal.predict(test))  # the file's rule is per-class
    assert not np.array_equal(g, p)
    assert "(global rule)" in res_g.stdout and "(per-class rule)" in res_p.stdout
    assert res_g.stdout == (f"wrote 2000 decisions to {tmp_path / 'g.npy'} (global rule): "
                            "1051 predicted, 949 abstained\n")
    assert res_p.stdout == (f"wrote 2000 decisions to {tmp_path / 'p.npy'} (per-class rule): "
                            "663 predicted, 1337 abstained\n")
    # global: one threshold on the calibrated top probability
    thr = read_json(fitted)["decision_thresholds"]["global"]
    logp = special.log_softmax(test.astype(np.float64) / cal.temperature, axis=1).max(axis=1)
    agree = (g >= 0) == (logp >= thr)
    assert agree.mean() > 0.999  # exact up to float32 rounding at the boundary


def test_fit_rule_global_is_apply_default(sample, tmp_path):
    out = tmp_path / "t.json"
    res = invoke(["fit", sample["val"], "--labels", sample["val_labels"], "-o", out,
                  "--rule", "global"])
    assert "rule used by apply: global" in res.stdout.splitlines()
    assert read_json(out)["rule"] == "global"
    res = invoke(["apply", out, sample["test"], "-o", tmp_path / "d.npy"])
    assert "(global rule)" in res.stdout
    assert res.stdout == (f"wrote 2000 decisions to {tmp_path / 'd.npy'} (global rule): "
                          "1051 predicted, 949 abstained\n")
    test = np.load(sample["test"])
    assert np.array_equal(np.load(tmp_path / "d.npy"),
                          calibrate.load(out).predict(test, rule="global"))


@pytest.mark.parametrize("rule", ["per-class", "global"])
def test_apply_reproduces_held_out_decisions_and_precision(sample, tmp_path, rule):
    out = tmp_path / "t.json"
    res = invoke(["fit", sample["val"], "--labels", sample["val_labels"], "-o", out,
                  "--confidence", "none", "--precision", "0.85", "--rule", rule])
    assert "target: precision >= 0.85, plain held-out estimate (no confidence bound)" \
        in res.stdout.splitlines()
    d = read_json(out)
    assert d["target"]["confidence"] is None
    res = invoke(["apply", out, sample["val"], "-o", tmp_path / "d.npy"])
    dec = np.load(tmp_path / "d.npy")
    val = np.load(sample["val"])
    y = np.load(sample["val_labels"])
    assert np.array_equal(dec, calibrate.load(out).predict(val))
    s = d["summary"]
    if rule == "per-class":
        for k, r in enumerate(s["per_class"]):
            made = dec == k
            assert int(made.sum()) == r["predicted"], k
            if made.any():
                prec = (y[made] == k).mean()
                assert prec >= 0.85, (k, prec)
                assert prec == pytest.approx(r["precision"], abs=1e-12)
        assert (dec >= 0).any()
    else:
        made = dec >= 0
        assert int(made.sum()) == s["global"]["predicted"]
        assert (y[made] == dec[made]).mean() >= 0.85
    # The sample's numbers at precision 0.85 without a confidence bound, as printed.
    assert [r["predicted"] for r in s["per_class"]] == [317, 274, 314, 384, 354, 230, 248, 195,
                                                        280, 220]
    assert rounded(r["threshold"] for r in s["per_class"]) == [
        0.5815, 0.5631, 0.5463, 0.5402, 0.5149, 0.6022, 0.6476, 0.6485, 0.6743, 0.719]
    assert rounded(r["precision"] for r in s["per_class"]) == [
        0.8517, 0.8504, 0.8503, 0.8516, 0.8503, 0.8522, 0.8508, 0.8513, 0.85, 0.85]
    assert all(r["lower_bound"] is None and r["status"] == "ok" for r in s["per_class"])
    assert (s["global"]["predicted"], round(s["global"]["threshold"], 4)) == (2876, 0.5908)
    counts = {"per-class": "2816 predicted, 1184 abstained",
              "global": "2876 predicted, 1124 abstained"}[rule]
    assert res.stdout == f"wrote 4000 decisions to {tmp_path / 'd.npy'} ({rule} rule): {counts}\n"


def test_fit_simultaneous_and_confidence_in_summary(sample, tmp_path):
    out = tmp_path / "t.json"
    res = invoke(["fit", sample["val"], "--labels", sample["val_labels"], "-o", out,
                  "--simultaneous", "--confidence", "0.9", "--precision", "0.8"])
    assert ("target: precision >= 0.8, 90% confidence for all classes at once "
            "(Clopper-Pearson, fixed-sequence testing)") in res.stdout.splitlines()
    d = read_json(out)
    assert d["target"] == {"precision": 0.8, "confidence": 0.9, "simultaneous": True}
    # Each class tested at 0.1 / 10: the sample's thresholds and bounds, as printed.
    rows = d["summary"]["per_class"]
    assert rounded(r["threshold"] for r in rows) == [
        0.584, 0.6085, 0.547, 0.5401, 0.5391, 0.6701, 0.6601, 0.6866, 0.6793, 0.7856]
    assert rounded(r["lower_bound"] for r in rows) == [
        0.8016, 0.8027, 0.8004, 0.802, 0.8021, 0.8037, 0.8011, 0.8022, 0.8022, 0.8051]
    assert [r["predicted"] for r in rows] == [315, 252, 313, 385, 339, 205, 238, 179, 275, 188]
    g = d["summary"]["global"]   # the global rule at the plain 0.1
    assert (round(g["threshold"], 4), g["predicted"], round(g["lower_bound"], 4)) == (
        0.5062, 3320, 0.8)


def test_apply_input_override(tmp_path):
    z, y = multiclass_data(dtype=np.float64)
    np.savez(tmp_path / "d.npz", logits=z, labels=y)
    np.save(tmp_path / "p.npy", special.softmax(z, axis=1))
    invoke(["fit", tmp_path / "d.npz", "-o", tmp_path / "t.json"])
    invoke(["apply", tmp_path / "t.json", tmp_path / "d.npz", "-o", tmp_path / "a.npy"])
    invoke(["apply", tmp_path / "t.json", tmp_path / "p.npy", "--input", "probabilities",
            "-o", tmp_path / "b.npy"])
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert (a == b).mean() > 0.999  # log(softmax(z)) = z - const, up to rounding


# --------------------------------------------------------------------------- help
FIT_OPTIONS = ["--labels", "-o", "--output", "--precision", "--confidence", "--simultaneous",
               "--rule", "--task", "--input", "--classes", "--json", "--help"]
APPLY_OPTIONS = ["-o", "--output", "--rule", "--input", "--probabilities", "--help"]


def _all_opts(command):
    return [o for p in command.params for o in (*p.opts, *p.secondary_opts)
            if o.startswith("-")]


def test_group_help():
    res = invoke(["--help"])
    assert res.stdout.startswith("Usage: calibrate [OPTIONS] COMMAND [ARGS]...")
    for word in ("fit", "apply", "--version", "--help"):
        assert word in res.stdout
    assert invoke(["-h"]).stdout == res.stdout
    assert invoke(["--version"]).stdout == f"calibrate, version {calibrate.__version__}\n"


@pytest.mark.parametrize("name, documented", [("fit", FIT_OPTIONS), ("apply", APPLY_OPTIONS)])
def test_command_help_mentions_every_option(name, documented):
    res = invoke([name, "--help"])
    assert res.stdout.startswith(f"Usage: calibrate {name} [OPTIONS] ")
    for opt in documented + _all_opts(cli.commands[name]):
        assert opt in res.stdout, opt
    # choices are listed
    for choice in ("per-class", "global", "logits", "probabilities", "log-probabilities"):
        assert choice in res.stdout, choice
    if name == "fit":
        for choice in ("auto", "multiclass", "binary", "multilabel"):
            assert choice in res.stdout, choice
    assert res.stderr == ""


def test_no_command_prints_usage():
    res = runner().invoke(cli, [], prog_name="calibrate")
    assert res.exit_code in (0, 2)
    assert "Usage: calibrate" in res.output


# --------------------------------------------------------------------------- light imports
def _run_python(code, *args):
    return subprocess.run([sys.executable, *args, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_import_and_help_do_not_import_torch_or_sklearn():
    code = textwrap.dedent("""
        import sys
        import calibrate
        from calibrate_cli.main import cli
        from click.testing import CliRunner
        for args in (["--help"], ["fit", "--help"], ["apply", "--help"]):
            r = CliRunner().invoke(cli, args)
            assert r.exit_code == 0, (args, r.output)
        bad = sorted(m for m in sys.modules
                     if m.split(".")[0] in ("torch", "sklearn", "matplotlib"))
        assert not bad, bad
        print("ok")
    """)
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("args", [["--help"], ["fit", "--help"], ["apply", "--help"]])
def test_cli_module_help_importtime(args):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "calibrate_cli.main", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("Usage: ")
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line]
    assert "calibrate" in imported and "click" in imported
    heavy = [m for m in imported if m.split(".")[0] in ("torch", "sklearn", "matplotlib")]
    assert heavy == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_commands_ask_glibc_to_keep_freed_memory_for_the_next_block():
    # (a cold binary fit of 5M rows spent ~40% of its time faulting in blocks
    # that glibc had just handed back); a C library without mallopt is left alone
    import ctypes

    from calibrate_cli import main as cli_main
    if not hasattr(ctypes.CDLL(None), "mallopt"):
        pytest.skip("not glibc")
    assert cli_main._keep_freed_memory() is True


def test_table_columns_never_run_together_with_wide_values():
    # a 1M x 1000 multilabel fit printed a recall of 0.003313 against its
    # precision ("0.94510.003313") and a support of 234165386 against the
    # recall: a cell as wide as its column keeps a space before it
    from calibrate.summary import ClassRow
    from calibrate_cli.evaluate import _row as evaluation_row
    from calibrate_cli.main import TABLE_HEADER, _row

    wide = ClassRow("470", 0.9351, 0.9451, 0.003313, 234165386, 57019233, 0.057, 0.9062, "ok")
    assert _row("470", wide).split() == ["470", "0.9351", "0.9451", "0.003313", "234165386",
                                         "57019233", "0.9062", "ok"]
    narrow = ClassRow("3", 0.5, 0.9, 0.25, 40, 12, 0.1, 0.8, "ok")
    assert len(_row("3", narrow)) == len(TABLE_HEADER) - len("status") + len("ok")
    r = {"threshold": 0.93, "precision": 0.9451, "recall": 0.003313, "predicted": 1234567890,
         "support": 234165386, "status": "held",
         "held_out": {"precision": 0.95, "lower_bound": 0.9062, "recall": 0.003313}}
    assert evaluation_row("x", r).split() == ["x", "0.93", "0.9451", "0.95", "0.9062",
                                              "0.003313", "0.003313", "1234567890",
                                              "234165386", "held"]
