"""What the library accepts as scores and labels, and what it refuses with one line.

Values all in [0, 1] in a multiclass array are never silently used as logits;
only a str or PathLike is a path; a list is data; every refusal names what was
expected and what was found, unwrapped.
"""

import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import special

import calibrate
from calibrate import scores
from calibrate.errors import CalibrateError
from calibrate_cli.main import cli
from conftest import make_multiclass


@pytest.fixture(scope="module")
def probs():
    z, y = make_multiclass(n=2000, c=10, dtype=np.float64)
    return special.softmax(z, axis=1), y


# -- probabilities that do not sum to exactly 1 ----------------------------------------

@pytest.mark.parametrize("decimals", [1, 2, 3, 4])
def test_rounded_probabilities_are_probabilities(probs, decimals):
    p, y = probs
    r = np.round(p, decimals)
    off = np.abs(r.sum(axis=1) - 1).max()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kind = scores.prepare(r, y).input_kind
    assert kind == "probabilities"
    # rows further from 1 than float error are accepted within the data's rounding, loudly
    said = [str(w.message) for w in caught if issubclass(w.category, scores.InputKindWarning)]
    assert (off > 1e-3) == bool(said)
    if said:
        assert f"rounded to {decimals} decimals" in said[0]
        assert said[0].endswith("pass --input logits (input_kind='logits') to say otherwise")


def test_rounded_float32_probabilities_are_probabilities(probs):
    p, y = probs
    r = np.round(p, 2).astype(np.float32)
    with pytest.warns(scores.InputKindWarning):
        assert scores.prepare(r, y).input_kind == "probabilities"


@pytest.mark.parametrize("make_bad, where", [
    (lambda p: np.vstack([p[:17], np.zeros((1, p.shape[1])), p[18:]]), "row 17 sums to 0"),
    (lambda p: p * 0.9, "rows not summing to 1"),                 # a scaled softmax
    (lambda p: np.clip(p * 3, 0, 1), "rows not summing to 1"),    # values in [0, 1], not rows
], ids=["all-zero-row", "scaled", "clipped"])
def test_unit_range_values_that_are_not_rows_of_probabilities_are_refused(probs, make_bad,
                                                                            where):
    p, y = probs
    with pytest.raises(CalibrateError) as e:
        calibrate.fit(make_bad(p), y)
    msg = str(e.value)
    assert where in msg and msg.endswith("; pass --input probabilities or --input logits "
                                         "(input_kind='probabilities' or 'logits')")
    assert "\n" not in msg


def test_the_user_may_still_say_what_they_are(probs):
    p, y = probs
    bad = p.copy()
    bad[17] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal = calibrate.fit(bad, y, input_kind="probabilities")
    assert cal.input_kind == "probabilities"
    assert calibrate.fit(bad * 5, y, input_kind="logits").input_kind == "logits"


def test_cli_refuses_an_all_zero_row_with_one_line_and_keeps_rounded_ones(tmp_path, probs):
    p, y = probs
    bad = p.copy()
    bad[3] = 0
    np.save(tmp_path / "bad.npy", bad)
    np.save(tmp_path / "rounded.npy", np.round(p, 2))
    np.save(tmp_path / "y.npy", y)
    r = CliRunner().invoke(cli, ["fit", str(tmp_path / "bad.npy"), "--labels",
                                 str(tmp_path / "y.npy"), "-o", str(tmp_path / "t.json")])
    assert r.exit_code == 1 and not (tmp_path / "t.json").exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: scores file") and "row 3" in lines[0]
    r = CliRunner().invoke(cli, ["fit", str(tmp_path / "rounded.npy"), "--labels",
                                 str(tmp_path / "y.npy"), "-o", str(tmp_path / "t.json")])
    assert r.exit_code == 0 and "rounded to 2 decimals" in r.stderr
    assert "input: probabilities (detected)" in r.stdout


# -- what is data and what is a path -------------------------------------------------------

@pytest.mark.parametrize("bad, found", [
    ([[0.1, 0.2], [0.3]], "rows of different lengths"),
    ([[0.1, 0.2], "ab"], "rows of different lengths"),
    ([["a", "b"], ["c", "d"]], "strings"),
    ([{"a": 1}, {"b": 2}], "Python objects"),
    (np.array([[1 + 1j, 2]]), "dtype complex128"),
    (object(), "object"),
], ids=["ragged", "ragged-str", "strings", "dicts", "complex", "object"])
def test_scores_that_are_not_a_numeric_array(bad, found):
    with pytest.raises(CalibrateError) as e:
        calibrate.fit(bad, [0, 1])
    assert str(e.value).startswith("scores: expected") and found in str(e.value)


def test_a_list_of_strings_is_labels_never_paths(tmp_path, monkeypatch):
    z, y = make_multiclass(n=50, c=3)
    monkeypatch.chdir(tmp_path)
    np.save("0.npy", y)                          # a file named like a label
    with pytest.raises(CalibrateError, match="labels: expected a numeric array, found strings"):
        calibrate.fit(z, [str(v) for v in y])
    with pytest.raises(CalibrateError, match="scores: expected a numeric array, found strings"):
        calibrate.fit(["0.npy", "0.npy"], y[:2])


def test_a_string_of_class_names_is_refused_not_split():
    z, y = make_multiclass(n=200, c=5)
    with pytest.raises(CalibrateError, match="classes: expected a list of class names"):
        calibrate.fit(z, y, classes="abcde")
    assert calibrate.fit(z, y, classes=list("abcde")).classes == list("abcde")


def test_labels_that_would_wrap_are_reported_as_they_are():
    z, y = make_multiclass(n=200, c=5)
    big = y.astype(np.uint64)
    big[7] = np.uint64(2 ** 64 - 1)
    with pytest.raises(CalibrateError, match=r"found the value 18446744073709551615$"):
        calibrate.fit(z, big)
    with pytest.raises(CalibrateError, match=r"found the value 1e\+20"):
        calibrate.fit(z, np.where(np.arange(200) == 3, 1e20, y))


def test_dask_arrays_with_unknown_chunk_sizes_say_so():
    da = pytest.importorskip("dask.array")
    z, y = make_multiclass(n=200, c=5)
    d = da.from_array(z, chunks=(50, 5))
    unknown = d[d[:, 0] > -1e9]
    with pytest.raises(CalibrateError, match="unknown chunk sizes"):
        calibrate.fit(unknown, y)
    assert calibrate.fit(unknown.compute_chunk_sizes(), y).temperature > 0


def test_a_dict_with_several_score_or_label_names_says_which_it_read(tmp_path):
    # read the first name in the documented order, and say so: the choice was silent
    from calibrate.io import ArrayChoiceWarning
    z, y = make_multiclass(n=500, c=4)
    np.savez(tmp_path / "two.npz", probs=np.full(z.shape, 0.25), logits=z, labels=y,
             targets=(y + 1) % 4)
    with pytest.warns(ArrayChoiceWarning) as said:
        o = calibrate.open_scores(tmp_path / "two.npz")
        cal = calibrate.fit(o.scores, o.labels)
    msgs = [str(w.message) for w in said]
    assert any("holds 'logits', 'probs': read 'logits' as the scores" in m for m in msgs)
    assert any("holds 'labels', 'targets': read 'labels' as the labels" in m for m in msgs)
    assert cal.temperature == calibrate.fit(z, y).temperature
    np.savez(tmp_path / "one.npz", logits=z, labels=y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrate.open_scores(tmp_path / "one.npz")


def test_one_hot_labels_warn_when_they_make_the_task_multilabel():
    # a softmax classifier's one-hot targets silently gave a multilabel fit
    from conftest import make_multilabel
    z, y = make_multiclass(n=2000, c=5)
    one_hot = np.eye(5, dtype=np.int8)[y]
    with pytest.warns(scores.InputKindWarning, match=r"^labels: every row holds exactly one "
                      r"1, as one-hot class labels do: fitted as multilabel.*--task multiclass"):
        assert calibrate.fit(z, one_hot).task == "multilabel"
    zm, ym = make_multilabel(n=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert calibrate.fit(zm, ym).task == "multilabel"


def test_one_hot_labels_with_task_multiclass_are_class_ids():
    z, y = make_multiclass(n=2000, c=5)
    one_hot = np.eye(5)[y]                                     # float 0/1 too
    a, b = calibrate.fit(z, one_hot, task="multiclass"), calibrate.fit(z, y)
    assert a.task == "multiclass" and a.temperature == b.temperature
    assert a.thresholds == b.thresholds
    two = one_hot.copy()
    two[7, (y[7] + 1) % 5] = 1
    with pytest.raises(CalibrateError, match=r"^labels: expected multiclass labels: class ids "
                       r"\(N,\) or one-hot rows \(N, C\) with a single 1, found row 7 holding"):
        calibrate.fit(z, two, task="multiclass")
    with pytest.raises(CalibrateError, match="found row 3 holding"):
        calibrate.fit(z, np.where(np.arange(2000)[:, None] == 3, 0.5, one_hot),
                      task="multiclass")


def _bfloat16(x):
    """float32 rounded to bfloat16 (nearest, ties to even), as float32."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def test_half_precision_probabilities_are_probabilities(probs):
    # a bfloat16 softmax (a .pt file's tensors arrive as float32) misses 1 by up to
    # a few 2^-8: it was refused as "rows not summing to 1"
    p, y = probs
    h = _bfloat16(p)
    assert np.abs(h.sum(axis=1, dtype=np.float64) - 1).max() > 1e-3
    with pytest.warns(scores.InputKindWarning, match=r"held in 8 significant bits \(as "
                      r"bfloat16 holds them\).*read as probabilities"):
        cal = calibrate.fit(h, y)
    assert cal.input_kind == "probabilities"
    assert cal.temperature == pytest.approx(calibrate.fit(p, y).temperature, rel=2e-2)
    off = h.copy()
    off[:, 0] = _bfloat16(off[:, 0] * 0.5)             # rows far off: not rounding
    with pytest.raises(CalibrateError, match="rows not summing to 1"):
        calibrate.fit(off, y)
