"""Threshold files written by version 1 keep loading and applying identically, and
fitting the same sample data still gives the same file (``tests/fixtures/v1/``, made by
``tests/fixtures/make_v1_fixtures.py`` with calibrate 0.1.0)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import calibrate

HERE = Path(__file__).resolve().parent
V1 = HERE / "fixtures" / "v1"
SAMPLE = HERE.parent / "sample_data"

import sys  # noqa: E402

sys.path.insert(0, str(HERE / "fixtures"))
from make_v1_fixtures import CASES, load  # noqa: E402

#: How a refit may differ from the v1 figures.  The fit's sums run over float32
#: values whose own rounding is ~1e-7 relative, and the temperature is defined
#: to 1e-5; faster kernels may sum in another order.  Six significant digits are
#: more than any figure is printed with; counts, statuses and decisions must be
#: identical.
RTOL = 1e-6
#: Summary entries that describe how the fit ran, not what it found.
PROCESS_KEYS = {"passes", "converged"}


def _same(a, b, path=""):
    """Assert that every entry of ``a`` (the v1 file) is in ``b`` with the same value:
    strings, ints, bools and None exactly, floats to RTOL."""
    if isinstance(a, dict):
        assert isinstance(b, dict), path
        for k, v in a.items():
            if k in PROCESS_KEYS:
                continue
            assert k in b, f"{path}.{k} missing"
            _same(v, b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool) and isinstance(b, (int, float)):
        assert math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-300), f"{path}: {a} != {b}"
    else:
        assert a == b and type(a) is type(b), f"{path}: {a!r} != {b!r}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_v1_file_applies_identically(case):
    cal = calibrate.load(V1 / f"{case}.json")
    test = CASES[case][2]
    z = load(test, "logits")
    assert np.array_equal(cal.predict(z), np.load(V1 / f"{case}_decisions.npy"))
    assert np.array_equal(cal.predict(z, rule="global"),
                          np.load(V1 / f"{case}_decisions_global.npy"))
    p = cal.predict_proba(z)
    want = np.load(V1 / f"{case}_proba.npy")
    assert p.dtype == want.dtype and p.shape == want.shape
    np.testing.assert_allclose(p, want, rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("case", sorted(CASES))
def test_refit_gives_the_v1_figures(case):
    val, val_labels, _, opts = CASES[case]
    z = load(val, "logits")
    y = load(val_labels, "") if val_labels else load(val, "labels")
    new = calibrate.fit(z, y, **opts).to_dict()
    with open(V1 / f"{case}.json", encoding="utf-8") as fh:
        old = json.load(fh)
    for key in ("task", "classes", "input_kind", "temperature", "rule", "thresholds",
                "decision_thresholds", "target", "abstain_label", "summary"):
        _same(old[key], new[key], key)
