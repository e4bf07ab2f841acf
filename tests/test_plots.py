"""calibrate.plots: files are written as valid PNGs of the expected size, and what is
drawn is the metric functions' output (no pixel comparisons)."""

import struct
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import special

import calibrate
from calibrate import curves, metrics
from calibrate_cli.main import cli
from conftest import make_binary, make_multiclass, make_multilabel

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402

from calibrate import plots  # noqa: E402

DPI = 40  # small files, fast tests


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = open(path, "rb").read(32)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def expected_size(n_panels, task, many, dpi=DPI):
    rows = -(-n_panels // plots.MULTIPLE_COLUMNS)
    h = plots.TOP_HEIGHT + plots.FIGURE_TITLE
    if task == "multilabel":
        h += plots.MULTIPLE_HEIGHT * rows + plots.SECTION_TITLE
    if many:
        h += plots.OVERVIEW_HEIGHT
    if task != "binary":
        h += plots.MULTIPLE_HEIGHT * rows + plots.SECTION_TITLE
    return round(plots.WIDTH * dpi), round(h * dpi)


def by_gid(fig, gid):
    axes = [a for a in fig.get_axes() if a.get_gid() == gid]
    assert len(axes) == 1, (gid, [a.get_gid() for a in fig.get_axes()])
    return axes[0]


def patches(ax, gid):
    return [p for p in ax.patches if p.get_gid() == gid]


def line(ax, gid):
    ls = [ln for ln in ax.get_lines() if ln.get_gid() == gid]
    assert len(ls) == 1, gid
    return ls[0]


@pytest.fixture(scope="module")
def mc():
    z, y = make_multiclass(seed=41, n=3000, c=6)      # <= MAX_PANELS: a panel per class
    return calibrate.fit(z, y), z, y


# ------------------------------------------------------------------ files

@pytest.mark.parametrize("case", ["multiclass", "many", "binary", "multilabel"])
def test_report_png_has_the_expected_size(case, tmp_path):
    if case == "binary":
        z, y = make_binary(seed=42, n=1500)
    elif case == "multilabel":
        z, y = make_multilabel(seed=43, n=1500)
    else:
        z, y = make_multiclass(seed=44, n=1500, c=6 if case == "multiclass" else 14)
    cal = calibrate.fit(z, y)
    path = tmp_path / "r.png"
    size = plots.save_report(cal, z, y, path, dpi=DPI)
    n = {"multiclass": 6, "many": plots.MAX_PANELS, "binary": 1, "multilabel": 3}[case]
    want = expected_size(n, cal.task, case == "many")
    assert size == want
    assert png_size(path) == want
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]     # nothing half-written


def test_pdf_and_svg_and_refused_suffix(mc, tmp_path):
    cal, z, y = mc
    plots.save_report(cal, z, y, tmp_path / "r.pdf", dpi=DPI)
    plots.save_report(cal, z, y, tmp_path / "r.svg", dpi=DPI)
    assert (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in (tmp_path / "r.svg").read_bytes()[:2000]
    with pytest.raises(calibrate.CalibrateError, match="a .png, .pdf or .svg file"):
        plots.save_report(cal, z, y, tmp_path / "r.jpg")


# ------------------------------------------------------------------ drawn data = metrics

def test_reliability_diagram_draws_the_bins():
    rng = np.random.default_rng(45)
    p = rng.beta(4, 1, 2000)
    o = (rng.random(2000) < p ** 1.5).astype(float)
    fig = Figure()
    ax, hx = fig.subplots(2, 1)
    out = plots.reliability_diagram(ax, p, o, hist_ax=hx)
    b = metrics.reliability_bins(p, o)
    full = b["count"] > 0
    acc = patches(ax, "accuracy")
    gap = patches(ax, "gap")
    assert np.allclose([r.get_height() for r in acc], b["accuracy"][full], rtol=0, atol=1e-12)
    assert np.allclose([r.get_x() for r in acc], b["lo"][full])
    # the gap bar runs from the accuracy to the bin's mean confidence
    assert np.allclose([r.get_y() + r.get_height() for r in gap], b["confidence"][full],
                       atol=1e-12)
    x, yv = line(ax, "confidence").get_data()
    assert np.allclose(yv, b["confidence"][full], atol=1e-12)
    assert np.allclose(x, b["lo"][full] + 1 / 30)
    share = patches(hx, "share")
    assert np.allclose([r.get_height() for r in share], 100 * b["count"] / 2000)
    assert out["ece"] == metrics.ece(p, o) and out["smooth_ece"] == metrics.smooth_ece(p, o)
    text = " ".join(t.get_text() for t in ax.texts)
    assert f"ECE {100 * metrics.ece(p, o):.2f}%" in text
    assert f"smooth ECE {100 * metrics.smooth_ece(p, o):.2f}%" in text


def test_precision_panel_draws_the_precision_curve():
    rng = np.random.default_rng(46)
    p = rng.random(5000)
    c = rng.random(5000) < p
    fig = Figure()
    ax = fig.subplots()
    out = plots.precision_threshold(ax, p, c, int(c.sum()) + 50, threshold=0.7, target=0.9,
                                    lower_bound_confidence=0.95, max_points=500)
    want = curves.precision_curve(p, c, int(c.sum()) + 50)
    idx = curves.thin(len(want["threshold"]), 500)
    assert len(idx) <= 500 and idx[0] == 0 and idx[-1] == len(want["threshold"]) - 1
    x, yv = line(ax, "precision").get_data()
    assert np.array_equal(x, want["threshold"][idx]) and np.array_equal(yv, want["precision"][idx])
    assert np.array_equal(line(ax, "recall").get_data()[1], want["recall"][idx])
    assert np.array_equal(out["precision"], want["precision"])
    assert line(ax, "target").get_ydata()[0] == 0.9
    assert line(ax, "threshold").get_xdata()[0] == 0.7
    # the dot: the precision of {p >= 0.7}
    assert line(ax, "chosen").get_ydata()[0] == pytest.approx(c[p >= 0.7].mean(), abs=1e-15)
    lb = line(ax, "lower-bound").get_ydata()
    assert np.all(lb <= want["precision"][idx] + 1e-12)


def test_risk_coverage_panel_draws_the_curve():
    rng = np.random.default_rng(47)
    s = rng.normal(size=3000)
    c = rng.random(3000) < special.expit(2 * s)
    fig = Figure()
    ax = fig.subplots()
    out = plots.risk_coverage_plot(ax, s, c, threshold=0.5, target=0.9, per_class=(0.2, 0.05))
    want = curves.risk_coverage(s, c)
    idx = curves.thin(3000, plots.MAX_POINTS)
    assert np.array_equal(out["drawn"], idx)
    x, yv = line(ax, "risk").get_data()
    assert np.array_equal(x, want["coverage"][idx]) and np.array_equal(yv, want["risk"][idx])
    assert line(ax, "per-class").get_xydata().tolist() == [[0.2, 0.05]]
    acc = s >= 0.5
    assert line(ax, "chosen").get_xdata()[0] == pytest.approx(acc.mean(), abs=1e-15)
    assert line(ax, "chosen").get_ydata()[0] == pytest.approx(1 - c[acc].mean(), abs=1e-15)
    assert line(ax, "target").get_ydata()[0] == pytest.approx(0.1)


def test_report_panels_show_the_calibration_before_and_after(mc):
    cal, z, y = mc
    fig = plots.report_figure(cal, z, y)
    p1 = special.softmax(z.astype(np.float64), axis=1)
    pT = cal.predict_proba(z).astype(np.float64)
    for side, p in (("before", p1), ("after", pT)):
        conf, o = metrics.calibration_pairs(p, y)
        b = metrics.reliability_bins(conf, o)
        ax = by_gid(fig, f"reliability-{side}")
        heights = [r.get_height() for r in patches(ax, "accuracy")]
        assert np.allclose(heights, b["accuracy"][b["count"] > 0], atol=1e-6)
        text = " ".join(t.get_text() for t in ax.texts)
        assert f"ECE {100 * cal.summary['metrics']['ece_15_equal_width'][side]:.2f}%" in text
    # one precision panel per class, with the class's own threshold
    for k, name in enumerate(cal.classes):
        ax = by_gid(fig, f"precision:{name}")
        t = cal.thresholds["per_class"][k]
        if t is None:
            assert not [ln for ln in ax.get_lines() if ln.get_gid() == "threshold"]
        else:
            assert line(ax, "threshold").get_xdata()[0] == t
    rc = by_gid(fig, "risk-coverage")
    assert line(rc, "chosen").get_ydata()[0] == pytest.approx(
        1 - cal.summary["global"]["precision"], abs=1e-9)
    assert line(rc, "chosen").get_xdata()[0] == pytest.approx(
        cal.summary["global"]["coverage"], abs=1e-9)


def test_many_classes_get_an_overview_and_the_worst_panels():
    z, y = make_multiclass(seed=48, n=3000, c=30)
    cal = calibrate.fit(z, y, confidence=None)
    fig = plots.report_figure(cal, z, y)
    ov = by_gid(fig, "overview")
    rows = [r for r in cal.summary["per_class"] if r["threshold"] is not None]
    drawn = line(ov, "precision").get_ydata()
    assert np.array_equal(drawn, np.sort([r["precision"] for r in rows]))
    panels = [a.get_gid() for a in fig.get_axes() if (a.get_gid() or "").startswith("precision:")]
    assert len(panels) == plots.MAX_PANELS
    # fit: the classes with a threshold and the lowest held-out recall come first
    first = min(rows, key=lambda r: (r["recall"], r["class"]))
    assert panels[0] == f"precision:{first['class']}"


def test_evaluate_report_uses_the_verdicts(mc):
    cal, _, _ = mc
    zt, yt = make_multiclass(seed=49, n=3000, c=6)
    fig = plots.report_figure(cal, zt, yt, held_out=False)
    r = calibrate.evaluate(cal, zt, yt)
    for row in r["per_class"]:
        ax = by_gid(fig, f"precision:{row['class']}")
        if row["precision"] is not None:
            assert row["status"] in ax.get_title()
    assert not [ln for a in fig.get_axes() for ln in a.get_lines()
                if ln.get_gid() == "lower-bound"]


def test_multilabel_reliability_per_label():
    z, y = make_multilabel(seed=50, n=2000)
    cal = calibrate.fit(z, y)
    fig = plots.report_figure(cal, z, y)
    pT = cal.predict_proba(z).astype(np.float64)
    for k in range(3):
        ax = by_gid(fig, f"reliability:{k}")
        b = metrics.reliability_bins(pT[:, k], y[:, k])
        x, yv = line(ax, "curve-after").get_data()
        full = b["count"] > 0
        assert np.allclose(x, b["confidence"][full], atol=1e-6)
        assert np.allclose(yv, b["accuracy"][full])


# ------------------------------------------------------------------ command line

def test_cli_fit_and_evaluate_write_pictures(tmp_path):
    z, y = make_multiclass(seed=51, n=2000, c=5)
    zt, yt = make_multiclass(seed=52, n=2000, c=5)
    for name, a in (("v", z), ("vy", y), ("t", zt), ("ty", yt)):
        np.save(tmp_path / f"{name}.npy", a)
    runner = CliRunner()
    res = runner.invoke(cli, ["fit", str(tmp_path / "v.npy"), "--labels", str(tmp_path / "vy.npy"),
                              "-o", str(tmp_path / "t.json"), "--plot", str(tmp_path / "fit.png")])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1] == f"wrote {tmp_path / 't.json'} and {tmp_path / 'fit.png'}"
    assert png_size(tmp_path / "fit.png") == expected_size(5, "multiclass", False, plots.DPI)
    res = runner.invoke(cli, ["evaluate", str(tmp_path / "t.json"), str(tmp_path / "t.npy"),
                              "--labels", str(tmp_path / "ty.npy"), "--plot",
                              str(tmp_path / "eval.png")])
    assert res.exit_code == 0, res.output
    assert png_size(tmp_path / "eval.png") == expected_size(5, "multiclass", False, plots.DPI)


def test_help_does_not_import_matplotlib():
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from calibrate_cli.main import cli\n"
            "for args in (['--help'], ['fit', '--help'], ['evaluate', '--help']):\n"
            "    assert CliRunner().invoke(cli, args).exit_code == 0\n"
            "assert 'matplotlib' not in sys.modules\n"
            "import calibrate.evaluation, calibrate.metrics\n"
            "assert 'matplotlib' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
