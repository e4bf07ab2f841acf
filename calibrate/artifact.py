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

from dataclasses import dataclass, field

import numpy as np

from . import _chunks, rules, schema
from . import scores as _scores
from .errors import invalid
from .schema import ABSTAIN, RULES, SCHEMA_VERSION, space_of, to_probability  # noqa: F401

#: Scores per block when applying: 16 Mi values (64 MB of float32).
BLOCK_ELEMENTS = 1 << 24


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

    # -- the file (calibrate.schema: reading, checking, writing) ---------
    def to_dict(self):
        """The threshold file's fields (see :func:`calibrate.schema.to_dict`)."""
        return schema.to_dict(self)

    def save(self, path):
        """Write the threshold file atomically (temporary file, then rename)."""
        schema.save(self, path)

    @classmethod
    def from_dict(cls, d, source="threshold file"):
        """Rebuild a Calibrator from a parsed file, refusing anything malformed
        (see :func:`calibrate.schema.from_dict`)."""
        return schema.from_dict(d, source)


def load(path):
    """Read a threshold file written by :meth:`Calibrator.save`, checking every
    field (see :func:`calibrate.schema.load`)."""
    return schema.load(path)
