"""auto: folds, the choice by cross-validated NLL, and results that do not
depend on how the rows are stored or chunked."""

import numpy as np
import pytest

from calibrate import families
from calibrate.backends import local
from calibrate.errors import CalibrateError
from calibrate.families import crossval
from calibrate.rows import NpyRows
from tests.conftest import make_binary, make_multiclass
from tests.test_families_fit import mixture_data, offset_binary, per_class_data


def test_folds_are_seeded_balanced_and_complete():
    f = families.fold_ids(103, 5, seed=0)
    assert np.array_equal(f, families.fold_ids(103, 5, seed=0))
    assert not np.array_equal(f, families.fold_ids(103, 5, seed=1))
    assert sorted(np.bincount(f)) == [20, 20, 21, 21, 21]


def test_grouped_folds_never_split_a_group():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 300, 5000) * 7 + 11          # arbitrary ids, uneven sizes
    f = families.fold_ids(5000, 5, groups=groups, seed=0)
    for g in np.unique(groups):
        assert np.unique(f[groups == g]).size == 1
    sizes = np.bincount(f)
    group_sizes = np.bincount(np.unique(groups, return_inverse=True)[1])
    assert sizes.max() - sizes.min() <= group_sizes.max()
    with pytest.raises(CalibrateError, match="groups: expected at least 5 groups"):
        families.fold_ids(10, 5, groups=np.arange(10) % 3)
    with pytest.raises(CalibrateError, match=r"groups: expected one group id per row \(10\)"):
        families.fold_ids(10, 5, groups=np.arange(9))


def test_cv_subset_keeps_whole_groups():
    groups = np.repeat(np.arange(400), 25)
    rows = families.cv_rows(10_000, 100, groups=groups, max_elements=100 * 2000)
    assert 2000 <= rows.size < 2100 and np.all(np.diff(rows) > 0)
    kept = np.unique(groups[rows])
    assert np.array_equal(np.flatnonzero(np.isin(groups, kept)), rows)
    assert families.cv_rows(500, 10).size == 500


def test_paired_se_and_the_one_se_rule():
    rng = np.random.default_rng(1)
    d = rng.normal(0.01, 1.0, 400)
    assert crossval.paired_se(d) == pytest.approx(d.std(ddof=1) / np.sqrt(400))
    units = np.repeat(np.arange(100), 4)
    sums = np.bincount(units, d)
    expect = np.sqrt(100 / 99 * np.sum((sums - 4 * d.mean()) ** 2)) / 400
    assert crossval.paired_se(d, units) == pytest.approx(expect)
    base = rng.normal(1.0, 0.1, 400)
    nll = {"simple": base + 0.001 + rng.normal(0, 0.05, 400), "rich": base}
    assert crossval.choose(nll, "lowest")[0] == "rich"
    assert crossval.choose(nll, "one-se")[0] == "simple"     # 0.001 is within noise
    nll["simple"] = base + 0.05
    assert crossval.choose(nll, "one-se")[0] == "rich"
    nll["simple"] = base * (1 + 5e-6)                    # within 1e-5 relative: a tie
    assert crossval.choose(nll)[0] == "simple"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_auto_picks_temperature_on_pure_temperature_data(seed):
    z, y = make_multiclass(seed=seed, n=3000)
    r = families.auto(z, y, "multiclass")
    assert r.choice == "temperature" and r.fitted.method == "temperature"
    assert [s.method for s in r.scores] == list(families.MULTICLASS)
    assert all(s.cv_nll is not None and 0 <= s.cv_ece < 1 for s in r.scores)
    assert r.fitted == families.fit("temperature", z, y, "multiclass")
    # (binary: platt, one parameter more, wins about 1 draw in 4 by noise)
    z, y = make_binary(seed=seed, n=3000)
    assert families.auto(z, y, "binary").choice == "temperature"


def test_auto_picks_platt_on_offset_data():
    z, y = offset_binary(6000, seed=2)
    r = families.auto(z, y, "binary")
    assert r.choice == "platt"
    scores = {s.method: s for s in r.scores}
    assert scores["platt"].cv_nll < scores["temperature"].cv_nll - 0.01
    assert scores["platt"].cv_ece < scores["temperature"].cv_ece
    ref = families.fit("platt", z, y, "binary")
    np.testing.assert_allclose(r.fitted.a + r.fitted.b, ref.a + ref.b, rtol=1e-8)


def test_auto_picks_mix_and_vector_where_they_belong():
    z, y = mixture_data(n=6000)
    assert families.auto(z, y, "multiclass").choice == "mix"
    z, y, _, _ = per_class_data(n=6000)
    r = families.auto(z, y, "multiclass")
    assert r.choice == "vector"
    ref = families.fit("vector", z, y, "multiclass")
    np.testing.assert_allclose(np.r_[r.fitted.a, r.fitted.b], np.r_[ref.a, ref.b],
                               rtol=1e-5, atol=1e-5)


def test_auto_groups_are_folds_of_whole_groups(monkeypatch):
    z, y = offset_binary(3000, seed=3)
    groups = np.arange(3000) // 10
    seen = []
    real = crossval._cross_validate

    def spy(method, zc, yc, folds, *args):
        seen.append(folds)
        return real(method, zc, yc, folds, *args)
    monkeypatch.setattr(crossval, "_cross_validate", spy)
    r = families.auto(z, y, "binary", groups=groups)
    assert r.grouped
    for folds in seen:
        assert all(np.unique(folds[groups == g]).size == 1 for g in range(300))


def test_per_class_screen_skips_them_without_per_class_signal(monkeypatch):
    monkeypatch.setattr(crossval, "SCREEN_ELEMENTS", 0)
    z, y = make_multiclass(seed=2, n=3000)
    r = families.auto(z, y, "multiclass")
    skipped = {s.method: s.note for s in r.scores if s.cv_nll is None}
    assert set(skipped) == {"ovr-platt", "vector"} and r.signal_z < crossval.SIGNAL_Z
    assert "no per-class signal" in skipped["vector"]
    z, y, _, _ = per_class_data(n=6000)
    r = families.auto(z, y, "multiclass")
    assert r.signal_z > 10 and r.choice == "vector"


def chunked(monkeypatch, rows):
    """Make every pass use ``rows``-row chunks, and count the chunks."""
    monkeypatch.setattr(local, "chunk_rows", lambda n_cols, target_elements=None: rows)
    seen = [0]
    run = local.run_chunks

    def counting(kernel, arrays, slices, progress=None, label=None):
        seen[0] += len(slices)
        return run(kernel, arrays, slices, progress, label)
    monkeypatch.setattr(local, "run_chunks", counting)
    return seen


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-9), (np.float32, 1e-6)])
@pytest.mark.parametrize("method", ["auto"] + list(families.MULTICLASS))
def test_npy_rows_in_tiny_chunks_give_the_same_fit(tmp_path, monkeypatch, method, dtype, rtol):
    # float32 sums leave the optimum defined to ~1e-7 (gradient noise), which
    # the chunking moves; float64 to ~1e-13.
    z, y = make_multiclass(seed=4, n=1500, c=5, dtype=dtype)
    path = tmp_path / "z.npy"
    np.save(path, z)
    if method == "auto":
        a = families.auto(z, y, "multiclass", max_cv_elements=5 * 700)
    else:
        a = families.fit(method, z, y, "multiclass")
    seen = chunked(monkeypatch, 37)
    src = NpyRows(path)
    if method == "auto":
        b = families.auto(src, y, "multiclass", max_cv_elements=5 * 700)
        assert a.choice == b.choice and a.cv_rows == b.cv_rows == 700
        for sa, sb in zip(a.scores, b.scores, strict=True):
            assert sa.cv_nll == pytest.approx(sb.cv_nll, rel=1e-8)
        a, b = a.fitted, b.fitted
    else:
        b = families.fit(method, src, y, "multiclass")
    assert seen[0] > 40
    # (sums are added chunk by chunk in float64: the bits may differ, ~1e-13)
    for name in ("temperature", "weight", "a", "b"):
        if hasattr(a, name):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=rtol, atol=rtol)


def test_dask_array_gives_the_same_auto():
    da = pytest.importorskip("dask.array")
    z, y = make_multiclass(seed=5, n=1200, c=5, dtype=np.float64)
    a = families.auto(z, y, "multiclass", max_cv_elements=5 * 600)
    b = families.auto(da.from_array(z, chunks=(250, 5)), y, "multiclass",
                      max_cv_elements=5 * 600)
    assert a.choice == b.choice and a.cv_rows == b.cv_rows == 600
    assert [s.cv_nll for s in a.scores] == pytest.approx([s.cv_nll for s in b.scores], rel=1e-12)
    np.testing.assert_allclose(b.fitted.temperature, a.fitted.temperature, rtol=1e-9)


def test_a_forests_probabilities_fit_without_floating_point_warnings():
    # a random forest's votes (many exact zeros) sent the cross-validated families'
    # Newton through overflowing steps, handled, but numpy's RuntimeWarnings
    # reached the library's user
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    import calibrate
    X, y = load_digits(return_X_y=True)
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.3, random_state=0)
    p = RandomForestClassifier(n_estimators=20, random_state=0).fit(Xa, ya).predict_proba(Xb)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        cal = calibrate.fit(p, yb, method="auto")
    assert cal.method in ("temperature", "mix", "vector")
