"""What the scores are: the task, the input kind, and the logits behind them.

Models hand over logits, softmax probabilities or log-probabilities, and the
three are easy to confuse (``CrossEntropyLoss`` wants logits; ``softmax``
outputs fed back as logits are a silent bug).  This module decides which one
an array holds, from its values or from the user, and recovers logits without
losing range:

* softmax probabilities: ``z = log(max(p, tiny))`` -- log-probabilities are
  logits up to a per-row constant, which softmax ignores;
* sigmoid probabilities: ``z = log(p) - log1p(-p)`` with ``p`` clipped to
  ``(tiny, 1 - eps)``;
* two softmax columns of a binary model: ``d = z1 - z0``, because
  ``softmax([z0, z1])_1 = sigmoid(z1 - z0)``.

A softmax output is never used as if it were a logit.
"""

import os
import warnings

import numpy as np
from scipy import special

from . import _chunks
from .errors import invalid
from .rows import MappedRows, is_row_source

TASKS = ("multiclass", "binary", "multilabel")
INPUT_KINDS = ("logits", "probabilities", "log-probabilities")

# Rounded or float32 probabilities do not sum to exactly 1.
_SUM_TOL = 1e-3


class InputKindWarning(UserWarning):
    """Scores were read as probabilities although they could be logits."""


is_tensor = _chunks.is_tensor


def stays_on_device(x):
    """Whether :func:`prepare` keeps ``x`` a tensor on its device: a CUDA (or
    ROCm) tensor; see :mod:`._torch_kernels`.  Other tensors take the numpy
    path (CPU tensors zero-copy; MPS has no float64 for the sums)."""
    return is_tensor(x) and x.device.type == "cuda"


def as_array(x, name):
    """Return ``x`` as a numpy array without copying, accepting torch tensors.

    torch is never imported here: a tensor is recognised by its type's module.
    A path, a glob or a list of paths is read with :func:`calibrate.io.read_scores`
    (labels: :func:`calibrate.io.read_labels`).
    """
    if isinstance(x, (str, os.PathLike)) or (
            isinstance(x, (list, tuple)) and x and all(isinstance(v, (str, os.PathLike)) for v in x)):
        from . import io
        x = io.read_labels(x) if name.startswith("labels") else io.read_scores(x)[0]
    if is_tensor(x):
        x = x.detach().cpu()
        if x.is_floating_point() and x.element_size() < 4:
            x = x.float()  # float16 / bfloat16: exact in float32 (numpy has no bfloat16)
        x = x.numpy()
    elif is_row_source(x) or _chunks.is_dask(x):
        # Wide sources stay on disk (or on the cluster) and are read chunk by
        # chunk; narrow ones (labels, binary scores) are small: read them whole.
        if x.ndim < 2 or x.shape[1] <= 2:
            x = np.asarray(x)
    elif hasattr(x, "__array__") or isinstance(x, (list, tuple)):
        x = np.asarray(x)
    else:
        raise invalid(name, "an array", type(x).__name__)
    if x.dtype.kind not in "biuf":
        raise invalid(name, "a numeric array", f"dtype {x.dtype}")
    return x


def is_sigmoid(task):
    return task in ("binary", "multilabel")


def resolve_task(scores, labels, task="auto"):
    """The task for ``scores`` and ``labels`` (``--task auto``).

    Labels of shape (N, C) with C > 1 mean multilabel; one score per row means
    binary; anything else is multiclass.  Two score columns stay multiclass
    unless the user says ``binary``.
    """
    if task not in ("auto",) + TASKS:
        raise invalid("task", "one of auto, " + ", ".join(TASKS), repr(task))
    if task != "auto":
        return task
    if labels is not None and labels.ndim == 2 and labels.shape[1] > 1:
        return "multilabel"
    if scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1):
        return "binary"
    return "multiclass"


def check_shape(scores, task, name="scores"):
    """Raise unless ``scores`` has a shape the task accepts."""
    if scores.size == 0 or scores.shape[0] == 0:
        raise invalid(name, "at least one row", "an empty array")
    if task == "binary":
        if scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] in (1, 2)):
            return
        raise invalid(name, "binary scores of shape (N,), (N, 1) or (N, 2)",
                      f"shape {scores.shape}")
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise invalid(name, f"{task} scores of shape (N, C) with C >= 2",
                      f"shape {scores.shape}")


def n_classes(scores, task):
    """Number of scored classes: C, or 1 for binary (the positive class)."""
    return 1 if task == "binary" else scores.shape[1]


def in_unit_range(lo, hi):
    """Whether values from ``lo`` to ``hi`` can be probabilities: float32
    softmax outputs exceed 1 by a few ulps (1.00001 was seen in real data)."""
    return lo >= -_SUM_TOL and hi <= 1 + _SUM_TOL


def _row_stats(scores):
    """One pass: finiteness, global min and max, and row-sum / logsumexp spread."""
    if is_tensor(scores):  # kept on its device by prepare
        from . import _torch_kernels
        return _torch_kernels.row_stats(scores)
    x = scores if scores.ndim == 2 else scores.reshape(-1, 1)
    n, c = x.shape

    def chunk(b):
        b = np.asarray(b)
        nan = posinf = neginf = False
        if not np.isfinite(b).all():
            nan, posinf, neginf = np.isnan(b).any(), np.isposinf(b).any(), np.isneginf(b).any()
            if nan:
                return True, posinf, neginf, np.nan, np.nan, np.inf, np.inf
        lo, hi = b.min(), b.max()
        # Only compute what a detection could use: row sums for values in
        # [0, 1], logsumexp for values <= 0.
        sum_err = lse_err = np.inf
        if c > 1 and in_unit_range(lo, hi):
            sum_err = np.max(np.abs(b.sum(axis=1, dtype=np.float64) - 1.0))
        if c > 1 and hi <= _SUM_TOL:
            with np.errstate(all="ignore"):
                lse_err = np.max(np.abs(special.logsumexp(b.astype(np.float64), axis=1)))
        return nan, posinf, neginf, lo, hi, sum_err, lse_err

    parts = _chunks.map_blocks(chunk, x, label="checking scores")
    return dict(
        nan=any(p[0] for p in parts), posinf=any(p[1] for p in parts),
        neginf=any(p[2] for p in parts),
        min=min(p[3] for p in parts), max=max(p[4] for p in parts),
        sum_err=max(p[5] for p in parts), lse_err=max(p[6] for p in parts))


def detect_input_kind(scores, task, input_kind="auto", name="scores"):
    """Decide whether ``scores`` are logits, probabilities or log-probabilities.

    Softmax tasks (multiclass, and binary given as two columns): rows in
    [0, 1] that sum to 1 are probabilities; rows <= 0 whose logsumexp is 0 are
    log-probabilities; anything else is logits.  Sigmoid tasks: values all in
    [0, 1] are read as probabilities, with a warning naming the override.
    Also refuses NaN and infinite scores (``-inf`` only makes sense as a
    log-probability of 0).
    """
    if input_kind not in ("auto",) + INPUT_KINDS:
        raise invalid("input", "one of auto, " + ", ".join(INPUT_KINDS),
                      repr(input_kind))
    st = _row_stats(scores)
    if st["nan"]:
        raise invalid(name, "finite scores", "NaN")
    if st["posinf"]:
        raise invalid(name, "finite scores", "+inf")
    softmax = not is_sigmoid(task) or (scores.ndim == 2 and scores.shape[1] == 2)
    in_unit = in_unit_range(st["min"], st["max"])
    if input_kind == "auto":
        if softmax and in_unit and st["sum_err"] <= _SUM_TOL:
            input_kind = "probabilities"
        elif softmax and st["max"] <= _SUM_TOL and st["lse_err"] <= _SUM_TOL:
            input_kind = "log-probabilities"
        elif not softmax and in_unit:
            input_kind = "probabilities"
            warnings.warn(
                f"{name}: all values lie in [0, 1], read as sigmoid probabilities; "
                "pass --input logits (input='logits') if they are logits",
                InputKindWarning, stacklevel=3)
        else:
            input_kind = "logits"
    if st["neginf"] and input_kind != "log-probabilities":
        raise invalid(name, "finite scores", "-inf")
    if input_kind == "probabilities" and not in_unit:
        raise invalid(name, "probabilities in [0, 1]",
                      f"values from {st['min']:.6g} to {st['max']:.6g}")
    if input_kind == "log-probabilities" and st["max"] > _SUM_TOL:
        raise invalid(name, "log-probabilities <= 0", f"a maximum of {st['max']:.6g}")
    return input_kind


def _softmax_logits(x, input_kind):
    """Row-wise: softmax-task scores of ``input_kind`` -> logits (same float dtype)."""
    dt = _chunks.float_dtype(x.dtype)
    x = x.astype(dt, copy=False)
    if input_kind == "logits":
        return x
    tiny = np.finfo(dt).tiny
    if input_kind == "log-probabilities":
        # log-probabilities are logits already; only -inf needs a floor
        return np.maximum(x, np.log(tiny)).astype(dt, copy=False)
    return np.log(np.clip(x, tiny, 1))


def _sigmoid_logits(x, input_kind):
    """Elementwise: sigmoid-task scores of ``input_kind`` -> logits."""
    dt = _chunks.float_dtype(x.dtype)
    x = x.astype(dt, copy=False)
    if input_kind == "logits":
        return x
    tiny, eps = np.finfo(dt).tiny, np.finfo(dt).eps
    if input_kind == "log-probabilities":
        lp = np.minimum(np.maximum(x, np.log(tiny)), np.log1p(-eps))
        return (lp - np.log(-np.expm1(lp))).astype(dt, copy=False)
    p = np.clip(x, tiny, 1 - eps)
    return (np.log(p) - np.log1p(-p)).astype(dt, copy=False)


def to_logits(scores, task, input_kind):
    """Logits for ``task`` from validated ``scores`` of ``input_kind``.

    Returns (N, C) for multiclass and multilabel, (N,) for binary.  Logits are
    returned as they are (no copy); a row source is converted lazily, chunk
    by chunk, as passes read it.
    """
    x = scores
    if task == "binary" and x.ndim == 2 and x.shape[1] == 2:
        # Two softmax columns: the binary logit is the log-odds z1 - z0.
        lz = _softmax_logits(np.asarray(x), input_kind)
        return lz[:, 1] - lz[:, 0]
    if task == "binary":
        return _sigmoid_logits(np.asarray(x).reshape(-1), input_kind)
    if task == "multilabel":
        return _sigmoid_logits(np.asarray(x), input_kind)
    if _chunks.is_dask(x):
        if input_kind == "logits" and x.dtype == _chunks.float_dtype(x.dtype):
            return x
        return x.map_blocks(_softmax_logits, input_kind, dtype=_chunks.float_dtype(x.dtype))
    if is_row_source(x):
        if input_kind == "logits" and x.dtype == _chunks.float_dtype(x.dtype):
            return x
        return MappedRows(x, lambda b: _softmax_logits(b, input_kind),
                          dtype=_chunks.float_dtype(x.dtype))
    return _softmax_logits(x, input_kind)


def check_labels(labels, task, n_rows, n_cls, name="labels"):
    """Validate labels for ``task`` and return them as int64 (0/1 or class ids)."""
    y = labels
    if y.size == 0:
        raise invalid(name, "at least one label", "an empty array")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise invalid(name, "integer labels", "NaN or inf")
        if not np.array_equal(y, np.round(y)):
            raise invalid(name, "integer labels", "non-integer values")
    if task == "multilabel":
        if y.ndim != 2 or y.shape[1] != n_cls:
            raise invalid(name, f"multilabel 0/1 labels of shape (N, {n_cls})",
                          f"shape {y.shape}")
    else:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.reshape(-1)
        if y.ndim != 1:
            raise invalid(name, f"{task} labels of shape (N,)", f"shape {y.shape}")
    if y.shape[0] != n_rows:
        raise invalid(name, f"{n_rows} labels, one per score row", f"{y.shape[0]}")
    y = y.astype(np.int64)
    hi = 2 if is_sigmoid(task) else n_cls
    lo_v, hi_v = int(y.min()), int(y.max())
    if lo_v < 0 or hi_v >= hi:
        what = "0/1 labels" if is_sigmoid(task) else f"class ids in [0, {n_cls})"
        bad = lo_v if lo_v < 0 else hi_v
        raise invalid(name, what, f"the value {bad}")
    return y


def prepare(scores, labels, task="auto", input_kind="auto",
            scores_name="scores", labels_name="labels"):
    """Validate, decide the task and input kind, and recover logits.

    Returns ``(logits, labels, task, input_kind)``; ``labels`` may be None
    (apply), in which case only the scores are checked.  A GPU tensor stays
    on its GPU: the logits come back as a tensor there, the labels as numpy.
    """
    if stays_on_device(scores):
        from . import _torch_kernels
        return _torch_kernels.prepare(scores, labels, task, input_kind,
                                      scores_name, labels_name)
    s = as_array(scores, scores_name)
    y = None if labels is None else as_array(labels, labels_name)
    task = resolve_task(s, y, task)
    check_shape(s, task, scores_name)
    kind = detect_input_kind(s, task, input_kind, scores_name)
    z = to_logits(s, task, kind)
    if y is not None:
        y = check_labels(y, task, s.shape[0], n_classes(s, task), labels_name)
    return z, y, task, kind
