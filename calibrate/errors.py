"""The one exception users see, and the one wording every validation error uses."""

from __future__ import annotations


class CalibrateError(ValueError):
    """Bad data, a bad file or a bad option.

    The message is one line: ``<where>: expected <what>, found <what>``.  The
    command line prints it to stderr and exits with code 1; library callers
    can catch it as a ``ValueError``.
    """


#: Bidirectional controls: they reorder how the rest of a line is displayed.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_char(ch: str) -> bool:
    """A character that must not reach a terminal or a CSV cell as it is: a
    control character (``\\n``, ``\\r``, ESC...), a lone surrogate, a line or
    paragraph separator, or a bidirectional control."""
    import unicodedata

    return unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in BIDI_CONTROLS


def quote(text: object) -> str:
    """A user's string (a path, a name) for a message: in single quotes, with
    every :func:`unsafe_char` escaped, so the message stays one honest line."""
    import os

    if isinstance(text, (bytes, os.PathLike)):
        text = os.fspath(text)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "backslashreplace")
    text = str(text)
    return "'" + "".join(ascii(ch)[1:-1] if unsafe_char(ch) else ch for ch in text) + "'"


def invalid(where: str, expected: str, found: str) -> CalibrateError:
    """Build the error for ``where`` (a file, an array or an option name)."""
    return CalibrateError(f"{where}: expected {expected}, found {found}")


def check_unit_interval(where: str, value: object, allow_none: bool = False) -> float | None:
    """``value`` as a float strictly between 0 and 1 (a probability option or
    field), accepting any real number type but not bools; None if allowed."""
    import math
    import numbers

    if value is None and allow_none:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(float(value)) or not 0 < float(value) < 1):
        expected = "a number strictly between 0 and 1" + (", or None" if allow_none else "")
        raise invalid(where, expected, repr(value))
    return float(value)
