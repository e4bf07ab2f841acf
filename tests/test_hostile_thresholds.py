"""Issue 10, family 6: the threshold file is untrusted input.

Deep nesting, size, what the file is (FIFO, /dev/zero, a folder), duplicate
keys, booleans where numbers belong, every field's type, length and range,
class names (distinct strings without control characters, lone surrogates or
bidirectional controls), and CSV cells a spreadsheet would run as formulas.
Each refusal is one line from the CLI and the same message from
``calibrate.load``.
"""

import copy
import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

import calibrate
from calibrate import schema
from hostile_helpers import (
    assert_clean_failure,
    assert_threshold_file_refused,
    invoke,
    make_data,
    run,
    snapshot,
)


def _set(path, value):
    """An edit setting ``d[path...] = value`` (path: keys and indices)."""
    def edit(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


def _drop(*path):
    def edit(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
    return edit


def _text(fn):
    """An edit of the file's text (str -> str)."""
    fn.text = True
    return fn


# (id, edit of the parsed file or of its text, words in the message)
ROWS = [
    # structure
    ("nesting-1100", _text(lambda s: s[:-2] + ', "x": ' + "[" * 1100 + "]" * 1100 + "}\n"),
     ["nested at most 32 deep", "1101 levels"]),
    ("nesting-1e6-in-summary", _text(lambda s: s.replace('"summary": {', '"summary": {"x": '
                                                         + "{\"a\": " * 100000 + "1" + "}" * 100000
                                                         + ", ", 1)),
     ["nested at most 32 deep"]),
    ("not-an-object", _text(lambda s: "[1, 2]"), ["a JSON object", "list"]),
    ("duplicate-top-key", _text(lambda s: s[:-2] + ', "task": "binary"}\n'),
     ["each key once", "'task' twice"]),
    ("duplicate-nested-key", _text(lambda s: s.replace('"precision": 0.9,',
                                                       '"precision": 0.9, "precision": 0.5,', 1)),
     ["'precision' twice"]),
    ("unknown-field", _set(["comment"], "hi"), ["only the fields", "'comment'"]),
    ("nan", _text(lambda s: s.replace('"temperature": ', '"temperature": NaN, "t2": ', 1)),
     ["valid JSON"]),
    ("number-too-large", _text(lambda s: s.replace('"n": ', '"n": 1e400, "n2": ', 1)),
     ["summary.n", "a finite number"]),
    ("integer-of-5000-digits", _text(lambda s: s.replace('"schema_version": 1',
                                                         '"schema_version": 1' + "0" * 5000)),
     ["valid JSON", "more than 4300 digits"]),
    ("not-utf8", _text(lambda s: s.replace('"task"', '"t\udcffask"')),
     ["valid JSON (UTF-8)", "0xff"]),
    # schema_version and booleans where numbers belong
    ("schema-version-true", _set(["schema_version"], True), ["schema_version 1", "true"]),
    ("schema-version-1.0", _set(["schema_version"], 1.0), ["schema_version 1", "1.0"]),
    ("schema-version-string", _set(["schema_version"], "1"), ["schema_version 1", "'1'"]),
    ("temperature-true", _set(["temperature"], True), ["positive finite temperatures"]),
    ("temperature-zero", _set(["temperature"], 0), ["positive finite temperatures"]),
    ("temperature-list", _set(["temperature"], [2.0] * 10), ["one temperature"]),
    ("precision-true", _set(["target", "precision"], True), ["target.precision"]),
    ("confidence-true", _set(["target", "confidence"], True), ["target.confidence"]),
    ("confidence-one", _set(["target", "confidence"], 1.0), ["target.confidence"]),
    ("target-unknown-key", _set(["target", "recall"], 0.5), ["'target' as an object"]),
    ("simultaneous-number", _set(["target", "simultaneous"], 0), ["target.simultaneous"]),
    ("decision-threshold-true", _set(["decision_thresholds", "per_class", 0], True),
     ["decision_thresholds.per_class[0]", "finite numbers or null"]),
    ("decision-threshold-string", _set(["decision_thresholds", "global"], "-0.1"),
     ["decision_thresholds.global"]),
    ("abstain-label-true", _set(["abstain_label"], True), ["abstain_label", "-1", "true"]),
    ("abstain-label-zero", _set(["abstain_label"], 0), ["abstain_label", "found 0"]),
    ("abstain-label-float", _set(["abstain_label"], -1.0), ["abstain_label", "-1.0"]),
    ("summary-support-true", _set(["summary", "per_class", 0, "support"], True),
     ["summary.per_class[0].support", "a count"]),
    # every field checked
    ("per-class-short", lambda d: d["decision_thresholds"]["per_class"].pop(),
     ["decision_thresholds.per_class", "10 per-class thresholds", "found 9"]),
    ("per-class-long", lambda d: d["decision_thresholds"]["per_class"].append(-0.1),
     ["found 11"]),
    ("space-wrong", _set(["decision_thresholds", "space"], "logit"),
     ["decision_thresholds.space", "'log-probability'", "'logit'"]),
    ("space-missing", _drop("decision_thresholds", "space"), ["decision_thresholds"]),
    ("decision-threshold-positive", _set(["decision_thresholds", "per_class", 1], 0.5),
     ["log-probabilities, <= 0", "0.5"]),
    ("shown-threshold-above-one", _set(["thresholds", "global"], 1.5), ["thresholds.global"]),
    ("shown-thresholds-short", lambda d: d["thresholds"]["per_class"].pop(),
     ["thresholds: expected an object"]),
    ("task-unknown", _set(["task"], "regression"), ["task multiclass", "'regression'"]),
    ("task-not-string", _set(["task"], ["multiclass"]), ["task multiclass"]),
    ("rule-unknown", _set(["rule"], "max"), ["rule per-class | global"]),
    ("input-kind-unknown", _set(["input_kind"], "odds"), ["input_kind"]),
    ("summary-not-object", _set(["summary"], []), ["summary", "an object"]),
    ("summary-rows-short", lambda d: d["summary"]["per_class"].pop(), ["summary.per_class",
                                                                        "10 rows"]),
    ("summary-precision-string", _set(["summary", "per_class", 2, "precision"], "high"),
     ["summary.per_class[2].precision", "'high'"]),
    ("summary-recall-above-one", _set(["summary", "global", "recall"], 2.0),
     ["summary.global.recall", "[0, 1]"]),
    ("summary-status-number", _set(["summary", "global", "status"], 3), ["summary.global.status"]),
    ("summary-escape-sequence", _set(["summary", "metrics", "nll", "definition"], "\x1b[2J"),
     ["summary.metrics.nll.definition", "control characters", "\\x1b"]),
    ("key-with-newline", _set(["summary", "a\nb"], 1), ["a key without control"]),
    # class names
    ("class-duplicate", _set(["classes", 3], "0"), ["classes[3]", "distinct", "'0' again"]),
    ("class-carriage-return", _set(["classes", 0], "cat\rdog"),
     ["classes[0]", "control characters", "cat\\rdog"]),
    ("class-newline", _set(["classes", 1], "a\nb"), ["classes[1]", "a\\nb"]),
    ("class-escape", _set(["classes", 2], "\x1b[31mred"), ["classes[2]", "\\x1b"]),
    ("class-nul", _set(["classes", 2], "a\x00b"), ["classes[2]", "\\x00"]),
    ("class-lone-surrogate", _text(lambda s: s.replace('"classes": [\n    "0"',
                                                       '"classes": [\n    "\\ud800"', 1)),
     ["classes[0]", "lone surrogates", "\\ud800"]),
    ("class-bidi-override", _set(["classes", 4], "abc\u202edef"), ["classes[4]", "\\u202e"]),
    ("class-line-separator", _set(["classes", 4], "a\u2028b"), ["classes[4]", "\\u2028"]),
    ("class-empty", _set(["classes", 5], ""), ["classes[5]", "non-empty"]),
    ("class-number", _set(["classes", 5], 5), ["classes[5]", "a string", "a number"]),
    ("class-null", _set(["classes", 5], None), ["classes[5]", "null"]),
    ("classes-one", _set(["classes"], ["only"]), ["classes", "at least 2"]),
]


def _bad_file(tmp, edit):
    text = (tmp / "t.json").read_text()
    if getattr(edit, "text", False):
        new = edit(text)
    else:
        d = json.loads(text)
        edit(d)
        new = json.dumps(d, indent=2)
    (tmp / "bad.json").write_bytes(new.encode("utf-8", "surrogateescape"))


@pytest.mark.parametrize("edit, must", [pytest.param(e, m, id=i) for i, e, m in ROWS])
def test_bad_threshold_file_refused(tmp_path, monkeypatch, edit, must):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    _bad_file(tmp_path, edit)
    assert_threshold_file_refused(tmp_path, snapshot(tmp_path), "z.npy", "out.csv", must)


def test_binary_file_needs_two_class_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    calibrate.fit(z[:, 0] - z[:, 1], (y == 0).astype(int), confidence=None).save("b.json")
    d = json.loads(Path("b.json").read_text())
    d["classes"] = ["neg", "pos", "other"]
    Path("bad.json").write_text(json.dumps(d))
    before = snapshot(tmp_path)
    res = invoke(["apply", "bad.json", "z.npy", "-o", "out.npy"])
    assert_clean_failure(res, 1, ["2 names for a binary task", "found 3"], tmp_path, before)


# ---- what the file is
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "dev-urandom", "too-large", "socket"])
def test_threshold_file_that_is_not_a_small_regular_file(tmp_path, kind):
    """Refused before reading (subprocess with a timeout: a FIFO must not block,
    /dev/zero must not be read until memory runs out)."""
    make_data(tmp_path)
    p = tmp_path / "bad.json"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", p)
    elif kind == "dev-urandom":
        os.symlink("/dev/urandom", p)
    elif kind == "socket":
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
    else:
        with open(p, "wb") as fh:  # sparse: 200 MiB that cost nothing
            fh.truncate(200 << 20)
    before = snapshot(tmp_path)
    res = run(["apply", "bad.json", "z.npy", "-o", "out.npy"], tmp_path, timeout=60)
    found = {"fifo": "a FIFO", "dev-zero": "a character device", "dev-urandom": "character",
             "too-large": "200.0 MiB", "socket": "a socket"}[kind]
    expected = "at most 128 MiB" if kind == "too-large" else "a regular file"
    assert_clean_failure(res, 1, ["threshold file 'bad.json'", expected, found], tmp_path, before)


def test_size_cap_is_the_one_documented(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    monkeypatch.setattr(schema, "MAX_BYTES", 4096)
    with pytest.raises(calibrate.CalibrateError, match="at most 0 MiB"):
        calibrate.load("t.json")
    assert schema.MAX_BYTES == 4096 and Path("t.json").stat().st_size > 4096


def test_utf8_byte_order_mark_is_accepted(tmp_path, monkeypatch):
    """A file saved by an editor that adds a BOM still loads, identically."""
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    Path("bom.json").write_bytes(b"\xef\xbb\xbf" + Path("t.json").read_bytes())
    assert calibrate.load("bom.json") == calibrate.load("t.json")


# ---- class names coming in through fit --classes, and the library's save
CLASSES_ROWS = [
    ("duplicate", "cat\ndog\ncat\n" + "".join(f"c{k}\n" for k in range(7)), ["distinct", "'cat'"]),
    ("escape", "\x1b[2Jcat\n" + "".join(f"c{k}\n" for k in range(9)), ["classes file", "\\x1b"]),
    ("bidi", "ab\u202ecd\n" + "".join(f"c{k}\n" for k in range(9)), ["\\u202e"]),
    ("carriage-return-inside", "ca\rt\n" + "".join(f"c{k}\n" for k in range(9)), ["ca\\rt"]),
    ("not-utf8", None, ["UTF-8", "0xff"]),
]


@pytest.mark.parametrize("text, must", [pytest.param(t, m, id=i) for i, t, m in CLASSES_ROWS])
def test_bad_classes_file_refused_before_work(tmp_path, monkeypatch, text, must):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    if text is None:
        Path("names.txt").write_bytes(b"caf\xff\n" + b"".join(b"c%d\n" % k for k in range(9)))
    else:
        Path("names.txt").write_bytes(text.encode("utf-8"))
    before = snapshot(tmp_path)
    res = invoke(["fit", "z.npy", "--labels", "y.npy", "--classes", "names.txt", "-o", "o.json"])
    assert_clean_failure(res, 1, ["classes file 'names.txt'", *must], tmp_path, before)


def test_classes_file_with_crlf_bom_and_blank_lines_reads_the_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    names = [f"class {k}" for k in range(10)]
    Path("names.txt").write_bytes(b"\xef\xbb\xbf" + "\r\n\r\n".join(names).encode() + b"\r\n")
    assert invoke(["fit", "z.npy", "--labels", "y.npy", "--classes", "names.txt",
                   "-o", "o.json"]).code == 0
    assert calibrate.load("o.json").classes == names


def test_library_never_saves_a_file_it_could_not_load(tmp_path):
    z, y = make_data(tmp_path)
    names = [f"c{k}" for k in range(9)] + ["bad\nname"]
    cal = calibrate.fit(z, y, confidence=None, classes=names)
    with pytest.raises(calibrate.CalibrateError, match="classes\\[9\\]"):
        cal.save(tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


# ---- CSV cells a spreadsheet would run (OWASP: a leading quote), and CSV quoting
FORMULA_NAMES = ["=cmd|' /C calc'!A0", "+1+2", "-2", "@SUM(A1:A9)", "plain", "a,b",
                 'say "hi"', "=HYPERLINK(\"http://x\")", "'quoted", "ünï"]


def _named_file(tmp, names):
    """t.json with these class names, every class predicted at p >= exp(-0.5)."""
    d = json.loads((tmp / "t.json").read_text())
    d["classes"] = names
    for row, n in zip(d["summary"]["per_class"], names, strict=True):
        row["class"] = n
    d["decision_thresholds"]["per_class"] = [-0.5] * len(names)
    d["thresholds"]["per_class"] = [math.exp(-0.5)] * len(names)
    (tmp / "named.json").write_text(json.dumps(d))


def test_csv_decisions_escape_formula_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    z, _ = make_data(tmp_path)
    _named_file(tmp_path, FORMULA_NAMES)
    # every row predicted: logits with one very large class per row
    zz = np.zeros((len(FORMULA_NAMES), 10), np.float32)
    zz[np.arange(10), np.arange(10)] = 50.0
    np.save("zz.npy", zz)
    assert invoke(["apply", "named.json", "zz.npy", "-o", "d.csv"]).code == 0
    with open("d.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["prediction", "label"]
    got = {int(r[0]): r[1] for r in rows[1:]}
    assert len(rows) == 11 and sorted(got) == list(range(10))
    for k, name in enumerate(FORMULA_NAMES):
        number = name == "-2"                 # a plain number: a spreadsheet never runs it
        want = "'" + name if name[0] in "=+-@" and not number else name
        assert got[k] == want, (name, got[k])
        assert number or not got[k].startswith(("=", "+", "-", "@"))


def test_multilabel_csv_header_escapes_formula_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(5)
    g = rng.normal(0, 2.5, (600, 3))
    y = (rng.random((600, 3)) < 1 / (1 + np.exp(-g))).astype(np.int64)
    cal = calibrate.fit((2 * g).astype(np.float32), y, confidence=None,
                        classes=["=A1", "-x", "ok,fine"])
    cal.save("m.json")
    np.save("m.npy", (2 * g[:5]).astype(np.float32))
    assert invoke(["apply", "m.json", "m.npy", "-o", "d.csv"]).code == 0
    with open("d.csv", newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == ["'=A1", "'-x", "ok,fine"]


@pytest.mark.parametrize("name, cell", [
    ("-1", "-1"), ("+1", "+1"), ("-0.5", "-0.5"), ("+2.5e-3", "+2.5e-3"), ("-.5", "-.5"),
    ("-1+1", "'-1+1"), ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("+1e", "'+1e"), ("-", "'-"), ("1", "1"), ("=1", "'=1"),
])
def test_csv_cells_keep_plain_numbers_and_escape_formulas(name, cell):
    # binary classes named "-1" / "+1" came out as "'-1" / "'+1"
    from calibrate.io import _csv_field
    assert _csv_field(name) == cell


def test_jsonl_keeps_names_exactly(tmp_path, monkeypatch):
    """JSON is not a spreadsheet: the names stay as they are there."""
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    _named_file(tmp_path, FORMULA_NAMES)
    zz = np.zeros((10, 10), np.float32)
    zz[np.arange(10), np.arange(10)] = 50.0
    np.save("zz.npy", zz)
    assert invoke(["apply", "named.json", "zz.npy", "-o", "d.jsonl"]).code == 0
    labels = [json.loads(line)["label"] for line in Path("d.jsonl").read_text().splitlines()]
    assert labels == FORMULA_NAMES


def test_every_v1_fixture_passes_the_checks():
    """The stricter reader refuses none of the files version 1 wrote."""
    v1 = Path(__file__).resolve().parent / "fixtures" / "v1"
    files = sorted(v1.glob("*.json"))
    assert len(files) == 5
    for f in files:
        d = json.loads(f.read_text())
        cal = calibrate.load(f)
        assert json.loads(copy.deepcopy(schema.dumps(cal))) == d
