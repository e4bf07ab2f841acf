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

from . import _chunks, rules
from . import scores as _scores
from .errors import check_unit_interval, invalid
from .io import atomic_write

SCHEMA_VERSION = 1
RULES = ("per-class", "global")
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

    def logits(self, scores, input_kind=None, name="scores"):
        """Validate new ``scores`` and recover logits.

        The input kind defaults to the one the file was fitted on (not a
        fresh detection: a small batch of logits can look like probabilities).
        """
        s = _scores.as_array(scores, name)
        _scores.check_shape(s, self.task, name)
        want = self.n_scored
        if self.task != "binary" and s.shape[1] != want:
            raise invalid(name, f"{want} score columns, as in the threshold file",
                          f"{s.shape[1]}")
        kind = _scores.detect_input_kind(s, self.task, input_kind or self.input_kind, name)
        return _scores.to_logits(s, self.task, kind)

    def _rule_thresholds(self, rule):
        rule = rule or self.rule
        if rule not in RULES:
            raise invalid("rule", "per-class or global", repr(rule))
        d = self.decision_thresholds
        return d["per_class"] if rule == "per-class" else [d["global"]] * self.n_scored

    def predict(self, scores, rule=None, input_kind=None, *, name="scores"):
        """Decisions for ``scores``.

        multiclass: int64 class ids, -1 = abstain; binary: int64 0/1;
        multilabel: bool (N, C).
        """
        blocks = list(self.iter_predict(scores, rule, input_kind, name=name))
        return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]

    def _blocks(self, scores, input_kind, name, block_elements):
        """Logits block by block of rows (about ``block_elements`` scores each):
        row sources are read a block at a time, so memory stays flat."""
        z = self.logits(scores, input_kind, name)
        n = z.shape[0]
        if _chunks.is_dask(z):
            yield z  # dask schedules its own blocks
            return
        rows = _chunks.chunk_rows(int(np.prod(z.shape[1:])), block_elements)
        for s in _chunks.row_slices(n, rows):
            yield z[s] if rows < n else z

    def iter_predict(self, scores, rule=None, input_kind=None, *, name="scores",
                     block_elements=BLOCK_ELEMENTS):
        """:meth:`predict`, one block of rows at a time."""
        tau = self._rule_thresholds(rule)
        for zc in self._blocks(scores, input_kind, name, block_elements):
            if self.task == "multiclass":
                k, logp = rules.top_scores(zc, self.temperature)
                yield rules.decide_multiclass(k, logp, tau)
            else:
                dec = rules.decide_sigmoid(rules.sigmoid_scores(zc, self.temperature), tau)
                yield dec.astype(np.int64) if self.task == "binary" else dec

    def iter_predict_proba(self, scores, input_kind=None, *, name="scores",
                           block_elements=BLOCK_ELEMENTS):
        """:meth:`predict_proba`, one block of rows at a time."""
        for zc in self._blocks(scores, input_kind, name, block_elements):
            if self.task == "multiclass":
                yield rules.softmax_proba(zc, self.temperature)
            else:
                yield rules.sigmoid_proba(zc, self.temperature)

    def decisions_shape(self, n_rows):
        """Shape and dtype of ``predict``'s result for ``n_rows`` rows."""
        if self.task == "multilabel":
            return (n_rows, len(self.classes)), np.dtype(bool)
        return (n_rows,), np.dtype(np.int64)

    def proba_shape(self, n_rows, score_dtype):
        """Shape and dtype of ``predict_proba``'s result for ``n_rows`` rows."""
        shape = (n_rows,) if self.task == "binary" else (n_rows, len(self.classes))
        return shape, _chunks.float_dtype(score_dtype)

    def predict_proba(self, scores, input_kind=None, *, name="scores"):
        """Calibrated probabilities: softmax(z/T) (N, C), or sigmoid(z/T)
        ((N,) for binary: the positive class; (N, C) for multilabel)."""
        blocks = list(self.iter_predict_proba(scores, input_kind, name=name))
        return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]

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
