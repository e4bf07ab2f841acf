"""What the commands share: how SCORES are read and named, the cluster
option, number formatting.  No math here."""

import click

from calibrate import io

INPUT_CHOICES = ["auto", "logits", "probabilities", "log-probabilities"]


SCHEDULER = click.option(
    "--scheduler", metavar="ADDRESS",
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
    except (OSError, TimeoutError) as exc:
        raise click.BadParameter(f"no dask scheduler answered at {address} ({exc})",
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
    scores, labels = io.read_scores(spec(scores_paths))
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
