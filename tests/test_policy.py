"""The reporting policy the command line shows lives in the library: decision
counts, which classes a compact table shows, the certification hint, opening
shards and clusters, progress, and the declared parameter constraints."""

import numpy as np
import pytest

import calibrate
from calibrate import params, sources, summary
from calibrate.artifact import DecisionTally
from calibrate.errors import CalibrateError
from conftest import make_binary, make_multiclass, make_multilabel


@pytest.mark.parametrize("task, make, first, second", [
    ("multiclass", make_multiclass, "predicted", "abstained"),
    ("binary", make_binary, "positive", "negative"),
    ("multilabel", make_multilabel, "labels predicted", "rows with none"),
])
def test_decision_tally_counts_what_predict_returns(task, make, first, second):
    z, y = make(n=3000)
    cal = calibrate.fit(z, y)
    tally = DecisionTally(task)
    blocks = list(tally.watch(cal.iter_predict(z, block_elements=999)))
    d = np.concatenate(blocks)
    c = tally.counts()
    assert c.rows == len(z) and c.labels == (first, second)
    if task == "multilabel":
        assert (c.first, c.second) == (int(d.sum()), int((~d.any(axis=1)).sum()))
    elif task == "binary":
        assert (c.first, c.second) == (int((d == 1).sum()), int((d == 0).sum()))
    else:
        assert (c.first, c.second) == (int((d >= 0).sum()), int((d < 0).sum()))
    assert c.to_dict() == {"task": task, "rows": c.rows, first: c.first, second: c.second}


@pytest.fixture(scope="module")
def many_classes():
    z, y = make_multiclass(n=3000, c=40, seed=3)
    return calibrate.fit(z, y), z, y


def test_compact_table_shows_the_lowest_recall_classes(many_classes):
    cal, _, _ = many_classes
    s = cal.fit_summary
    assert s.is_compact() and len(s.per_class) == 40 > summary.COMPACT_ABOVE
    shown = s.lowest_recall()
    assert len(shown) == summary.WORST_SHOWN
    worst = max((r.recall or 0.0, r.name) for r in shown)
    rest = [r for r in s.per_class if r not in shown]
    assert all((r.recall or 0.0, r.name) >= worst for r in rest)
    counts = s.status_counts()
    assert sum(counts.values()) == 40 and list(counts) == sorted(counts)


def test_certification_hint_when_a_quarter_cannot_be_certified(many_classes):
    cal, z, y = many_classes
    s = cal.fit_summary
    stuck = sum(r.status in ("uncertified", "too-few") for r in s.per_class)
    hint = s.certification_hint(0.95)
    assert (hint is not None) == (stuck * 4 >= 40)
    assert s.certification_hint(None) is None
    # 20 rows per class cannot certify 0.99 at 95%: always a hint
    small = calibrate.fit(z[:800], y[:800], precision=0.99).fit_summary
    h = small.certification_hint(0.95)
    assert h.startswith(f"{sum(r.status in ('uncertified', 'too-few') for r in small.per_class)}"
                        " of 40 classes could not be certified with about 20 held-out rows each")


def test_evaluation_report_lists_classes_below_target_worst_first(many_classes):
    cal, z, y = many_classes
    rep = calibrate.evaluate(cal, z[::-1].copy(), y[::-1].copy())
    bad = rep.below_target()
    assert all(r.status in ("violated", "missed", "no-predictions") for r in bad)
    keys = [(r.precision if r.precision is not None else -1.0, r.name) for r in bad]
    assert keys == sorted(keys)
    assert rep.is_compact()


def test_open_scores_reads_files_globs_and_shards(tmp_path):
    z, y = make_multiclass(n=300, c=4)
    np.savez(tmp_path / "all.npz", logits=z, labels=y)
    for i in range(3):
        np.save(tmp_path / f"z{i}.npy", z[i * 100:(i + 1) * 100])
        np.save(tmp_path / f"y{i}.npy", y[i * 100:(i + 1) * 100])
    one = calibrate.open_scores(tmp_path / "all.npz")
    assert np.array_equal(one.labels, y) and one.scores_name == f"scores file '{tmp_path}/all.npz'"
    glob = sources.open_scores(str(tmp_path / "z*.npy"), str(tmp_path / "y*.npy"))
    listed = sources.open_scores([tmp_path / f"z{i}.npy" for i in range(3)],
                                 [tmp_path / f"y{i}.npy" for i in range(3)])
    for o in (glob, listed):
        assert np.array_equal(np.asarray(o.scores[0:300]), z) and np.array_equal(o.labels, y)
        assert o.scores_name.startswith("scores shards '")
        assert calibrate.fit(o.scores, o.labels).temperature == \
            calibrate.fit(z, y).temperature
    with pytest.raises(CalibrateError, match="labels"):
        sources.open_scores(tmp_path / "z0.npy")
    assert sources.open_scores(tmp_path / "z0.npy", require_labels=False).labels is None


def test_an_existing_path_is_read_as_named_even_with_glob_characters(tmp_path):
    # "run[1].npy" is that file, not the pattern matching "run1.npy"; a
    # pattern matching nothing is still refused, naming the pattern
    z, y = make_multiclass(n=300, c=4)
    np.save(tmp_path / "run[1].npy", z)
    np.save(tmp_path / "run1.npy", 3 * z)
    np.save(tmp_path / "lab[1].npy", y)
    o = sources.open_scores(str(tmp_path / "run[1].npy"), str(tmp_path / "lab[1].npy"))
    assert np.array_equal(np.asarray(o.scores), z) and np.array_equal(o.labels, y)
    assert o.scores_name == f"scores file '{tmp_path}/run[1].npy'"
    want = calibrate.fit(z, y).temperature
    assert calibrate.fit(str(tmp_path / "run[1].npy"), str(tmp_path / "lab[1].npy")) \
        .temperature == want
    assert calibrate.fit(str(tmp_path / "run1.npy"), y).temperature != want
    assert calibrate.fit(str(tmp_path / "run[1]*.npy"), y).temperature != want  # run1.npy
    with pytest.raises(CalibrateError, match=r"pattern '.*run\[2\]\.npy'"):
        calibrate.fit(str(tmp_path / "run[2].npy"), y)


def test_as_dask_cuts_rows_like_the_command_line():
    da = pytest.importorskip("dask.array")
    z, _ = make_multiclass(n=1000, c=10)
    d = sources.as_dask(z, block_elements=3000)
    assert isinstance(d, da.Array) and d.chunks[0][0] == 300 and d.chunks[1] == (10,)
    assert np.array_equal(d.compute(), z)


def test_progress_is_a_parameter_that_hears_every_block():
    z, y = make_multiclass(n=3000, c=10)
    heard = []

    def progress(label, n):
        heard.append([label, n, 0])

        def advance(k):
            heard[-1][2] += k
        return advance
    calibrate.fit(z, y, progress=progress)
    assert heard and all(done == n for _, n, done in heard)
    heard.clear()
    calibrate.fit(z, y)                 # no hidden global: nobody hears the next fit
    assert heard == []


@pytest.mark.parametrize("table, kw, message", [
    (params.FIT, {"precision": 1}, "precision: expected a number strictly between 0 and 1, "
                                   "found 1"),
    (params.FIT, {"precision": True}, "precision: expected a number strictly between 0 and 1, "
                                      "found True"),
    (params.FIT, {"confidence": float("nan")}, "confidence: expected a number strictly between"
                                               " 0 and 1, or None, found nan"),
    (params.FIT, {"rule": "max"}, "rule: expected per-class or global, found 'max'"),
    (params.FIT, {"task": 2}, "task: expected one of auto, multiclass, binary, multilabel, "
                              "found 2"),
    (params.FIT, {"simultaneous": 1}, "simultaneous: expected True or False, found 1"),
    (params.FIT, {"classes": "abc"}, "classes: expected a list of class names (strings), or "
                                     "None, found 'abc'"),
    (params.APPLY, {"input": "auto"}, "input: expected one of logits, probabilities, "
                                      "log-probabilities, or None, found 'auto'"),
    (params.EVALUATE, {"bootstrap": -1},
     "bootstrap: expected an integer from 0 to 10000, found -1"),
    (params.CLASSIFIER, {"response_method": "x"}, "response_method: expected one of auto, "
                                                  "decision_function, predict_proba, found 'x'"),
])
def test_declared_constraints_word_every_refusal_alike(table, kw, message):
    with pytest.raises(CalibrateError) as e:
        params.validate(kw, table)
    assert str(e.value) == message


def test_every_public_entry_point_checks_its_parameters():
    pytest.importorskip("torch")
    from calibrate.torch import ThresholdHead
    z, y = make_multiclass(n=500, c=4)
    cal = calibrate.fit(z, y)
    for call in (lambda: calibrate.fit(z, y, rule="max"),
                 lambda: cal.predict(z, rule="max"),
                 lambda: cal.predict(z, input_kind="softmax"),
                 lambda: ThresholdHead(cal, rule="max"),
                 lambda: calibrate.evaluate(cal, z, y, bootstrap=1.5)):
        with pytest.raises(CalibrateError, match=r"^(rule|input|bootstrap): expected"):
            call()
