"""Flat-memory passes: .npy row sources, shards, dask arrays and clusters, progress."""

import itertools
import platform
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import special

import calibrate
from calibrate import io
from calibrate.backends import local
from calibrate.rows import NpyRows, ShardedRows
from calibrate_cli.main import cli
from conftest import make_multiclass, make_multilabel


@pytest.fixture
def data():
    return make_multiclass(n=6000, c=20, seed=31)


def test_npy_rows_read_any_slice(tmp_path):
    a = np.arange(7 * 5, dtype=np.float32).reshape(7, 5)
    np.save(tmp_path / "a.npy", a)
    r = NpyRows(tmp_path / "a.npy")
    assert r.shape == (7, 5) and r.dtype == np.float32
    for lo, hi in [(0, 7), (2, 3), (6, 7), (3, 3), (5, 100)]:
        assert np.array_equal(r[lo:hi], a[lo:hi])
    assert np.array_equal(r[1:4, 2], a[1:4, 2])
    assert np.array_equal(np.asarray(r), a)


def test_shards_read_across_boundaries(tmp_path):
    a = np.random.default_rng(0).random((50, 3))
    cuts = [0, 7, 8, 30, 50]
    parts = []
    for i, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        np.save(tmp_path / f"s{i}.npy", a[lo:hi])
        parts.append(NpyRows(tmp_path / f"s{i}.npy"))
    s = ShardedRows(parts)
    assert s.shape == (50, 3)
    for lo in range(0, 50, 3):
        for hi in (lo + 1, lo + 9, 50):
            assert np.array_equal(s[lo:hi], a[lo:hi])


def test_fit_on_file_equals_fit_in_memory(tmp_path, data, monkeypatch):
    z, y = data
    np.save(tmp_path / "z.npy", z)
    a = calibrate.fit(z, y)
    b = calibrate.fit(str(tmp_path / "z.npy"), y)     # a path: read in row chunks
    assert a.temperature == b.temperature
    assert a.decision_thresholds == b.decision_thresholds
    assert np.array_equal(a.predict(z), b.predict(str(tmp_path / "z.npy")))


def test_probabilities_file_converted_lazily(tmp_path, data, monkeypatch):
    z, y = data
    p = special.softmax(z.astype(np.float64), axis=1)
    np.save(tmp_path / "p.npy", p)
    a = calibrate.fit(p, y)
    src = io.read_scores(str(tmp_path / "p.npy"))[0]
    assert isinstance(src, NpyRows)
    b = calibrate.fit(src, y)
    assert b.input_kind == "probabilities"
    assert a.temperature == b.temperature and a.decision_thresholds == b.decision_thresholds


def test_shards_equal_one_file(tmp_path, data):
    z, y = data
    for i, lo in enumerate(range(0, len(z), 1500)):
        np.save(tmp_path / f"logits_{i:02d}.npy", z[lo:lo + 1500])
        np.save(tmp_path / f"labels_{i:02d}.npy", y[lo:lo + 1500])
    a = calibrate.fit(z, y)
    b = calibrate.fit(str(tmp_path / "logits_*.npy"), str(tmp_path / "labels_*.npy"))
    assert a.temperature == b.temperature and a.decision_thresholds == b.decision_thresholds
    files = sorted(str(p) for p in tmp_path.glob("logits_*.npy"))
    # a list is data, never paths: shards are opened explicitly
    shards = calibrate.open_scores(files, require_labels=False).scores
    assert np.array_equal(b.predict(shards), a.predict(z))


def test_cli_shards_and_streaming_apply(tmp_path, data, monkeypatch):
    z, y = data
    monkeypatch.chdir(tmp_path)
    for i, lo in enumerate(range(0, len(z), 2000)):
        np.save(f"logits_{i}.npy", z[lo:lo + 2000])
        np.save(f"labels_{i}.npy", y[lo:lo + 2000])
    np.save("z.npy", z)
    np.save("y.npy", y)
    r = CliRunner()
    one = r.invoke(cli, ["fit", "z.npy", "--labels", "y.npy", "-o", "one.json"])
    many = r.invoke(cli, ["fit", "logits_*.npy", "--labels", "labels_*.npy", "-o", "many.json"])
    listed = r.invoke(cli, ["fit", "logits_0.npy", "logits_1.npy", "logits_2.npy",
                            "--labels", "labels_0.npy", "--labels", "labels_1.npy",
                            "--labels", "labels_2.npy", "-o", "listed.json"])
    assert one.exit_code == many.exit_code == listed.exit_code == 0
    a, b, c = (calibrate.load(f) for f in ("one.json", "many.json", "listed.json"))
    assert a.temperature == b.temperature == c.temperature
    assert a.decision_thresholds == b.decision_thresholds == c.decision_thresholds
    res = r.invoke(cli, ["apply", "many.json", "logits_*.npy", "-o", "d.npy"])
    assert res.exit_code == 0, res.output
    assert np.array_equal(np.load("d.npy"), a.predict(z))


def test_iter_predict_blocks_equal_predict(data):
    z, y = data
    cal = calibrate.fit(z, y)
    blocks = list(cal.iter_predict(z, block_elements=20 * 700))
    assert len(blocks) == 9
    assert np.array_equal(np.concatenate(blocks), cal.predict(z))


def test_result_does_not_depend_on_chunking(data, monkeypatch):
    z, y = data
    a = calibrate.fit(z, y)
    monkeypatch.setattr(local, "TARGET_ELEMENTS", 20 * 37)   # 37-row chunks
    b = calibrate.fit(z, y)
    assert a.temperature == b.temperature and a.decision_thresholds == b.decision_thresholds


def test_progress_sees_every_chunk(data, monkeypatch):
    z, y = data
    seen = {}

    def hook(label, n):
        seen.setdefault(label, [0, 0])
        seen[label][1] += n
        def advance(k):
            seen[label][0] += k
        return advance

    monkeypatch.setattr(local, "TARGET_ELEMENTS", 20 * 500)
    calibrate.fit(z, y, progress=hook)
    # the summary's metrics ride on the temperature passes (fused), or have their own
    assert "temperature pass" in seen and set(seen) <= {"checking scores", "temperature pass",
                                                       "metrics", "scoring"}
    assert all(done == total > 0 for done, total in seen.values())





def test_dask_array_equals_numpy(data):
    da = pytest.importorskip("dask.array")
    z, y = data
    a = calibrate.fit(z, y)
    dz = da.from_array(z, chunks=(1100, 7))          # odd blocks, split columns
    b = calibrate.fit(dz, da.from_array(y, chunks=900))
    assert abs(b.temperature - a.temperature) <= 1e-6 * a.temperature
    assert a.decision_thresholds == b.decision_thresholds
    assert np.array_equal(a.predict(z), b.predict(dz))


def test_dask_probabilities_converted_per_block(data):
    da = pytest.importorskip("dask.array")
    z, y = data
    p = special.softmax(z.astype(np.float64), axis=1)
    a = calibrate.fit(p, y)
    b = calibrate.fit(da.from_array(p, chunks=(1000, -1)), y)
    assert b.input_kind == "probabilities"
    assert a.temperature == b.temperature and a.decision_thresholds == b.decision_thresholds


def test_local_cluster_two_workers(data, tmp_path, monkeypatch):
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    z, y = data
    a = calibrate.fit(z, y)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            b = calibrate.fit(da.from_array(z, chunks=(1000, -1)), y)
        assert abs(b.temperature - a.temperature) <= 1e-6 * a.temperature
        assert a.decision_thresholds == b.decision_thresholds
        monkeypatch.chdir(tmp_path)
        res = CliRunner().invoke(cli, ["fit", "z.npy", "--labels", "y.npy", "-o", "c.json",
                                       "--scheduler", cluster.scheduler_address])
        assert res.exit_code == 0, res.output
        c = calibrate.load(tmp_path / "c.json")
        assert c.temperature == a.temperature and c.decision_thresholds == a.decision_thresholds
        # multilabel: the (N, C) label file stays a row source beside the dask scores
        zm, ym = make_multilabel(n=3000, c=5, seed=4)
        np.save(tmp_path / "zm.npy", zm)
        np.save(tmp_path / "ym.npy", ym)
        res = CliRunner().invoke(cli, ["fit", "zm.npy", "--labels", "ym.npy", "-o", "m.json",
                                       "--scheduler", cluster.scheduler_address])
        assert res.exit_code == 0, res.output
        m, want = calibrate.load(tmp_path / "m.json"), calibrate.fit(zm, ym)
        assert np.array_equal(m.temperature, want.temperature)
        assert m.decision_thresholds == want.decision_thresholds


def test_zero_dimensional_npy_refused(tmp_path):
    np.save(tmp_path / "one.npy", np.float32(3.0))
    with pytest.raises(calibrate.CalibrateError, match="a single number"):
        calibrate.fit(str(tmp_path / "one.npy"), np.array([0]))


def test_many_shards_hold_no_open_files(tmp_path, data):
    import os
    z, y = data
    for i, lo in enumerate(range(0, len(z), 50)):
        np.save(tmp_path / f"s{i:04d}.npy", z[lo:lo + 50])
    before = len(os.listdir("/proc/self/fd"))
    src, _ = io.read_scores(str(tmp_path / "s*.npy"))
    assert src.shape == z.shape and len(os.listdir("/proc/self/fd")) == before
    assert np.array_equal(np.asarray(src), z)


def test_probabilities_stream_in_blocks(tmp_path, data, monkeypatch):
    z, y = data
    cal = calibrate.fit(z, y)
    blocks = list(cal.iter_predict_proba(z, block_elements=20 * 1000))
    assert len(blocks) == 6
    assert np.array_equal(np.concatenate(blocks), cal.predict_proba(z))
    monkeypatch.chdir(tmp_path)
    np.save("z.npy", z)
    cal.save("t.json")
    for out in ("p.npy", "p.csv"):
        res = CliRunner().invoke(cli, ["apply", "t.json", "z.npy", "-o", "d.npy",
                                       "--probabilities", out])
        assert res.exit_code == 0, res.output
    assert np.array_equal(np.load("p.npy"), cal.predict_proba(z))
    np.testing.assert_allclose(np.loadtxt("p.csv", delimiter=","), cal.predict_proba(z), rtol=1e-6)


def test_evaluate_reads_shards(tmp_path, data, monkeypatch):
    import json
    z, y = data
    monkeypatch.chdir(tmp_path)
    calibrate.fit(z, y).save("t.json")
    np.save("z.npy", z)
    np.save("y.npy", y)
    for i, lo in enumerate(range(0, len(z), 2500)):
        np.save(f"part_{i}.npy", z[lo:lo + 2500])
        np.save(f"lab_{i}.npy", y[lo:lo + 2500])
    r = CliRunner()
    one = r.invoke(cli, ["evaluate", "t.json", "z.npy", "--labels", "y.npy", "--json"])
    many = r.invoke(cli, ["evaluate", "t.json", "part_*.npy", "--labels", "lab_*.npy", "--json"])
    assert one.exit_code == many.exit_code == 0, many.output
    a, b = json.loads(one.stdout), json.loads(many.stdout)
    assert a["per_class"] == b["per_class"] and a["metrics"] == b["metrics"]


def test_the_allocator_is_settled_once_before_the_first_pass(monkeypatch):
    """Every pass starts by settling the allocator, which frees one block of
    SETTLE_BYTES once per process."""
    sizes = []
    real = np.empty

    def recording(shape, *a, **k):
        sizes.append(shape)
        return real(shape, *a, **k)
    monkeypatch.setattr(local, "_SETTLED", False)
    monkeypatch.setattr(local.np, "empty", recording)
    z = np.arange(12.0).reshape(6, 2)
    for _ in range(2):
        total = local.fold_chunks(lambda acc, b: acc.__iadd__(b.sum(axis=0)), (z,),
                                  local.row_slices(6, 2), init=lambda: np.zeros(2))
        np.testing.assert_array_equal(total, z.sum(axis=0))
        assert local.map_tasks(lambda t: t * 2, [1, 2, 3]) == [2, 4, 6]
    assert sizes.count(local.SETTLE_BYTES) == 1 and local._SETTLED


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds")
def test_a_settled_allocator_reuses_pages_for_repeated_temporaries():
    """In a new process, 8 MB temporaries made and freed over and over are fresh
    pages every time (a page fault per 4 KB) until the allocator is settled,
    then the same pages serve them."""
    code = (
        "import resource, numpy as np\n"
        "from calibrate.backends import local\n"
        "def churn():\n"
        "    a = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    for _ in range(20):\n"
        "        x = np.empty(1 << 20); x[:] = 1.0; y = x * 2.0; del x, y\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - a\n"
        "before = churn(); local.settle_allocator(); churn(); print(before, churn())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    before, after = int(out[0]), int(out[1])
    assert before > 5000 and after < before // 20, (before, after)
