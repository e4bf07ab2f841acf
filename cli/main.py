"""``calibrate`` command line: parse, call the library, format.  No math here."""

from __future__ import annotations

import io as io_module
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

import calibrate  # cheap: the library's modules load when a command uses them
from calibrate.errors import CalibrateError, quote, unsafe_char
from calibrate.outputs import Outputs, StreamError, Terminated  # stdlib only: cheap

from .common import INPUT_CHOICES, SCHEDULER, columns, fmt, inputs, open_inputs, out, progress

if TYPE_CHECKING:  # pragma: no cover - annotations only (numpy stays unloaded for --help)
    from calibrate import Calibrator
    from calibrate.artifact import DecisionCounts
    from calibrate.summary import ClassRow, FitSummary

TASK_CHOICES = ["auto", "multiclass", "binary", "multilabel"]
RULE_CHOICES = ["per-class", "global"]
METHOD_CHOICES = ["temperature", "mix", "vector", "ovr-platt", "platt", "isotonic", "auto"]


class Confidence(click.ParamType):
    """A probability strictly between 0 and 1, or ``none``."""
    name = "confidence"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float | None:
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"expected a number in (0, 1) or 'none', found {value!r}", param, ctx)
        if not 0 < v < 1:
            self.fail(f"expected a number in (0, 1) or 'none', found {value!r}", param, ctx)
        return v


class OpenUnit(click.FloatRange):
    """click's FloatRange refusing NaN too (NaN compares false with both bounds,
    so the range let it through to the library: exit 1 instead of 2)."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        v = super().convert(value, param, ctx)
        if v != v:
            self.fail(f"{value!r} is not in the range {self.min:g}<x<{self.max:g}.", param, ctx)
        return v


class Group(click.Group):
    """Usage errors in one line (``Error: ...``, exit 2); data errors exit 1.

    Also the process-wide guards of a command: SIGTERM and SIGHUP clean up like
    Ctrl-C; closed standard descriptors are refused (stdout) or parked on
    /dev/null (so no output file can land on them); only calibrate's own
    warnings reach stderr (numpy's floating-point warnings never do).
    """

    # (click's main is overloaded on standalone_mode: this one always exits)
    def main(self, args: Sequence[str] | None = None,  # type: ignore[override]
             prog_name: str | None = None, **kwargs: Any) -> NoReturn:
        kwargs.pop("standalone_mode", None)
        closed = _park_closed_std_fds()
        stdout = sys.stdout
        if 1 not in closed:
            sys.stdout = _complete_stdout(stdout)
        restore = _install_signal_handlers()
        shown = warnings.showwarning
        warnings.showwarning = _show_warning
        try:
            if 1 in closed:
                raise StreamError("stdout: expected an open output for the results, found it "
                                  "closed (use >/dev/null to discard them)")
            rv = super().main(args=args, prog_name=prog_name, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            _fail(f"{exc.format_message()}{hint}", exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except CalibrateError as exc:
            if isinstance(exc, StreamError):
                _silence_stdout()
            _fail(str(exc), getattr(exc, "exit_code", 1))
        except click.exceptions.Abort:
            _fail_plain("Aborted.", 1)
        except Terminated as exc:
            _silence_stdout()  # a stdout nobody reads must not block the exit
            how = "interrupted" if exc.signum == signal.SIGINT else "terminated"
            _fail(f"{how} by {signal.Signals(exc.signum).name}; "
                  f"{exc.done or 'no output was replaced'}", 128 + exc.signum)
        except MemoryError:
            _fail("out of memory: expected data that fits, found more (nothing was replaced)", 1)
        except OSError as exc:  # not raised by calibrate's own I/O, which names its files
            _fail(f"{quote(exc.filename) if exc.filename else 'an operating-system call'}: "
                  f"expected success, found {calibrate.outputs.os_reason(exc)}", 1)
        finally:
            warnings.showwarning = shown
            restore()
            sys.stdout = stdout
        sys.exit(rv if isinstance(rv, int) else 0)


def _one_line(text: object) -> str:
    """``text`` with every control character escaped: one line, as it reads."""
    return "".join(ascii(ch)[1:-1] if unsafe_char(ch) else ch for ch in str(text))


def _fail(message: str, code: int) -> NoReturn:
    _fail_plain(f"Error: {_one_line(message)}", code)


def _fail_plain(line: str, code: int) -> NoReturn:
    try:
        click.echo(line, err=True)
    except OSError:
        pass  # stderr gone too: the exit code is all that is left
    sys.exit(code)


def _park_closed_std_fds() -> list[int]:
    """Put /dev/null on closed descriptors 0-2 (an output opened later must
    never become 'stdout'); return which were closed."""
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    return closed


class _CompleteWriter(io_module.RawIOBase):
    """A descriptor written in full.  Python's unbuffered stdout (``-u``,
    PYTHONUNBUFFERED) is a raw file whose short writes (a pipe whose reader
    went away mid-write, a non-blocking pipe that is full) were silently cut
    short: here a short write goes on with the rest, and a full non-blocking
    descriptor is waited on rather than failed."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def write(self, b: Any) -> int:
        import select
        view = memoryview(b).cast("B")
        done = 0
        while done < len(view):
            try:
                done += os.write(self.fd, view[done:])
            except BlockingIOError:
                select.select([], [self.fd], [])
        return done


def _complete_stdout(stream: Any) -> Any:
    """``stream`` (sys.stdout) over a :class:`_CompleteWriter` of descriptor 1,
    with its encoding and line buffering; as it is when it is not descriptor 1
    (a test's capture)."""
    try:
        if stream is None or stream.fileno() != 1:
            return stream
        stream.flush()
    except (OSError, ValueError, AttributeError, io_module.UnsupportedOperation):
        return stream
    return io_module.TextIOWrapper(_CompleteWriter(1), encoding=stream.encoding,
                                   errors=stream.errors, line_buffering=stream.line_buffering,
                                   write_through=True)


def _silence_stdout() -> None:
    """After stdout failed: send what is left in its buffer to /dev/null, so the
    interpreter's final flush adds no second error."""
    try:
        if sys.stdout is not None and sys.stdout.fileno() == 1:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.close(null)
    except (OSError, ValueError, AttributeError, io_module.UnsupportedOperation):
        pass


def _install_signal_handlers() -> Callable[[], None]:
    """SIGINT, SIGTERM and SIGHUP raise in the main thread (deferred while
    outputs are renamed); returns a function restoring the old handlers."""
    old = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is not None:
                old[sig] = signal.signal(sig, calibrate.outputs.on_signal)

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return restore


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: IO[str] | None = None, line: str | None = None) -> None:
    """Warnings go to stderr as one line, and only calibrate's own."""
    if _is_ours(category):
        try:
            click.echo(f"warning: {_one_line(message)}", err=True)
        except OSError:
            pass


def _is_ours(category: type[Warning]) -> bool:
    """A warning class defined by calibrate (not numpy's RuntimeWarnings, not a
    dependency's deprecation notices)."""
    return category.__module__.split(".")[0] in ("calibrate", "calibrate_cli")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(calibrate.__version__, prog_name="calibrate")
def cli() -> None:
    """Calibration and precision-targeted thresholds for classifiers.

    \b
    calibrate fit val_logits.npy --labels val_labels.npy -o thresholds.json
    calibrate apply thresholds.json test_logits.npy -o decisions.npy
    """
    _keep_freed_memory()


def _keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse in this process (a command runs
    a few passes of same-sized blocks): by default it hands blocks of a few MB
    back to the system and faults them in again on the next block, which costs
    a cold binary fit of 5M rows about 40% of its time.  Other C libraries are
    left as they are.  Returns whether glibc took both settings."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):   # not glibc (musl has no mallopt)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    # blocks below 64 MB come from the heap, and up to 256 MB freed stay for reuse
    return bool(mallopt(m_mmap_threshold, 64 << 20)) and \
        bool(mallopt(m_trim_threshold, 256 << 20))


def _echo_warnings(caught: Iterable[warnings.WarningMessage]) -> None:
    for w in caught:
        _show_warning(w.message, w.category, w.filename, w.lineno)


@cli.command()
@click.argument("scores", nargs=-1, required=True)
@click.option("--labels", "labels_paths", multiple=True,
              help="True labels (.npy, .npz, .pt, .csv); optional when SCORES is an .npz "
                   "or .pt dict holding 'labels'. Repeat it, or give a glob, for shards.")
@click.option("-o", "--output", default="thresholds.json", show_default=True,
              type=click.Path(dir_okay=False), help="Threshold file to write.")
@click.option("--precision", default=0.9, show_default=True,
              type=OpenUnit(0, 1, min_open=True, max_open=True),
              help="Precision target.")
@click.option("--confidence", default="0.95", show_default=True, type=Confidence(),
              help="Probability that the target holds on new data, or 'none' for the "
                   "plain held-out estimate.")
@click.option("--simultaneous", is_flag=True,
              help="Make the guarantee hold for all classes at once (default: per class).")
@click.option("--rule", default="per-class", show_default=True, type=click.Choice(RULE_CHOICES),
              help="Rule that apply uses by default (both are stored).")
@click.option("--task", default="auto", show_default=True, type=click.Choice(TASK_CHOICES))
@click.option("--input", "input_kind", default="auto", show_default=True,
              type=click.Choice(INPUT_CHOICES), help="What SCORES hold.")
@click.option("--method", default="temperature", show_default=True,
              type=click.Choice(METHOD_CHOICES),
              help="Calibration: temperature scaling; for multiclass also mix (with a uniform "
                   "share), vector scaling, ovr-platt; for binary and multilabel platt, "
                   "isotonic; auto: the lowest 5-fold cross-validated NLL.")
@click.option("--groups", "groups_path", type=click.Path(dir_okay=False),
              help="One group id per row (.npy, .csv, ...; e.g. the image of each detection): "
                   "cross-validation keeps each group in one fold.")
@click.option("--classes", "classes_path", type=click.Path(dir_okay=False),
              help="Text file with one class name per line.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Also draw the calibration report (.png, .pdf or .svg; needs matplotlib: "
                   "pip install 'calibrate-thresholds[plot]').")
@SCHEDULER
def fit(scores: tuple[str, ...], labels_paths: tuple[str, ...], output: str, precision: float,
        confidence: float | None, simultaneous: bool, rule: str, task: str, input_kind: str,
        method: str, groups_path: str | None, classes_path: str | None, as_json: bool,
        scheduler: str | None, plot_path: str | None) -> None:
    """Fit a calibration and thresholds on held-out SCORES and write a threshold file.

    SCORES is one file, or several .npy shards (paths or a glob such as
    'val/logits_*.npy'), read in row chunks without concatenating them.
    """
    with Outputs(inputs(scores=scores, labels=labels_paths, classes=classes_path,
                        groups=groups_path)) as tx:
        target = tx.declare(output, "-o/--output", (".json",), "output")
        plot = None
        if plot_path is not None:
            from calibrate import plots  # matplotlib only when a picture is asked for
            plot = tx.declare(plot_path, "--plot", plots.FORMATS, "plot file")
            plots.check_output(plot_path)
        opened = open_inputs(scores, labels_paths, scheduler)
        classes = calibrate.io.load_class_names(classes_path) if classes_path else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cal = calibrate.fit(opened.scores, opened.labels, precision=precision,
                                confidence=confidence, rule=rule, task=task,
                                input_kind=input_kind, classes=classes, simultaneous=simultaneous,
                                method=method, groups=groups_path,
                                scores_name=opened.scores_name, labels_name=opened.labels_name,
                                classes_name=f"classes file {quote(classes_path or '')}",
                                groups_name=f"groups file {quote(groups_path or '')}",
                                progress=progress())
        _echo_warnings(caught)
        tx.write(target, calibrate.schema.dumps(cal).encode("utf-8"))
        if plot is not None:
            tx.write(plot, plots.render_report(
                cal, opened.scores, opened.labels, plot.suffix[1:],
                input_kind=None if input_kind == "auto" else input_kind, title=output,
                held_out=True)[0])
        # Printed before the renames: a full or closed stdout replaces nothing.
        if as_json:
            extra = {"output": output} | ({"plot": plot_path} if plot_path else {})
            out(json.dumps(cal.to_dict()["summary"] | extra, indent=2))
        else:
            out(format_summary(cal, input_forced=input_kind != "auto",
                               task_forced=task != "auto"))
            out(f"wrote {output}" + (f" and {plot_path}" if plot_path else ""))
        tx.commit()


@cli.command()
@click.argument("thresholds", type=click.Path(dir_okay=False))
@click.argument("scores", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Decisions file: .npy (array), .csv or .jsonl. Default: JSON lines on stdout.")
@click.option("--rule", type=click.Choice(RULE_CHOICES),
              help="Override the rule stored in the file.")
@click.option("--input", "input_kind", type=click.Choice(INPUT_CHOICES[1:]),
              help="What SCORES hold (default: as when the file was fitted).")
@click.option("--probabilities", "proba_path", type=click.Path(dir_okay=False),
              help="Also write calibrated probabilities (.npy or .csv).")
@SCHEDULER
def apply(thresholds: str, scores: tuple[str, ...], output: str | None, rule: str | None,
          input_kind: str | None, proba_path: str | None, scheduler: str | None) -> None:
    """Apply a THRESHOLDS file to SCORES: decisions, -1 where it abstains.

    SCORES is one file, or several .npy shards (paths or a glob).
    """
    # Every output checked (and against every input) before any work is done.
    io = calibrate.io
    with Outputs(inputs(threshold=thresholds, scores=scores)) as tx:
        target = tx.declare(output, "-o/--output", io.OUTPUT_SUFFIXES) if output else None
        proba = (tx.declare(proba_path, "--probabilities", (".npy", ".csv"), "probabilities file")
                 if proba_path else None)
        cal = calibrate.load(thresholds)
        opened = open_inputs(scores, (), scheduler, need_labels=False)
        s, name = opened.scores, opened.scores_name
        tally = calibrate.artifact.DecisionTally(cal.task)
        blocks = tally.watch(cal.iter_predict(s, rule=rule, input_kind=input_kind, name=name,
                                              progress=progress()))
        shape, dtype = cal.decisions_shape(s.shape[0])
        if target is None:
            # (click.open_file("-") is the binary stdout that get_binary_stream,
            # deprecated since click 8.5, gave)
            calibrate.outputs.write_stream(click.open_file("-", "wb"), io.prediction_writer(
                ".jsonl", blocks, cal.classes, shape=shape, dtype=dtype))
        else:
            tx.write(target, io.prediction_writer(target.suffix, blocks, cal.classes,
                                                  shape=shape, dtype=dtype))
        if proba is not None:
            shape, dtype = cal.proba_shape(s.shape[0], s.dtype)
            tx.write(proba, io.array_writer(
                proba.suffix, cal.iter_predict_proba(s, input_kind=input_kind, name=name),
                shape=shape, dtype=dtype))
        if output is not None:  # before the renames, like every line on stdout
            out(format_counts(tally.counts(), rule or cal.rule, output, proba_path))
        tx.commit()


def format_counts(counts: DecisionCounts, rule: str, output: str, proba_path: str | None) -> str:
    """apply's one-line report."""
    what = counts.labels
    unit = "rows" if counts.task == "multilabel" else "decisions"
    msg = (f"wrote {counts.rows} {unit} to {output} ({rule} rule): "
           f"{counts.first} {what[0]}, {counts.second} {what[1]}")
    if proba_path:
        msg += f"; probabilities to {proba_path}"
    return msg


#: What the ECE pairs are, in the human summary's note.
PAIRS_SHORT = {"multiclass": "top-label confidence", "binary": "positive-class probability",
               "multilabel": "(row, class) probabilities pooled"}


def format_summary(cal: Calibrator, input_forced: bool = False, task_forced: bool = False) -> str:
    """The human summary printed by ``calibrate fit``."""
    s = cal.fit_summary
    lines = [
        f"task: {s.task} ({'given' if task_forced else 'detected'})   "
        f"input: {s.input_kind} ({'given' if input_forced else 'detected'})   "
        f"rows: {s.n}   classes: {len(cal.classes)}",
    ]
    lines += _calibration_lines(s)
    from .evaluate import format_metrics  # every metric, named as in the JSON keys
    # (temperature scaling keeps the argmax: the accuracy row only where it moves)
    lines += format_metrics(s.metrics, s.accuracy if s.method != "temperature" else None)
    lines.append(f"  (ECE, MCE, smooth ECE on the {PAIRS_SHORT.get(s.task, '')}; "
                 "bins (lo, hi]; --json defines each)")
    lines += list(s.notes)
    tg = cal.target
    if tg["confidence"] is None:
        how = "plain held-out estimate (no confidence bound)"
    else:
        how = (f"{100 * tg['confidence']:g}% confidence "
               f"{'for all classes at once' if tg['simultaneous'] else 'per class'} "
               "(Clopper-Pearson, fixed-sequence testing)")
    lines.append(f"target: precision >= {tg['precision']:g}, {how}")
    lines.append(f"rule used by apply: {cal.rule}")
    lines.append("")
    lines += _threshold_table(s)
    hint = s.certification_hint(tg["confidence"])
    if hint:
        lines.append(f"hint: {hint}")
    return "\n".join(lines)


def _calibration_lines(s: FitSummary) -> list[str]:
    """The calibration: what auto compared and chose, and the family's fit."""
    c = s.calibration or {}
    lines: list[str] = []
    cv = s.cross_validation or {}
    if c.get("chosen_by") == "auto" and "choice" in cv:
        lines += _cross_validation_lines(cv)
    if s.method in (None, "temperature"):
        return lines + _temperature_lines(s.temperature)
    return lines + _family_lines(c)


def _cross_validation_lines(cv: dict[str, Any]) -> list[str]:
    """auto's table: each family's cross-validated NLL and ECE, the choice."""
    head = (f"auto: {cv['folds']}-fold cross-validated on {cv['rows']} rows"
            + (f" of {cv['of_rows']}" if cv["rows"] != cv["of_rows"] else "")
            + (", whole groups per fold" if cv.get("grouped") else "")
            + f"; lowest NLL wins: {cv['choice']}")
    lines = [head, f"  {'':14}{'CV NLL':>9}{'CV ECE':>9}"]

    def nll(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    base = cv.get("uncalibrated")
    if base:
        lines.append(f"  {'uncalibrated':14}{nll(base['cv_nll']):>9}"
                     f"{fmt(base['cv_ece'], True):>9}")
    for r in cv["families"]:
        if r.get("skipped"):
            lines.append(f"  {r['method']:14}  skipped: {r['skipped']}")
        else:
            lines.append(f"  {r['method']:14}{nll(r['cv_nll']):>9}{fmt(r['cv_ece'], True):>9}"
                         + ("   chosen" if r["method"] == cv["choice"] else ""))
    return lines


def _family_lines(c: dict[str, Any]) -> list[str]:
    """One line saying what a (non-temperature) family found."""
    m = c["method"]
    if m == "mix":
        text = f"T = {c['temperature']:.4g}, uniform weight w = {c['weight']:.3g}"
    elif m == "platt" and len(c["a"]) == 1:
        text = f"sigmoid({c['a'][0]:.4g} z {'-' if c['b'][0] < 0 else '+'} {abs(c['b'][0]):.4g})"
    elif m == "platt":
        text = (f"one (a, b) per class: a {min(c['a']):.4g} to {max(c['a']):.4g}, "
                f"b {min(c['b']):.4g} to {max(c['b']):.4g}")
    elif m == "isotonic":
        b = c["blocks"]
        text = (f"{b[0]} blocks" if len(b) == 1 else
                f"{min(b)} to {max(b)} blocks per class") + ", clipped to [0.5/n, 1 - 0.5/n]"
    else:
        text = (f"per class a {c['a_range'][0]:.4g} to {c['a_range'][1]:.4g}, "
                f"b {c['b_range'][0]:.4g} to {c['b_range'][1]:.4g}")
        if m == "vector":
            text += (f"\n  (L2 penalty {c['penalty']:g} toward a = 1/T, b = 0; "
                     f"T = {c['centre_temperature']:.4g})")
    status = c.get("status") or []
    shared = sum(1 for x in status if x == "shared")
    if shared:
        text += f"; {shared} classes share one pair (too few positives or negatives)"
    lines = f"calibration: {m}, {text}".split("\n")
    if c.get("converged") is False:
        lines.append(f"  warning: the {m} fit stopped after {c.get('passes')} passes without "
                     "converging; its parameters may be off in their last digits")
    return lines


def _temperature_lines(t: dict[str, Any]) -> list[str]:
    tv = t["value"]
    if isinstance(tv, list):
        shared = sum(1 for x in t["status"] if x == "shared")
        lines = [f"temperature: one per class, {min(tv):.4g} to {max(tv):.4g}"
                 + (f" ({shared} classes share T = {t['shared_value']:.4g}: too few positives)"
                    if shared else "")]
        capped = sum(1 for x in t["status"] if x == "capped")
        if capped:
            lines.append(f"  {capped} classes are separable: T capped at the minimum")
    else:
        note = ("  (capped: the held-out data are separable)" if t["status"] == "capped" else "")
        lines = [f"temperature: {tv:.4g}{note}"]
    if t.get("converged") is False:
        lines.append(f"  warning: the temperature fit stopped after {t['passes']} passes "
                     "without converging; T may be off in its last digits")
    return lines


TABLE_HEADER = (f"{'class':<14}{'threshold':>10}{'precision':>10}{'recall':>8}{'support':>9}"
                f"{'predicted':>10}{'lower bd':>9}  status")


def _row(name: object, r: ClassRow) -> str:
    return (f"{str(name)[:13]:<14}"
            + columns((fmt(r.threshold), 10), (fmt(r.precision), 10), (fmt(r.recall), 8),
                      (r.support, 9), (r.predicted, 10), (fmt(r.lower_bound), 9))
            + f"  {r.status}")


def _threshold_table(s: FitSummary) -> list[str]:
    """The per-class table (compact above summary.COMPACT_ABOVE classes) and the global row."""
    lines = []
    if s.is_compact():
        lines.append(f"per-class thresholds: {len(s.per_class)} classes; "
                     + ", ".join(f"{v} {k}" for k, v in s.status_counts().items()))
        worst = s.lowest_recall(calibrate.summary.WORST_SHOWN)
        lines.append(f"the {len(worst)} classes with the lowest recall:")
        lines.append(TABLE_HEADER)
        lines += [_row(r.name, r) for r in worst]
    else:
        lines.append(TABLE_HEADER)
        lines += [_row(r.name, r) for r in s.per_class]
    g = s.global_rule
    lines.append(_row("(global)", g) + f"   coverage {fmt(g.coverage, True)}")
    return lines


from .evaluate import evaluate as _evaluate_command  # noqa: E402

cli.add_command(_evaluate_command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
