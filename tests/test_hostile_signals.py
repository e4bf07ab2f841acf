"""Issue 10, family 9: signals and files.

SIGTERM and SIGHUP clean up exactly as SIGINT does (temporary files removed,
old outputs intact, one line, exit 128 + signal); a signal during the renames
waits until they are all done.  A replaced output keeps its permission bits
(and owner and group where the OS allows); a symbolic link is written through
to its target; links to nothing, loops, folders, devices, FIFOs and read-only
files are refused before any work.
"""

import glob
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from calibrate import outputs
from hostile_helpers import (
    Result,
    assert_clean_failure,
    invoke,
    make_data,
    run,
    snapshot,
    temp_files,
)

SENTINEL = b"old output\n"


def _wide_data(tmp):
    """300 classes: fit --json prints some 80 kB, more than a pipe holds, so a
    reader that never reads keeps the command waiting with its temporary file."""
    rng = np.random.default_rng(0)
    n, c = 3000, 300
    y = rng.integers(0, c, n)
    z = rng.normal(0, 3, (n, c)).astype(np.float32)
    z[np.arange(n), y] += 6
    np.save(tmp / "w.npy", z)
    np.save(tmp / "wy.npy", y)


@pytest.mark.parametrize("sig, word", [(signal.SIGTERM, "terminated by SIGTERM"),
                                       (signal.SIGHUP, "terminated by SIGHUP"),
                                       (signal.SIGINT, "interrupted by SIGINT")],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_signal_while_an_output_is_pending(tmp_path, sig, word):
    _wide_data(tmp_path)
    (tmp_path / "X.json").write_bytes(SENTINEL)
    before = snapshot(tmp_path)
    p = subprocess.Popen([sys.executable, "-m", "calibrate_cli.main", "fit", "w.npy", "--labels",
                          "wy.npy", "-o", "X.json", "--json"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while not glob.glob(str(tmp_path / ".calibrate-*")) and time.time() - t0 < 60:
        time.sleep(0.02)
    assert temp_files(tmp_path), "the temporary file never appeared"
    time.sleep(0.2)  # blocked on the full pipe, temporary file written
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    res = Result(p.returncode, out.decode(), err.decode())
    assert_clean_failure(res, 128 + sig, [word, "no output was replaced"], tmp_path, before)


def test_signal_while_stdout_streams(tmp_path):
    """apply streams decisions to a stdout nobody reads; --probabilities not yet
    begun: SIGTERM ends it at once, P.npy as it was, no temporary file."""
    z, _ = make_data(tmp_path)
    np.save(tmp_path / "big.npy", np.tile(z, (40, 1)))  # 12,000 rows: 400 kB of JSON lines
    (tmp_path / "P.npy").write_bytes(SENTINEL)
    before = snapshot(tmp_path)
    p = subprocess.Popen([sys.executable, "-m", "calibrate_cli.main", "apply", "t.json",
                          "big.npy", "--probabilities", "P.npy"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().startswith(b'{"prediction"')  # it is writing, then blocks
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    res = Result(p.returncode, "", err)
    assert_clean_failure(res, 143, ["terminated by SIGTERM"], tmp_path, before)


@pytest.mark.parametrize("second_fails", [False, True], ids=["renames-done", "rename-fails"])
def test_a_signal_during_the_renames(tmp_path, monkeypatch, second_fails):
    """SIGTERM lands between the two renames.  Both renames succeed: it is raised
    after them, saying every output was written.  The second fails: the first
    output is put back and the signal says nothing (nothing was replaced)."""
    import errno
    monkeypatch.chdir(tmp_path)
    Path("a.npy").write_bytes(SENTINEL)
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 1:
            outputs.on_signal(signal.SIGTERM)  # the handler, as if the signal came now
        if len(calls) == 2 and second_fails:
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(outputs.Terminated) as e:
        with outputs.Outputs() as tx:
            a = tx.declare("a.npy", "-o", (".npy",))
            b = tx.declare("b.csv", "--probabilities", (".csv",))
            tx.write(a, b"A")
            tx.write(b, b"B")
            tx.commit()
    assert e.value.signum == signal.SIGTERM
    if second_fails:
        assert e.value.done is None
        assert Path("a.npy").read_bytes() == SENTINEL and not Path("b.csv").exists()
    else:
        assert e.value.done == "every output was written"
        assert Path("a.npy").read_bytes() == b"A" and Path("b.csv").read_bytes() == b"B"
    assert temp_files(tmp_path) == []


def test_a_signal_while_writing_removes_the_temporary_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a.npy").write_bytes(SENTINEL)

    def writer(fh):
        fh.write(b"partial")
        outputs.on_signal(signal.SIGTERM)
    with pytest.raises(outputs.Terminated):
        with outputs.Outputs() as tx:
            tx.write(tx.declare("a.npy", "-o", (".npy",)), writer)
            tx.commit()
    assert Path("a.npy").read_bytes() == SENTINEL and temp_files(tmp_path) == []


# ---- permission bits of a replaced file
MODES = [
    ("apply", ["apply", "t.json", "z.npy", "-o", "X.npy"], "X.npy", 0o600),
    ("apply-0640", ["apply", "t.json", "z.npy", "-o", "X.npy"], "X.npy", 0o640),
    ("apply-0604", ["apply", "t.json", "z.npy", "-o", "X.csv"], "X.csv", 0o604),
    ("apply-executable", ["apply", "t.json", "z.npy", "-o", "X.jsonl"], "X.jsonl", 0o755),
    ("apply-probabilities", ["apply", "t.json", "z.npy", "--probabilities", "P.npy"], "P.npy",
     0o600),
    ("fit", ["fit", "z.npy", "--labels", "y.npy", "-o", "X.json"], "X.json", 0o600),
    ("fit-0660", ["fit", "z.npy", "--labels", "y.npy", "-o", "X.json"], "X.json", 0o660),
]


@pytest.mark.parametrize("args, name, mode", [pytest.param(a, n, m, id=i) for i, a, n, m in MODES])
def test_replaced_output_keeps_its_mode(tmp_path, monkeypatch, args, name, mode):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    Path(name).write_bytes(SENTINEL)
    os.chmod(name, mode)
    assert invoke(args).code == 0
    assert Path(name).read_bytes() != SENTINEL
    assert stat.S_IMODE(os.stat(name).st_mode) == mode


def test_setuid_bits_are_not_carried_over(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    Path("X.npy").write_bytes(SENTINEL)
    os.chmod("X.npy", 0o6755)
    assert invoke(["apply", "t.json", "z.npy", "-o", "X.npy"]).code == 0
    assert stat.S_IMODE(os.stat("X.npy").st_mode) == 0o755


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_output_gets_the_umask_mode(tmp_path, umask, mode):
    make_data(tmp_path)
    res = run(["apply", "t.json", "z.npy", "-o", "new.npy"], tmp_path,
              preexec=lambda: os.umask(umask))
    assert res.code == 0, res
    assert stat.S_IMODE(os.stat(tmp_path / "new.npy").st_mode) == mode


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_replaced_output_keeps_its_owner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    Path("X.npy").write_bytes(SENTINEL)
    os.chown("X.npy", 12345, 23456)
    assert invoke(["apply", "t.json", "z.npy", "-o", "X.npy"]).code == 0
    st = os.stat("X.npy")
    assert (st.st_uid, st.st_gid) == (12345, 23456)


# ---- links: written through to the target
def test_symlinked_output_is_written_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    os.mkdir("store")
    Path("store/real.npy").write_bytes(SENTINEL)
    os.chmod("store/real.npy", 0o640)
    os.symlink("store/real.npy", "mid.npy")
    os.symlink("mid.npy", "out.npy")  # a chain of two links
    assert invoke(["apply", "t.json", "z.npy", "-o", "out.npy"]).code == 0
    assert os.readlink("out.npy") == "mid.npy" and os.readlink("mid.npy") == "store/real.npy"
    assert np.load("store/real.npy").shape == (300,)
    assert stat.S_IMODE(os.stat("store/real.npy").st_mode) == 0o640
    assert temp_files(tmp_path) == []


def test_symlink_to_a_new_file_in_an_existing_folder_is_refused(tmp_path, monkeypatch):
    """A link to nothing is refused, not followed into creating its target."""
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    os.symlink("elsewhere.npy", "out.npy")
    before = snapshot(tmp_path)
    assert_clean_failure(invoke(["apply", "t.json", "z.npy", "-o", "out.npy"]), 1,
                         ["a file or a link to one", "a link to nothing ('elsewhere.npy')"],
                         tmp_path, before)


def test_hard_linked_output_other_names_keep_the_old_content(tmp_path, monkeypatch):
    """The output is replaced by a rename: another hard link to the old file
    keeps the old bytes (nothing is written into a file shared with another name)."""
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    Path("X.npy").write_bytes(SENTINEL)
    os.link("X.npy", "keep.npy")
    assert invoke(["apply", "t.json", "z.npy", "-o", "X.npy"]).code == 0
    assert Path("keep.npy").read_bytes() == SENTINEL
    assert np.load("X.npy").shape == (300,)


def _out_as(kind):
    if kind == "dangling-link":
        os.symlink("nowhere/x.npy", "out.npy")
        return 1, ["a link to nothing"]
    if kind == "link-loop":
        os.symlink("loop2.npy", "out.npy")
        os.symlink("out.npy", "loop2.npy")
        return 1, ["a link loop"]
    if kind == "link-to-folder":
        os.mkdir("adir")
        os.symlink("adir", "out.npy")
        return 2, ["is a directory"]  # click's own check (dir_okay=False)
    if kind == "link-to-dev-null":
        os.symlink("/dev/null", "out.npy")
        return 1, ["a regular file to write", "a character device"]
    if kind == "fifo":
        os.mkfifo("out.npy")
        return 1, ["a regular file to write", "a FIFO"]
    if kind == "read-only":
        Path("out.npy").write_bytes(SENTINEL)
        os.chmod("out.npy", 0o444)
        return 1, ["a writable file to replace", "read-only", "0444"]
    if kind == "no-write-bits":
        Path("out.npy").write_bytes(SENTINEL)
        os.chmod("out.npy", 0o500)
        return 1, ["read-only", "0500"]
    if kind == "link-to-read-only":
        Path("ro.npy").write_bytes(SENTINEL)
        os.chmod("ro.npy", 0o444)
        os.symlink("ro.npy", "out.npy")
        return 1, ["read-only"]
    if kind == "folder":
        os.mkdir("out.npy")
        return 2, ["is a directory"]
    if kind == "socket":
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.bind("out.npy")
        return 1, ["a socket"]
    raise AssertionError(kind)


KINDS = ["dangling-link", "link-loop", "link-to-folder", "link-to-dev-null", "fifo", "read-only",
         "no-write-bits", "link-to-read-only", "folder", "socket"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["apply", "apply-probabilities", "fit"])
def test_outputs_that_cannot_be_replaced(tmp_path, monkeypatch, kind, command):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    code, must = _out_as(kind)
    name = "out.npy"
    if command == "fit":  # fit writes .json: the same kind of path under that name
        os.rename("out.npy", "out.json") if os.path.lexists("out.npy") else None
        name = "out.json"
    args = {"apply": ["apply", "t.json", "missing.npy", "-o", name],
            "apply-probabilities": ["apply", "t.json", "missing.npy", "--probabilities", name],
            "fit": ["fit", "missing.npy", "--labels", "y.npy", "-o", name]}[command]
    before = snapshot(tmp_path)
    res = invoke(args)
    if kind == "link-loop" and command == "fit":
        must = ["a link"]  # the renamed link now points at a name that is not there
    assert_clean_failure(res, code, must, tmp_path, before)
    assert "missing.npy" not in res.stderr  # refused before any work
