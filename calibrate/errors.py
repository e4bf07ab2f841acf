"""The one exception users see, and the one wording every validation error uses."""


class CalibrateError(ValueError):
    """Bad data, a bad file or a bad option.

    The message is one line: ``<where>: expected <what>, found <what>``.  The
    command line prints it to stderr and exits with code 1; library callers
    can catch it as a ``ValueError``.
    """


def invalid(where, expected, found):
    """Build the error for ``where`` (a file, an array or an option name)."""
    return CalibrateError(f"{where}: expected {expected}, found {found}")


def check_unit_interval(where, value, allow_none=False):
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
