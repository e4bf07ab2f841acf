"""What the commands share: how SCORES are opened, the cluster option, progress
bars, number formatting.  No math and no policy here: the library decides."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import click

import calibrate  # cheap: the library's modules load when a command uses them
from calibrate.errors import quote

if TYPE_CHECKING:  # pragma: no cover - annotations only (numpy stays unloaded for --help)
    from calibrate.sources import OpenedScores

INPUT_CHOICES = ["auto", "logits", "probabilities", "log-probabilities"]
#: A dask.distributed scheduler address: [protocol://]host:port, or an
#: in-process cluster's inproc://host/pid/n.
ADDRESS = re.compile(r"^(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)"
                     r":(\d{1,5})$")
INPROC = re.compile(r"^inproc://[A-Za-z0-9_.:-]+/\d+/\d+$")


def _check_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a --scheduler value that is not an address before any work."""
    if value is None or INPROC.match(value):
        return value
    m = ADDRESS.match(value)
    if not m or not 0 < int(m.group(1)) < 65536:
        raise click.BadParameter(f"expected an address such as tcp://host:8786 (port 1 to "
                                 f"65535), found {quote(value)}")
    return value


SCHEDULER = click.option(
    "--scheduler", metavar="ADDRESS", callback=_check_address,
    help="Run the passes on a running dask.distributed cluster (e.g. tcp://host:8786); "
         "the workers read the .npy files themselves, so they must see the same paths. "
         "Needs the 'dask' extra.")


def open_inputs(scores_paths: Iterable[str], labels_paths: Iterable[str] = (),
                scheduler: str | None = None, need_labels: bool = True) -> OpenedScores:
    """The library's :func:`calibrate.sources.open_scores`, closed with the command."""
    opened = calibrate.sources.open_scores(list(scores_paths), list(labels_paths) or None,
                                           scheduler, require_labels=False,
                                           want_labels=need_labels)
    click.get_current_context().call_on_close(opened.close)
    if need_labels and opened.labels is None:
        raise click.UsageError(
            f"Missing option '--labels': '{' '.join(scores_paths)}' holds no array named labels")
    return opened


class Progress:
    """A click progress bar on stderr for passes of many blocks (a terminal only)."""

    MIN_BLOCKS = 64   # about 256 MB of float32: a second or more

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, label: str, n_blocks: int) -> Callable[[int], None] | None:
        if n_blocks < self.MIN_BLOCKS:
            return None
        bar = click.progressbar(length=n_blocks, label=label, file=sys.stderr)
        bar.render_progress()
        done = [0]

        def advance(k: int) -> None:
            with self.lock:
                bar.update(k)
                done[0] += k
                if done[0] >= n_blocks:
                    bar.render_finish()
        return advance


def progress() -> Progress | None:
    """A progress reporter when a person watches stderr, else None."""
    return Progress() if sys.stderr.isatty() else None


def fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.2f}%" if pct else f"{v:.4g}"


def columns(*cells: tuple[object, int]) -> str:
    """Cells right-aligned in their widths; a cell as wide as its column or wider
    (a recall of 0.003313, a support of 234165386) keeps one space before it, so
    columns never run together."""
    return "".join(f"{t:>{w}}" if len(t) < w else " " + t
                   for t, w in ((str(c), w) for c, w in cells))


def out(text: str = "") -> None:
    """Print a line on stdout; an OS error there (a full device, a closed pipe)
    becomes one line naming stdout instead of a traceback."""
    try:
        click.echo(text)
    except OSError as exc:
        raise calibrate.outputs.stream_error("stdout", exc) from None


def inputs(**roles: Any) -> list[tuple[str, str]]:
    """``(role, path)`` pairs for :class:`calibrate.outputs.Outputs`: every file a
    command reads, which no output may be."""
    pairs: list[tuple[str, str]] = []
    for role, paths in roles.items():
        if paths is None:
            continue
        for p in [paths] if isinstance(paths, str) else paths:
            pairs.append((role.replace("_", " ") + " file", p))
    return pairs
