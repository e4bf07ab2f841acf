"""Issue 10, family 8: resources.  ``--bootstrap`` has a documented maximum,
``--seed`` is a non-negative integer, and a ``--scheduler`` that is not an
address is refused with one line before any work (no connection attempted)."""

import time

import pytest

from calibrate_cli.evaluate import MAX_BOOTSTRAP
from hostile_helpers import assert_clean_failure, invoke, make_data, snapshot

EVAL = ["evaluate", "t.json", "z.npy", "--labels", "y.npy"]

OPTION_ROWS = [
    ("bootstrap-above-maximum", EVAL + ["--bootstrap", str(MAX_BOOTSTRAP + 1)],
     ["--bootstrap", f"0<=x<={MAX_BOOTSTRAP}"]),
    ("bootstrap-huge", EVAL + ["--bootstrap", str(10 ** 12)], ["--bootstrap"]),
    ("bootstrap-negative", EVAL + ["--bootstrap", "-1"], ["--bootstrap"]),
    ("bootstrap-not-a-number", EVAL + ["--bootstrap", "1e3"], ["--bootstrap", "'1e3'"]),
    ("seed-negative", EVAL + ["--seed", "-1"], ["--seed", "x>=0"]),
    ("seed-not-a-number", EVAL + ["--seed", "abc"], ["--seed"]),
]


def _scheduler_rows():
    rows = []
    bad = ["not an address", "", "localhost", "tcp://", "tcp://host", "tcp://host:0",
           "tcp://host:65536", "tcp://host:99999999", "http://host:8786", "host:port",
           "tcp://host:87 86", "file:///tmp/scheduler.json", "tcp://host:8786/extra",
           "inproc://", "tcp://[::1:8786", "tcp://host:8786\nx"]
    commands = {"fit": ["fit", "z.npy", "--labels", "y.npy", "-o", "out.json"],
                "apply": ["apply", "t.json", "z.npy", "-o", "out.npy"],
                "evaluate": EVAL}
    for i, value in enumerate(bad):
        name = list(commands)[i % 3]
        rows.append((f"scheduler-{i}-{name}", commands[name] + ["--scheduler", value],
                     ["--scheduler", "expected an address such as tcp://host:8786"]))
    return rows


ROWS = OPTION_ROWS + _scheduler_rows()


@pytest.mark.parametrize("args, must", [pytest.param(a, m, id=i) for i, a, m in ROWS])
def test_resource_options_refused_before_work(tmp_path, monkeypatch, args, must):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    before = snapshot(tmp_path)
    t = time.perf_counter()
    res = invoke(args)
    assert time.perf_counter() - t < 5, "no connection may be attempted"
    assert_clean_failure(res, 2, must, tmp_path, before)


def test_the_maximum_itself_is_accepted(tmp_path, monkeypatch):
    """--bootstrap at the maximum passes the option check: what fails next is
    the missing labels file, after parsing."""
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    res = invoke(["evaluate", "t.json", "z.npy", "--labels", "nothere.npy",
                  "--bootstrap", str(MAX_BOOTSTRAP), "--seed", str(2 ** 70)])
    assert_clean_failure(res, 1, ["labels file 'nothere.npy'"], tmp_path)


def test_a_small_bootstrap_with_a_large_seed_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    res = invoke(EVAL + ["--bootstrap", "3", "--seed", str(2 ** 70), "--json"])
    assert res.code == 0, res
    assert "after_ci" in res.stdout


@pytest.mark.parametrize("n", [MAX_BOOTSTRAP + 1, 10 ** 12, -1, True, 2.0])
def test_library_bootstrap_has_the_same_maximum(tmp_path, n):
    import calibrate
    z, y = make_data(tmp_path)
    cal = calibrate.load(tmp_path / "t.json")
    with pytest.raises(calibrate.CalibrateError, match=f"bootstrap: expected an integer from 0 "
                                                       f"to {MAX_BOOTSTRAP}"):
        calibrate.evaluate(cal, z, y, bootstrap=n)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "127.0.0.1:8786",
                                     "tls://scheduler.example:443", "[::1]:8786",
                                     "inproc://192.0.2.2/19285/1"])
def test_addresses_of_every_form_pass_the_check(address):
    from calibrate_cli.common import _check_address
    assert _check_address(None, None, address) == address
