"""Issue 10, family 1c: CSV input.  A row of numbers is never a header, a
dropped row is never silent, one line is one row.

Two tables: CSV files that must be refused (one line, nothing written), and
CSV files that must read exactly as the same numbers in a ``.npy``.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from hostile_helpers import N, assert_clean_failure, invoke, make_data, snapshot

BOM = b"\xef\xbb\xbf"


def _csv(a, header=None, newline="\n", bom=False):
    lines = ([header] if header else []) + [",".join(repr(float(v)) for v in np.atleast_1d(r))
                                            for r in a]
    data = (newline.join(lines) + newline).encode("utf-8")
    return BOM + data if bom else data


# ---- refused: builder(z, y) writes files in the cwd and returns the CLI arguments
def fit(scores, labels="y.npy"):
    return ["fit", scores, "--labels", labels, "-o", "out.json"]


def c_mixed_header(z, y):
    Path("s.csv").write_bytes(_csv(z, header="a,0.5," + ",".join("c" * 8)))
    return fit("s.csv"), ["s.csv", "column names or of numbers", "mixing both"]


def c_typo_first_row(z, y):
    rows = _csv(z).decode().splitlines()
    rows[0] = rows[0].replace("0", "O", 1) if "0" in rows[0] else "O" + rows[0][1:]
    Path("s.csv").write_text("\n".join(rows) + "\n")
    return fit("s.csv"), ["s.csv", "mixing both"]


def c_blank_line(z, y):
    rows = _csv(z).decode().splitlines()
    Path("s.csv").write_text("\n".join(rows[:5] + [""] + rows[5:]) + "\n")
    return fit("s.csv"), ["s.csv", "a row of numbers on every line", "line 6 empty"]


def c_blank_line_after_header(z, y):
    Path("s.csv").write_bytes(b"a,b,c,d,e,f,g,h,i,j\n\n" + _csv(z))
    return fit("s.csv"), ["s.csv", "line 2 empty"]


def c_empty_field(z, y):
    rows = _csv(z).decode().splitlines()
    rows[7] = ",".join(rows[7].split(",")[:3] + [""] + rows[7].split(",")[4:])
    Path("s.csv").write_text("\n".join(rows) + "\n")
    return fit("s.csv"), ["s.csv", "comma-separated numbers", "'' on line 8, column 4"]


def c_ragged(z, y):
    rows = _csv(z).decode().splitlines()
    rows[9] = ",".join(rows[9].split(",")[:-1])
    Path("s.csv").write_text("\n".join(rows) + "\n")
    return fit("s.csv"), ["s.csv", "comma-separated numbers", "9 numbers on line 10",
                          "has 10"]


def c_header_count(z, y):
    Path("s.csv").write_bytes(_csv(z, header="a,b,c"))
    return fit("s.csv"), ["s.csv", "a header of 10 names", "found 3"]


def c_header_only(z, y):
    Path("s.csv").write_text("a,b,c\n")
    return fit("s.csv"), ["s.csv", "a header and no rows"]


def c_empty(z, y):
    Path("s.csv").write_bytes(b"")
    return fit("s.csv"), ["s.csv", "an empty file"]


def c_blank_only(z, y):
    Path("s.csv").write_bytes(BOM + b"\n  \n\r\n")
    return fit("s.csv"), ["s.csv", "an empty file"]


def c_latin1(z, y):
    Path("s.csv").write_bytes(b"caf\xe9,x\n" + _csv(z))
    return fit("s.csv"), ["s.csv", "UTF-8 text", "0xe9"]


def c_utf16(z, y):
    Path("s.csv").write_bytes(_csv(z).decode().encode("utf-16"))
    return fit("s.csv"), ["s.csv", "UTF-8 text"]


def c_comment_row(z, y):
    rows = _csv(z).decode().splitlines()
    rows[3] = "# " + rows[3]
    Path("s.csv").write_text("\n".join(rows) + "\n")
    return fit("s.csv"), ["s.csv", "line 4"]


def c_semicolons(z, y):
    Path("s.csv").write_text("\n".join(";".join(str(v) for v in r) for r in z) + "\n")
    return fit("s.csv"), ["s.csv", "comma-separated numbers"]


def c_quoted_numbers(z, y):
    Path("s.csv").write_text("\n".join(",".join(f'"{v}"' for v in r) for r in z) + "\n")
    return fit("s.csv"), ["s.csv"]


def c_nul_byte(z, y):
    rows = _csv(z).split(b"\n")
    rows[4] += b"\0"
    Path("s.csv").write_bytes(b"\n".join(rows))
    return fit("s.csv"), ["s.csv", "line 5", "not a number"]


def c_numeric_header_is_data(z, y):
    # Class ids as a "header" are numbers: read as a row, so the counts disagree.
    Path("s.csv").write_bytes(_csv(z, header=",".join(str(k) for k in range(10))))
    return fit("s.csv"), ["labels", f"{N + 1}"]


def c_one_row_binary_apply(z, y):
    calibrate_binary(z, y)
    Path("one.csv").write_text("0.1,0.2,0.3,0.4,0.5\n")
    return ["apply", "b.json", "one.csv", "-o", "out.npy"], ["one.csv", "binary scores",
                                                              "(1, 5)"]


def c_one_line_labels(z, y):
    # Labels written on one line are one row of N values, not N labels.
    Path("lab.csv").write_text(",".join(str(v) for v in y) + "\n")
    return fit("z.npy", labels="lab.csv"), ["labels"]


def c_labels_dropped_row(z, y):
    rows = [str(v) for v in y]
    Path("lab.csv").write_text("\n".join(rows[:100] + [""] + rows[100:]) + "\n")
    return fit("z.npy", labels="lab.csv"), ["lab.csv", "line 101 empty"]


def calibrate_binary(z, y):
    import calibrate
    d = (z[:, 0] - z[:, 1]).astype(np.float32)
    calibrate.fit(d, (y == 0).astype(np.int64), confidence=None).save("b.json")


REFUSED = [
    c_mixed_header, c_typo_first_row, c_blank_line, c_blank_line_after_header, c_empty_field,
    c_ragged, c_header_count, c_header_only, c_empty, c_blank_only, c_latin1, c_utf16,
    c_comment_row, c_semicolons, c_quoted_numbers, c_nul_byte, c_numeric_header_is_data,
    c_one_row_binary_apply, c_one_line_labels, c_labels_dropped_row,
]


@pytest.mark.parametrize("build", REFUSED, ids=[f.__name__[2:] for f in REFUSED])
def test_bad_csv_refused(tmp_path, monkeypatch, build):
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    args, must = build(z, y)
    before = snapshot(tmp_path)
    res = invoke(args)
    assert_clean_failure(res, 1, must, tmp_path, before)


# ---- read exactly: the CSV gives the fit of the same numbers in a .npy
def r_bom(z, y):
    Path("s.csv").write_bytes(_csv(z, bom=True))
    return "s.csv", "y.npy"


def r_bom_and_header(z, y):
    Path("s.csv").write_bytes(_csv(z, header=",".join(f"logit_{k}" for k in range(10)),
                                   bom=True))
    return "s.csv", "y.npy"


def r_header(z, y):
    Path("s.csv").write_bytes(_csv(z, header=",".join(f"c{k}" for k in range(10))))
    return "s.csv", "y.npy"


def r_crlf_trailing_blank_lines(z, y):
    Path("s.csv").write_bytes(_csv(z, newline="\r\n") + b"\r\n\r\n  \n")
    return "s.csv", "y.npy"


def r_no_final_newline(z, y):
    Path("s.csv").write_bytes(_csv(z)[:-1])
    return "s.csv", "y.npy"


def r_labels_bom_column(z, y):
    Path("lab.csv").write_bytes(BOM + b"label\n" + "\n".join(str(v) for v in y).encode())
    return "z.npy", "lab.csv"


def r_labels_crlf(z, y):
    Path("lab.csv").write_bytes("\r\n".join(str(v) for v in y).encode() + b"\r\n")
    return "z.npy", "lab.csv"


def r_spaces_around_fields(z, y):
    Path("s.csv").write_text("\n".join(" , ".join(repr(float(v)) for v in r) for r in z) + "\n")
    return "s.csv", "y.npy"


READ = [r_bom, r_bom_and_header, r_header, r_crlf_trailing_blank_lines, r_no_final_newline,
        r_labels_bom_column, r_labels_crlf, r_spaces_around_fields]


@pytest.mark.parametrize("build", READ, ids=[f.__name__[2:] for f in READ])
def test_csv_reads_every_row(tmp_path, monkeypatch, build):
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    # The reference reads the same float32 values from a .npy.
    np.save("z64.npy", z.astype(np.float64))
    scores, labels = build(z, y)
    ref = invoke(["fit", "z64.npy" if scores == "s.csv" else "z.npy", "--labels", "y.npy",
                  "-o", "ref.json"])
    res = invoke(["fit", scores, "--labels", labels, "-o", "out.json"])
    assert ref.code == 0 and res.code == 0, (ref, res)
    a = json.loads(Path("ref.json").read_text())
    b = json.loads(Path("out.json").read_text())
    assert b["summary"]["n"] == N
    assert b["temperature"] == a["temperature"]
    assert b["decision_thresholds"] == a["decision_thresholds"]


def test_one_row_csv_is_one_row(tmp_path, monkeypatch):
    """One line of 10 numbers is one multiclass row: one decision, the .npy's own."""
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    Path("one.csv").write_bytes(_csv(z[3:4]))
    np.save("one.npy", z[3:4].astype(np.float64))
    assert invoke(["apply", "t.json", "one.csv", "-o", "a.npy"]).code == 0
    assert invoke(["apply", "t.json", "one.npy", "-o", "b.npy"]).code == 0
    a, b = np.load("a.npy"), np.load("b.npy")
    assert a.shape == (1,) and np.array_equal(a, b)


def test_one_column_csv_is_a_vector(tmp_path, monkeypatch):
    """A single column of binary scores is N rows, not one row of N."""
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    calibrate_binary(z, y)
    d = (z[:, 0] - z[:, 1]).astype(np.float64)
    Path("col.csv").write_text("\n".join(repr(float(v)) for v in d) + "\n")
    np.save("col.npy", d)
    assert invoke(["apply", "b.json", "col.csv", "-o", "a.npy"]).code == 0
    assert invoke(["apply", "b.json", "col.npy", "-o", "b.npy"]).code == 0
    assert np.load("a.npy").shape == (N,)
    assert np.array_equal(np.load("a.npy"), np.load("b.npy"))
