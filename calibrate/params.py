"""Declared constraints on the parameters of the public API, checked in one place.

Each table maps a parameter name to the constraints it may satisfy (any one
of them); :func:`validate` checks a dict of values against a table and raises
:class:`~calibrate.errors.CalibrateError` with the one wording of every
validation error: ``<name>: expected <what>, found <repr>``.  ``fit``,
``Calibrator.predict`` and friends, ``ThresholdHead`` and
``ThresholdClassifier`` declare their tables here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from .errors import invalid

TASKS = ("multiclass", "binary", "multilabel")
INPUT_KINDS = ("logits", "probabilities", "log-probabilities")
RULES = ("per-class", "global")
#: Calibration families (:mod:`calibrate.families`), and ``auto``.
METHODS = ("temperature", "mix", "vector", "ovr-platt", "platt", "isotonic", "auto")


@dataclass(frozen=True)
class Interval:
    """A real number in (lo, hi) (ends excluded unless ``closed`` says so); bools refused."""
    lo: float
    hi: float
    closed: str = "neither"   # "neither", "left", "right", "both"

    def accepts(self, v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return False
        x = float(v)
        if not math.isfinite(x):
            return False
        lo_ok = x >= self.lo if self.closed in ("left", "both") else x > self.lo
        hi_ok = x <= self.hi if self.closed in ("right", "both") else x < self.hi
        return lo_ok and hi_ok

    def describe(self) -> str:
        if (self.lo, self.hi, self.closed) == (0, 1, "neither"):
            return "a number strictly between 0 and 1"
        if (self.lo, self.hi, self.closed) == (0, math.inf, "neither"):
            return "a positive finite number"
        left = "[" if self.closed in ("left", "both") else "("
        right = "]" if self.closed in ("right", "both") else ")"
        return f"a number in {left}{self.lo:g}, {self.hi:g}{right}"


@dataclass(frozen=True)
class Integer:
    """An int (numpy ints too; not bool) of at least ``lo`` and at most ``hi``."""
    lo: int = 0
    hi: int | None = None

    def accepts(self, v: Any) -> bool:
        # (numbers.Integral declares no comparisons: compared as the int it is)
        return (isinstance(v, numbers.Integral) and not isinstance(v, bool)
                and cast(int, v) >= self.lo and (self.hi is None or cast(int, v) <= self.hi))

    def describe(self) -> str:
        if self.hi is None:
            return f"an integer >= {self.lo}"
        return f"an integer from {self.lo} to {self.hi}"


@dataclass(frozen=True)
class Options:
    """One of a few strings."""
    options: tuple

    def accepts(self, v: Any) -> bool:
        return isinstance(v, str) and v in self.options

    def describe(self) -> str:
        if len(self.options) == 2:
            return f"{self.options[0]} or {self.options[1]}"
        return "one of " + ", ".join(self.options)


@dataclass(frozen=True)
class Kind:
    """Anything ``test`` accepts, described as ``what``."""
    what: str
    test: Callable[[Any], bool]

    def accepts(self, v: Any) -> bool:
        return bool(self.test(v))

    def describe(self) -> str:
        return self.what


def _names(v: Any) -> bool:
    """A sequence of strings (not one string: "abc" is not three names)."""
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__") or isinstance(v, Mapping):
        return False
    try:
        items = list(v)
    except TypeError:
        return False
    return all(isinstance(x, (str, numbers.Integral)) and not isinstance(x, bool)
               for x in items)


def _ids(v: Any) -> bool:
    """Group ids: a path of them, or an array-like (not a lone string or number)."""
    import os
    return isinstance(v, (str, os.PathLike)) or (
        not isinstance(v, (bytes, Mapping, numbers.Number)) and
        (hasattr(v, "__len__") or hasattr(v, "__array__")))


BOOLEAN = Kind("True or False", lambda v: isinstance(v, bool))
CALLABLE = Kind("a callable", callable)
CLASS_NAMES = Kind("a list of class names (strings)", _names)
PROBABILITY = Interval(0, 1)

#: None is accepted wherever the table lists it.
FIT: dict = {
    "precision": [PROBABILITY],
    "confidence": [PROBABILITY, None],
    "rule": [Options(RULES)],
    "task": [Options(("auto",) + TASKS)],
    "input": [Options(("auto",) + INPUT_KINDS)],
    "classes": [CLASS_NAMES, None],
    "simultaneous": [BOOLEAN],
    "method": [Options(METHODS)],
    "groups": [Kind("one group id per row (an array, or the path of a file of them)", _ids),
               None],
    "progress": [CALLABLE, None],
}

APPLY: dict = {
    "rule": [Options(RULES), None],
    "input": [Options(INPUT_KINDS), None],
}

HEAD: dict = APPLY

CLASSIFIER: dict = {
    "precision": [PROBABILITY],
    "confidence": [PROBABILITY, None],
    "rule": [Options(RULES)],
    "simultaneous": [BOOLEAN],
    "response_method": [Options(("auto", "decision_function", "predict_proba"))],
    "method": [Options(METHODS)],
}

#: Most bootstrap resamples ``evaluate`` takes: each one recomputes every ECE on
#: all rows, and percentile intervals gain nothing from more.
MAX_BOOTSTRAP = 10_000

#: The parameters the public building blocks check themselves (their data
#: checks are their own: lengths, ranges).
BLOCKS: dict = {
    "temperature": [Interval(0, math.inf)],
    "n_bins": [Integer(1)],
}

EVALUATE: dict = {
    "input": [Options(INPUT_KINDS), None],
    "bootstrap": [Integer(0, MAX_BOOTSTRAP)],
    "seed": [Integer(0)],
}


def _describe(constraints: list) -> str:
    parts = [c.describe() for c in constraints if c is not None]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]
    return text + (", or None" if None in constraints else "")


def validate(values: Mapping, table: Mapping) -> None:
    """Check every value whose name is in ``table``; the first failure raises."""
    for name, value in values.items():
        constraints = table.get(name)
        if constraints is None:
            continue
        if value is None and None in constraints:
            continue
        if not any(c is not None and c.accepts(value) for c in constraints):
            raise invalid(name, _describe(constraints), repr(value))
