"""What the commands share: how SCORES are read and named, the cluster
option, number formatting.  No math here."""

import re

import click

from calibrate import io, outputs
from calibrate.errors import quote

INPUT_CHOICES = ["auto", "logits", "probabilities", "log-probabilities"]
#: A dask.distributed scheduler address: [protocol://]host:port, or an
#: in-process cluster's inproc://host/pid/n.
ADDRESS = re.compile(r"^(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)"
                     r":(\d{1,5})$")
INPROC = re.compile(r"^inproc://[A-Za-z0-9_.:-]+/\d+/\d+$")


def _check_address(ctx, param, value):
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


def on_cluster(scores, address):
    """Scores as a dask array on the cluster at ``address`` (None: unchanged)."""
    if address is None:
        return scores
    try:
        import dask.array as da
        from dask.distributed import Client
    except ImportError:
        raise click.UsageError("--scheduler needs dask: pip install 'calibrate-thresholds[dask]'")
    try:
        client = Client(address, timeout="10s", set_as_default=True)
        click.get_current_context().call_on_close(client.close)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise click.BadParameter(f"no dask scheduler answered at {quote(address)} ({reason})",
                                 param_hint="'--scheduler'")
    if scores.ndim < 2:
        return scores  # one score per row: small, read whole
    rows = max(1, (1 << 24) // max(1, scores.shape[1]))
    return da.from_array(scores, chunks=(rows,) + scores.shape[1:], asarray=True)


def names(paths, role):
    """How errors name an input: the file, or the shard list."""
    if len(paths) == 1 and not any(ch in paths[0] for ch in "*?["):
        return f"{role} file '{paths[0]}'"
    return f"{role} shards '{' '.join(paths)}'"


def spec(paths):
    return paths[0] if len(paths) == 1 else list(paths)


def load_scores_and_labels(scores_paths, labels_paths):
    scores, labels = io.read_scores(spec(scores_paths), with_labels=not labels_paths)
    if labels_paths:
        labels = io.read_labels(spec(labels_paths))
    elif labels is None:
        raise click.UsageError(
            f"Missing option '--labels': '{' '.join(scores_paths)}' holds no array named labels")
    return scores, labels


def fmt(v, pct=False):
    if v is None:
        return "-"
    return f"{100 * v:.2f}%" if pct else f"{v:.4g}"


def out(text=""):
    """Print a line on stdout; an OS error there (a full device, a closed pipe)
    becomes one line naming stdout instead of a traceback."""
    try:
        click.echo(text)
    except OSError as exc:
        raise outputs.stream_error("stdout", exc) from None


def inputs(**roles):
    """``(role, path)`` pairs for :class:`calibrate.outputs.Outputs`: every file a
    command reads, which no output may be."""
    pairs = []
    for role, paths in roles.items():
        if paths is None:
            continue
        for p in [paths] if isinstance(paths, str) else paths:
            pairs.append((role.replace("_", " ") + " file", p))
    return pairs
