"""Writing outputs: every file of a command, or none, and never a partial one.

An :class:`Outputs` transaction is declared before any work is done.  Each
output path is checked up front (an extension we write, an existing writable
folder, a name the file system takes, a regular writable file if one is to be
replaced, no clash with another output or with any input), so a bad name costs
nothing.  Each output is then written to a temporary file beside its target
and :meth:`Outputs.commit` renames them all at the end, with signals held off;
any failure, Ctrl-C or SIGTERM before that removes the temporary files and
leaves every existing file as it was.  Should a rename fail half-way (the
folder made read-only meanwhile), the files already replaced are put back
from hard links taken just before.

Decisions where the contract is silent:

- A replaced file keeps its permission bits (setuid, setgid and sticky bits
  dropped) and, where the OS allows, its owner and group; a new file gets
  ``0666`` less the umask.
- An output that is a symbolic link is written through to the file it points
  to (the link stays a link); a link to nothing or a link loop is refused.
- A folder, FIFO, device or socket is never replaced, nor a read-only file.
"""

from __future__ import annotations

import contextlib
import errno
import glob as _glob
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from types import FrameType, TracebackType
from typing import IO, Any, Literal

from .errors import CalibrateError, invalid, quote

#: A file name: a string or a path object.
StrPath = str | os.PathLike[str]
#: What an output gets: its bytes, or a function that writes them to a binary file.
Data = bytes | Callable[[IO[bytes]], object]

TEMP_PREFIX = ".calibrate-"


class OutputClash(CalibrateError):
    """Two outputs, or an output and an input, are one file: a usage error."""

    exit_code = 2


class StreamError(CalibrateError):
    """Writing to a standard stream (stdout) failed."""


class Terminated(BaseException):
    """SIGINT, SIGTERM or SIGHUP under the command line's handler, raised where
    the program is, so that every exit runs the same clean-up (a BaseException,
    like KeyboardInterrupt: ``except Exception`` does not swallow it)."""

    def __init__(self, signum: int, done: str | None = None) -> None:
        super().__init__(signum)
        self.signum, self.done = signum, done


# -- signals ------------------------------------------------------------------
_held: dict[str, Any] = {"depth": 0, "pending": None, "done": None}


def on_signal(signum: int, frame: FrameType | None = None) -> None:
    """Signal handler for SIGINT, SIGTERM and SIGHUP (installed by the command
    line): raise :class:`Terminated` where the program is, or at the end of
    :func:`signals_held` (a rename sequence, or a temporary file just made)."""
    if _held["depth"]:
        _held["pending"] = _held["pending"] or signum
        return
    raise Terminated(signum)


@contextlib.contextmanager
def signals_held(done: str | None = None) -> Iterator[None]:
    """Defer :func:`on_signal` until the block ends (a mask would not do: Python
    runs handlers in the main thread whichever thread the signal reaches).
    ``done``: what the block achieved, told with a signal raised at its end."""
    _held["depth"] += 1
    finished = False
    try:
        yield
        finished = True
    finally:
        _held["depth"] -= 1
        if not _held["depth"] and _held["pending"]:
            signum, _held["pending"] = _held["pending"], None
            raise Terminated(signum, done if finished else None)


# -- checks -------------------------------------------------------------------
def one_of(items: Iterable[str]) -> str:
    """``'.a'``, ``'.a or .b'``, ``'.a, .b or .c'``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def suffix_of(path: StrPath) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def check_output_suffix(path: StrPath, allowed: Iterable[str], role: str = "output") -> str:
    """Refuse an output path whose extension names no format we write."""
    suffix = suffix_of(path)
    if suffix not in allowed:
        raise invalid(f"{role} {quote(path)}", f"a {one_of(allowed)} file",
                      quote(suffix) if suffix else "no extension")
    return suffix


def os_reason(exc: OSError) -> str:
    """An OSError in words: ``'No space left on device' (ENOSPC)``."""
    code = errno.errorcode.get(exc.errno, "") if exc.errno else ""
    text = exc.strerror or type(exc).__name__
    return f"'{text}'" + (f" ({code})" if code else "")


def write_error(where: str, exc: OSError) -> CalibrateError:
    return invalid(where, "the file written", f"an OS error, {os_reason(exc)}; nothing replaced")


def _pathconf(folder: str, name: str, default: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return default


def _umask() -> int:
    """The process umask, read without setting it where the OS allows (setting
    it, even briefly, races with threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_target(path: StrPath, role: str = "output") -> tuple[str, os.stat_result | None]:
    """Check one output path before any work; return ``(target, replaced)``:
    the file the bytes go to (a link resolved) and its ``os.stat`` result if it
    exists (None otherwise)."""
    raw = os.fspath(path)
    where = f"{role} {quote(raw)}"
    if not raw or "\0" in raw:
        raise invalid(where, "a file name", "an empty name" if not raw else "a NUL byte in it")
    _check_name_length(raw, where)
    try:
        st = os.lstat(raw)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise invalid(where, "a usable file name", os_reason(exc)) from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        try:
            os.stat(raw)
        except OSError as exc:
            found = ("a link loop" if exc.errno == errno.ELOOP
                     else f"a link to nothing ({quote(os.readlink(raw))})")
            raise invalid(where, "a file or a link to one", found) from None
    target = os.path.realpath(raw) if st is not None and stat.S_ISLNK(st.st_mode) else raw
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise invalid(where, "an existing folder", f"no folder {quote(folder)}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise invalid(where, "a writable folder", f"no write permission on {quote(folder)}")
    if not os.path.basename(target) or raw.endswith(os.sep):
        raise invalid(where, "a file path", "a folder")
    _check_name_length(target, where)
    try:
        replaced = os.stat(target)
    except FileNotFoundError:
        return target, None
    except OSError as exc:
        raise invalid(where, "a usable file name", os_reason(exc)) from None
    if not stat.S_ISREG(replaced.st_mode):
        raise invalid(where, "a regular file to write", file_kind(replaced.st_mode))
    # Write bits checked too: root may write anything, but a file its owner
    # made read-only is one they meant to keep.
    if not os.access(target, os.W_OK) or not replaced.st_mode & 0o222:
        raise invalid(where, "a writable file to replace",
                      f"a read-only file (mode {stat.S_IMODE(replaced.st_mode):04o})")
    return target, replaced


def _check_name_length(path: str, where: str) -> None:
    """The name (in bytes) within the file system's limit: checked up front, as
    the final rename would fail only after all the work."""
    folder = os.path.dirname(os.path.abspath(path))
    name = os.fsencode(os.path.basename(path))
    name_max = _pathconf(folder if os.path.isdir(folder) else "/", "PC_NAME_MAX", 255)
    if len(name) > name_max:
        raise invalid(where, f"a file name of at most {name_max} bytes", f"{len(name)} bytes")


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, word in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return word
    return "not a regular file"


def _same_file(a: StrPath, b: StrPath) -> bool:
    """Same path once links are resolved, or the same inode (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


# -- the transaction ----------------------------------------------------------
class Output:
    """One declared output: where it goes and how it is named in messages."""

    def __init__(self, path: StrPath, option: str, role: str, target: str,
                 replaced: os.stat_result | None) -> None:
        self.path, self.option, self.role = os.fspath(path), option, role
        self.target, self.replaced = target, replaced
        self.suffix = suffix_of(path)
        self.tmp: str | None = None

    @property
    def where(self) -> str:
        return f"{self.role} {quote(self.path)}"


def is_pattern(path: StrPath) -> bool:
    """Whether ``path`` is a glob pattern (``*``, ``?``, ``[``): a path that
    names an existing file or folder is taken as it is, even with those
    characters in its name (``run[1].npy`` is that file, not ``run1.npy``)."""
    p = os.fspath(path)
    return any(ch in p for ch in "*?[") and not os.path.lexists(p)


class Outputs:
    """The outputs of one command, written as one (see the module docstring).

    ``inputs``: ``(role, path)`` pairs (globs expanded) no output may be.
    Use as a context manager: leaving it without :meth:`commit` (an error, a
    signal) removes every temporary file.
    """

    def __init__(self, inputs: Iterable[tuple[str, StrPath | None]] = ()) -> None:
        self.inputs: list[tuple[str, str]] = []
        for role, spec in inputs:
            if spec is None:
                continue
            spec = os.fspath(spec)
            found = sorted(_glob.glob(spec)) if is_pattern(spec) else [spec]
            self.inputs += [(role, p) for p in found]
        self.outputs: list[Output] = []

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        self.abort()
        return False

    def declare(self, path: StrPath, option: str, suffixes: Iterable[str],
                role: str = "output") -> Output:
        """Check an output before any work (see :func:`check_target`) and
        against every input and earlier output: the same file is a usage
        error (:class:`OutputClash`)."""
        check_output_suffix(path, suffixes, role)
        for other in self.outputs:
            if _same_file(path, other.path):
                raise OutputClash(f"{option} {quote(path)}: expected a file apart from "
                                  f"{other.option} {quote(other.path)}, found the same file")
        for in_role, p in self.inputs:
            if _same_file(path, p):
                raise OutputClash(f"{option} {quote(path)}: expected a file that is not an "
                                  f"input, found the {in_role} {quote(p)}")
        target, replaced = check_target(path, role)
        out = Output(path, option, role, target, replaced)
        self.outputs.append(out)
        return out

    def write(self, out: Output, data: Data) -> None:
        """Write ``data`` (bytes, or a function of a binary file) to ``out``'s
        temporary file.  An OS error becomes a one-line error naming ``out``."""
        folder = os.path.dirname(os.path.abspath(out.target))
        try:
            with signals_held():  # the file must be known before a signal can strike
                fd, out.tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=folder)
            with os.fdopen(fd, "wb") as fh:
                r = out.replaced
                # mkstemp makes 0600: a new file gets the umask's mode, a replaced one its own.
                os.fchmod(fd, stat.S_IMODE(r.st_mode) & 0o777 if r else 0o666 & ~_umask())
                if r is not None and (r.st_uid, r.st_gid) != (os.geteuid(), os.getegid()):
                    with contextlib.suppress(OSError):
                        os.fchown(fd, r.st_uid if os.geteuid() == 0 else -1, r.st_gid)
                data(fh) if callable(data) else fh.write(data)
                fh.flush()
                os.fsync(fd)
        except OSError as exc:
            raise write_error(out.where, exc) from None

    def commit(self) -> None:
        """Rename every written output over its target, all or none."""
        with signals_held(done="every output was written"):
            backups: list[str] = []
            done: list[tuple[Output, str | None]] = []
            pending = [(out, out.tmp) for out in self.outputs if out.tmp is not None]
            try:
                for out, tmp in pending:
                    # A lone rename is atomic by itself: nothing to put back.
                    keep = out.replaced is not None and len(pending) > 1
                    backup = _backup(out.target) if keep else None
                    if backup:
                        backups.append(backup)
                    try:
                        os.replace(tmp, out.target)
                    except OSError as exc:
                        _roll_back(done)
                        raise write_error(out.where, exc) from None
                    out.tmp = None
                    done.append((out, backup))
            finally:
                for b in backups:
                    with contextlib.suppress(OSError):
                        os.unlink(b)

    def abort(self) -> None:
        """Remove every temporary file not yet renamed."""
        for out in self.outputs:
            if out.tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(out.tmp)
                out.tmp = None


def _backup(target: str) -> str | None:
    """A hard link to ``target`` beside it, to put it back if a later rename
    fails; None where the file system has no hard links (best effort)."""
    folder, name = os.path.split(os.path.abspath(target))
    for _ in range(8):
        link = os.path.join(folder, f"{TEMP_PREFIX}{os.urandom(6).hex()}.bak")
        try:
            os.link(target, link)
            return link
        except FileExistsError:
            continue
        except OSError:
            return None
    return None


def _roll_back(done: list[tuple[Output, str | None]]) -> None:
    for out, backup in reversed(done):
        with contextlib.suppress(OSError):
            if backup:
                os.replace(backup, out.target)
            else:
                os.unlink(out.target)


def atomic_write(path: StrPath, data: Data, role: str = "output") -> None:
    """Write one file atomically: bytes, or a function of a binary file."""
    with Outputs() as tx:
        out = Output(path, role, role, *check_target(path, role))
        tx.outputs.append(out)
        tx.write(out, data)
        tx.commit()


def check_writable(path: StrPath, role: str = "output") -> str:
    """The folder an output goes to, after :func:`check_target`'s checks."""
    target, _ = check_target(path, role)
    return os.path.dirname(os.path.abspath(target))


def write_stream(fh: IO[bytes], data: Data, name: str = "stdout") -> None:
    """Write bytes (or call ``data(fh)``) to an open stream and flush it; an OS
    error (a full device, a closed pipe) becomes a :class:`StreamError`."""
    try:
        data(fh) if callable(data) else fh.write(data)
        fh.flush()
    except OSError as exc:
        raise stream_error(name, exc) from None


def stream_error(name: str, exc: OSError) -> StreamError:
    return StreamError(f"{name}: expected the output written, found an OS error, "
                       f"{os_reason(exc)}")
