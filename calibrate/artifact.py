"""The threshold file, and the object that applies it.

A :class:`Calibrator` is what ``calibrate fit`` writes and ``calibrate apply``
reads: the task, the input kind, the temperature(s), the thresholds of both
rules and the held-out summary.  It holds no hidden state; ``predict`` and
``predict_proba`` are pure functions of it and the scores.

File format (JSON, UTF-8, ``schema_version`` 1): see the README.  Floats are
written with Python's shortest round-trip repr, so they read back bit for
bit.  Thresholds are stored twice: as probabilities for people
(``thresholds``) and in the space the rule compares in (``decision_thresholds``,
log-probability for softmax, logit for sigmoid), which is what is applied.
"""

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from . import kernels, params
from . import scores as _scores
from .backends import as_backend
from .errors import check_unit_interval, invalid
from .io import atomic_write

SCHEMA_VERSION = 1
RULES = params.RULES
ABSTAIN = -1
#: Scores per block when applying: 16 Mi values (64 MB of float32).
BLOCK_ELEMENTS = 1 << 24


def space_of(task):
    return "log-probability" if task == "multiclass" else "logit"


def to_probability(value, task):
    """A stored threshold in its comparison space, as a probability."""
    if value is None:
        return None
    if task == "multiclass":
        return float(math.exp(value))
    return float(1.0 / (1.0 + math.exp(-value))) if value > -700 else 0.0


@dataclass(frozen=True)
class Calibrator:
    """A fitted temperature and thresholds: apply them to new scores.

    ``thresholds`` maps ``"per_class"`` (one value per scored class, None =
    never predicted) and ``"global"`` to thresholds in ``space`` (see
    :mod:`.rules`).  ``temperature`` is a float, or one per class for
    multilabel.
    """
    task: str
    classes: list
    input_kind: str
    temperature: object
    rule: str
    decision_thresholds: dict
    target: dict
    summary: dict = field(default_factory=dict, repr=False)

    # -- applying ---------------------------------------------------------
    @property
    def space(self):
        return space_of(self.task)

    @property
    def thresholds(self):
        """Thresholds as probabilities (None = never predicted)."""
        d = self.decision_thresholds
        return {"per_class": [to_probability(v, self.task) for v in d["per_class"]],
                "global": to_probability(d["global"], self.task)}

    @property
    def n_scored(self):
        """Score columns the rule compares: 1 for binary, else C."""
        return 1 if self.task == "binary" else len(self.classes)

    def prepare(self, scores, input_kind=None, name="scores", progress=None):
        """Validate new ``scores`` against the file and recover their logits:
        a :class:`~calibrate.scores.PreparedScores` without labels.

        The input kind defaults to the one the file was fitted on (not a
        fresh detection: a small batch of logits can look like probabilities).
        """
        params.validate({"input": input_kind}, params.APPLY)
        s = as_backend(scores, name, progress)
        _scores.check_shape(s, self.task, name)
        want = self.n_scored
        if self.task != "binary" and s.shape[1] != want:
            raise invalid(name, f"{want} score columns, as in the threshold file",
                          f"{s.shape[1]}")
        kind = _scores.detect_input_kind(s, self.task, input_kind or self.input_kind, name)
        return _scores.PreparedScores(s.logits(self.task, kind), None, self.task, kind,
                                      want, name)

    def logits(self, scores, input_kind=None, name="scores"):
        """The logits of new ``scores`` as a backend (see :meth:`prepare`)."""
        return self.prepare(scores, input_kind, name).logits

    def rule_thresholds(self, rule=None):
        """The decision thresholds ``rule`` (default: the file's) applies, one per
        scored class, as floats (+inf: never predicted)."""
        params.validate({"rule": rule}, params.APPLY)
        rule = rule or self.rule
        d = self.decision_thresholds
        tau = d["per_class"] if rule == "per-class" else [d["global"]] * self.n_scored
        return kernels.threshold_array(tau)

    def predict(self, scores, rule=None, input_kind=None, *, name="scores"):
        """Decisions for ``scores``.

        multiclass: int64 class ids, -1 = abstain; binary: int64 0/1;
        multilabel: bool (N, C).  A CUDA tensor is decided on its GPU.
        """
        return _joined(self.iter_predict(scores, rule, input_kind, name=name))

    def iter_predict(self, scores, rule=None, input_kind=None, *, name="scores",
                     block_elements=BLOCK_ELEMENTS, progress=None):
        """:meth:`predict`, one block of rows at a time (memory stays flat)."""
        tau = self.rule_thresholds(rule)
        z = self.logits(scores, input_kind, name) if progress is None else \
            self.prepare(scores, input_kind, name, progress).logits
        return z.iter_decisions(self.task, self.temperature, tau, block_elements)

    def iter_predict_proba(self, scores, input_kind=None, *, name="scores",
                           block_elements=BLOCK_ELEMENTS, progress=None):
        """:meth:`predict_proba`, one block of rows at a time."""
        z = self.prepare(scores, input_kind, name, progress).logits
        return z.iter_proba(self.task, self.temperature, block_elements)

    def decisions_shape(self, n_rows):
        """Shape and dtype of ``predict``'s result for ``n_rows`` rows."""
        if self.task == "multilabel":
            return (n_rows, len(self.classes)), np.dtype(bool)
        return (n_rows,), np.dtype(np.int64)

    def proba_shape(self, n_rows, score_dtype):
        """Shape and dtype of ``predict_proba``'s result for ``n_rows`` rows."""
        shape = (n_rows,) if self.task == "binary" else (n_rows, len(self.classes))
        return shape, kernels.float_dtype(score_dtype)

    def predict_proba(self, scores, input_kind=None, *, name="scores"):
        """Calibrated probabilities: softmax(z/T) (N, C), or sigmoid(z/T)
        ((N,) for binary: the positive class; (N, C) for multilabel)."""
        return _joined(self.iter_predict_proba(scores, input_kind, name=name))

    @property
    def fit_summary(self):
        """The held-out summary as a :class:`~calibrate.summary.FitSummary`."""
        from .summary import FitSummary
        return FitSummary.from_dict(self.summary if isinstance(self.summary, dict) else {})

    # -- the file ---------------------------------------------------------
    def to_dict(self):
        t = self.temperature
        return {
            "schema_version": SCHEMA_VERSION,
            "task": self.task,
            "classes": list(self.classes),
            "input_kind": self.input_kind,
            "temperature": [float(v) for v in t] if np.ndim(t) else float(t),
            "rule": self.rule,
            "thresholds": self.thresholds,
            "decision_thresholds": {"space": self.space,
                                    "per_class": list(self.decision_thresholds["per_class"]),
                                    "global": self.decision_thresholds["global"]},
            "target": dict(self.target),
            "abstain_label": ABSTAIN,
            "summary": self.summary,
        }

    def save(self, path):
        """Write the threshold file atomically (temporary file, then rename)."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        atomic_write(path, text.encode("utf-8"))

    @classmethod
    def from_dict(cls, d, source="threshold file"):
        """Rebuild a Calibrator from a parsed file, refusing anything malformed."""
        if not isinstance(d, dict):
            raise invalid(source, "a JSON object", type(d).__name__)
        if "schema_version" not in d:
            raise invalid(source, "a 'schema_version' field", "none")
        if d["schema_version"] != SCHEMA_VERSION:
            raise invalid(source, f"schema_version {SCHEMA_VERSION}",
                          f"schema_version {d['schema_version']!r}")
        for key in ("task", "classes", "input_kind", "temperature", "rule",
                    "decision_thresholds", "target"):
            if key not in d:
                raise invalid(source, f"a '{key}' field", "none")
        task = d["task"]
        if task not in _scores.TASKS:
            raise invalid(source, "task " + " | ".join(_scores.TASKS), repr(task))
        if d["input_kind"] not in _scores.INPUT_KINDS:
            raise invalid(source, "input_kind " + " | ".join(_scores.INPUT_KINDS),
                          repr(d["input_kind"]))
        if d["rule"] not in RULES:
            raise invalid(source, "rule per-class | global", repr(d["rule"]))
        classes = d["classes"]
        if not isinstance(classes, list) or len(classes) < 2:
            raise invalid(source, "'classes' as a list of at least 2 names", repr(classes))
        n_scored = 1 if task == "binary" else len(classes)
        dt = d["decision_thresholds"]
        if (not isinstance(dt, dict) or "per_class" not in dt or "global" not in dt
                or not isinstance(dt["per_class"], list)):
            raise invalid(source, "'decision_thresholds' with 'per_class' and 'global'", repr(dt))
        if len(dt["per_class"]) != n_scored:
            raise invalid(source, f"{n_scored} per-class thresholds for {len(classes)} classes",
                          f"{len(dt['per_class'])}")
        for v in dt["per_class"] + [dt["global"]]:
            if v is not None and not _finite_number(v):
                raise invalid(source, "finite numbers or null as decision thresholds", repr(v))
        t = d["temperature"]
        temps = t if isinstance(t, list) else [t]
        if (task == "multilabel") != isinstance(t, list) or (
                task == "multilabel" and len(t) != n_scored):
            raise invalid(source, "one temperature per class for multilabel, one otherwise",
                          repr(t))
        if not all(_finite_number(v) and float(v) >= np.finfo(np.float64).tiny for v in temps):
            raise invalid(source, "positive finite temperatures", repr(t))
        target = d["target"]
        if not isinstance(target, dict) or "precision" not in target:
            raise invalid(source, "'target' as an object with 'precision', 'confidence' "
                          "and 'simultaneous'", repr(target))
        check_unit_interval(f"{source}: target.precision", target["precision"])
        check_unit_interval(f"{source}: target.confidence", target.get("confidence"),
                            allow_none=True)
        if not isinstance(target.get("simultaneous", False), bool):
            raise invalid(source, "target.simultaneous true or false",
                          repr(target["simultaneous"]))
        shown = d.get("thresholds")
        if shown is not None:
            _check_shown_thresholds(source, shown, dt, task)
        return cls(task=task, classes=[str(c) for c in classes], input_kind=d["input_kind"],
                   temperature=np.array(t, dtype=np.float64) if isinstance(t, list) else float(t),
                   rule=d["rule"],
                   decision_thresholds={"per_class": [None if v is None else float(v)
                                                      for v in dt["per_class"]],
                                        "global": None if dt["global"] is None else float(dt["global"])},
                   target=dict(d["target"]), summary=d.get("summary", {}))


def _joined(blocks):
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
    def labels(self):
        return {"multilabel": ("labels predicted", "rows with none"),
                "binary": ("positive", "negative")}.get(self.task, ("predicted", "abstained"))

    def to_dict(self):
        a, b = self.labels
        return {"task": self.task, "rows": self.rows, a: self.first, b: self.second}


class DecisionTally:
    """Counts decisions as blocks stream past (``watch`` passes them on)."""

    def __init__(self, task):
        self.task, self.rows, self.first, self.second = task, 0, 0, 0

    def watch(self, blocks):
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

    def counts(self):
        return DecisionCounts(self.task, self.rows, self.first, self.second)


def _finite_number(v):
    """A JSON number that is a finite float (not a bool, not 1e400 read as inf)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:  # a huge integer literal
        return False


def _check_shown_thresholds(source, shown, dt, task):
    """Refuse a file whose human ``thresholds`` were edited: ``apply`` uses
    ``decision_thresholds``, and a silent mismatch would ignore the edit."""
    try:
        pairs = list(zip(shown["per_class"], dt["per_class"])) + [(shown["global"], dt["global"])]
    except (TypeError, KeyError):
        raise invalid(source, "'thresholds' with 'per_class' and 'global'", repr(shown))
    for i, (p, v) in enumerate(pairs):
        want = to_probability(v, task)
        ok = (p is None and want is None) or (
            _finite_number(p) and want is not None and math.isclose(p, want, rel_tol=1e-9,
                                                                     abs_tol=1e-300))
        if not ok:
            which = "global" if i == len(pairs) - 1 else f"per_class[{i}]"
            raise invalid(source, f"thresholds.{which} to match decision_thresholds.{which} "
                          "(apply uses decision_thresholds: edit those, in "
                          f"{space_of(task)} space)", repr(p))


def _no_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def load(path):
    """Read a threshold file written by :meth:`Calibrator.save`."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise invalid(f"threshold file '{name}'", "a readable file", exc.strerror or str(exc))
    try:
        d = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise invalid(f"threshold file '{name}'", "valid JSON", f"a parse error ({exc})")
    return Calibrator.from_dict(d, f"threshold file '{name}'")
