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
