"""Pictures of a calibration: reliability diagrams, precision against threshold,
risk-coverage.  Needs the ``plot`` extra (matplotlib), imported only when a
function here is called; ``import calibrate`` never imports it.

Two levels:

* axes functions draw one panel on an ``Axes`` you give them and return the
  numbers they drew, which are the :mod:`calibrate.metrics` functions' output:
  :func:`reliability_diagram`, :func:`reliability_curves`,
  :func:`precision_threshold`, :func:`risk_coverage_plot`,
  :func:`class_overview`;
* :func:`report_figure` returns a ``matplotlib.figure.Figure`` with the whole
  report for a threshold file and labelled scores, and :func:`save_report`
  writes it (``calibrate fit --plot``, ``calibrate evaluate --plot``).

Figures are built on ``matplotlib.figure.Figure`` directly, not pyplot: no
global state, no GUI backend, safe in threads and on servers.  Every drawn
line or bar carries a ``gid`` (``"accuracy"``, ``"gap"``, ``"share"``,
``"precision"``, ``"recall"``, ``"lower-bound"``, ``"target"``,
``"threshold"``, ``"chosen"``, ``"risk"``, ...) and every panel of a report an
axes ``gid`` (``"reliability-before"``, ``"reliability-after"``,
``"risk-coverage"``, ``"overview"``, ``"precision:<class>"``,
``"reliability:<class>"``), so that tests and users can find what was drawn.
"""

from __future__ import annotations

import io as _io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy import special

from . import curves, kernels, metrics, rules
from . import scores as _scores
from .artifact import Calibrator
from .backends import as_array
from .errors import invalid
from .guarantee import lower_bound
from .outputs import StrPath, atomic_write, check_writable

if TYPE_CHECKING:  # pragma: no cover - matplotlib loads when a picture is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.typing import LegendLocType

#: (probability, correct, support) of one class's candidate rows.
ClassPoints = tuple[np.ndarray, np.ndarray, int]

FORMATS = (".png", ".pdf", ".svg")
#: Report layout, in inches: figure width, and the height of each kind of row.
WIDTH = 13.0
TOP_HEIGHT = 4.4
OVERVIEW_HEIGHT = 3.2
MULTIPLE_HEIGHT = 2.8
MULTIPLE_COLUMNS = 4
SECTION_TITLE = 0.35
FIGURE_TITLE = 0.4
#: At most this many per-class panels per section; above it the report shows
#: an overview of every class and the panels of the classes that matter most.
MAX_PANELS = 12
DPI = 150
#: Longest curve drawn, in points (curves are thinned evenly beyond it).
MAX_POINTS = 2000

# Okabe-Ito colours: distinguishable with every common colour-vision deficiency.
BLUE, ORANGE, VERMILION, GREEN, GREY = "#0072B2", "#E69F00", "#D55E00", "#009E73", "#7f7f7f"
STATUS_COLOURS = {"ok": BLUE, "held": BLUE, "missed": ORANGE, "violated": VERMILION,
                  "no-predictions": GREY}

_RC = {"font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8,
       "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
       "axes.spines.right": False, "figure.dpi": DPI}


def _matplotlib() -> ModuleType:
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise invalid("plot", "matplotlib installed (pip install 'calibrate-thresholds[plot]')",
                      "no matplotlib") from None
    return matplotlib


def check_output(path: StrPath) -> None:
    """Refuse a picture path early: unknown format, unwritable folder, no matplotlib."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in FORMATS:
        raise invalid(f"plot file '{os.fspath(path)}'", "a .png, .pdf or .svg file",
                      f"'{suffix or 'no extension'}'")
    check_writable(path, "plot")
    _matplotlib()


# ---------------------------------------------------------------------------
# Panels

def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def reliability_diagram(ax: Axes, confidence: npt.ArrayLike, outcome: npt.ArrayLike,
                        n_bins: int = metrics.N_BINS, title: str | None = None,
                        hist_ax: Axes | None = None, xlabel: str = "confidence",
                        ylabel: str = "accuracy", ece_label: str = "ECE") -> dict[str, Any]:
    """Binned reliability diagram (Guo et al. 2017, Fig. 1) on ``ax``.

    Bars: the accuracy (mean outcome) of each equal-width bin (lo, hi];
    hatched bars: the gap from it to the bin's mean confidence; dashed
    diagonal: perfect calibration.  The corner box gives the 15-bin ECE and
    the smooth ECE.  ``hist_ax`` (optional, below ``ax``) gets the share of
    rows per bin.  Returns ``{"bins": metrics.reliability_bins(...), "ece":
    ..., "smooth_ece": ...}``.
    """
    bins = metrics.reliability_bins(confidence, outcome, n_bins, "width")
    e = metrics.ece(confidence, outcome, n_bins)
    sm = metrics.smooth_ece(confidence, outcome)
    full = bins["count"] > 0
    lo, w = bins["lo"][full], 1.0 / n_bins
    acc, conf = bins["accuracy"][full], bins["confidence"][full]
    bars = ax.bar(lo, acc, width=w, align="edge", color=BLUE, edgecolor="white",
                  linewidth=0.6, label=f"{ylabel} in bin", zorder=2)
    for p in bars:
        p.set_gid("accuracy")
    # beneath the accuracy bars: where accuracy exceeds confidence the gap lies
    # inside the blue bar, and the confidence tick shows where it ends
    gaps = ax.bar(lo, conf - acc, bottom=acc, width=w, align="edge", facecolor=VERMILION,
                  alpha=0.30, edgecolor=VERMILION, hatch="///", linewidth=0.6,
                  label="gap to the bin's mean confidence", zorder=1)
    for p in gaps:
        p.set_gid("gap")
    ax.plot(lo + w / 2, conf, ls="none", marker="_", ms=9, mew=1.6, color="black",
            label="mean confidence in bin", gid="confidence", zorder=4)
    ax.plot([0, 1], [0, 1], ls="--", color=GREY, lw=1, label="perfect calibration",
            gid="diagonal", zorder=4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    n = len(np.ravel(confidence))
    ax.text(0.04, 0.96, f"{ece_label} {_pct(e)}\nsmooth ECE {_pct(sm)}\nn = {n}",
            transform=ax.transAxes, va="top", ha="left", fontsize=8.5,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "#cccccc"},
            zorder=5)
    if title:
        ax.set_title(title)
    if hist_ax is not None:
        share = bins["count"] / max(1, bins["count"].sum())
        hb = hist_ax.bar(bins["lo"], 100 * share, width=w, align="edge", color=GREY,
                         edgecolor="white", linewidth=0.6)
        for p in hb:
            p.set_gid("share")
        hist_ax.set_xlim(0, 1)
        hist_ax.set_ylabel("% rows")
        hist_ax.set_xlabel(xlabel)
        ax.tick_params(labelbottom=False)
    else:
        ax.set_xlabel(xlabel)
    return {"bins": bins, "ece": e, "smooth_ece": sm}


def reliability_curves(ax: Axes, pairs: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
                       n_bins: int = metrics.N_BINS, title: str | None = None,
                       labels: Sequence[str] = ("before", "after"),
                       colours: Sequence[str] = (ORANGE, BLUE)) -> list[dict[str, np.ndarray]]:
    """Reliability curves of several (confidence, outcome) pairs on one ``ax``:
    the mean confidence and accuracy of each non-empty equal-width bin, joined.
    Used for the small multiples of binary and multilabel classes.  Returns
    the list of :func:`metrics.reliability_bins` results."""
    out = []
    ax.plot([0, 1], [0, 1], ls="--", color=GREY, lw=1, gid="diagonal")
    for (c, o), lab, col in zip(pairs, labels, colours, strict=False):  # as many as pairs
        b = metrics.reliability_bins(c, o, n_bins, "width")
        full = b["count"] > 0
        e = metrics.ece(c, o, n_bins)
        ax.plot(b["confidence"][full], b["accuracy"][full], marker="o", ms=3, lw=1.3,
                color=col, label=f"{lab}: ECE {_pct(e)}", gid=f"curve-{lab}")
        out.append(b)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.legend(loc="upper left", frameon=False, handlelength=1.2)
    if title:
        ax.set_title(title)
    return out


def _at(curve: Mapping[str, np.ndarray], threshold: float) -> int | None:
    """Index of the curve point a threshold selects (None: it accepts nothing)."""
    j = int(np.searchsorted(-curve["threshold"], -threshold, side="right")) - 1
    return j if j >= 0 else None


def precision_threshold(ax: Axes, probability: npt.ArrayLike, correct: npt.ArrayLike,
                        n_positive: int | None, threshold: float | None = None,
                        target: float | None = None,
                        lower_bound_confidence: float | None = None, title: str | None = None,
                        max_points: int = MAX_POINTS, legend: bool = True
                        ) -> dict[str, np.ndarray]:
    """Precision and recall of ``probability >= t`` against the threshold t.

    ``probability`` is each candidate row's calibrated probability for the
    class (the argmax class's, for multiclass), ``correct`` whether the row
    belongs to it, ``n_positive`` the class's support.  Marks the target
    (dotted horizontal), the chosen threshold (vertical) and the precision it
    gives (dot); with ``lower_bound_confidence`` adds the one-sided
    Clopper-Pearson lower bound of the precision at each threshold.  Returns
    :func:`curves.precision_curve` (unthinned) with ``"drawn"``, the indices
    plotted.
    """
    curve = curves.precision_curve(probability, correct, n_positive)
    idx = curves.thin(len(curve["threshold"]), max_points)
    curve["drawn"] = idx
    t = curve["threshold"][idx]
    ax.plot(t, curve["precision"][idx], color=BLUE, lw=1.4, label="precision",
            gid="precision", drawstyle="steps-post")
    ax.plot(t, curve["recall"][idx], color=GREEN, lw=1.2, ls="--", label="recall",
            gid="recall", drawstyle="steps-post")
    if lower_bound_confidence is not None and len(t):
        lb = lower_bound(curve["correct"][idx], curve["predicted"][idx], lower_bound_confidence)
        ax.plot(t, lb, color=BLUE, lw=0.9, ls=":", alpha=0.9, gid="lower-bound",
                label=f"{100 * lower_bound_confidence:g}% lower bound", drawstyle="steps-post")
    if target is not None:
        ax.axhline(target, color=VERMILION, lw=1, ls=(0, (1, 1.5)), label=f"target {target:g}",
                   gid="target")
    if threshold is not None:
        ax.axvline(threshold, color="black", lw=0.9, gid="threshold", label="chosen threshold")
        j = _at(curve, threshold) if len(t) else None
        if j is not None:
            ax.plot([threshold], [curve["precision"][j]], "o", color="black", ms=4, gid="chosen")
    else:
        ax.text(0.5, 0.08, "no threshold: never predicted", transform=ax.transAxes,
                ha="center", fontsize=8, color=VERMILION)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("threshold (calibrated probability)")
    ax.set_ylabel("precision, recall")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="lower left", frameon=False, handlelength=1.6)
    return curve


def risk_coverage_plot(ax: Axes, scores: npt.ArrayLike, correct: npt.ArrayLike,
                       threshold: float | None = None, target: float | None = None,
                       n_total: int | None = None,
                       reference: tuple[float, float] | None = None,
                       per_class: tuple[float, float] | None = None, title: str | None = None,
                       max_points: int = MAX_POINTS, xlabel: str = "coverage"
                       ) -> dict[str, np.ndarray]:
    """Selective risk (1 - precision of the accepted) against coverage as one
    threshold on ``scores`` loosens (Geifman & El-Yaniv 2017).

    Marks the risk budget 1 - target (dotted), the chosen threshold's point
    (filled dot) and ``reference`` = (coverage, risk) from the file's held-out
    summary (open circle); ``per_class`` = (coverage, risk) of the per-class
    rule (square), for comparison.  Returns :func:`curves.risk_coverage` with
    ``"drawn"``.
    """
    rc = curves.risk_coverage(scores, correct, n_total)
    idx = curves.thin(len(rc["threshold"]), max_points)
    rc["drawn"] = idx
    ax.plot(rc["coverage"][idx], rc["risk"][idx], color=BLUE, lw=1.4, gid="risk",
            label="global rule, all thresholds")
    if target is not None:
        ax.axhline(1 - target, color=VERMILION, lw=1, ls=(0, (1, 1.5)), gid="target",
                   label=f"risk budget 1 - {target:g}")
    if threshold is not None and len(idx):
        j = _at({"threshold": rc["threshold"]}, threshold)
        if j is not None:
            ax.plot([rc["coverage"][j]], [rc["risk"][j]], "o", color="black", ms=5,
                    gid="chosen", label=f"chosen threshold {threshold:.3g}")
    if reference is not None and None not in reference:
        ax.plot([reference[0]], [reference[1]], "o", mfc="none", mec="black", ms=8,
                gid="held-out", label="chosen threshold on held-out data (file)")
    if per_class is not None:
        ax.plot([per_class[0]], [per_class[1]], "s", color=ORANGE, ms=6, gid="per-class",
                label="per-class rule (all its decisions)")
    top = np.nanmax(rc["risk"][idx]) if len(idx) else 1.0
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(min(1.0, 1.1 * top), 1.3 * (1 - target) if target else 0.05))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("risk (1 - precision)")
    ax.legend(loc="upper left", frameon=False)
    if title:
        ax.set_title(title)
    return rc


def _interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval of k / n."""
    a = (1 - level) / 2
    lo = float(lower_bound(k, n, 1 - a)) if n else np.nan
    hi = float(1 - lower_bound(n - k, n, 1 - a)) if n else np.nan
    return lo, hi


def class_overview(ax: Axes, rows: Sequence[Mapping[str, Any]], target: float,
                   held_out: bool = True, title: str | None = None) -> np.ndarray:
    """Every class's precision at its threshold, sorted, with the target.

    ``rows``: the per-class rows of a fit summary (``held_out=True``: dots at
    the held-out precision, bars down to the certified lower bound) or of
    :func:`calibrate.evaluation.evaluate` (dots at the new data's precision,
    bars for its two-sided 95% Clopper-Pearson interval, colour by verdict,
    grey ticks at the held-out precision).  Classes without a threshold or
    without predictions are counted in the title, not drawn.  Returns the
    drawn precisions in plotting order.
    """
    drawn = [r for r in rows if r.get("precision") is not None and r.get("threshold") is not None]
    drawn.sort(key=lambda r: (r["precision"], r["class"]))
    x = np.arange(1, len(drawn) + 1)
    prec = np.array([r["precision"] for r in drawn], dtype=np.float64)
    if held_out:
        lo = np.array([r["lower_bound"] if r.get("lower_bound") is not None else r["precision"]
                       for r in drawn])
        ax.vlines(x, lo, prec, color=BLUE, alpha=0.5, lw=1.2, gid="lower-bound",
                  label="down to the certified lower bound")
        ax.plot(x, prec, "o", color=BLUE, ms=3.5, gid="precision", label="held-out precision")
    else:
        iv = np.array([_interval(r["correct"], r["predicted"]) for r in drawn]).reshape(-1, 2)
        cols = [STATUS_COLOURS.get(r["status"], GREY) for r in drawn]
        ax.vlines(x, iv[:, 0], iv[:, 1], colors=cols, alpha=0.45, lw=1.2, gid="interval")
        ax.scatter(x, prec, c=cols, s=14, zorder=3, gid="precision")
        ho = np.array([(r.get("held_out") or {}).get("precision") or np.nan for r in drawn],
                      dtype=np.float64)
        ax.plot(x, ho, "_", color="black", ms=6, mew=1, gid="held-out",
                label="held-out precision (file)")
        for s in ("held", "missed", "violated"):
            n_s = sum(r["status"] == s for r in drawn)
            if n_s:
                ax.plot([], [], "o", color=STATUS_COLOURS[s], ms=4, label=f"{s} ({n_s})")
        ax.plot([], [], color=GREY, lw=1.2, label="95% interval, new data")
    ax.axhline(target, color=VERMILION, lw=1, ls=(0, (1, 1.5)), gid="target",
               label=f"target {target:g}")
    ax.set_xlim(0, len(drawn) + 1)
    if 0 < len(drawn) <= 40:
        ax.set_xticks(x, [str(r["class"])[:12] for r in drawn],
                      rotation=90 if len(drawn) > 12 else 0, fontsize=7.5)
    low = np.nanmin(prec) if len(prec) else target
    if len(prec):
        low = min(low, np.nanmin(lo) if held_out else np.nanmin(iv[:, 0]))
    ax.set_ylim(max(0.0, min(low, target) - 0.02), 1.005)
    ax.set_xlabel("classes with a threshold, sorted by precision")
    ax.set_ylabel("precision at threshold")
    ax.legend(loc="lower right", frameon=False, ncol=2)
    missing = len(rows) - len(drawn)
    if title is None:
        title = f"all {len(rows)} classes" + (f" ({missing} without a threshold or a prediction, "
                                              "not shown)" if missing else "")
    ax.set_title(title)
    return prec


# ---------------------------------------------------------------------------
# The report

def _data(cal: Calibrator, scores: Any, labels: Any,
          input_kind: str | None) -> tuple[np.ndarray, np.ndarray]:
    z = cal.logits(scores, input_kind).to_numpy()
    y = _scores.check_labels(as_array(labels, "labels"), cal.task, z.shape[0],
                             len(cal.classes))
    return z, np.asarray(y)


def _pairs(cal: Calibrator, z: np.ndarray, y: np.ndarray, calibration: Any
           ) -> tuple[tuple[np.ndarray, np.ndarray], list[ClassPoints]]:
    """ECE pairs and per-class (probability, correct, support) under
    ``calibration`` (a temperature, or the file's family)."""
    if cal.task == "multiclass":
        k, logp = kernels.calibrated_top(z, calibration)
        conf = np.exp(logp)
        right = k == y
        support = np.bincount(y, minlength=len(cal.classes))
        per = [(conf[k == c], right[k == c], int(support[c])) for c in range(len(cal.classes))]
        return (conf, right.astype(np.float64)), per
    if kernels.is_family(calibration):
        p = np.asarray(calibration.probabilities(np.asarray(z, dtype=np.float64)), np.float64)
    else:
        p = special.expit(np.asarray(z, dtype=np.float64) /
                          np.asarray(calibration, dtype=np.float64))
    if cal.task == "binary":
        return (p, y.astype(np.float64)), [(p, y == 1, int(y.sum()))]
    per = [(p[:, c], y[:, c] == 1, int(y[:, c].sum())) for c in range(p.shape[1])]
    return (p.ravel(), y.ravel().astype(np.float64)), per


def _selected(rows: Sequence[Mapping[str, Any]], max_panels: int,
              held_out: bool) -> tuple[list[int], str | None]:
    """Indices of the classes drawn in small multiples: all of them, or the
    ``max_panels`` that matter most (fit: classes with a threshold, lowest
    held-out recall first, then those without one; evaluate: violated, then
    missed, then held with the lowest precision on the new data)."""
    n = len(rows)
    if n <= max_panels:
        return list(range(n)), None
    if held_out:
        order = sorted(range(n), key=lambda i: (rows[i].get("threshold") is None,
                                                rows[i].get("recall") or 0.0, rows[i]["class"]))
        why = "lowest held-out recall among those with a threshold"
    else:
        rank = {"violated": 0, "missed": 1, "no-predictions": 2, "held": 3, "no-threshold": 4}
        order = sorted(range(n), key=lambda i: (rank.get(rows[i]["status"], 5),
                                                rows[i].get("precision") or 0.0,
                                                rows[i]["class"]))
        why = "lowest precision on the new data"
    return order[:max_panels], why


def _rule_point(cal: Calibrator, z: np.ndarray, y: np.ndarray,
                calibration: Any) -> tuple[float, float] | None:
    """(coverage, risk) of the per-class rule's decisions, pooled."""
    tau = cal.decision_thresholds["per_class"]
    if cal.task == "multiclass":
        k, logp = kernels.calibrated_top(z, calibration)
        acc = rules.decide_multiclass(k, logp, tau) >= 0
        right = k == y
    else:
        d = rules.decide_sigmoid(kernels.calibrated_scores(z, calibration), tau)
        acc, right = d.ravel(), (y == 1).ravel()
    if not acc.any():
        return None
    return float(acc.mean()), float(1.0 - right[acc].mean())


def _section(sub: SubFigure, title: str, legend_from: Axes | None = None,
             legend_loc: LegendLocType = "outside upper right") -> None:
    """Title a section (a subfigure) and give it one legend, from ``legend_from``'s handles."""
    sub.suptitle(title, fontsize=10, x=0.01, ha="left", fontweight="bold")
    if legend_from is not None:
        h, lab = legend_from.get_legend_handles_labels()
        legend = legend_from.get_legend()
        if legend is not None:
            legend.remove()
        sub.legend(h, lab, loc=legend_loc, ncol=len(h), frameon=False,
                   fontsize=8, handlelength=1.8)


def report_figure(cal: Calibrator, scores: Any, labels: Any, input_kind: str | None = None,
                  title: str | None = None, held_out: bool = True,
                  max_panels: int = MAX_PANELS, n_bins: int = metrics.N_BINS) -> Figure:
    """The calibration report of ``cal`` on labelled ``scores``, as a Figure.

    Top row: reliability diagrams before (T = 1) and after (the file's T)
    temperature scaling -- top-label confidence for multiclass, the
    positive class for binary, all (row, class) pairs for multilabel -- and
    the risk-coverage curve of the global rule (binary: precision against
    threshold, the global rule being the one threshold).  Multilabel adds
    reliability curves per label.  Then precision and recall against the
    threshold per class with the chosen threshold and the target; above
    ``max_panels`` classes an overview of all classes and the panels of the
    ``max_panels`` that matter most.

    ``held_out=True`` (``calibrate fit --plot``): the data are the ones the
    file was fitted on; the precision panels add the certified lower bound.
    ``held_out=False`` (``calibrate evaluate --plot``): new data; the panels
    show the verdicts of :func:`calibrate.evaluation.evaluate` and the file's
    held-out figures for reference.
    """
    mpl = _matplotlib()
    from matplotlib.figure import Figure

    r = _report_data(cal, scores, labels, input_kind, held_out, max_panels, n_bins)
    sections = [("top", TOP_HEIGHT)]
    if cal.task == "multilabel":
        sections.append(("labels", MULTIPLE_HEIGHT * r.n_mult_rows + SECTION_TITLE))
    if r.many:
        sections.append(("overview", OVERVIEW_HEIGHT))
    if cal.task != "binary":
        sections.append(("precision", MULTIPLE_HEIGHT * r.n_mult_rows + SECTION_TITLE))
    heights = [h for _, h in sections]
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(WIDTH, sum(heights) + FIGURE_TITLE), dpi=DPI, layout="constrained")
        fig.suptitle(_report_title(r, title), fontsize=11)
        subs: Any = fig.subfigures(len(sections), 1, height_ratios=heights)
        subs = [subs] if len(sections) == 1 else list(subs)
        sub: dict[str, SubFigure] = dict(zip([k for k, _ in sections], subs, strict=True))
        _top_section(sub["top"], r)
        if "labels" in sub:
            _labels_section(sub["labels"], r)
        if r.many:
            _overview_section(sub["overview"], r)
        if "precision" in sub:
            _precision_section(sub["precision"], r)
    return fig


@dataclass(frozen=True)
class _Report:
    """What the sections of :func:`report_figure` draw: the file, its logits and
    labels, the ECE pairs before (T = 1) and after its calibration, each scored
    class's points, names, thresholds and rows (the fit summary's, or
    :func:`calibrate.evaluation.evaluate`'s), and the classes drawn in small
    multiples (``shown``; ``why`` only those, None when all)."""
    cal: Calibrator
    z: np.ndarray
    y: np.ndarray
    before: tuple[np.ndarray, np.ndarray]
    after: tuple[np.ndarray, np.ndarray]
    per: list[ClassPoints]
    names: list[str]
    thresholds: list[float | None]
    rows: list[Any]
    shown: list[int]
    why: str | None
    target: float
    held_out: bool
    n_bins: int

    @property
    def many(self) -> bool:
        """Whether only some classes get small multiples (and an overview shows all)."""
        return self.why is not None

    @property
    def n_mult_rows(self) -> int:
        return -(-len(self.shown) // MULTIPLE_COLUMNS)

    @property
    def calibration(self) -> str:
        """The calibration in a few words: T (or its range), or the family."""
        T: Any = self.cal.temperature
        if T is None:
            return self.cal.method
        return f"T = {T:.3g}" if np.ndim(T) == 0 else f"T = {np.min(T):.3g} to {np.max(T):.3g}"

    @property
    def scaling(self) -> str:
        return "temperature scaling" if self.cal.temperature is not None else "calibration"


def _report_data(cal: Calibrator, scores: Any, labels: Any, input_kind: str | None,
                 held_out: bool, max_panels: int, n_bins: int) -> _Report:
    """The logits, labels, pairs and rows a report draws (see :class:`_Report`)."""
    z, y = _data(cal, scores, labels, input_kind)
    before, _ = _pairs(cal, z, y, 1.0)
    after, per = _pairs(cal, z, y, cal.calibrator)
    names = cal.classes[1:] if cal.task == "binary" else list(cal.classes)
    thresholds = cal.thresholds["per_class"]
    rows: list[Any]
    if held_out:
        rows = list((cal.summary or {}).get("per_class") or [])
        if len(rows) != len(per):
            rows = [{"class": c, "threshold": t, "recall": None, "precision": None}
                    for c, t in zip(names, thresholds, strict=True)]
    else:
        from .evaluation import evaluate
        rows = evaluate(cal, scores, labels, input_kind=input_kind)["per_class"]
    shown, why = _selected(rows, max_panels, held_out)
    return _Report(cal, z, y, before, after, per, names, thresholds, rows, shown, why,
                   float(cal.target["precision"]), held_out, n_bins)


def _report_title(r: _Report, title: str | None) -> str:
    cal, conf_level = r.cal, r.cal.target.get("confidence")
    where = "held-out data" if r.held_out else "new data"
    return ((title + ": " if title else "")
            + f"{cal.task}, {len(cal.classes)} classes, {len(r.y)} rows of {where}; "
            f"{r.calibration}; target precision {r.target:g}"
            + (f" at {100 * conf_level:g}% confidence" if conf_level else ""))


def _top_section(sub: SubFigure, r: _Report) -> None:
    """Reliability before / after, then risk-coverage (binary: precision)."""
    cal, held_out = r.cal, r.held_out
    top = sub.add_gridspec(2, 3, height_ratios=[4, 1], hspace=0.04, wspace=0.1)
    what = {"multiclass": "top-label confidence", "binary": "P(positive class)",
            "multilabel": "predicted probability, all (row, label) pairs"}[cal.task]
    acc_label = "accuracy" if cal.task == "multiclass" else "fraction positive"
    first = None
    for col, (side, pr, lab) in enumerate((("before", r.before, "T = 1"),
                                            ("after", r.after, r.calibration))):
        ax = sub.add_subplot(top[0, col])
        hx = sub.add_subplot(top[1, col], sharex=ax)
        ax.set_gid(f"reliability-{side}")
        hx.set_gid(f"share-{side}")
        reliability_diagram(ax, pr[0], pr[1], r.n_bins, hist_ax=hx, xlabel=what,
                            ylabel=acc_label,
                            title=f"{'Before' if side == 'before' else 'After'} "
                                  f"{r.scaling} ({lab})")
        first = first or ax
    ax = sub.add_subplot(top[:, 2])
    if cal.task == "binary":
        ax.set_gid(f"precision:{r.names[0]}")
        p, c, sup = r.per[0]
        precision_threshold(ax, p, c, sup, r.thresholds[0], r.target,
                            _lb_conf(cal) if held_out else None,
                            title=_panel_title(f"{r.names[0]} (positive)", r.rows[0], held_out))
    else:
        ax.set_gid("risk-coverage")
        gh = (cal.summary or {}).get("global") or {}
        ref = None
        if not held_out and gh.get("coverage") is not None and gh.get("precision") is not None:
            ref = (gh["coverage"], 1 - gh["precision"])
        unit = "rows" if cal.task == "multiclass" else "(row, label) pairs"
        risk_coverage_plot(ax, r.after[0], r.after[1].astype(bool), cal.thresholds["global"],
                           r.target, reference=ref,
                           per_class=_rule_point(cal, r.z, r.y, cal.calibrator),
                           xlabel=f"coverage (share of {unit} predicted)",
                           title="Global rule: risk against coverage")
    _section(sub, "Calibration (reliability diagrams; grey: share of rows per bin)"
             if cal.task == "multiclass" else "Calibration", legend_from=first)


def _labels_section(sub: SubFigure, r: _Report) -> None:
    """Multilabel: reliability per label, before and after."""
    grid = sub.add_gridspec(r.n_mult_rows, MULTIPLE_COLUMNS)
    pb = special.expit(np.asarray(r.z, dtype=np.float64))
    for i, c in enumerate(r.shown):
        ax = sub.add_subplot(grid[i // MULTIPLE_COLUMNS, i % MULTIPLE_COLUMNS])
        ax.set_gid(f"reliability:{r.names[c]}")
        yc = r.y[:, c].astype(np.float64)
        reliability_curves(ax, [(pb[:, c], yc), (r.per[c][0], yc)], r.n_bins,
                           title=r.names[c], labels=("before", "after"))
        _label_outer(ax, i, len(r.shown))
    _section(sub, f"Reliability per label, before and after {r.scaling}"
             + (f" ({len(r.shown)} of {len(r.per)} labels: {r.why})" if r.many else ""))


def _overview_section(sub: SubFigure, r: _Report) -> None:
    """Precision at the chosen threshold, every class."""
    n_scored = len(r.per)
    ax = sub.add_subplot()
    ax.set_gid("overview")
    class_overview(ax, r.rows, r.target, r.held_out, title="")
    drawn = sum(row.get("precision") is not None and row.get("threshold") is not None
                for row in r.rows)
    _section(sub, f"Precision at the chosen threshold, all {n_scored} classes"
             + (f" ({n_scored - drawn} without a threshold or a prediction not drawn)"
                if drawn < n_scored else ""), legend_from=ax,
             legend_loc="outside lower center")


def _precision_section(sub: SubFigure, r: _Report) -> None:
    """Precision and recall against the threshold, per class."""
    grid = sub.add_gridspec(r.n_mult_rows, MULTIPLE_COLUMNS)
    first = None
    for i, c in enumerate(r.shown):
        ax = sub.add_subplot(grid[divmod(i, MULTIPLE_COLUMNS)])
        ax.set_gid(f"precision:{r.names[c]}")
        p, corr, sup = r.per[c]
        precision_threshold(ax, p, corr, sup, r.thresholds[c], r.target,
                            _lb_conf(r.cal) if r.held_out else None,
                            title=_panel_title(r.names[c], r.rows[c], r.held_out))
        _label_outer(ax, i, len(r.shown))
        first = first or ax
    for ax in sub.axes[1:]:
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
    _section(sub, "Precision and recall against the threshold, per class"
             + (f" ({len(r.shown)} of {len(r.per)}: {r.why})" if r.many else ""),
             legend_from=first, legend_loc="outside lower center")


def _lb_conf(cal: Calibrator) -> float | None:
    """Confidence of the per-class lower bounds in the file (None: no guarantee)."""
    c = cal.target.get("confidence")
    if c is None:
        return None
    if cal.target.get("simultaneous"):
        n = 1 if cal.task == "binary" else len(cal.classes)
        return 1 - (1 - c) / n
    return c


def _label_outer(ax: Axes, i: int, n: int) -> None:
    """Small multiples: y labels on the first column only, x labels on the last row."""
    if i % MULTIPLE_COLUMNS:
        ax.set_ylabel("")
    if i + MULTIPLE_COLUMNS < n:
        ax.set_xlabel("")


def _panel_title(name: str, row: Mapping[str, Any], held_out: bool) -> str:
    st = row.get("status")
    name = str(name)[:24]
    if held_out:
        if row.get("threshold") is None:
            return f"{name}: no threshold ({st})" if st else f"{name}: no threshold"
        return (f"{name}: t = {row['threshold']:.3g}, precision {row['precision']:.3f}, "
                f"recall {row['recall']:.2f}")
    if st == "no-threshold":
        return f"{name}: no threshold"
    if row.get("precision") is None:
        return f"{name}: t = {row['threshold']:.3g}, never predicted"
    return f"{name}: t = {row['threshold']:.3g}, precision {row['precision']:.3f} ({st})"


def render_report(cal: Calibrator, scores: Any, labels: Any, fmt: str,
                  input_kind: str | None = None, title: str | None = None,
                  held_out: bool = True, dpi: float = DPI,
                  max_panels: int = MAX_PANELS) -> tuple[bytes, tuple[int, int]]:
    """:func:`report_figure` drawn as the bytes of a ``fmt`` file (png, pdf, svg),
    and its size in pixels (width, height) at ``dpi``."""
    fig = report_figure(cal, scores, labels, input_kind=input_kind, title=title,
                        held_out=held_out, max_panels=max_panels)
    buf = _io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    w, h = fig.get_size_inches()
    return buf.getvalue(), (int(round(w * dpi)), int(round(h * dpi)))


def save_report(cal: Calibrator, scores: Any, labels: Any, path: StrPath,
                input_kind: str | None = None, title: str | None = None, held_out: bool = True,
                dpi: float = DPI, max_panels: int = MAX_PANELS) -> tuple[int, int]:
    """Draw :func:`report_figure` and write it to ``path`` (.png, .pdf, .svg)
    atomically.  Returns the figure's size in pixels (width, height) at ``dpi``."""
    check_output(path)
    fmt = os.path.splitext(os.fspath(path))[1].lower()[1:]
    data, size = render_report(cal, scores, labels, fmt, input_kind=input_kind, title=title,
                               held_out=held_out, dpi=dpi, max_panels=max_panels)
    atomic_write(path, data, role="plot file")
    return size
