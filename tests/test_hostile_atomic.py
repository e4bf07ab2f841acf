"""Issue 10, family 2: a command with two outputs writes both or neither.

Every output goes to its temporary file first; the renames happen only when
all are written (and the summary is printed).  Each row makes one output, or
stdout, fail after the other was written, with old files in place (sentinels)
or none, and checks that every file is as it was and no temporary file is left.
"""

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from hostile_helpers import assert_clean_failure, invoke, make_data, run, snapshot, temp_files

SENTINEL = b"\x00sentinel: must survive\xff\n"


def _plot():
    pytest.importorskip("matplotlib")


# Rows: (id, arguments, existing outputs, how it fails, words in the line)
APPLY2 = ["apply", "t.json", "z.npy", "-o", "X.npy", "--probabilities", "P.npy"]
APPLY2_CSV = ["apply", "t.json", "z.npy", "-o", "X.csv", "--probabilities", "P.csv"]
FIT2 = ["fit", "z.npy", "--labels", "y.npy", "-o", "X.json", "--plot", "P.png"]
EVAL1 = ["evaluate", "t.json", "z.npy", "--labels", "y.npy", "--plot", "P.png"]
APPLY_STDOUT = ["apply", "t.json", "z.npy", "--probabilities", "P.npy"]

# X.npy is 2.5 kB and P.npy 12 kB; X.json 7 kB and P.png some 400 kB.
ROWS = [
    ("apply-second-too-large", APPLY2, ["X.npy", "P.npy"], {"fsize": 8000},
     ["probabilities file 'P.npy'", "File too large"]),
    ("apply-second-too-large-new-files", APPLY2, [], {"fsize": 8000}, ["'P.npy'"]),
    ("apply-csv-second-too-large", APPLY2_CSV, ["X.csv", "P.csv"], {"fsize": 20000},
     ["'P.csv'", "EFBIG"]),
    ("fit-plot-too-large", FIT2, ["X.json", "P.png"], {"fsize": 60000},
     ["plot file 'P.png'", "File too large"]),
    ("fit-too-large", FIT2[:-2], ["X.json"], {"fsize": 4000}, ["output 'X.json'", "EFBIG"]),
    ("evaluate-plot-too-large", EVAL1, ["P.png"], {"fsize": 60000}, ["'P.png'"]),
    ("apply-stdout-full", APPLY_STDOUT, ["P.npy"], {"stdout": "/dev/full"},
     ["stdout", "No space left on device"]),
    ("fit-stdout-full", FIT2, ["X.json", "P.png"], {"stdout": "/dev/full"}, ["stdout", "ENOSPC"]),
    ("fit-json-stdout-full", FIT2[:-2] + ["--json"], ["X.json"], {"stdout": "/dev/full"},
     ["stdout"]),
    ("evaluate-stdout-full", EVAL1, ["P.png"], {"stdout": "/dev/full"}, ["stdout"]),
    ("apply-bad-scores", ["apply", "t.json", "nan.npy", "-o", "X.npy", "--probabilities", "P.npy"],
     ["X.npy", "P.npy"], {}, ["nan.npy", "NaN"]),
]


@pytest.mark.parametrize("args, existing, how, must",
                         [pytest.param(*r[1:], id=r[0]) for r in ROWS])
def test_two_outputs_all_or_nothing(tmp_path, args, existing, how, must):
    if any(str(a).endswith(".png") for a in args):
        _plot()
    z, _ = make_data(tmp_path)
    bad = z.copy()
    bad[5, 5] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    for name in existing:
        (tmp_path / name).write_bytes(SENTINEL)
    before = snapshot(tmp_path)
    res = run(args, tmp_path, **how)
    assert_clean_failure(res, 1, must, tmp_path, before)


def test_a_failed_rename_puts_back_the_outputs_already_renamed(tmp_path, monkeypatch):
    """The second rename fails (the folder turned read-only under us): the
    first output, already renamed, is put back from its hard link."""
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    Path("X.npy").write_bytes(SENTINEL)
    before = snapshot(tmp_path)
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(errno.EROFS, "Read-only file system", dst)
        return real(src, dst)
    monkeypatch.setattr(os, "replace", flaky)
    res = invoke(APPLY2)
    monkeypatch.setattr(os, "replace", real)
    assert_clean_failure(res, 1, ["'P.npy'", "Read-only file system", "EROFS"], tmp_path,
                         before)
    assert len(calls) == 3  # X renamed, P refused, X put back


def test_a_failed_write_of_the_second_output_leaves_the_first_unrenamed(tmp_path, monkeypatch):
    """fsync reports a full disk on the second output: nothing is renamed."""
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    for name in ("X.npy", "P.npy"):
        Path(name).write_bytes(SENTINEL)
    before = snapshot(tmp_path)
    real = os.fsync
    n = []

    def full(fd):
        n.append(fd)
        if len(n) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    monkeypatch.setattr(os, "fsync", full)
    res = invoke(APPLY2)
    assert_clean_failure(res, 1, ["probabilities file 'P.npy'", "No space left", "ENOSPC"],
                         tmp_path, before)


def test_both_outputs_written_when_all_goes_well(tmp_path):
    """The same commands without the fault write both files (the table's
    failures are the faults', not the commands')."""
    make_data(tmp_path)
    for name in ("X.npy", "P.npy"):
        (tmp_path / name).write_bytes(SENTINEL)
    res = run(APPLY2, tmp_path)
    assert res.code == 0, res
    assert np.load(tmp_path / "X.npy").shape == (300,)
    assert np.load(tmp_path / "P.npy").shape == (300, 10)
    assert temp_files(tmp_path) == []
