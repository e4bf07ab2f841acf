"""What every hostile-input table checks (``tests/test_hostile_*.py``).

A failing command must: exit with the stated code, print exactly one line on
stderr starting with ``Error:`` (``expected`` and ``found`` in it for data
errors), no traceback, leave every file that existed before byte for byte as
it was (and its mode), create no file, and leave no temporary file behind.
"""

import contextlib
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import special

import calibrate
from calibrate_cli.main import cli

N, C = 300, 10
TEMP_PREFIX = ".calibrate-"


def make_data(tmp):
    """10-class logits z.npy, labels y.npy and a threshold file t.json in ``tmp``
    (also the data of ``test_cli_errors.py``)."""
    tmp = Path(tmp)
    rng = np.random.default_rng(1234)
    g = rng.normal(0.0, 3.0, size=(N, C))
    y = (special.softmax(g, axis=1).cumsum(axis=1) > rng.random((N, 1))).argmax(axis=1)
    z = (2.0 * g).astype(np.float32)
    np.save(tmp / "z.npy", z)
    np.save(tmp / "y.npy", y.astype(np.int64))
    calibrate.fit(z, y, confidence=None).save(tmp / "t.json")
    return z, y.astype(np.int64)


def snapshot(root):
    """Every file and link under ``root``: path -> (kind, bytes or link target, mode)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            if p.is_symlink():
                out[p] = ("link", os.readlink(p), None)
            elif p.is_file():
                out[p] = ("file", p.read_bytes(), st.st_mode & 0o7777)
            elif p.is_dir():
                out[p] = ("dir", None, None)
            else:
                out[p] = ("special", None, None)
    return out


def temp_files(root):
    return [str(p) for p in Path(root).rglob(TEMP_PREFIX + "*")]


class Result:
    def __init__(self, code, stdout, stderr):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self):
        return f"Result(code={self.code}, stdout={self.stdout[-500:]!r}, stderr={self.stderr!r})"


def invoke(args):
    """Run the CLI in-process (CliRunner), stderr apart from stdout."""
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    res = runner.invoke(cli, [str(a) for a in args], prog_name="calibrate")
    assert res.exception is None or isinstance(res.exception, SystemExit), (
        f"an exception escaped: {res.exception!r}\n{res.stderr}")
    return Result(res.exit_code, res.stdout, res.stderr)


def run(args, cwd, timeout=120, fsize=None, stdout=subprocess.PIPE, preexec=None, **kw):
    """Run ``python -m calibrate_cli.main`` in a subprocess (real signals, real
    descriptors, resource limits).  ``fsize``: RLIMIT_FSIZE in bytes; ``stdout``:
    a path (e.g. /dev/full) or what subprocess takes."""
    def limits():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if preexec is not None:
            preexec()
    with contextlib.ExitStack() as stack:
        if isinstance(stdout, str):
            stdout = stack.enter_context(open(stdout, "wb"))
        p = subprocess.run([sys.executable, "-m", "calibrate_cli.main", *map(str, args)],
                           cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout,
                           preexec_fn=limits, **kw)
    out = p.stdout.decode("utf-8", "replace") if isinstance(p.stdout, bytes) else ""
    return Result(p.returncode, out, p.stderr.decode("utf-8", "replace"))


def assert_clean_failure(res, code, must=(), root=None, before=None, allow_new=()):
    """The contract of a refused command (see the module docstring)."""
    assert res.code == code, res
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and res.stderr.endswith("\n"), res
    line = lines[0]
    assert line.startswith("Error: "), res
    if code == 1:
        assert "expected" in line and "found" in line, line
    for s in must:
        assert s in line, (s, line)
    if root is not None:
        assert temp_files(root) == [], temp_files(root)
    if before is not None:
        after = snapshot(root)
        for p, v in before.items():
            assert p in after, f"{p} disappeared"
            assert after[p] == v, f"{p} changed"
        made = set(after) - set(before) - {Path(root) / a for a in allow_new}
        assert not made, f"files created: {made}"
    return line


def assert_threshold_file_refused(root, before, scores, out, must=()):
    """``apply bad.json SCORES -o OUT`` fails cleanly with one line naming the
    threshold file and ``must``, and ``calibrate.load`` refuses it with the same
    words."""
    res = invoke(["apply", "bad.json", scores, "-o", out])
    line = assert_clean_failure(res, 1, ["threshold file 'bad.json'", *must], root, before)
    with pytest.raises(calibrate.CalibrateError) as e:
        calibrate.load("bad.json")
    assert f"Error: {e.value}" == line
