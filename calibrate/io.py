"""Reading score and label files, and writing outputs without half-written files.

Supported inputs: ``.npy`` (read in row chunks by :class:`.rows.NpyRows`, never
unpickled), ``.npz`` (named
arrays: scores under ``logits``, ``scores`` or ``probs``/``probabilities``,
labels under ``labels``), ``.pt`` (a tensor, or a dict of tensors under the
same names; ``torch.load(weights_only=True)``) and ``.csv`` (numbers, an
optional header line).  Every failure is a :class:`CalibrateError` naming the
file.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

from .errors import CalibrateError, invalid
from .rows import NpyRows, ShardedRows, expand

SCORE_KEYS = ("logits", "scores", "probs", "probabilities", "log_probs")
LABEL_KEYS = ("labels", "targets", "y")
INPUT_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".csv")
OUTPUT_SUFFIXES = (".npy", ".csv", ".jsonl")


def atomic_write(path, data):
    """Write bytes (or call ``data(fh)``) to a temporary file beside ``path``,
    then rename it over ``path``: readers never see a partial file and a
    failure leaves any existing file as it was."""
    path = os.fspath(path)
    folder = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=".calibrate-", suffix=".tmp", dir=folder)
    try:
        # mkstemp makes the file 0600; outputs should get the usual umask mode.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path, role="output"):
    """The folder an output goes to; refuse a missing or read-only one up front."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise invalid(f"{role} '{os.fspath(path)}'", "an existing folder", f"no folder '{folder}'")
    if not os.access(folder, os.W_OK):
        raise invalid(f"{role} '{os.fspath(path)}'", "a writable folder",
                      f"no write permission on '{folder}'")
    if os.path.isdir(path):
        raise invalid(f"{role} '{os.fspath(path)}'", "a file path", "a folder")
    return folder


def _suffix(path):
    return os.path.splitext(os.fspath(path))[1].lower()


def _where(path, role):
    return f"{role} file '{os.fspath(path)}'"


def load_arrays(path, role="scores"):
    """All arrays in a file, as a dict ``name -> ndarray`` (one array: ``{"": a}``)."""
    where = _where(path, role)
    suffix = _suffix(path)
    if suffix not in INPUT_SUFFIXES:
        raise invalid(where, "a .npy, .npz, .pt or .csv file", f"'{suffix or 'no extension'}'")
    if not os.path.isfile(path):
        raise invalid(where, "an existing file", "nothing at that path")
    try:
        if suffix == ".npy":
            return {"": NpyRows(path, where)}
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if suffix in (".pt", ".pth"):
            return _load_torch(path, where)
        return {"": _load_csv(path, where)}
    except CalibrateError:
        raise
    except ValueError as exc:
        msg = str(exc)
        if "allow_pickle" in msg or "Object arrays" in msg:
            raise invalid(where, "a numeric array", "an object array (not unpickled)")
        raise invalid(where, "a readable array", f"an unreadable file ({msg.splitlines()[0]})")
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise invalid(where, "a readable array", f"an unreadable file ({exc})")


def _load_torch(path, where):
    try:
        import torch
    except ImportError:
        raise invalid(where, "torch installed to read .pt files (pip install 'calibrate-thresholds[torch]')",
                      "no torch")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for refused or broken files
        raise invalid(where, "tensors loadable with weights_only=True (never unpickled)",
                      _torch_reason(exc))
    def to_numpy(t):
        t = t.detach().cpu()
        if t.is_floating_point() and t.element_size() < 4:
            t = t.float()  # float16 / bfloat16: exact in float32 (numpy has no bfloat16)
        return t.numpy()

    if isinstance(obj, torch.Tensor):
        return {"": to_numpy(obj)}
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {str(k): to_numpy(v) for k, v in obj.items()}
    raise invalid(where, "a tensor or a dict of tensors", type(obj).__name__)


def _torch_reason(exc):
    """The informative line of torch's refusal (the unsupported global), if any."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "Unsupported global" in ln or "Unsupported operand" in ln:
            return ln.rstrip(".") + " (refused)"
    if lines and lines[0].startswith("Weights only load failed"):
        return "objects that are not tensors (refused)"
    return lines[0] if lines else type(exc).__name__


def _load_csv(path, where):
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    skip = 0
    try:
        [float(v) for v in first.strip().split(",") if v.strip()]
    except ValueError:
        skip = 1  # a header line
    try:
        a = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=1, dtype=np.float64)
    except ValueError as exc:
        raise invalid(where, "comma-separated numbers", f"{str(exc).splitlines()[0]}")
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    return a


def load_scores(path):
    """Scores from a file, and labels too when the file holds them (.npz/.pt dict)."""
    arrays = load_arrays(path, "scores")
    if "" in arrays:
        return arrays[""], None
    key = next((k for k in SCORE_KEYS if k in arrays), None)
    if key is None:
        raise invalid(_where(path, "scores"), "an array named " + ", ".join(SCORE_KEYS),
                      "arrays " + (", ".join(sorted(arrays)) or "none"))
    lab = next((arrays[k] for k in LABEL_KEYS if k in arrays), None)
    return arrays[key], lab


def _is_many(spec):
    return isinstance(spec, (list, tuple)) or any(ch in os.fspath(spec) for ch in "*?[")


def read_scores(spec):
    """Scores (and labels, if the file holds them) from a path, a glob or a list.

    Several files are shards: ``.npy`` files whose rows are read end to end in
    sorted order (for a glob) or the given order (for a list), never
    concatenated in memory.
    """
    if not _is_many(spec):
        return load_scores(spec)
    paths = expand(spec if isinstance(spec, (list, tuple)) else [spec])
    if len(paths) == 1:
        return load_scores(paths[0])
    bad = [p for p in paths if _suffix(p) != ".npy"]
    if bad:
        raise invalid(f"scores file '{bad[0]}'", "only .npy files when giving several shards",
                      f"'{_suffix(bad[0]) or 'no extension'}'")
    parts = []
    for p in paths:
        if not os.path.isfile(p):
            raise invalid(_where(p, "scores"), "an existing file", "nothing at that path")
        parts.append(NpyRows(p, _where(p, "scores")))
    return ShardedRows(parts, f"scores shards ({len(parts)} files)"), None


def read_labels(spec):
    """Labels from a path, a glob or a list (shards concatenated: labels are small)."""
    if not _is_many(spec):
        return load_labels(spec)
    paths = expand(spec if isinstance(spec, (list, tuple)) else [spec])
    parts = [np.asarray(load_labels(p)) for p in paths]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def load_labels(path):
    """Labels from a file (.npz/.pt dicts: the array named ``labels``)."""
    arrays = load_arrays(path, "labels")
    if "" in arrays:
        return np.asarray(arrays[""])
    key = next((k for k in LABEL_KEYS if k in arrays), None)
    if key is None:
        raise invalid(_where(path, "labels"), "an array named " + ", ".join(LABEL_KEYS),
                      "arrays " + (", ".join(sorted(arrays)) or "none"))
    return arrays[key]


def load_class_names(path):
    """One class name per non-empty line."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.strip() for line in fh if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise invalid(f"classes file '{os.fspath(path)}'", "a UTF-8 text file, one name a line",
                      str(exc))


def check_output_suffix(path, allowed=OUTPUT_SUFFIXES):
    """Refuse an output path whose extension names no format we write."""
    suffix = _suffix(path)
    if suffix not in allowed:
        raise invalid(f"output '{os.fspath(path)}'", "a " + ", ".join(allowed[:-1])
                      + " or " + allowed[-1] + " file", f"'{suffix or 'no extension'}'")
    return suffix


def _prediction_writer(suffix, blocks, classes, abstain, shape=None, dtype=None):
    """A function writing decision ``blocks`` (arrays of consecutive rows) to a
    binary stream in the format of ``suffix``, one block at a time."""
    if isinstance(blocks, np.ndarray):
        shape, dtype, blocks = blocks.shape, blocks.dtype, [blocks]
    multilabel = len(shape) == 2

    if suffix == ".npy":
        def write(fh):
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                      "fortran_order": False, "shape": tuple(shape)}
            np.lib.format.write_array_header_1_0(fh, header)
            for b in blocks:
                fh.write(np.ascontiguousarray(b, dtype=dtype).tobytes())
        return write

    def lines(d):
        for r in d:
            if suffix == ".csv":
                if multilabel:
                    yield ",".join("1" if v else "0" for v in r)
                else:
                    yield f"{int(r)},{_csv_field(classes[r]) if r != abstain else ''}"
            elif multilabel:
                yield json.dumps({"labels": [classes[j] for j in np.flatnonzero(r)]})
            else:
                v = int(r)
                yield json.dumps({"prediction": v, "label": classes[v] if v != abstain else None})

    def write(fh):
        if suffix == ".csv":
            head = ",".join(_csv_field(c) for c in classes) if multilabel else "prediction,label"
            fh.write((head + "\n").encode("utf-8"))
        for b in blocks:
            fh.write("".join(line + "\n" for line in lines(b)).encode("utf-8"))
    return write


def write_predictions(path, decisions, classes, abstain=-1, shape=None, dtype=None):
    """Write decisions by extension: .npy (the array), .csv or .jsonl.

    ``decisions`` is an array, or an iterable of row blocks with the total
    ``shape`` and ``dtype`` given (written as they come: memory stays flat).
    csv/jsonl rows carry the class id and name (multiclass/binary; empty name
    for an abstention), or one 0/1 column per class (multilabel).
    """
    suffix = check_output_suffix(path)
    atomic_write(path, _prediction_writer(suffix, decisions, classes, abstain, shape, dtype))


def write_predictions_to(fh, suffix, decisions, classes, abstain=-1, shape=None, dtype=None):
    """:func:`write_predictions` into an open binary stream (e.g. stdout)."""
    _prediction_writer(suffix, decisions, classes, abstain, shape, dtype)(fh)


def write_array(path, array, shape=None, dtype=None):
    """Write a float array by extension (.npy or .csv).

    ``array`` is an array, or an iterable of row blocks with the total
    ``shape`` and ``dtype`` given (written as they come: memory stays flat).
    """
    suffix = check_output_suffix(path, (".npy", ".csv"))
    if isinstance(array, np.ndarray) or shape is None:
        a = np.asarray(array)
        shape, dtype, array = a.shape, a.dtype, [a]

    def write(fh):
        if suffix == ".npy":
            np.lib.format.write_array_header_1_0(fh, {
                "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                "fortran_order": False, "shape": tuple(shape)})
        for b in array:
            b = np.ascontiguousarray(b, dtype=dtype)
            if suffix == ".npy":
                fh.write(b.tobytes())
            else:
                np.savetxt(fh, b.reshape(len(b), -1), delimiter=",", fmt="%.9g")
    atomic_write(path, write)


def _csv_field(name):
    s = str(name)
    return '"' + s.replace('"', '""') + '"' if any(ch in s for ch in ',"\n') else s
