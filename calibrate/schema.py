"""The threshold file as JSON: reading it as untrusted input, checking every
field, and writing it.

Reading refuses, each with one line naming the file, the field, what was
expected and what was found:

- anything but a regular file (a FIFO would block, ``/dev/zero`` never ends)
  and files over :data:`MAX_BYTES`;
- text that is not UTF-8 JSON, nesting deeper than :data:`MAX_DEPTH` (checked
  before parsing: the parser recurses), a key twice in one object, ``NaN`` or
  ``Infinity``, and numbers too large for a float;
- a field missing, unknown, or of the wrong type, booleans included where a
  number belongs (``true == 1`` in Python, so ``"schema_version": true`` would
  pass a plain comparison);
- strings anywhere in the file holding control characters, lone surrogates,
  line separators or bidirectional controls: they would reach a terminal, a
  CSV cell or an encoder;
- class names that are not distinct non-empty strings; a per-class list whose
  length is not the number of scored classes; a decision threshold outside its
  space (a log-probability above 0); human ``thresholds`` that do not match
  ``decision_thresholds``; summary rows whose figures are not numbers.

Versions: a temperature calibration is written as version 1 (the format of
calibrate 0.1.0, unchanged, which every reader since takes), any other
family as version 2, which replaces ``temperature`` by a ``calibrator``
object: the family's ``method`` and its parameters (:data:`CALIBRATOR`),
each checked for type, length and range like the rest of the file.  A file
written by version 1 loads and applies identically: only the checks are
stricter.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, cast

import numpy as np

from .errors import check_unit_interval, invalid, quote, unsafe_char
from .io import read_capped
from .outputs import StrPath
from .params import INPUT_KINDS, RULES, TASKS

if TYPE_CHECKING:  # pragma: no cover - artifact imports this module
    from .artifact import Calibrator
    from .families import Family

SCHEMA_VERSION = 1
#: The versions this module reads: 1 (a temperature), 2 (a ``calibrator``).
VERSIONS = (1, 2)
ABSTAIN = -1
#: A threshold file is about 400 bytes a class: this is some 300,000 classes.
MAX_BYTES = 128 << 20
#: Our files nest 5 deep; anything far deeper is not one of them.
MAX_DEPTH = 32

REQUIRED = ("schema_version", "task", "classes", "input_kind", "temperature", "rule",
            "decision_thresholds", "target")
#: Version 2: the calibration is a ``calibrator`` object instead of ``temperature``.
REQUIRED_V2 = tuple("calibrator" if k == "temperature" else k for k in REQUIRED)
OPTIONAL = ("thresholds", "abstain_label", "summary")
#: Figures of a summary row that ``evaluate`` and the plots read.
ROW_FRACTIONS = ("threshold", "precision", "recall", "coverage", "lower_bound")
ROW_COUNTS = ("support", "predicted")


def space_of(task: str, method: str = "temperature") -> str:
    """The space decision thresholds compare in: the calibrated
    log-probability (multiclass), the calibrated logit (sigmoid tasks), or
    the model's own logit (isotonic, whose map only ranks within a label)."""
    if task == "multiclass":
        return "log-probability"
    return "model-logit" if method == "isotonic" else "logit"


def to_probability(value: float | None, task: str) -> float | None:
    """A stored threshold in its comparison space, as a probability."""
    if value is None:
        return None
    if task == "multiclass":
        return float(math.exp(value))
    return float(1.0 / (1.0 + math.exp(-value))) if value > -700 else 0.0


# -- reading ----------------------------------------------------------------
def load(path: StrPath) -> Calibrator:
    """Read, parse and check a threshold file: a :class:`~calibrate.Calibrator`."""
    if not isinstance(path, (str, os.PathLike)):
        raise invalid("path", "a threshold file's path (str or os.PathLike)",
                      type(path).__name__)
    where = f"threshold file {quote(path)}"
    raw = read_capped(path, where, MAX_BYTES)
    return from_dict(parse(raw, where), where)


def parse(raw: bytes | str, where: str = "threshold file") -> Any:
    """JSON bytes (UTF-8, a byte-order mark allowed) as Python objects, refusing
    deep nesting, duplicate keys, non-finite numbers and unsafe strings."""
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise invalid(where, "valid JSON (UTF-8)", f"a byte {raw[exc.start]:#04x} at offset "
                      f"{exc.start} that is not UTF-8") from None
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise invalid(where, f"JSON nested at most {MAX_DEPTH} deep", f"{depth} levels")
    try:
        d = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise invalid(where, "each key once in an object", f"{quote(exc.args[0])} twice") from None
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        reason = ("a number of more than 4300 digits" if "Exceeds the limit" in str(exc)
                  else f"a parse error ({str(exc)[:200]})")
        raise invalid(where, "valid JSON", reason) from None
    return d


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def nesting_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in JSON text (strings skipped), in C-speed
    passes: Python's JSON parser recurses, so depth is checked first."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    b = np.frombuffer(brackets, np.uint8)
    peak = level = 0
    for lo in range(0, len(b), 1 << 22):
        step = np.where((b[lo:lo + (1 << 22)] == 91) | (b[lo:lo + (1 << 22)] == 123), 1, -1)
        run = np.cumsum(step) + level
        if len(run):
            peak, level = max(peak, int(run.max())), int(run[-1])
    return peak


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = {}
    for k, v in pairs:
        if k in d:
            raise _DuplicateKey(k)
        d[k] = v
    return d


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _depth(node: Any) -> int:
    """How deep lists and objects nest in parsed JSON (iterative: any depth)."""
    peak, stack = 0, [(node, 0)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, (dict, list)):
            d += 1
            peak = max(peak, d)
            if d <= MAX_DEPTH:
                stack += [(v, d) for v in (x.values() if isinstance(x, dict) else x)]
    return peak


def _check_leaves(node: Any, where: str, path: str = "", depth: int = 0) -> None:
    """Every string safe to print and every number finite, anywhere in the file
    (depth already bounded by :func:`_depth`)."""
    if isinstance(node, dict):
        for k, v in node.items():
            name = "".join(ascii(ch)[1:-1] if unsafe_char(ch) else ch for ch in k)
            sub = f"{path}.{name}" if path else name
            _check_text(k, where, sub, key=True)
            _check_leaves(v, where, sub, depth + 1)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_leaves(v, where, f"{path}[{i}]", depth + 1)
    elif isinstance(node, str):
        _check_text(node, where, path)
    elif isinstance(node, float) and not math.isfinite(node):
        raise invalid(f"{where}: {path}", "a finite number", f"{node} (a number too large)")
    elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > 2 ** 63:
        raise invalid(f"{where}: {path}", "an integer of at most 2**63", "a larger one")


def _check_text(s: str, where: str, path: str, key: bool = False) -> None:
    bad = next((ch for ch in s if unsafe_char(ch)), None)
    if bad is not None:
        what = "a key" if key else "a string"
        raise invalid(f"{where}: {path}", f"{what} without control characters, lone surrogates "
                      "or bidirectional controls", f"{quote(s[:60])} (holding {ascii(bad)})")


# -- checking ---------------------------------------------------------------
def _number(v: object) -> bool:
    """A JSON number (not a bool) that is finite as a float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _type_name(v: object) -> str:
    return {bool: "a boolean", type(None): "null", str: "a string", list: "a list",
            dict: "an object"}.get(type(v), "a number" if isinstance(v, (int, float)) else
                                   type(v).__name__)


def _show(v: object, limit: int = 60) -> str:
    """A value for a message: as JSON (``true``, ``null``), cut to ``limit``."""
    if isinstance(v, str):
        r = quote(v)
    else:
        try:
            r = json.dumps(v, ensure_ascii=True)
        except (TypeError, ValueError, RecursionError):  # a dict built in Python
            r = ascii(v)
    return r if len(r) <= limit else r[:limit - 3] + "..."


def _choice(d: dict[str, Any], key: str, options: Sequence[str], where: str) -> str:
    v = d[key]
    if not isinstance(v, str) or v not in options:
        raise invalid(where, f"{key} " + " | ".join(options), _show(v))
    return v


def check_class_names(names: Sequence[Any], where: str = "classes") -> list[str]:
    """Class names: distinct, non-empty strings, none holding a control
    character, a lone surrogate, a line separator or a bidirectional control."""
    for i, n in enumerate(names):
        if not isinstance(n, str):
            raise invalid(f"{where}[{i}]", "a class name (a string)", _type_name(n))
        if not n:
            raise invalid(f"{where}[{i}]", "a non-empty class name", "an empty string")
        bad = next((ch for ch in n if unsafe_char(ch)), None)
        if bad is not None:
            raise invalid(f"{where}[{i}]", "a class name without control characters, lone "
                          "surrogates or bidirectional controls", f"{quote(n[:60])}")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise invalid(f"{where}[{i}]", "distinct class names",
                          f"{quote(n[:60])} again (first at {seen[n]})")
        seen[n] = i
    return list(names)


def from_dict(d: Any, source: str = "threshold file") -> Calibrator:
    """A :class:`~calibrate.Calibrator` from a parsed file, every field checked."""
    from .artifact import Calibrator

    if not isinstance(d, dict):
        raise invalid(source, "a JSON object", type(d).__name__)
    depth = _depth(d)
    if depth > MAX_DEPTH:
        raise invalid(source, f"JSON nested at most {MAX_DEPTH} deep",
                      f"more than {MAX_DEPTH} levels")
    if "schema_version" not in d:
        raise invalid(source, "a 'schema_version' field", "none")
    v = d["schema_version"]
    if type(v) is not int or v not in VERSIONS:
        raise invalid(source, "schema_version 1 or 2", f"schema_version {_show(v)}")
    required = REQUIRED if v == 1 else REQUIRED_V2
    for key in required:
        if key not in d:
            raise invalid(source, f"a '{key}' field" + (" (schema_version 2)" if v == 2 else ""),
                          "none")
    extra = sorted(set(d) - set(required) - set(OPTIONAL))
    if extra:
        raise invalid(source, f"only the fields of schema_version {v}, "
                      + ", ".join(required + OPTIONAL), f"the field {quote(extra[0])}")
    task = _choice(d, "task", TASKS, source)
    input_kind = _choice(d, "input_kind", INPUT_KINDS, source)
    rule = _choice(d, "rule", RULES, source)
    classes = d["classes"]
    if not isinstance(classes, list) or len(classes) < 2:
        raise invalid(f"{source}: classes", "a list of at least 2 names", _show(classes))
    if task == "binary" and len(classes) != 2:
        raise invalid(f"{source}: classes", "2 names for a binary task (negative, positive)",
                      f"{len(classes)}")
    check_class_names(classes, f"{source}: classes")
    n_scored = 1 if task == "binary" else len(classes)
    if v == 1:
        temperature = _check_temperature(d["temperature"], task, n_scored, source)
        fam = None
    else:
        fam = _check_calibrator(d["calibrator"], task, n_scored, source)
        temperature = families().temperature_of(fam)
    method = "temperature" if fam is None else fam.method
    dt = _check_decision_thresholds(d["decision_thresholds"], task, n_scored, source, method)
    target = _check_target(d["target"], source)
    if "abstain_label" in d and (type(d["abstain_label"]) is not int
                                 or d["abstain_label"] != ABSTAIN):
        raise invalid(f"{source}: abstain_label", f"{ABSTAIN}", _show(d["abstain_label"]))
    cal = Calibrator(task=task, classes=list(classes), input_kind=input_kind,
                     temperature=temperature, rule=rule, decision_thresholds=dt,
                     target=target, summary=d.get("summary", {}),
                     calibrator=cast("Family", fam))   # None: built from the temperature
    if d.get("thresholds") is not None:
        _check_shown_thresholds(source, d["thresholds"], dt, task, cal.calibrator)
    _check_summary(cal.summary, n_scored, source)
    _check_leaves(d, source)
    return cal


def _check_temperature(t: Any, task: str, n_scored: int, source: str) -> float | np.ndarray:
    where = f"{source}: temperature"
    if task == "multilabel":
        if not isinstance(t, list) or len(t) != n_scored:
            raise invalid(where, f"a list of {n_scored} temperatures (one per class)", _show(t))
    elif isinstance(t, list):
        raise invalid(where, "one temperature (a number)", _show(t))
    for v in t if isinstance(t, list) else [t]:
        if not _number(v) or not float(v) >= np.finfo(np.float64).tiny:
            raise invalid(where, "positive finite temperatures", _show(v))
    return np.array(t, dtype=np.float64) if isinstance(t, list) else float(t)


def _check_decision_thresholds(dt: Any, task: str, n_scored: int, source: str,
                               method: str = "temperature") -> dict[str, Any]:
    where = f"{source}: decision_thresholds"
    if (not isinstance(dt, dict) or set(dt) != {"space", "per_class", "global"}
            or not isinstance(dt["per_class"], list)):
        raise invalid(where, "an object of 'space', 'per_class' (a list) and 'global'", _show(dt))
    space = space_of(task, method)
    if dt["space"] != space:
        what = f"a {task} task" if method == "temperature" else f"{method} on a {task} task"
        raise invalid(f"{where}.space", f"'{space}' for {what}", _show(dt["space"]))
    if len(dt["per_class"]) != n_scored:
        raise invalid(f"{where}.per_class", f"{n_scored} per-class thresholds (one per scored "
                      "class)", f"{len(dt['per_class'])}")
    top = 0.0 if task == "multiclass" else math.inf
    for name, v in [(f"per_class[{i}]", v) for i, v in enumerate(dt["per_class"])] + [
            ("global", dt["global"])]:
        if v is not None and (not _number(v) or float(v) > top):
            raise invalid(f"{where}.{name}", "finite numbers or null as decision thresholds"
                          + (" (log-probabilities, <= 0)" if top == 0 else ""), _show(v))

    def as_float(v: Any) -> float | None:
        return None if v is None else float(v)
    return {"per_class": [as_float(v) for v in dt["per_class"]], "global": as_float(dt["global"])}


def families() -> ModuleType:
    """:mod:`calibrate.families`, imported when a file needs it."""
    import importlib
    return importlib.import_module(".families", __package__)


def _finite(v: Any) -> bool | np.bool_:
    return _number(v) and abs(float(v)) <= np.finfo(np.float64).max


#: Each number's range in a version-2 ``calibrator``: (test, words).
Range = tuple[Callable[[Any], bool | np.bool_], str]
_POSITIVE: Range = (lambda v: float(v) >= np.finfo(np.float64).tiny, "a positive finite number")
_ANY = (lambda v: True, "a finite number")
_NON_NEGATIVE = (lambda v: float(v) >= 0, "a finite number >= 0")
_UNIT = (lambda v: 0 <= float(v) <= 1, "a number in [0, 1]")
_OPEN_UNIT = (lambda v: 0 < float(v) < 1, "a number strictly between 0 and 1")

#: The parameters of each family in a version-2 ``calibrator`` object (besides
#: ``method``): name -> (shape, range).  Shapes: "one" a number; "scored" a
#: list of one number per scored class (S); "curves" a list of S non-empty
#: lists (isotonic: ``knots`` strictly increasing, ``values`` as long as their
#: knots and non-decreasing).  The maps these define are in docs/math.md.
CALIBRATOR: dict[str, dict[str, tuple[str, Range]]] = {
    "temperature": {"temperature": ("scored", _POSITIVE)},
    "mix": {"temperature": ("one", _POSITIVE), "weight": ("one", _UNIT)},
    "vector": {"a": ("scored", _ANY), "b": ("scored", _ANY)},
    "ovr-platt": {"a": ("scored", _NON_NEGATIVE), "b": ("scored", _ANY)},
    "platt": {"a": ("scored", _POSITIVE), "b": ("scored", _ANY)},
    "isotonic": {"knots": ("curves", _ANY), "values": ("curves", _UNIT),
                 "lo": ("scored", _OPEN_UNIT), "hi": ("scored", _OPEN_UNIT)},
}


def _check_calibrator(c: Any, task: str, n_scored: int, source: str) -> Family:
    """The family of a version-2 ``calibrator`` object, every field checked."""
    where = f"{source}: calibrator"
    if not isinstance(c, dict):
        raise invalid(where, "an object of 'method' and the family's parameters", _show(c))
    fam = families()
    allowed = fam.methods(task)
    m = c.get("method")
    if not isinstance(m, str) or m not in allowed:
        raise invalid(f"{where}.method", f"one of {', '.join(allowed)} for a {task} task",
                      _show(m))
    spec = CALIBRATOR[m]
    for key in spec:
        if key not in c:
            raise invalid(where, f"a '{key}' field for method {m}", "none")
    extra = sorted(set(c) - set(spec) - {"method"})
    if extra:
        raise invalid(where, f"only the fields method, {', '.join(spec)} for method {m}",
                      f"the field {quote(extra[0])}")
    one = m == "temperature" and task != "multilabel"
    got = {k: _parameter(c[k], "one" if one else shape, rng, n_scored, f"{where}.{k}")
           for k, (shape, rng) in spec.items()}
    if m == "temperature":
        got["temperature"] = (got["temperature"],) if one else got["temperature"]
    if m == "isotonic":
        _check_isotonic(got, where)
    return fam.from_params(m, task, got)


def _parameter(v: Any, shape: str, rng: Range, n_scored: int | None, where: str) -> Any:
    """One parameter of a ``calibrator``, as a float or (nested) tuples of floats."""
    test, words = rng
    if shape == "one":
        if not _finite(v) or not test(v):
            raise invalid(where, words, _show(v))
        return float(v)
    if shape == "list":
        if not isinstance(v, list):
            raise invalid(where, "a list of numbers", _show(v))
    elif not isinstance(v, list) or len(v) != n_scored:
        raise invalid(where, f"a list of {n_scored} (one per scored class)", _show(v))
    if shape == "curves":
        return tuple(_parameter(x, "list", rng, None, f"{where}[{i}]") for i, x in enumerate(v))
    for i, x in enumerate(v):
        if not _finite(x) or not test(x):
            raise invalid(f"{where}[{i}]", words, _show(x))
    return tuple(float(x) for x in v)


def _check_isotonic(p: dict[str, Any], where: str) -> None:
    """Per label: knots strictly increasing, values non-decreasing and as
    many, lo <= hi."""
    for k, (knots, values) in enumerate(zip(p["knots"], p["values"], strict=True)):
        if not knots:
            raise invalid(f"{where}.knots[{k}]", "at least one knot", "an empty list")
        if len(values) != len(knots):
            raise invalid(f"{where}.values[{k}]", f"{len(knots)} values, one per knot",
                          f"{len(values)}")
        if any(b <= a for a, b in itertools.pairwise(knots)):
            raise invalid(f"{where}.knots[{k}]", "strictly increasing knots", "a knot not above "
                          "the one before")
        if any(b < a for a, b in itertools.pairwise(values)):
            raise invalid(f"{where}.values[{k}]", "non-decreasing values", "a value below the "
                          "one before")
        if p["lo"][k] > p["hi"][k]:
            raise invalid(f"{where}.lo[{k}]", f"at most hi[{k}] ({p['hi'][k]!r})",
                          _show(p["lo"][k]))


def _check_target(target: Any, source: str) -> dict[str, Any]:
    where = f"{source}: target"
    if not isinstance(target, dict) or "precision" not in target or set(target) - {
            "precision", "confidence", "simultaneous"}:
        raise invalid(source, "'target' as an object with 'precision', 'confidence' and "
                      "'simultaneous'", _show(target))
    check_unit_interval(f"{where}.precision", target["precision"])
    check_unit_interval(f"{where}.confidence", target.get("confidence"), allow_none=True)
    if not isinstance(target.get("simultaneous", False), bool):
        raise invalid(source, "target.simultaneous true or false", _show(target["simultaneous"]))
    return dict(target)


def _check_shown_thresholds(source: str, shown: Any, dt: dict[str, Any], task: str,
                            fam: Family) -> None:
    """Refuse a file whose human ``thresholds`` were edited: ``apply`` uses
    ``decision_thresholds``, and a silent mismatch would ignore the edit.
    (``fam``, the calibration, says what probability a threshold stands for.)"""
    if (not isinstance(shown, dict) or set(shown) != {"per_class", "global"}
            or not isinstance(shown["per_class"], list)
            or len(shown["per_class"]) != len(dt["per_class"])):
        raise invalid(f"{source}: thresholds", "an object of 'per_class' and 'global' like "
                      "decision_thresholds", _show(shown))
    pairs = [*zip(shown["per_class"], dt["per_class"], strict=True),
             (shown["global"], dt["global"])]
    for i, (p, v) in enumerate(pairs):
        want = to_probability(v, task) if i == len(pairs) - 1 else \
            fam.threshold_probability(v, i)
        ok = (p is None and want is None) or (
            _number(p) and want is not None and math.isclose(p, want, rel_tol=1e-9,
                                                              abs_tol=1e-300))
        if not ok:
            which = "global" if i == len(pairs) - 1 else f"per_class[{i}]"
            raise invalid(source, f"thresholds.{which} to match decision_thresholds.{which} "
                          "(apply uses decision_thresholds: edit those, in "
                          f"{space_of(task, fam.method)} space)", _show(p))


def _check_summary(summary: Any, n_scored: int, source: str) -> None:
    """The summary is free-form JSON, except the rows ``evaluate`` and the
    plots read: ``per_class`` (one per scored class) and ``global``."""
    where = f"{source}: summary"
    if not isinstance(summary, dict):
        raise invalid(where, "an object", _type_name(summary))
    rows = summary.get("per_class")
    if rows is not None:
        if not isinstance(rows, list) or len(rows) != n_scored:
            raise invalid(f"{where}.per_class", f"a list of {n_scored} rows", _show(rows))
        for i, r in enumerate(rows):
            _check_row(r, f"{where}.per_class[{i}]")
    if summary.get("global") is not None:
        _check_row(summary["global"], f"{where}.global")


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, dict):
        raise invalid(where, "an object", _type_name(row))
    for k in ROW_FRACTIONS:
        v = row.get(k)
        if v is not None and (not _number(v) or not 0 <= v <= 1):
            raise invalid(f"{where}.{k}", "a number in [0, 1] or null", _show(v))
    for k in ROW_COUNTS:
        v = row.get(k)
        if v is not None and (type(v) is not int or v < 0):
            raise invalid(f"{where}.{k}", "a count (an integer >= 0) or null", _show(v))
    for k in ("status", "class"):
        if row.get(k) is not None and not isinstance(row[k], str):
            raise invalid(f"{where}.{k}", "a string", _type_name(row[k]))


# -- writing ----------------------------------------------------------------
def to_dict(cal: Calibrator) -> dict[str, Any]:
    """The file's fields for ``cal`` (checked: a file we write always loads):
    version 1 for a temperature, version 2 with a ``calibrator`` otherwise."""
    check_class_names(list(cal.classes), "classes")
    method = cal.calibrator.method
    if method == "temperature":
        t: Any = cal.temperature   # a float, or one per label
        version, calibration = SCHEMA_VERSION, {
            "temperature": [float(v) for v in t] if np.ndim(t) else float(t)}
    else:
        c = cal.calibrator.to_dict()
        _check_calibrator(c, cal.task, cal.n_scored, "calibrator")
        version, calibration = 2, {"calibrator": c}
    return {
        "schema_version": version,
        "task": cal.task,
        "classes": list(cal.classes),
        "input_kind": cal.input_kind,
        **calibration,
        "rule": cal.rule,
        "thresholds": cal.thresholds,
        "decision_thresholds": {"space": space_of(cal.task, method),
                                "per_class": list(cal.decision_thresholds["per_class"]),
                                "global": cal.decision_thresholds["global"]},
        "target": dict(cal.target),
        "abstain_label": ABSTAIN,
        "summary": cal.summary,
    }


def dumps(cal: Calibrator) -> str:
    """The threshold file's text (floats in shortest round-trip repr)."""
    return json.dumps(to_dict(cal), indent=2, allow_nan=False) + "\n"


def save(cal: Calibrator, path: StrPath) -> None:
    """Write the threshold file atomically (temporary file, then rename)."""
    from .outputs import atomic_write

    atomic_write(path, dumps(cal).encode("utf-8"), role="threshold file")


__all__ = ["load", "parse", "from_dict", "to_dict", "dumps", "save", "check_class_names",
           "nesting_depth", "CALIBRATOR", "MAX_BYTES", "MAX_DEPTH", "SCHEMA_VERSION", "VERSIONS"]
