"""``calibrate evaluate``: check a threshold file on new labelled data.  No math here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

import calibrate  # cheap: the library's modules load when a command uses them
from calibrate.params import MAX_BOOTSTRAP  # stdlib only: cheap

from .common import INPUT_CHOICES, SCHEDULER, columns, inputs, open_inputs, out
from .common import fmt as _fmt

if TYPE_CHECKING:  # pragma: no cover - annotations only (numpy stays unloaded for --help)
    from calibrate.evaluation import EvaluationReport


def format_metrics(m: Mapping[str, Any], accuracy: Mapping[str, Any] | None = None) -> list[str]:
    """Rows ``name  before  after`` for a metrics block (ECEs in %), and the
    multiclass accuracy when given."""
    lines = [f"{'':22}{'before':>10}{'after':>10}"]
    for key, label in calibrate.metrics.LABELS.items():
        if key not in m:
            continue
        pct = key not in ("nll", "brier")
        b, a = m[key]["before"], m[key]["after"]
        if pct or b is None or a is None:
            line = f"{label:22}{_fmt(b, pct):>10}{_fmt(a, pct):>10}"
        else:
            line = f"{label:22}{b:>10.4f}{a:>10.4f}"
        if "after_ci" in m[key]:
            lo, hi = m[key]["after_ci"]
            line += f"   after: 95% CI {_fmt(lo, pct)} to {_fmt(hi, pct)}"
        lines.append(line)
    if accuracy:
        lines.append(f"{'accuracy (argmax)':22}{_fmt(accuracy['before'], True):>10}"
                     f"{_fmt(accuracy['after'], True):>10}")
    if any("after_ci" in v for v in m.values()):
        lines.append("  (bootstrap: the estimators' spread at this n; binned and smooth ECEs are "
                     "biased up by noise, so near calibration an interval can sit above the "
                     "estimate)")
    return lines


HEADER = (f"{'class':<14}{'threshold':>10}{'precision':>10}{'held-out':>9}{'lower bd':>9}"
          f"{'recall':>8}{'held-out':>9}{'predicted':>10}{'support':>9}  status")


def _row(name: object, r: Mapping[str, Any]) -> str:
    h = r.get("held_out") or {}
    return (f"{str(name)[:13]:<14}"
            + columns((_fmt(r.get("threshold")), 10), (_fmt(r["precision"]), 10),
                      (_fmt(h.get("precision")), 9), (_fmt(h.get("lower_bound")), 9),
                      (_fmt(r["recall"]), 8), (_fmt(h.get("recall")), 9), (r["predicted"], 10),
                      (r["support"], 9))
            + f"  {r['status']}")


def format_evaluation(rep: EvaluationReport, thresholds_path: str) -> str:
    """The human report printed by ``calibrate evaluate`` (``rep`` an
    :class:`calibrate.evaluation.EvaluationReport`)."""
    tg = rep.target
    T = rep.temperature
    n_cls = len(rep.per_class)
    unit = "(row, class) pairs" if rep.task == "multilabel" else "rows"
    lines = [f"evaluated {thresholds_path} on {rep.n} labelled rows   task: {rep.task}   "
             f"classes scored: {n_cls}"]
    if T is None:
        lines.append(f"calibration: {rep.method} (the file's)")
    elif isinstance(T, list):
        lines.append(f"temperature: one per class, {min(T):.4g} to {max(T):.4g}")
    else:
        lines.append(f"temperature: {T:.4g}")
    lines += format_metrics(rep.metrics)
    if tg.get("confidence") is None:
        how = "plain held-out estimate (no confidence bound)"
    else:
        how = (f"{100 * tg['confidence']:g}% confidence "
               f"{'for all classes at once' if tg.get('simultaneous') else 'per class'}")
    lines.append(f"target: precision >= {tg['precision']:g}, promised with {how}")
    lines.append("")
    c = rep.counts
    lines.append("per-class rule: " + ", ".join(f"{v} {k}" for k, v in c.items() if v)
                 + f" (of {n_cls})")
    if rep.expected_violations is not None and tg.get("confidence") is not None:
        lines.append(f"  the guarantee allows about {rep.expected_violations:.2g} classes "
                     "whose true precision is below target; "
                     f"'missed' = below target within sampling noise (one-sided "
                     f"{100 * calibrate.evaluation.NOISE_LEVEL:g}% upper bound reaches it)")
    lines += _class_table(rep)
    lines += _pooled_rows(rep, unit)
    return "\n".join(lines)


def _class_table(rep: EvaluationReport) -> list[str]:
    """Every class, or above the compact size the classes below target (worst first)."""
    if not rep.is_compact():
        return [HEADER] + [_row(r["class"], r) for r in rep.per_class]
    bad = rep.below_target()
    if not bad:
        return [HEADER]
    shown = bad[:calibrate.summary.WORST_SHOWN]
    return ([f"the {len(shown)} classes with the lowest precision below target"
             + (f" (of {len(bad)})" if len(bad) > len(shown) else "") + ":", HEADER]
            + [_row(r["class"], r) for r in shown])


def _pooled_rows(rep: EvaluationReport, unit: str) -> list[str]:
    o = rep.overall
    g = rep.global_rule
    gh = g.held_out or {}
    return [
        _row("(all classes)", dict(o.to_dict(), held_out=None, threshold=None))
        + f"   coverage {_fmt(o.coverage, True)}",
        _row("(global)", g) + f"   coverage {_fmt(g.coverage, True)}"
        + (f" (held-out {_fmt(gh.get('coverage'), True)})" if gh.get("coverage") is not None
           else ""),
        f"(all classes) pools the per-class rule's decisions; (global) is the global "
        f"rule; coverage = share of {unit} predicted.  Rule used by apply: {rep.rule}.",
    ]


@click.command("evaluate")
@click.argument("thresholds", type=click.Path(dir_okay=False))
@click.argument("scores", nargs=-1, required=True)
@click.option("--labels", "labels_paths", multiple=True,
              help="True labels of the new data (.npy, .npz, .pt, .csv); optional when SCORES "
                   "is an .npz or .pt dict holding 'labels'. Repeat it, or give a glob, for "
                   "shards.")
@click.option("--input", "input_kind", type=click.Choice(INPUT_CHOICES[1:]),
              help="What SCORES hold (default: as when the file was fitted).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Also draw the report on the new data (.png, .pdf or .svg; needs "
                   "matplotlib: pip install 'calibrate-thresholds[plot]').")
@click.option("--bootstrap", default=0, show_default=True,
              type=click.IntRange(min=0, max=MAX_BOOTSTRAP),
              help=f"Bootstrap resamples for 95% intervals of the ECEs (0: none; at most "
                   f"{MAX_BOOTSTRAP}).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed of the bootstrap (an integer >= 0).")
@SCHEDULER
def evaluate(thresholds: str, scores: tuple[str, ...], labels_paths: tuple[str, ...],
             input_kind: str | None, as_json: bool, plot_path: str | None, bootstrap: int,
             seed: int, scheduler: str | None) -> None:
    """Check a THRESHOLDS file on new labelled SCORES: did the precision target hold?

    Reports per class and overall the precision, recall, coverage and support
    of the file's decisions on the new data next to what the file promised
    (held-out figures and lower bounds), and the calibration metrics before
    and after the file's calibration.  Exits 0 whether or not the target held.
    SCORES is one file, or several .npy shards (paths or a glob).
    """
    with calibrate.outputs.Outputs(inputs(threshold=thresholds, scores=scores,
                                          labels=labels_paths)) as tx:
        plot = None
        if plot_path is not None:
            from calibrate import plots  # matplotlib only when a picture is asked for
            plot = tx.declare(plot_path, "--plot", plots.FORMATS, "plot file")
            plots.check_output(plot_path)
        cal = calibrate.load(thresholds)
        opened = open_inputs(scores, labels_paths, scheduler)
        s, y = opened.scores, opened.labels
        res = calibrate.evaluate(cal, s, y, input_kind=input_kind, bootstrap=bootstrap,
                                 seed=seed, scores_name=opened.scores_name,
                                 labels_name=opened.labels_name)
        if plot is not None:
            tx.write(plot, plots.render_report(
                cal, s, y, plot.suffix[1:], input_kind=input_kind,
                title=f"{thresholds} on {' '.join(scores)}", held_out=False)[0])
        # Printed before the rename: a full or closed stdout replaces nothing.
        if as_json:
            doc = dict(res.to_dict(), thresholds=thresholds)
            if plot_path is not None:
                doc["plot"] = plot_path
            out(json.dumps(doc, indent=2))
        else:
            out(format_evaluation(res, thresholds))
            if plot_path is not None:
                out(f"wrote {plot_path}")
        tx.commit()


__all__ = ["evaluate", "format_evaluation"]
