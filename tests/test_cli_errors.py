"""Bad input to the ``calibrate`` command line: one clear line, the right exit code.

The command line promises: exit 1 for bad data or files, with
one line on stderr and no traceback; exit 2 for usage errors; nothing is left
half-written.  Every case is a row of one table: a builder makes the bad input
in ``tmp_path`` and returns the arguments; the row lists the exit code, the
substrings the ``Error:`` line must contain (the file or option, what was
expected, what was found) and substrings it must not contain.

Pickled payloads in these files call ``os.mkdir(<tmp>/UNPICKLED)`` when they
are unpickled, so every row also checks that nothing was ever unpickled.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from calibrate_cli.main import cli
from hostile_helpers import make_data

N, C = 300, 10


def runner():
    """A CliRunner with stderr apart from stdout (click >= 8.2 always; 8.1 on request)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


class Payload:
    """Unpickling this runs ``os.mkdir(path)``: proof that a file was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _data(tmp):
    """Valid 10-class logits and labels, and a threshold file fitted on them."""
    return make_data(tmp)


def _fit(scores, *extra, labels="y.npy"):
    args = ["fit", scores]
    if labels is not None:
        args += ["--labels", labels]
    return args + ["-o", "out.json", *extra]


# ---- builders: each gets tmp_path (the current folder) and returns the CLI arguments
def b_nan(tmp, z, y):
    a = z.copy()
    a[3, 4] = np.nan
    np.save("nan.npy", a)
    return _fit("nan.npy")


def b_posinf(tmp, z, y):
    a = z.copy()
    a[5, 0] = np.inf
    np.save("inf.npy", a)
    return _fit("inf.npy")


def b_neginf(tmp, z, y):
    a = z.copy()
    a[5, 0] = -np.inf
    np.save("ninf.npy", a)
    return _fit("ninf.npy")


def b_labels_range(tmp, z, y):
    b = y.copy()
    b[7] = C
    np.save("lab.npy", b)
    return _fit("z.npy", labels="lab.npy")


def b_labels_negative(tmp, z, y):
    b = y.copy()
    b[7] = -3
    np.save("lab.npy", b)
    return _fit("z.npy", labels="lab.npy")


def b_labels_float(tmp, z, y):
    b = y.astype(np.float64)
    b[7] = 2.5
    np.save("lab.npy", b)
    return _fit("z.npy", labels="lab.npy")


def b_labels_nan(tmp, z, y):
    b = y.astype(np.float64)
    b[7] = np.nan
    np.save("lab.npy", b)
    return _fit("z.npy", labels="lab.npy")


def b_labels_short(tmp, z, y):
    np.save("lab.npy", y[:-1])
    return _fit("z.npy", labels="lab.npy")


def b_empty(tmp, z, y):
    np.save("empty.npy", np.zeros((0, C), np.float32))
    np.save("lab.npy", np.zeros(0, np.int64))
    return _fit("empty.npy", labels="lab.npy")


def b_groups_strings(tmp, z, y):
    np.save("groups.npy", np.array([f"img{i // 3}" for i in range(len(y))]))
    return _fit("z.npy", "--groups", "groups.npy", "--method", "auto")


def b_no_columns(tmp, z, y):
    np.save("nocols.npy", np.zeros((len(y), 0), np.float32))
    return _fit("nocols.npy")


def b_3d(tmp, z, y):
    np.save("cube.npy", np.zeros((4, 3, 2), np.float32))
    np.save("lab.npy", np.zeros(4, np.int64))
    return _fit("cube.npy", labels="lab.npy")


def b_strings(tmp, z, y):
    np.save("str.npy", np.array(["a", "b"]))
    return _fit("str.npy")


def b_object(tmp, z, y):
    np.save("obj.npy", np.array([Payload(tmp / "UNPICKLED"), 1], dtype=object), allow_pickle=True)
    return _fit("obj.npy")


def b_truncated_header(tmp, z, y):
    Path("trunc.npy").write_bytes(Path("z.npy").read_bytes()[:100])
    return _fit("trunc.npy")


def b_truncated_data(tmp, z, y):
    Path("trunc.npy").write_bytes(Path("z.npy").read_bytes()[:1000])
    return _fit("trunc.npy")


def b_text_npy(tmp, z, y):
    Path("text.npy").write_text("0.1,0.2,0.7\n0.3,0.3,0.4\n")
    return _fit("text.npy")


def b_unknown_ext(tmp, z, y):
    np.savetxt("scores.txt", z)
    return _fit("scores.txt")


def b_missing(tmp, z, y):
    return _fit("missing.npy")


def b_missing_labels_file(tmp, z, y):
    return _fit("z.npy", labels="nolabels.npy")


def b_no_labels_option(tmp, z, y):
    return _fit("z.npy", labels=None)


def b_npz_no_scores(tmp, z, y):
    np.savez("data.npz", weights=z, labels=y)
    return _fit("data.npz", labels=None)


def b_csv_text(tmp, z, y):
    Path("bad.csv").write_text("a,b,c\n1,2,3\n4,x,6\n")
    return _fit("bad.csv")


def b_opt(*extra):
    def build(tmp, z, y):
        return _fit("z.npy", *extra)
    return build


def b_classes_count(tmp, z, y):
    Path("names.txt").write_text("cat\ndog\nbird\n")
    return _fit("z.npy", "--classes", "names.txt")


def b_pt_object(tmp, z, y):
    torch = pytest.importorskip("torch")
    torch.save({"a": object()}, "obj.pt")
    return _fit("obj.pt")


def b_pt_payload(tmp, z, y):
    torch = pytest.importorskip("torch")
    torch.save({"logits": torch.from_numpy(z), "x": Payload(tmp / "UNPICKLED")}, "evil.pt")
    return _fit("evil.pt", labels=None)


def b_pt_list(tmp, z, y):
    torch = pytest.importorskip("torch")
    torch.save([1.0, 2.0, 3.0], "list.pt")
    return _fit("list.pt")


# threshold-file problems (apply)
def b_json_broken(tmp, z, y):
    Path("broken.json").write_text(Path("t.json").read_text()[:200])
    return ["apply", "broken.json", "z.npy"]


def _edit_file(name, edit):
    d = json.loads(Path("t.json").read_text())
    edit(d)
    Path(name).write_text(json.dumps(d))


def b_json_schema(tmp, z, y):
    _edit_file("v99.json", lambda d: d.update(schema_version=99))
    return ["apply", "v99.json", "z.npy"]


def b_json_no_task(tmp, z, y):
    _edit_file("notask.json", lambda d: d.pop("task"))
    return ["apply", "notask.json", "z.npy"]


def b_json_not_object(tmp, z, y):
    Path("list.json").write_text("[1, 2, 3]")
    return ["apply", "list.json", "z.npy"]


def b_json_missing(tmp, z, y):
    return ["apply", "nothere.json", "z.npy"]


def b_class_count(tmp, z, y):
    np.save("z5.npy", z[:, :5])
    return ["apply", "t.json", "z5.npy"]


def b_apply_nan(tmp, z, y):
    a = z.copy()
    a[0, 0] = np.nan
    np.save("nan.npy", a)
    return ["apply", "t.json", "nan.npy", "-o", "out.npy"]


def b_apply_bad_ext(tmp, z, y):
    return ["apply", "t.json", "z.npy", "-o", "out.txt"]


def b_apply_bad_proba_ext(tmp, z, y):
    return ["apply", "t.json", "z.npy", "-o", "out.npy", "--probabilities", "p.jsonl"]


def b_apply_rule(tmp, z, y):
    return ["apply", "t.json", "z.npy", "--rule", "strict"]


def b_fit_missing_dir(tmp, z, y):
    return _fit("z.npy")[:-1] + ["nodir/out.json"]


def b_apply_missing_dir(tmp, z, y):
    return ["apply", "t.json", "z.npy", "-o", "nodir/out.npy"]


BUG_MKSTEMP = ("BUG: an output path in a missing folder escapes as FileNotFoundError from "
               "tempfile.mkstemp (traceback, no 'Error:' line)")

ROWS = [
    # id, builder, exit code, must contain, must not contain
    pytest.param(b_nan, 1, ["scores", "expected finite", "NaN"], [], id="nan-scores"),
    pytest.param(b_posinf, 1, ["scores", "expected finite", "+inf"], [], id="posinf-scores"),
    pytest.param(b_neginf, 1, ["scores", "expected finite", "-inf"], [], id="neginf-scores"),
    pytest.param(b_labels_range, 1, ["labels", "[0, 10)", "found the value 10"], [],
                 id="labels-out-of-range"),
    pytest.param(b_labels_negative, 1, ["labels", "[0, 10)", "-3"], [], id="labels-negative"),
    pytest.param(b_labels_float, 1, ["labels", "integer labels", "non-integer"], [],
                 id="labels-non-integer"),
    pytest.param(b_labels_nan, 1, ["labels", "integer labels", "NaN"], [], id="labels-nan"),
    pytest.param(b_labels_short, 1, ["labels", f"{N} labels", f"found {N - 1}"], [],
                 id="labels-length-mismatch"),
    pytest.param(b_empty, 1, ["scores", "at least one row", "empty"], [], id="empty-scores"),
    pytest.param(b_groups_strings, 1, ["groups file 'groups.npy'", "a numeric array",
                                       "dtype <U"], ["labels"], id="groups-file-of-strings"),
    pytest.param(b_no_columns, 1, ["scores file 'nocols.npy'", "at least one score column",
                                   f"shape ({N}, 0)"], [], id="no-score-columns"),
    pytest.param(b_3d, 1, ["scores", "(N, C)", "(4, 3, 2)"], [], id="3d-scores"),
    pytest.param(b_strings, 1, ["scores", "numeric array", "<U1"], [], id="string-array"),
    pytest.param(b_object, 1, ["obj.npy", "numeric array", "object array"], ["memory-mapped"],
                 id="object-array-npy"),
    pytest.param(b_truncated_header, 1, ["trunc.npy", "expected a .npy array", "EOF"], [],
                 id="truncated-npy-header"),
    pytest.param(b_truncated_data, 1, ["trunc.npy", "bytes for shape (300, 10)", "truncated"],
                 [], id="truncated-npy-data"),
    pytest.param(b_text_npy, 1, ["text.npy", "expected"], ["object array", "pickle"],
                 id="text-file-named-npy"),
    pytest.param(b_unknown_ext, 1, ["scores.txt", ".npy, .npz, .pt or .csv", "'.txt'"], [],
                 id="unknown-extension"),
    pytest.param(b_missing, 1, ["missing.npy", "existing file", "nothing at that path"], [],
                 id="missing-file"),
    pytest.param(b_missing_labels_file, 1, ["labels file 'nolabels.npy'", "existing file"], [],
                 id="missing-labels-file"),
    pytest.param(b_no_labels_option, 2, ["--labels", "z.npy"], [], id="no-labels-option"),
    pytest.param(b_npz_no_scores, 1, ["data.npz", "logits", "weights"], [], id="npz-no-scores"),
    pytest.param(b_csv_text, 1, ["bad.csv", "comma-separated numbers", "'x'"], [],
                 id="csv-not-numbers"),
    pytest.param(b_opt("--precision", "1.5"), 2, ["--precision", "1.5", "0<x<1"], [],
                 id="precision-1.5"),
    pytest.param(b_opt("--precision", "nan"), 2, ["--precision", "'nan'", "0<x<1"], [],
                 id="precision-nan"),
    pytest.param(b_opt("--precision", "0"), 2, ["--precision", "0", "0<x<1"], [],
                 id="precision-0"),
    pytest.param(b_opt("--confidence", "2"), 2, ["--confidence", "(0, 1)", "'2'"], [],
                 id="confidence-2"),
    pytest.param(b_opt("--confidence", "abc"), 2, ["--confidence", "'none'", "'abc'"], [],
                 id="confidence-abc"),
    pytest.param(b_opt("--task", "nope"), 2, ["--task", "'nope'", "multiclass"], [],
                 id="task-nope"),
    pytest.param(b_opt("--input", "odds"), 2, ["--input", "'odds'", "log-probabilities"], [],
                 id="input-odds"),
    pytest.param(b_opt("--input", "probabilities"), 1,
                 ["scores", "probabilities in [0, 1]", "values from"], [],
                 id="logits-forced-as-probabilities"),
    pytest.param(b_opt("--task", "binary"), 1, ["scores", "binary scores", f"({N}, {C})"], [],
                 id="task-binary-on-10-columns"),
    pytest.param(b_classes_count, 1, ["classes", f"{C} class names", "found 3"], [],
                 id="classes-count"),
    pytest.param(b_pt_object, 1, ["obj.pt", "weights_only"], [], id="pt-pickled-object"),
    pytest.param(b_pt_payload, 1, ["evil.pt", "weights_only"], [], id="pt-pickled-payload"),
    # The refusal above is right; its wording is torch's first line, which invites the user
    # to load the file unsafely and never says what was found.
    pytest.param(b_pt_object, 1, ["obj.pt", "weights_only", "object"],
                 ["can still be loaded"], id="pt-pickled-object-message"),
    pytest.param(b_pt_list, 1, ["list.pt", "a tensor or a dict of tensors", "list"], [],
                 id="pt-list"),
    pytest.param(b_json_broken, 1, ["broken.json", "valid JSON", "parse error"], [],
                 id="thresholds-broken-json"),
    pytest.param(b_json_schema, 1, ["v99.json", "schema_version 1", "99"], [],
                 id="thresholds-schema-99"),
    pytest.param(b_json_no_task, 1, ["notask.json", "'task'", "none"], [],
                 id="thresholds-missing-task"),
    pytest.param(b_json_not_object, 1, ["list.json", "JSON object", "list"], [],
                 id="thresholds-not-object"),
    pytest.param(b_json_missing, 1, ["nothere.json", "existing file", "nothing at that path"], [],
                 id="thresholds-missing-file"),
    pytest.param(b_class_count, 1, ["scores", "10 score columns", "threshold file", "found 5"],
                 [], id="thresholds-class-count"),
    pytest.param(b_apply_nan, 1, ["scores", "finite", "NaN"], [], id="apply-nan-scores"),
    pytest.param(b_apply_bad_ext, 1, ["out.txt", ".npy, .csv or .jsonl", "'.txt'"], [],
                 id="apply-output-txt"),
    pytest.param(b_apply_bad_proba_ext, 1, ["p.jsonl", ".npy or .csv", "'.jsonl'"], [],
                 id="apply-probabilities-jsonl"),
    pytest.param(b_apply_rule, 2, ["--rule", "'strict'", "per-class"], [], id="apply-rule"),
    pytest.param(b_fit_missing_dir, 1, ["nodir"], [], id="fit-output-missing-folder"),
    pytest.param(b_apply_missing_dir, 1, ["nodir"], [], id="apply-output-missing-folder"),
]


@pytest.mark.parametrize("build, code, must, must_not", ROWS)
def test_bad_input(tmp_path, monkeypatch, build, code, must, must_not):
    monkeypatch.chdir(tmp_path)
    z, y = _data(tmp_path)
    args = build(tmp_path, z, y)
    res = runner().invoke(cli, args, prog_name="calibrate")
    detail = f"args={args}\nstdout={res.stdout!r}\nstderr={res.stderr!r}\nexc={res.exception!r}"
    # The CLI ended itself (sys.exit); no exception escaped it.
    assert isinstance(res.exception, SystemExit), detail
    assert res.exit_code == code, detail
    assert "Traceback" not in res.output, detail
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and res.stderr.endswith("\n"), detail
    line = lines[0]
    assert line.startswith("Error: "), detail
    for s in must:
        assert s in line, (s, line)
    for s in must_not:
        assert s not in line, (s, line)
    assert res.stdout == "", detail
    # Nothing was unpickled, written or left behind.
    assert not (tmp_path / "UNPICKLED").exists()
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "out.npy").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".calibrate-")] == []


# Data-content errors name the role ("scores", "labels", "classes") but not the file the
# values came from; with several files on one command line the file name would help.
@pytest.mark.parametrize("build, name", [(b_nan, "nan.npy"), (b_labels_range, "lab.npy"),
                                         (b_classes_count, "names.txt")],
                         ids=["nan-scores", "labels-range", "classes-count"])
def test_value_errors_name_the_file(tmp_path, monkeypatch, build, name):
    monkeypatch.chdir(tmp_path)
    z, y = _data(tmp_path)
    res = runner().invoke(cli, build(tmp_path, z, y), prog_name="calibrate")
    assert res.exit_code == 1
    assert name in res.stderr


# ---- an existing output survives a failed command, and no temporary file is left
SENTINEL = b"\x00sentinel: must survive\xff\n"


def _bad_fit(out):
    a = np.load("z.npy")
    a[0, 0] = np.nan
    np.save("nan.npy", a)
    return ["fit", "nan.npy", "--labels", "y.npy", "-o", out]


def _bad_fit_labels(out):
    np.save("lab.npy", np.load("y.npy")[:-2])
    return ["fit", "z.npy", "--labels", "lab.npy", "-o", out]


def _bad_apply_scores(out):
    a = np.load("z.npy")
    a[1, 1] = np.inf
    np.save("inf.npy", a)
    return ["apply", "t.json", "inf.npy", "-o", out]


def _bad_apply_thresholds(out):
    Path("broken.json").write_text("{")
    return ["apply", "broken.json", "z.npy", "-o", out]


def _bad_apply_columns(out):
    np.save("z5.npy", np.load("z.npy")[:, :5])
    return ["apply", "t.json", "z5.npy", "-o", out]


def _bad_apply_proba(out):
    return ["apply", "t.json", "z.npy", "-o", out, "--probabilities", "p.txt"]


@pytest.mark.parametrize("out, make", [
    ("thresholds.json", _bad_fit), ("thresholds.json", _bad_fit_labels),
    ("out.npy", _bad_apply_scores), ("out.npy", _bad_apply_thresholds),
    ("out.csv", _bad_apply_columns), ("out.npy", _bad_apply_proba),
], ids=["fit-nan", "fit-labels", "apply-inf", "apply-broken-json", "apply-columns",
        "apply-bad-probabilities-name"])
def test_existing_output_unchanged_on_failure(tmp_path, monkeypatch, out, make):
    monkeypatch.chdir(tmp_path)
    _data(tmp_path)
    (tmp_path / out).write_bytes(SENTINEL)
    before = sorted(p.name for p in tmp_path.iterdir())
    args = make(out)
    res = runner().invoke(cli, args, prog_name="calibrate")
    assert isinstance(res.exception, SystemExit) and res.exit_code == 1, (res.stderr,
                                                                           res.exception)
    assert res.stderr.startswith("Error: ")
    assert (tmp_path / out).read_bytes() == SENTINEL
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".calibrate-")] == []
    after = sorted(p.name for p in tmp_path.iterdir())
    made = set(after) - set(before)
    assert made <= {"nan.npy", "lab.npy", "inf.npy", "broken.json", "z5.npy"}, made


def test_pickled_npy_is_never_unpickled(tmp_path, monkeypatch):
    """Independent of the message: the payload of an object .npy does not run."""
    monkeypatch.chdir(tmp_path)
    _data(tmp_path)
    np.save("obj.npy", np.array([Payload(tmp_path / "UNPICKLED")], dtype=object),
            allow_pickle=True)
    for args in (["fit", "obj.npy", "--labels", "y.npy"], ["fit", "z.npy", "--labels", "obj.npy"],
                 ["apply", "t.json", "obj.npy"]):
        res = runner().invoke(cli, args, prog_name="calibrate")
        assert res.exit_code == 1 and res.stderr.startswith("Error: "), res.stderr
        assert "obj.npy" in res.stderr
    assert not (tmp_path / "UNPICKLED").exists()
    # sanity: the payload does run when the file is unpickled on purpose
    np.load("obj.npy", allow_pickle=True)
    assert (tmp_path / "UNPICKLED").is_dir()
