"""Issue 10, family 3: operating-system errors while writing.

A full disk, a file too large, a name too long, stdout full, closed or cut
off: one line naming the file (or stdout) and the OS reason, exit 1, nothing
replaced, no temporary file.  Names and folders are checked before any work.
"""

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from hostile_helpers import assert_clean_failure, invoke, make_data, run, snapshot

SENTINEL = b"old output\n"
LONG = "a" * 300


# ---- checked before any work (in-process): the scores file does not even exist,
# so an error about the output proves the output was checked first.
BEFORE_WORK = [
    ("apply-name-too-long", ["apply", "t.json", "missing.npy", "-o", LONG + ".npy"],
     ["at most 255 bytes", "304 bytes"]),
    ("apply-probabilities-name-too-long",
     ["apply", "t.json", "missing.npy", "--probabilities", LONG + ".csv"],
     ["probabilities file", "at most 255 bytes"]),
    ("fit-name-too-long", ["fit", "missing.npy", "--labels", "y.npy", "-o", LONG + ".json"],
     ["at most 255 bytes"]),
    ("fit-plot-name-too-long", ["fit", "missing.npy", "--labels", "y.npy", "--plot",
                                LONG + ".png"], ["plot file", "at most 255 bytes"]),
    ("evaluate-plot-name-too-long", ["evaluate", "t.json", "missing.npy", "--labels", "y.npy",
                                     "--plot", LONG + ".svg"], ["at most 255 bytes"]),
    ("name-too-long-in-bytes", ["apply", "t.json", "missing.npy", "-o", "é" * 126 + ".npy"],
     ["at most 255 bytes", "256 bytes"]),
    ("path-too-long",
     ["apply", "t.json", "missing.npy", "-o", "/".join(["d" * 250] * 17) + ".npy"],
     ["File name too long", "ENAMETOOLONG"]),
    ("missing-folder", ["apply", "t.json", "missing.npy", "-o", "nodir/out.npy"],
     ["an existing folder", "nodir"]),
    ("output-is-a-folder-path", ["apply", "t.json", "missing.npy", "-o", "sub/"],
     ["sub/"]),
]


@pytest.mark.parametrize("args, must", [pytest.param(a, m, id=i) for i, a, m in BEFORE_WORK])
def test_output_names_checked_before_work(tmp_path, monkeypatch, args, must):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    os.mkdir("sub")
    before = snapshot(tmp_path)
    res = invoke(args)
    assert_clean_failure(res, res.code if res.code == 2 else 1, must, tmp_path, before)
    assert "missing.npy" not in res.stderr


def test_name_of_the_longest_allowed_length_is_written(tmp_path, monkeypatch):
    """255 bytes is a name, not an error: the check is the file system's own limit."""
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    name = "é" * 125 + ".npy"  # 254 bytes
    assert invoke(["apply", "t.json", "z.npy", "-o", name]).code == 0
    assert Path(name).stat().st_size > 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_refused_before_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    os.mkdir("ro")
    os.chmod("ro", 0o555)
    try:
        res = invoke(["apply", "t.json", "missing.npy", "-o", "ro/out.npy"])
        assert_clean_failure(res, 1, ["a writable folder"], tmp_path)
    finally:
        os.chmod("ro", 0o755)


# ---- while writing (subprocess: real limits, real descriptors)
def _close_stdout():
    os.close(1)


WHILE_WRITING = [
    ("apply-file-too-large", ["apply", "t.json", "z.npy", "-o", "X.npy"], {"fsize": 1000},
     ["output 'X.npy'", "File too large", "EFBIG"]),
    ("apply-jsonl-too-large", ["apply", "t.json", "z.npy", "-o", "X.jsonl"], {"fsize": 1000},
     ["'X.jsonl'", "EFBIG"]),
    ("fit-file-too-large", ["fit", "z.npy", "--labels", "y.npy", "-o", "X.json"],
     {"fsize": 1000}, ["output 'X.json'", "EFBIG"]),
    ("apply-stdout-full", ["apply", "t.json", "z.npy"], {"stdout": "/dev/full"},
     ["stdout", "No space left on device", "ENOSPC"]),
    ("apply-output-stdout-full", ["apply", "t.json", "z.npy", "-o", "X.npy"],
     {"stdout": "/dev/full"}, ["stdout", "ENOSPC"]),
    ("apply-stdout-closed", ["apply", "t.json", "z.npy"], {"preexec": _close_stdout},
     ["stdout", "closed"]),
    ("apply-output-stdout-closed", ["apply", "t.json", "z.npy", "-o", "X.npy"],
     {"preexec": _close_stdout}, ["stdout", "closed"]),
    ("fit-stdout-closed", ["fit", "z.npy", "--labels", "y.npy", "-o", "X.json"],
     {"preexec": _close_stdout}, ["stdout", "closed"]),
    ("evaluate-stdout-full", ["evaluate", "t.json", "z.npy", "--labels", "y.npy"],
     {"stdout": "/dev/full"}, ["stdout", "ENOSPC"]),
]


@pytest.mark.parametrize("args, how, must",
                         [pytest.param(a, h, m, id=i) for i, a, h, m in WHILE_WRITING])
def test_os_errors_while_writing(tmp_path, args, how, must):
    make_data(tmp_path)
    for name in ("X.npy", "X.jsonl", "X.json"):
        (tmp_path / name).write_bytes(SENTINEL)
    before = snapshot(tmp_path)
    res = run(args, tmp_path, **how)
    assert_clean_failure(res, 1, must, tmp_path, before)


def test_stdout_cut_off_by_its_reader(tmp_path):
    """`calibrate apply ... | head -0`: the pipe closes; one line, exit 1, and the
    --probabilities file is not replaced."""
    make_data(tmp_path)
    (tmp_path / "P.npy").write_bytes(SENTINEL)
    before = snapshot(tmp_path)
    p = subprocess.Popen([sys.executable, "-m", "calibrate_cli.main", "apply", "t.json", "z.npy",
                          "--probabilities", "P.npy"], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    from hostile_helpers import Result
    assert_clean_failure(Result(p.returncode, "", err), 1, ["stdout", "Broken pipe", "EPIPE"],
                         tmp_path, before)


def _unbuffered_apply(tmp_path, z, extra=()):
    """`calibrate apply t.json big.npy` under PYTHONUNBUFFERED=1 (stdout then a raw
    file: short writes), its stdout a pipe set non-blocking, read slowly."""
    import fcntl
    import time
    np.save(tmp_path / "big.npy", np.tile(z, (max(1, 40000 // len(z)), 1)))
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "calibrate_cli.main", "apply", "t.json",
                          "big.npy", *extra], cwd=tmp_path, stdout=w, stderr=subprocess.PIPE,
                         env=env)
    os.close(w)
    time.sleep(1.5)                          # the pipe fills while nobody reads
    return p, r


def test_unbuffered_stdout_on_a_full_nonblocking_pipe_is_written_in_full(tmp_path):
    # short writes were dropped: 64 KiB of the decisions arrived, exit 0
    z, _ = make_data(tmp_path)
    p, r = _unbuffered_apply(tmp_path, z)
    with os.fdopen(r, "rb") as fh:
        got = fh.read()
    assert p.wait(timeout=60) == 0 and p.stderr.read() == b""
    want = subprocess.run([sys.executable, "-m", "calibrate_cli.main", "apply", "t.json",
                           "big.npy"], cwd=tmp_path, capture_output=True, check=True).stdout
    assert len(want) > 1 << 17 and got == want


def test_unbuffered_stdout_cut_off_mid_write_fails_and_replaces_nothing(tmp_path):
    z, _ = make_data(tmp_path)
    (tmp_path / "P.npy").write_bytes(SENTINEL)
    p, r = _unbuffered_apply(tmp_path, z, ["--probabilities", "P.npy"])
    os.read(r, 1000)
    os.close(r)                               # the reader goes away mid-write
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 1
    assert err.startswith("Error: stdout:") and "Broken pipe" in err and err.count("\n") == 1
    assert (tmp_path / "P.npy").read_bytes() == SENTINEL


# ---- faults the OS rarely gives on demand (in-process, the call made to fail)
def _fail_on(monkeypatch, module, name, err, nth=1):
    real = getattr(module, name)
    calls = []

    def fake(*a, **k):
        calls.append(a)
        if len(calls) == nth:
            raise OSError(err, os.strerror(err))
        return real(*a, **k)
    monkeypatch.setattr(module, name, fake)


FAULTS = [
    ("disk-full-at-fsync", os, "fsync", errno.ENOSPC, ["No space left on device", "ENOSPC"]),
    ("io-error-at-fsync", os, "fsync", errno.EIO, ["Input/output error", "EIO"]),
    ("quota-at-fsync", os, "fsync", errno.EDQUOT, ["EDQUOT"]),
    ("no-inode-for-the-temporary-file", tempfile, "mkstemp", errno.ENOSPC, ["ENOSPC"]),
    ("name-too-long-at-rename", os, "replace", errno.ENAMETOOLONG,
     ["File name too long", "ENAMETOOLONG"]),
    ("folder-gone-at-rename", os, "replace", errno.ENOENT, ["ENOENT"]),
    ("read-only-at-rename", os, "replace", errno.EROFS, ["EROFS"]),
]


@pytest.mark.parametrize("module, name, err, must",
                         [pytest.param(*r[1:], id=r[0]) for r in FAULTS])
@pytest.mark.parametrize("command", ["apply", "fit"])
def test_os_faults_name_the_file(tmp_path, monkeypatch, command, module, name, err, must):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    out = "X.npy" if command == "apply" else "X.json"
    Path(out).write_bytes(SENTINEL)
    before = snapshot(tmp_path)
    args = (["apply", "t.json", "z.npy", "-o", out] if command == "apply"
            else ["fit", "z.npy", "--labels", "y.npy", "-o", out])
    _fail_on(monkeypatch, module, name, err)
    res = invoke(args)
    monkeypatch.undo()
    assert_clean_failure(res, 1, [f"'{out}'", *must], tmp_path, before)
