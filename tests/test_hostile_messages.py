"""Issue 10, family 10: messages of the command line and the io layer.

Each error names the file or option, what was expected and what was found, in
one line (names holding control characters are escaped), with exact figures
(no int64 wrap-around); the allowed extensions are listed; numpy's warnings
never reach stderr while calibrate's own do, one line each.
"""

import os
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import calibrate
from calibrate.scores import InputKindWarning
from hostile_helpers import assert_clean_failure, invoke, make_data, run, snapshot

# ---- allowed extensions, listed (the one-element tuple printed "a  or .json")
SUFFIX_ROWS = [
    ("fit-o-txt", ["fit", "z.npy", "--labels", "y.npy", "-o", "t.txt"],
     ["output 't.txt': expected a .json file, found '.txt'"]),
    ("fit-o-none", ["fit", "z.npy", "--labels", "y.npy", "-o", "thresholds"],
     ["expected a .json file, found no extension"]),
    ("apply-o-txt", ["apply", "t.json", "z.npy", "-o", "t.txt"],
     ["expected a .npy, .csv or .jsonl file, found '.txt'"]),
    ("apply-o-json", ["apply", "t.json", "z.npy", "-o", "d.json"],
     ["expected a .npy, .csv or .jsonl file, found '.json'"]),
    ("apply-probabilities-jsonl", ["apply", "t.json", "z.npy", "--probabilities", "p.jsonl"],
     ["probabilities file 'p.jsonl': expected a .npy or .csv file, found '.jsonl'"]),
    ("fit-plot-jpg", ["fit", "z.npy", "--labels", "y.npy", "--plot", "p.jpg"],
     ["plot file 'p.jpg': expected a .png, .pdf or .svg file, found '.jpg'"]),
    ("evaluate-plot-none", ["evaluate", "t.json", "z.npy", "--labels", "y.npy", "--plot", "plot"],
     ["expected a .png, .pdf or .svg file, found no extension"]),
    ("scores-txt", ["fit", "z.txt", "--labels", "y.npy"],
     ["scores file 'z.txt': expected a .npy, .npz, .pt or .csv file, found '.txt'"]),
    ("labels-json", ["fit", "z.npy", "--labels", "y.json"],
     ["labels file 'y.json': expected a .npy, .npz, .pt or .csv file, found '.json'"]),
    ("shard-not-npy", ["apply", "t.json", "z.npy", "z.csv"],
     ["scores file 'z.csv': expected only .npy files when giving several shards, found '.csv'"]),
]


@pytest.mark.parametrize("args, must", [pytest.param(a, m, id=i) for i, a, m in SUFFIX_ROWS])
def test_extensions_are_listed(tmp_path, monkeypatch, args, must):
    if "--plot" in args:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    z, _ = make_data(tmp_path)
    np.savetxt("z.csv", z, delimiter=",")
    before = snapshot(tmp_path)
    line = assert_clean_failure(invoke(args), 1, must, tmp_path, before)
    assert "a  or" not in line


def test_extension_case_does_not_matter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    assert invoke(["fit", "z.npy", "--labels", "y.npy", "-o", "T.JSON"]).code == 0
    assert calibrate.load("T.JSON").task == "multiclass"


# ---- names with control characters stay on one line, escaped
NAME_ROWS = [
    ("newline", "a\nb.npy", "a\\nb.npy"),
    ("carriage-return", "a\rb.npy", "a\\rb.npy"),
    ("escape-sequence", "\x1b[2Jz.npy", "\\x1b[2Jz.npy"),
    ("bidi-override", "abc\u202egpj.npy", "abc\\u202egpj.npy"),
    ("undecodable-byte", os.fsdecode(b"\xff.npy"), "\\udcff.npy"),
    ("tab", "a\tb.npy", "a\\tb.npy"),
]


@pytest.mark.parametrize("name, shown", [pytest.param(n, s, id=i) for i, n, s in NAME_ROWS])
@pytest.mark.parametrize("role", ["scores", "labels", "output", "threshold"])
def test_names_with_control_characters_stay_on_one_line(tmp_path, monkeypatch, name, shown,
                                                        role):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    if role == "output":
        Path(name).mkdir()  # a folder where the output would go: refused
        args = ["apply", "t.json", "z.npy", "-o", name + "/x.txt"]
    elif role == "threshold":
        args = ["apply", name[:-4] + ".json", "z.npy"]
        shown = shown[:-4] + ".json"
    else:
        args = (["apply", "t.json", name] if role == "scores"
                else ["fit", "z.npy", "--labels", name])
    before = snapshot(tmp_path)
    line = assert_clean_failure(invoke(args), 1, [shown], tmp_path, before)
    assert not any(ord(ch) < 32 or ch == "\u202e" for ch in line)


# ---- exact figures, never wrapped values
def test_shape_products_are_exact(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    h = b"{'descr': '<i8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"
    h += b" " * (118 - len(h)) + b"\n"
    Path("lab.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h)
    before = snapshot(tmp_path)
    line = assert_clean_failure(invoke(["fit", "z.npy", "--labels", "lab.npy"]), 1,
                                ["labels file 'lab.npy'", str(2 ** 64 * 8), "found 0"],
                                tmp_path, before)
    assert "-" not in line.split("expected")[1].split("for shape")[0]


def test_long_values_are_cut(tmp_path, monkeypatch):
    """A field holding 100,000 names is shown in a few dozen characters."""
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    import json
    d = json.loads(Path("t.json").read_text())
    d["temperature"] = [f"name{k}" for k in range(100_000)]
    Path("bad.json").write_text(json.dumps(d))
    line = assert_clean_failure(invoke(["apply", "bad.json", "z.npy"]), 1, ["temperature"],
                                tmp_path)
    assert len(line) < 300


# ---- warnings: numpy's never reach stderr, calibrate's do (one line each)
def _noisy_fit(real):
    def fit(*a, **k):
        with np.errstate(all="warn"):
            np.log(np.zeros(3))                      # RuntimeWarning: divide by zero
            np.float32(3e38) * np.float32(10)        # RuntimeWarning: overflow
        t = threading.Thread(target=lambda: np.sqrt(np.array([-1.0])))  # in a worker thread
        t.start()
        t.join()
        warnings.warn("a dependency's notice", DeprecationWarning, stacklevel=1)
        warnings.warn("scores: read as probabilities; pass --input logits", InputKindWarning,
                      stacklevel=1)
        return real(*a, **k)
    return fit


def test_only_calibrate_warnings_reach_stderr(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    monkeypatch.setattr(calibrate, "fit", _noisy_fit(calibrate.fit))
    res = invoke(["fit", "z.npy", "--labels", "y.npy", "-o", "o.json"])
    assert res.code == 0, res
    assert res.stderr == "warning: scores: read as probabilities; pass --input logits\n"


def test_numpy_warnings_from_the_data_never_reach_stderr(tmp_path):
    """Logits of 1e37 overflow inside numpy's reductions (a RuntimeWarning in the
    library); the command line shows nothing of it."""
    z, _ = make_data(tmp_path)
    np.save(tmp_path / "huge.npy", (z * np.float32(1e37)).astype(np.float32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            calibrate.fit(np.load(tmp_path / "huge.npy"), np.load(tmp_path / "y.npy"))
        except calibrate.CalibrateError:
            pass
    if not any(issubclass(w.category, RuntimeWarning) for w in caught):
        pytest.skip("these logits no longer make numpy warn (see the test above)")
    res = run(["fit", "huge.npy", "--labels", "y.npy", "-o", "o.json"], tmp_path)
    assert "RuntimeWarning" not in res.stderr and "overflow" not in res.stderr, res
    assert all(line.startswith(("warning: ", "Error: ")) for line in res.stderr.splitlines())


def test_calibrate_warning_shown_on_one_line(tmp_path):
    """Binary scores all in [0, 1] are read as probabilities, with a warning."""
    rng = np.random.default_rng(3)
    p = rng.random(400)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "yb.npy", (rng.random(400) < p).astype(np.int64))
    res = run(["fit", "p.npy", "--labels", "yb.npy", "-o", "b.json"], tmp_path)
    assert res.code == 0, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "--input logits" in lines[0]


# ---- the last-resort lines: an OS error or memory outside calibrate's own I/O
def test_unexpected_os_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(calibrate, "load", denied)
    assert_clean_failure(invoke(["apply", "t.json", "z.npy", "-o", "o.npy"]), 1,
                         ["'t.json'", "Permission denied", "EACCES"], tmp_path)


def test_out_of_memory_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)

    def oom(*a, **k):
        raise MemoryError()
    monkeypatch.setattr(calibrate, "fit", oom)
    assert_clean_failure(invoke(["fit", "z.npy", "--labels", "y.npy", "-o", "o.json"]), 1,
                         ["out of memory"], tmp_path)
    assert not Path("o.json").exists()
