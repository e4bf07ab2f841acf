"""The examples run, check themselves (they assert what they claim), and say so."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name):
    # One thread each: on a shared, loaded machine OpenMP threads spin and an
    # example that takes 3 s alone can take 15.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=EXAMPLES.parent,
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.rstrip().endswith("ok")
    return res.stdout


def test_torch_classifier():
    out = run("torch_classifier.py")
    t = float(re.search(r"temperature: ([\d.]+)", out).group(1))
    assert t > 1.0                                            # overconfident network
    assert "gradient" in out and "vanished" in out            # the softmax-into-CE lesson
    prec = float(re.search(r"abstains|, ([\d.]+) of them correctly", out).group(1))
    assert prec >= 0.88


def test_multilabel_thresholds():
    out = run("multilabel_thresholds.py")
    rows = [ln.split() for ln in out.splitlines() if ln.split()[:1] in (["urgent"], ["billing"],
                                                                          ["spam"])]
    assert len(rows) == 3
    guessed = [float(r[4]) for r in rows]                     # precision at 0.5
    chosen = [float(r[-2]) for r in rows if r[-3] != "never"]
    assert min(guessed) < 0.9 and chosen and min(chosen) >= 0.86


def test_binary_two_ways():
    out = run("binary_two_ways.py")
    assert "test decisions identical: 100.00%" in out
    one, two = re.search(r"temperature +one logit ([\d.]+) +two logits ([\d.]+)", out).groups()
    assert one == two
    assert "two columns with task auto: multiclass" in out
