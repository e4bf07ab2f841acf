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

A softmax output is never used as if it were a logit: values that all lie in
[0, 1] in a multiclass array are probabilities when their rows sum to 1
(within the data's own rounding), and otherwise the caller is asked to say
what they are.

:func:`prepare` does all of it once and returns :class:`PreparedScores`,
whose ``logits`` is the backend (:mod:`calibrate.backends`) every later pass
runs on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import kernels
from .backends import Backend, Progress, RowStats, as_array, as_backend, as_labels
from .errors import invalid
from .params import INPUT_KINDS, TASKS


class InputKindWarning(UserWarning):
    """Scores were read as probabilities although they could be something else."""


@dataclass(frozen=True)
class PreparedScores:
    """Validated scores, ready for the passes of a fit or an apply.

    ``logits`` is the backend over the recovered logits ((N, C), or (N,) for
    binary); ``labels`` the validated labels (int64 class ids (N,), or 0/1 of
    shape (N,) / (N, C)), None when none were given; ``n_classes`` the number
    of scored classes (1 for binary: the positive class).
    """
    logits: Backend
    labels: Any        # an array, or multilabel labels read in blocks (a row source)
    task: str
    input_kind: str
    n_classes: int
    name: str = "scores"

    @property
    def n_rows(self) -> int:
        return self.logits.n_rows

    def to_dict(self) -> dict:
        return {"task": self.task, "input_kind": self.input_kind, "n_rows": self.n_rows,
                "n_classes": self.n_classes, "backend": self.logits.kind, "name": self.name}


def is_sigmoid(task: str) -> bool:
    return task in ("binary", "multilabel")


def resolve_task(scores: Any, labels: Any, task: str = "auto") -> str:
    """The task for ``scores`` and ``labels`` (anything with ``ndim`` and ``shape``).

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


def check_shape(scores: Any, task: str, name: str = "scores") -> None:
    """Raise unless ``scores`` has a shape the task accepts."""
    if scores.shape[0] == 0:
        raise invalid(name, "at least one row", f"an empty array of shape {tuple(scores.shape)}")
    if int(np.prod(scores.shape)) == 0:
        raise invalid(name, "at least one score column", f"shape {tuple(scores.shape)}")
    if task == "binary":
        if scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] in (1, 2)):
            return
        raise invalid(name, "binary scores of shape (N,), (N, 1) or (N, 2)",
                      f"shape {tuple(scores.shape)}")
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise invalid(name, f"{task} scores of shape (N, C) with C >= 2",
                      f"shape {tuple(scores.shape)}")


def n_classes(scores: Any, task: str) -> int:
    """Number of scored classes: C, or 1 for binary (the positive class)."""
    return 1 if task == "binary" else int(scores.shape[1])


def _softmax_task(backend: Backend, task: str) -> bool:
    return not is_sigmoid(task) or (backend.ndim == 2 and backend.shape[1] == 2)


def _rounded_probabilities(backend: Backend, st: RowStats, name: str) -> bool:
    """Whether values in [0, 1] whose rows miss 1 by more than float error are
    probabilities rounded to a few decimals (then the rows miss 1 by at most
    half a unit of that rounding per column) or held in half precision (every
    value in 8 or 11 significant bits, as bfloat16 and float16 hold them: the
    rows then miss 1 by a few units of 2^-bits).  Anything else in [0, 1] is
    refused: it could be probabilities with broken rows, or logits."""
    override = "read as probabilities; pass --input logits (input_kind='logits') to say otherwise"
    d = backend.decimals()
    if d is not None:
        tol = backend.shape[1] * 0.5 * 10.0 ** -d + kernels.SUM_TOL
        if st.sum_err <= tol:
            warnings.warn(
                f"{name}: values in [0, 1] rounded to {d} decimals whose rows sum to 1 "
                f"only within that rounding (up to {st.sum_err:.3g} off): {override}",
                InputKindWarning, stacklevel=4)
            return True
    k = backend.significant_bits()
    # (each value within 2^-k of itself, relative; the model's own sums in that
    # precision add a few more units)
    if k is not None and st.sum_err <= 4.0 * 2.0 ** -k + kernels.SUM_TOL:
        what = "bfloat16" if k == 8 else "float16"
        warnings.warn(
            f"{name}: values in [0, 1] held in {k} significant bits (as {what} holds them) "
            f"whose rows sum to 1 only within that precision (up to {st.sum_err:.3g} off): "
            f"{override}", InputKindWarning, stacklevel=4)
        return True
    total = backend.row_totals()
    bad = np.flatnonzero(np.abs(total - 1.0) > kernels.SUM_TOL)
    i = int(bad[0])
    raise invalid(name, "softmax probabilities (rows summing to 1) or logits; values all "
                  f"within [0, 1] (to {kernels.SUM_TOL:g}) are never read as logits unless "
                  "you say so",
                  f"{bad.size} of {backend.n_rows} rows not summing to 1 (row {i} sums to "
                  f"{total[i]:.6g}); pass --input probabilities or --input logits "
                  "(input_kind='probabilities' or 'logits')")


#: Values a sigmoid task's scores must have, all within [0, 1], before applying
#: a file fitted on logits warns that they look like probabilities (a few
#: logits can all lie there; a thousand hardly).
SIGMOID_LOOKALIKE = 1000


def detect_input_kind(backend: Backend, task: str, input_kind: str = "auto",
                      name: str = "scores", fitted_on: str | None = None) -> str:
    """Decide whether the scores are logits, probabilities or log-probabilities.

    Softmax tasks (multiclass, and binary given as two columns): values in
    [0, 1] whose rows sum to 1 (within float error, or within the data's own
    decimal rounding, with a warning) are probabilities; other values all in
    [0, 1] are refused with a request to say what they are; rows <= 0 whose
    logsumexp is 0 are log-probabilities; anything else is logits.  Sigmoid
    tasks: values all in [0, 1] are read as probabilities, with a warning
    naming the override.  NaN and +inf are refused; -inf only makes sense as
    a log-probability of 0.

    ``fitted_on``: the input kind of a threshold file applied without one
    given (then ``input_kind`` is that kind).  A file fitted on logits refuses
    softmax-task scores all in [0, 1] (never read as logits unless said so, as
    at fit: probabilities, summing to 1 or rounded) and warns about sigmoid
    scores all in [0, 1] (at least :data:`SIGMOID_LOOKALIKE` of them).
    """
    if input_kind not in ("auto",) + INPUT_KINDS:
        raise invalid("input", "one of auto, " + ", ".join(INPUT_KINDS), repr(input_kind))
    st = backend.row_stats()
    if st.nan:
        raise invalid(name, "finite scores", "NaN")
    if st.posinf:
        raise invalid(name, "finite scores", "+inf")
    softmax = _softmax_task(backend, task)
    in_unit = kernels.in_unit_range(st.min, st.max)
    if input_kind == "auto":
        input_kind = _detected(backend, st, softmax, in_unit, name)
    elif fitted_on == "logits" and in_unit and not st.neginf:
        _probabilities_for_logits(backend, st, softmax, name)
    if st.neginf and input_kind != "log-probabilities":
        raise invalid(name, "finite scores", "-inf")
    if input_kind == "probabilities" and not in_unit:
        raise invalid(name, "probabilities in [0, 1]",
                      f"values from {st.min:.6g} to {st.max:.6g}")
    if input_kind == "log-probabilities" and st.max > kernels.SUM_TOL:
        raise invalid(name, "log-probabilities <= 0", f"a maximum of {st.max:.6g}")
    return input_kind


def _probabilities_for_logits(backend: Backend, st: RowStats, softmax: bool, name: str) -> None:
    """Scores all in [0, 1] given to a file fitted on logits (see
    :func:`detect_input_kind`)."""
    override = ("pass --input probabilities (input_kind='probabilities'), or --input logits "
                "(input_kind='logits') if they are logits")
    if softmax:
        # as at fit, where such values are never read as logits unless said so
        found = ("rows in [0, 1] summing to 1, as softmax probabilities do"
                 if st.sum_err <= kernels.SUM_TOL else
                 f"values all within [0, 1] (to {kernels.SUM_TOL:g}), as probabilities are "
                 f"and logits hardly ever (rows summing to 1 within {st.sum_err:.3g})")
        raise invalid(name, "logits, as the threshold file was fitted on", f"{found}; {override}")
    if backend.n_rows * int(np.prod(backend.shape[1:])) >= SIGMOID_LOOKALIKE:
        warnings.warn(f"{name}: all values lie in [0, 1], yet read as logits, as the threshold "
                      f"file was fitted on; {override}", InputKindWarning, stacklevel=4)


def _detected(backend: Backend, st: RowStats, softmax: bool, in_unit: bool, name: str) -> str:
    if softmax and in_unit and not st.neginf:
        if st.sum_err <= kernels.SUM_TOL or _rounded_probabilities(backend, st, name):
            return "probabilities"
    if softmax and st.max <= kernels.SUM_TOL and st.lse_err <= kernels.SUM_TOL:
        return "log-probabilities"
    if not softmax and in_unit:
        warnings.warn(
            f"{name}: all values lie in [0, 1], read as sigmoid probabilities; "
            "pass --input logits (input_kind='logits') if they are logits",
            InputKindWarning, stacklevel=4)
        return "probabilities"
    return "logits"


def to_logits(scores: Any, task: str, input_kind: str) -> np.ndarray:
    """Logits of validated ``scores`` of ``input_kind`` as a numpy array:
    (N, C) for multiclass and multilabel, (N,) for binary."""
    return as_backend(scores).logits(task, input_kind).to_numpy()


def check_block_arguments(z: Any, y: Any, task: str) -> None:
    """The cheap checks of a building block's arguments (``calibrate.fit``
    checks everything once, before the blocks run): a known task, one label
    per score row, multiclass class ids within the score columns."""
    if task not in TASKS:
        raise invalid("task", "one of " + ", ".join(TASKS), repr(task))
    n = int(z.shape[0]) if len(z.shape) else 0
    if len(y.shape) == 0 or int(y.shape[0]) != n:
        raise invalid("labels", f"{n} labels, one per score row",
                      f"shape {tuple(y.shape)}")
    if task == "multiclass" and isinstance(y, np.ndarray) and y.size:
        c = int(z.shape[1]) if len(z.shape) == 2 else 0
        if y.ndim != 1 or y.min() < 0 or y.max() >= c:
            raise invalid("labels", f"class ids (N,) in [0, {c})",
                          f"shape {y.shape}, values from {y.min()} to {y.max()}")


def check_labels(labels: Any, task: str, n_rows: int, n_cls: int,
                 name: str = "labels", task_detected: bool = False) -> Any:
    """Validate labels for ``task``: class ids (multiclass) or 0/1 (binary,
    multilabel).  Multiclass labels come back as int64 (N,), binary as int8
    (N,); multilabel as given (N, C), possibly a row source read in blocks by
    the passes.  One-hot multiclass labels (N, C) become class ids; labels
    that made ``task_detected`` multilabel with a single 1 in every row warn
    (a softmax classifier's one-hot targets, most likely)."""
    y = labels
    if int(np.prod(y.shape)) == 0:
        raise invalid(name, "at least one label", "an empty array")
    if task == "multiclass" and y.ndim == 2 and y.shape[1] == n_cls > 1:
        y = _one_hot_ids(y, name)
    if task == "multilabel":
        if y.ndim != 2 or y.shape[1] != n_cls:
            raise invalid(name, f"multilabel 0/1 labels of shape (N, {n_cls})",
                          f"shape {tuple(y.shape)}")
    else:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.reshape(-1)
        if y.ndim != 1:
            raise invalid(name, f"{task} labels of shape (N,)", f"shape {tuple(y.shape)}")
    if y.shape[0] != n_rows:
        raise invalid(name, f"{n_rows} labels, one per score row", f"{y.shape[0]}")
    st = as_backend(y, name).label_stats()
    if st.nonfinite:
        raise invalid(name, "integer labels", "NaN or inf")
    if st.fractional:
        raise invalid(name, "integer labels", "non-integer values")
    hi = 2 if is_sigmoid(task) else n_cls
    # compare in the labels' own type first: a cast to int64 would wrap 2**64 - 1 to -1
    if st.lo < 0 or st.hi >= hi:
        what = "0/1 labels" if is_sigmoid(task) else f"class ids in [0, {n_cls})"
        bad = st.lo if st.lo < 0 else st.hi
        shown = int(bad) if np.asarray(bad).dtype.kind in "iub" or abs(bad) < 2 ** 63 \
            else float(bad)
        raise invalid(name, what, f"the value {shown}")
    if task == "multilabel":
        if task_detected and not st.not_one_hot:
            warnings.warn(
                f"{name}: every row holds exactly one 1, as one-hot class labels do: fitted "
                "as multilabel (a sigmoid and thresholds per class); for a softmax "
                "classifier pass --task multiclass (task='multiclass') or the class ids",
                InputKindWarning, stacklevel=4)
        return y
    # 0/1 as int8: every pass over binary labels reads an eighth of int64's bytes
    return y.astype(np.int8 if task == "binary" else np.int64)


def _one_hot_ids(y: Any, name: str) -> np.ndarray:
    """Class ids from one-hot labels (N, C): 0/1 values, exactly one 1 a row."""
    a = as_array(y, name)       # (the row count: checked by check_labels, on the ids)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise invalid(name, "integer labels", "NaN or inf")
    ok = ((a == 0) | (a == 1)).all(axis=1) & (a.sum(axis=1, dtype=np.float64) == 1)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise invalid(name, "multiclass labels: class ids (N,) or one-hot rows (N, C) "
                      "with a single 1", f"row {i} holding {_short_row(a[i])}")
    return a.argmax(axis=1)


def _short_row(row: np.ndarray) -> str:
    vals = [f"{v:g}" for v in row[:8].tolist()]
    return "[" + ", ".join(vals) + (", ...]" if row.size > 8 else "]")


def prepare(scores: Any, labels: Any = None, task: str = "auto", input_kind: str = "auto",
            scores_name: str = "scores", labels_name: str = "labels",
            progress: Progress | None = None) -> PreparedScores:
    """Validate, decide the task and input kind, and recover logits.

    ``labels`` may be None (apply): only the scores are checked.  The input
    kind is resolved once into a backend; a CUDA tensor stays on its GPU.
    """
    s = as_backend(scores, scores_name, progress)
    y = None if labels is None else as_labels(labels, labels_name)
    detected = task == "auto"
    task = resolve_task(s, y, task)
    check_shape(s, task, scores_name)
    kind = detect_input_kind(s, task, input_kind, scores_name)
    z = s.logits(task, kind)
    n_cls = n_classes(s, task)
    if y is not None:
        y = check_labels(y, task, s.n_rows, n_cls, labels_name, task_detected=detected)
    return PreparedScores(z, y, task, kind, n_cls, scores_name)
