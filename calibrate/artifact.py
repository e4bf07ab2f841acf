"""The threshold file, and the object that applies it.

A :class:`Calibrator` is what ``calibrate fit`` writes and ``calibrate apply``
reads: the task, the input kind, the calibration (a temperature, or another
family of :mod:`calibrate.families`), the thresholds of both rules and the
held-out summary.  It holds no hidden state; ``predict`` and
``predict_proba`` are pure functions of it and the scores.

File format (JSON, UTF-8, ``schema_version`` 1 for a temperature, 2 with a
``calibrator`` object for the other families): see docs/file-format.md and
:mod:`calibrate.schema`.  Floats are written with Python's shortest
round-trip repr, so they read back bit for bit.  Thresholds are stored twice:
as probabilities for people (``thresholds``) and in the space the rule
compares in (``decision_thresholds``: the calibrated log-probability for
softmax, the calibrated logit for sigmoid, the model's logit for isotonic),
which is what is applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from . import kernels, params, schema
from . import scores as _scores
from .backends import Backend, Progress, as_backend
from .errors import invalid
from .families import Family
from .outputs import StrPath
from .schema import ABSTAIN, SCHEMA_VERSION, space_of, to_probability  # noqa: F401
from .summary import FitSummary

RULES = params.RULES
#: Scores per block when applying: 16 Mi values (64 MB of float32).
BLOCK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class Calibrator:
    """A fitted calibration and thresholds: apply them to new scores.

    ``decision_thresholds`` maps ``"per_class"`` (one value per scored class,
    None = never predicted) and ``"global"`` to thresholds in ``space`` (see
    :mod:`.rules`).  ``calibrator`` is the fitted family
    (:mod:`calibrate.families`; built from ``temperature`` when not given);
    ``temperature`` is its T for the temperature family (a float, or one per
    class for multilabel) and None for the others.
    """
    task: str
    classes: list[str]
    input_kind: str
    temperature: float | npt.NDArray[np.float64] | list[float] | None
    rule: str
    decision_thresholds: dict[str, Any]
    target: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict, repr=False)
    # (None: built from ``temperature`` in __post_init__)
    calibrator: Family = field(default=cast(Family, None), repr=False)

    def __post_init__(self) -> None:
        from . import families
        if self.calibrator is None:
            t = np.atleast_1d(np.asarray(self.temperature, dtype=np.float64))
            object.__setattr__(self, "calibrator", families.temperature.Temperature(
                self.task, tuple(float(v) for v in t)))

    @property
    def method(self) -> str:
        """The calibration family's name ("temperature", "platt", ...)."""
        return self.calibrator.method

    # -- applying ---------------------------------------------------------
    @property
    def space(self) -> str:
        return space_of(self.task, self.method)

    @property
    def thresholds(self) -> dict[str, Any]:
        """Thresholds as probabilities (None = never predicted): the
        calibrated probability each stands for."""
        d = self.decision_thresholds
        return {"per_class": [self.calibrator.threshold_probability(v, j)
                              for j, v in enumerate(d["per_class"])],
                "global": to_probability(d["global"], self.task)}

    @property
    def n_scored(self) -> int:
        """Score columns the rule compares: 1 for binary, else C."""
        return 1 if self.task == "binary" else len(self.classes)

    def prepare(self, scores: Any, input_kind: str | None = None, name: str = "scores",
                progress: Progress | None = None) -> _scores.PreparedScores:
        """Validate new ``scores`` against the file and recover their logits:
        a :class:`~calibrate.scores.PreparedScores` without labels.

        The input kind defaults to the one the file was fitted on (not a
        fresh detection: a small batch of logits can look like probabilities);
        but softmax probabilities given to a file fitted on logits are refused,
        and sigmoid scores all in [0, 1] warned about (see
        :func:`calibrate.scores.detect_input_kind`).
        """
        params.validate({"input": input_kind}, params.APPLY)
        s = as_backend(scores, name, progress)
        _scores.check_shape(s, self.task, name)
        want = self.n_scored
        if self.task != "binary" and s.shape[1] != want:
            raise invalid(name, f"{want} score columns, as in the threshold file",
                          f"{s.shape[1]}")
        kind = _scores.detect_input_kind(s, self.task, input_kind or self.input_kind, name,
                                         fitted_on=None if input_kind else self.input_kind)
        return _scores.PreparedScores(s.logits(self.task, kind), None, self.task, kind,
                                      want, name)

    def logits(self, scores: Any, input_kind: str | None = None, name: str = "scores") -> Backend:
        """The logits of new ``scores`` as a backend (see :meth:`prepare`)."""
        return self.prepare(scores, input_kind, name).logits

    def rule_thresholds(self, rule: str | None = None) -> npt.NDArray[np.float64]:
        """The decision thresholds ``rule`` (default: the file's) applies, one per
        scored class, as floats (+inf: never predicted)."""
        params.validate({"rule": rule}, params.APPLY)
        rule = rule or self.rule
        d = self.decision_thresholds
        if rule == "per-class":
            return kernels.threshold_array(d["per_class"])
        # one threshold in the global rule's space, per column in the
        # per-class one (isotonic: where each label's map reaches the level)
        return self.calibrator.column_thresholds(d["global"], self.n_scored)

    def predict(self, scores: Any, rule: str | None = None, input_kind: str | None = None, *,
                name: str = "scores") -> np.ndarray:
        """Decisions for ``scores``.

        multiclass: int64 class ids, -1 = abstain; binary: int64 0/1;
        multilabel: bool (N, C).  A CUDA tensor is decided on its GPU.
        """
        return _joined(self.iter_predict(scores, rule, input_kind, name=name))

    def iter_predict(self, scores: Any, rule: str | None = None, input_kind: str | None = None,
                     *, name: str = "scores", block_elements: int = BLOCK_ELEMENTS,
                     progress: Progress | None = None) -> Iterator[np.ndarray]:
        """:meth:`predict`, one block of rows at a time (memory stays flat)."""
        tau = self.rule_thresholds(rule)
        z = self.logits(scores, input_kind, name) if progress is None else \
            self.prepare(scores, input_kind, name, progress).logits
        return z.iter_decisions(self.task, self.calibrator, tau, block_elements)

    def iter_predict_proba(self, scores: Any, input_kind: str | None = None, *,
                           name: str = "scores", block_elements: int = BLOCK_ELEMENTS,
                           progress: Progress | None = None) -> Iterator[np.ndarray]:
        """:meth:`predict_proba`, one block of rows at a time."""
        z = self.prepare(scores, input_kind, name, progress).logits
        return z.iter_proba(self.task, self.calibrator, block_elements)

    def decisions_shape(self, n_rows: int) -> tuple[tuple[int, ...], np.dtype[Any]]:
        """Shape and dtype of ``predict``'s result for ``n_rows`` rows."""
        if self.task == "multilabel":
            return (n_rows, len(self.classes)), np.dtype(bool)
        return (n_rows,), np.dtype(np.int64)

    def proba_shape(self, n_rows: int,
                    score_dtype: npt.DTypeLike) -> tuple[tuple[int, ...], np.dtype[Any]]:
        """Shape and dtype of ``predict_proba``'s result for ``n_rows`` rows."""
        shape = (n_rows,) if self.task == "binary" else (n_rows, len(self.classes))
        return shape, kernels.float_dtype(score_dtype)

    def predict_proba(self, scores: Any, input_kind: str | None = None, *,
                      name: str = "scores") -> np.ndarray:
        """Calibrated probabilities: softmax(z/T) (N, C), or sigmoid(z/T)
        ((N,) for binary: the positive class; (N, C) for multilabel), or the
        family's."""
        return _joined(self.iter_predict_proba(scores, input_kind, name=name))

    @property
    def fit_summary(self) -> FitSummary:
        """The held-out summary as a :class:`~calibrate.summary.FitSummary`."""
        return FitSummary.from_dict(self.summary if isinstance(self.summary, dict) else {})

    # -- the file (calibrate.schema: reading, checking, writing) ---------
    def to_dict(self) -> dict[str, Any]:
        """The threshold file's fields (see :func:`calibrate.schema.to_dict`)."""
        return schema.to_dict(self)

    def save(self, path: StrPath) -> None:
        """Write the threshold file atomically (temporary file, then rename)."""
        schema.save(self, path)

    @classmethod
    def from_dict(cls, d: Any, source: str = "threshold file") -> Calibrator:
        """Rebuild a Calibrator from a parsed file, refusing anything malformed
        (see :func:`calibrate.schema.from_dict`)."""
        return schema.from_dict(d, source)


def _joined(blocks: Iterable[np.ndarray]) -> np.ndarray:
    parts = list(blocks)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


@dataclass(frozen=True)
class DecisionCounts:
    """What a stream of decisions held: ``rows``, and two counts whose meaning
    depends on the task (``labels`` names them): multiclass predicted /
    abstained, binary positive / negative, multilabel labels predicted / rows
    with none."""
    task: str
    rows: int
    first: int
    second: int

    @property
    def labels(self) -> tuple[str, str]:
        return {"multilabel": ("labels predicted", "rows with none"),
                "binary": ("positive", "negative")}.get(self.task, ("predicted", "abstained"))

    def to_dict(self) -> dict[str, Any]:
        a, b = self.labels
        return {"task": self.task, "rows": self.rows, a: self.first, b: self.second}


class DecisionTally:
    """Counts decisions as blocks stream past (``watch`` passes them on)."""

    def __init__(self, task: str) -> None:
        self.task, self.rows, self.first, self.second = task, 0, 0, 0

    def watch(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for d in blocks:
            self.rows += d.shape[0]
            if self.task == "multilabel":
                self.first += int(d.sum())
                self.second += int((~d.any(axis=1)).sum())
            elif self.task == "binary":
                self.first += int((d == 1).sum())
                self.second += int((d == 0).sum())
            else:
                self.first += int((d >= 0).sum())
                self.second += int((d < 0).sum())
            yield d

    def counts(self) -> DecisionCounts:
        return DecisionCounts(self.task, self.rows, self.first, self.second)


def load(path: StrPath) -> Calibrator:
    """Read a threshold file written by :meth:`Calibrator.save`, checking every
    field (see :func:`calibrate.schema.load`)."""
    return schema.load(path)
