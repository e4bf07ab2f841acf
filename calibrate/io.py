"""Reading score and label files, and writing outputs without half-written files.

Supported inputs: ``.npy`` (read in row chunks by :class:`.rows.NpyRows`, never
unpickled), ``.npz`` (named
arrays: scores under ``logits``, ``scores`` or ``probs``/``probabilities``,
labels under ``labels``), ``.pt`` (a tensor, or a dict of tensors under the
same names; ``torch.load(weights_only=True)``) and ``.csv`` (numbers, an
optional header line).  Every failure is a :class:`CalibrateError` naming the
file.

Every file is hostile until checked: it must be a regular file (a FIFO would
block, ``/dev/zero`` never ends), and no header is believed before it is
checked against the bytes that back it, so nothing allocates more than the
file can hold (``.npz`` members: at most deflate's 1032:1 ratio).
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from .errors import CalibrateError, invalid, quote
from .outputs import StrPath, atomic_write, check_writable, is_pattern  # noqa: F401
from .outputs import check_output_suffix as _check_suffix
from .rows import NpyRows, RowSource, ShardedRows, expand, open_regular, read_npy_header

if TYPE_CHECKING:  # pragma: no cover - annotations only: torch loads with a .pt file
    import torch

#: One path or glob, or a list of them (shards).
PathSpec = StrPath | Sequence[StrPath]
#: An array read from a file: in memory, or a row source read on demand (.npy).
FileArray = np.ndarray | RowSource
#: A function that writes an output to a binary stream.
Writer = Callable[[IO[bytes]], None]

SCORE_KEYS = ("logits", "scores", "probs", "probabilities", "log_probs")
LABEL_KEYS = ("labels", "targets", "y")
INPUT_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".csv")
OUTPUT_SUFFIXES = (".npy", ".csv", ".jsonl")
#: Deflate cannot inflate data by more than about 1032:1; a member declaring
#: more is lying (a zip bomb), whatever its stream would do.
DEFLATE_MAX_RATIO = 1032
#: A sparse tensor in a .pt is densified (losslessly) up to this many values.
SPARSE_DENSE_MAX = 1 << 24
#: The classes file is read whole; beyond this it is not a list of names.
CLASSES_MAX_BYTES = 64 << 20


def _suffix(path: StrPath) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def _where(path: StrPath, role: str) -> str:
    return f"{role} file {quote(path)}"


def read_capped(path: StrPath, where: str, cap: int) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes."""
    with open_regular(path, where) as fh:
        size = os.fstat(fh.fileno()).st_size
        data = fh.read(cap + 1) if size <= cap else b""
        if size > cap or len(data) > cap:
            raise invalid(where, f"a file of at most {cap >> 20} MiB",
                          f"{max(size, len(data)) / (1 << 20):.1f} MiB")
    return data


class _Lazy(dict[str, Any]):
    """Names of the arrays in a file; each array read (and checked) on access,
    so a file's other members cost nothing."""

    def __init__(self, names: Iterable[str], read: Callable[[str], np.ndarray]) -> None:
        super().__init__((n, None) for n in names)
        self._read = read

    def __getitem__(self, name: str) -> np.ndarray:
        return self._read(name)


def load_arrays(path: StrPath, role: str = "scores") -> Mapping[str, FileArray]:
    """All arrays in a file, as a mapping ``name -> ndarray`` (one array: ``{"": a}``).

    .npz and .pt dicts read (and check) an array only when it is looked up.
    """
    where = _where(path, role)
    suffix = _suffix(path)
    if suffix not in INPUT_SUFFIXES:
        raise invalid(where, "a .npy, .npz, .pt or .csv file",
                      quote(suffix) if suffix else "no extension")
    if suffix == ".npy":
        return {"": NpyRows(path, where)}
    if suffix == ".npz":
        return _load_npz(path, where)
    if suffix in (".pt", ".pth"):
        return _load_torch(path, where)
    return {"": _load_csv(path, where)}


# -- .npz ---------------------------------------------------------------------
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
               NotImplementedError, RuntimeError, OverflowError, MemoryError)


def _zip_reason(exc: BaseException) -> str:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"an unreadable zip archive ({detail})"


def _load_npz(path: StrPath, where: str) -> _Lazy:
    """The members of an .npz, read one by one on access (never unpickled)."""
    with open_regular(path, where) as fh:
        try:
            with zipfile.ZipFile(fh) as zf:
                names = [i.filename for i in zf.infolist()]
        except _ZIP_ERRORS as exc:
            raise invalid(where, "an .npz archive", _zip_reason(exc)) from None
    keys = [n[:-4] if n.endswith(".npy") else n for n in names]
    dup = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if dup is not None:
        raise invalid(where, "one array per name", f"{quote(dup)} twice")
    member = dict(zip(keys, names, strict=True))

    def read(key: str) -> np.ndarray:
        with open_regular(path, where) as fh:
            try:
                with zipfile.ZipFile(fh) as zf:
                    return _npz_member(zf, zf.getinfo(member[key]), f"{where} member {quote(key)}")
            except CalibrateError:
                raise
            except _ZIP_ERRORS as exc:
                raise invalid(f"{where} member {quote(key)}", "a readable array",
                              _zip_reason(exc)) from None
    return _Lazy(keys, read)


def _npz_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """One .npz member as an array, its header checked against the size the zip
    declares, and that size against what the compressed bytes can hold."""
    if info.flag_bits & 0x1:
        raise invalid(where, "an unencrypted member", "an encrypted one")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise invalid(where, "a stored or deflated member (as numpy writes)",
                      f"compression method {info.compress_type}")
    declared = info.file_size
    limit = (info.compress_size if info.compress_type == zipfile.ZIP_STORED
             else DEFLATE_MAX_RATIO * info.compress_size + 1024)
    if declared > limit:
        raise invalid(where, f"at most {limit} bytes from {info.compress_size} compressed",
                      f"{declared} bytes declared (a zip bomb)")
    with zf.open(info) as fh:
        h = read_npy_header(fh, where, declared)
        shape, dtype, fortran = h.shape, h.dtype, h.fortran
        out = np.empty(shape, dtype, order="F" if fortran else "C")
        view = out.reshape(-1, order="A").view(np.uint8).data if out.size else memoryview(b"")
        done = 0
        while done < len(view):
            chunk = fh.read(min(len(view) - done, 1 << 24))
            if not chunk:
                raise invalid(where, f"{len(view)} data bytes", f"{done} (a truncated member)")
            view[done:done + len(chunk)] = chunk
            done += len(chunk)
        if fh.read(1):
            raise invalid(where, f"{len(view)} data bytes", "more (bytes after the array)")
    if out.ndim == 0:
        raise invalid(where, "an array of rows", "a single number (a 0-d array)")
    return out


# -- .pt ----------------------------------------------------------------------
def _load_torch(path: StrPath, where: str) -> Mapping[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise invalid(where, "torch installed to read .pt files "
                      "(pip install 'calibrate-thresholds[torch]')", "no torch") from None
    with open_regular(path, where) as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notices (beta layouts) are not the user's
        try:
            # Invariants checked at load: a sparse tensor with out-of-range
            # indices would otherwise be built as it is and crash later.
            with torch.sparse.check_sparse_tensor_invariants():
                obj = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for refused or broken files
            raise invalid(where, "tensors loadable with weights_only=True (never unpickled)",
                          _torch_reason(exc)) from None
    if isinstance(obj, torch.Tensor):
        return {"": _tensor_to_numpy(obj, where)}
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        tensors = {str(k): v for k, v in obj.items()}
        return _Lazy(tensors, lambda k: _tensor_to_numpy(tensors[k], f"{where} entry {quote(k)}"))
    raise invalid(where, "a tensor or a dict of tensors", type(obj).__name__)


def _tensor_to_numpy(t: torch.Tensor, where: str) -> np.ndarray:
    """A loaded tensor as a numpy array, or one line saying why it cannot be.

    Lossless conversions only: float16, bfloat16 and float8 widen to float32
    (exact); a sparse tensor of at most ``SPARSE_DENSE_MAX`` values is
    densified.  Refused: nested (ragged), quantized, meta (no data), complex,
    and expanded tensors (more elements than their storage holds, e.g. a
    stride-0 view: reading them would allocate more than the file holds).
    """
    import torch

    kind = None
    if t.is_nested:
        kind = "a nested (ragged) tensor"
    elif t.is_quantized:
        kind = f"a quantized tensor ({t.dtype}; save t.dequantize() if that is what you mean)"
    elif t.device.type == "meta":
        kind = "a meta tensor (a shape without data)"
    elif t.is_complex():
        kind = f"a complex tensor ({t.dtype})"
    if kind:
        raise invalid(where, "a dense real tensor", kind)
    t = t.detach()
    if t.layout != torch.strided:
        n = math.prod(t.shape)
        if n > SPARSE_DENSE_MAX:
            raise invalid(where, f"a dense tensor, or a sparse one of at most {SPARSE_DENSE_MAX} "
                          "values (densified)", f"a {t.layout} tensor of shape {tuple(t.shape)} "
                          "(save t.to_dense())")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sparse layouts in beta warn on every use
            t = t.to_dense()
    elif t.numel() * t.element_size() > t.untyped_storage().nbytes():
        raise invalid(where, "a tensor backed by its own data",
                      f"an expanded view of {t.numel()} elements over "
                      f"{t.untyped_storage().nbytes()} bytes (save t.contiguous())")
    if t.is_floating_point() and t.element_size() < 4:
        t = t.float()  # float16 / bfloat16 / float8: exact in float32 (numpy has none of them)
    try:
        a = t.resolve_conj().resolve_neg().numpy()
    except (TypeError, RuntimeError) as exc:
        raise invalid(where, "a tensor numpy can hold", f"{t.dtype} ({exc})") from None
    if a.ndim == 0:
        raise invalid(where, "an array of rows", "a single number (a 0-d tensor)")
    return a


def _torch_reason(exc: BaseException) -> str:
    """The informative line of torch's refusal (the unsupported global), if any."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "Unsupported global" in ln or "Unsupported operand" in ln:
            return ln.rstrip(".") + " (refused)"
    if lines and lines[0].startswith("Weights only load failed"):
        return "objects that are not tensors (refused)"
    return lines[0][:200] if lines else type(exc).__name__


# -- .csv ---------------------------------------------------------------------
_BAD_FIELD = re.compile(r"could not convert string (.*) to float64 at row (\d+), column (\d+)")
_RAGGED = re.compile(r"number of columns changed from (\d+) to (\d+) at row (\d+)")


def _csv_reason(msg: str, first: int) -> str:
    """numpy's loadtxt error, with the line of the file (it counts data rows:
    from 0 for a bad field, from 1 for a row of another length)."""
    m = _BAD_FIELD.search(msg)
    if m:
        return (f"{m.group(1)} on line {int(m.group(2)) + first + 1}, column {m.group(3)}, "
                "which is not a number")
    m = _RAGGED.search(msg)
    if m:
        return (f"{m.group(2)} numbers on line {int(m.group(3)) + first} where the first row "
                f"has {m.group(1)}")
    return msg.splitlines()[0].rstrip(".")[:200]


def _load_csv(path: StrPath, where: str) -> np.ndarray:
    """Numbers separated by commas, one row a line, and an optional header line.

    A UTF-8 byte-order mark is skipped; the first line is a header only when
    none of its fields is a number (a row of numbers is data, and a line mixing
    names and numbers is refused rather than guessed); one line of numbers is
    one row (shape (1, K)), one column is a vector; empty lines are refused
    except at the end; ``#`` is not a comment.  Nothing is dropped silently.
    """
    with open_regular(path, where) as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid(where, "UTF-8 text", f"a byte {raw[exc.start]:#04x} at offset {exc.start} "
                      "that is not UTF-8") from None
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise invalid(where, "comma-separated numbers", "an empty file")
    first = 1 if _is_header(lines[0], where) else 0
    numbers = lines[first:]
    blank = next((i for i, ln in enumerate(numbers) if not ln.strip()), None)
    if blank is not None:
        raise invalid(where, "a row of numbers on every line",
                      f"line {blank + first + 1} empty")
    if not numbers:
        raise invalid(where, "comma-separated numbers", "a header and no rows")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.loadtxt(numbers, delimiter=",", comments=None, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise invalid(where, "comma-separated numbers", _csv_reason(str(exc), first)) from None
    if a.shape[0] != len(numbers):  # never expected: loadtxt skips no line given as a list
        raise invalid(where, f"{len(numbers)} rows", f"{a.shape[0]} read")
    if first and len(lines[0].split(",")) != a.shape[1]:
        raise invalid(where, f"a header of {a.shape[1]} names (one per column)",
                      f"{len(lines[0].split(','))}")
    return a[:, 0] if a.shape[1] == 1 else a


def _is_number(field: str) -> bool:
    try:
        np.float64(field.strip()) if field.strip() else float("x")
        return True
    except ValueError:
        return False


def _is_header(line: str, where: str) -> bool:
    fields = line.split(",")
    numeric = [_is_number(f) for f in fields]
    if all(numeric):
        return False
    if any(numeric):
        raise invalid(where, "a first line of column names or of numbers",
                      f"one mixing both ({quote(line[:60])}): a header is all names")
    return True


# -- scores and labels ----------------------------------------------------------
class ArrayChoiceWarning(UserWarning):
    """An .npz or .pt dict holds several arrays under the names that could be the
    scores (or the labels): the first name in order is read, and this says which."""


def _named(arrays: Mapping[str, Any], keys: tuple[str, ...], where: str, role: str) -> str | None:
    """The first of ``keys`` in ``arrays`` (None if none), with a warning naming
    the others when several are there."""
    found = [k for k in keys if k in arrays]
    if len(found) > 1:
        warnings.warn(f"{where}: holds {', '.join(quote(k) for k in found)}: read "
                      f"{quote(found[0])} as the {role} (the first in the order "
                      f"{', '.join(keys)})", ArrayChoiceWarning, stacklevel=4)
    return found[0] if found else None


def load_scores(path: StrPath,
                with_labels: bool = True) -> tuple[FileArray, FileArray | None]:
    """Scores from a file, and labels too when the file holds them (.npz/.pt
    dict) and ``with_labels`` (False: a labels member is not even read)."""
    arrays = load_arrays(path, "scores")
    if "" in arrays:
        return arrays[""], None
    key = _named(arrays, SCORE_KEYS, _where(path, "scores"), "scores")
    if key is None:
        raise invalid(_where(path, "scores"), "an array named " + ", ".join(SCORE_KEYS),
                      "arrays " + (", ".join(quote(k) for k in sorted(arrays)) or "none"))
    lab_key = _named(arrays, LABEL_KEYS, _where(path, "scores"), "labels") \
        if with_labels else None
    return arrays[key], (None if lab_key is None else arrays[lab_key])


def _is_many(spec: PathSpec) -> bool:
    return isinstance(spec, (list, tuple)) or is_pattern(cast(StrPath, spec))


def read_scores(spec: PathSpec,
                with_labels: bool = True) -> tuple[FileArray, FileArray | None]:
    """Scores (and labels, if the file holds them) from a path, a glob or a list.

    Several files are shards: ``.npy`` files whose rows are read end to end in
    sorted order (for a glob) or the given order (for a list), never
    concatenated in memory.
    """
    if not _is_many(spec):
        return load_scores(cast(StrPath, spec), with_labels)
    paths = expand(spec if isinstance(spec, (list, tuple)) else [cast(StrPath, spec)])
    if len(paths) == 1:
        return load_scores(paths[0], with_labels)
    bad = [p for p in paths if _suffix(p) != ".npy"]
    if bad:
        raise invalid(_where(bad[0], "scores"), "only .npy files when giving several shards",
                      quote(_suffix(bad[0])) if _suffix(bad[0]) else "no extension")
    parts = [load_arrays(p, "scores")[""] for p in paths]
    return ShardedRows(parts, f"scores shards ({len(parts)} files)"), None


def read_labels(spec: PathSpec, role: str = "labels") -> FileArray:
    """Labels from a path, a glob or a list.  Class ids (N,) are small and read
    whole (shards concatenated); an (N, C) ``.npy`` of multilabel indicators can
    be as large as the scores, so it stays a row source (shards end to end),
    read a block at a time."""
    if not _is_many(spec):
        return load_labels(cast(StrPath, spec), role)
    paths = expand(spec if isinstance(spec, (list, tuple)) else [cast(StrPath, spec)])
    parts = [load_labels(p, role) for p in paths]
    for p, a in zip(paths[1:], parts[1:], strict=True):
        if a.shape[1:] != parts[0].shape[1:]:
            dims = "".join(f", {n}" for n in parts[0].shape[1:])
            raise invalid(_where(p, role), f"{role} of shape (*{dims}) like the first shard",
                          f"shape {a.shape}")
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(a, RowSource) for a in parts):
        return ShardedRows(parts, f"{role} shards ({len(parts)} files)")
    return np.concatenate([np.asarray(a) for a in parts])


def load_labels(path: StrPath, role: str = "labels") -> FileArray:
    """Labels from a file (.npz/.pt dicts: the array named ``labels``); an (N, C)
    ``.npy`` with C > 1 stays a row source (:func:`read_labels`).  ``role``
    names the file in errors (another small per-row array: "groups")."""
    arrays = load_arrays(path, role)
    if "" in arrays:
        a = arrays[""]
        # ((N, 1) is a column of class ids or binary labels: small, read whole)
        return a if isinstance(a, RowSource) and a.ndim == 2 and a.shape[1] > 1 \
            else np.asarray(a)
    key = _named(arrays, LABEL_KEYS, _where(path, role), role)
    if key is None:
        raise invalid(_where(path, role), "an array named " + ", ".join(LABEL_KEYS),
                      "arrays " + (", ".join(quote(k) for k in sorted(arrays)) or "none"))
    return arrays[key]


def load_class_names(path: StrPath) -> list[str]:
    """One class name per non-empty line (surrounding spaces stripped), checked
    as the threshold file checks them: distinct, no control characters."""
    from .schema import check_class_names

    where = f"classes file {quote(path)}"
    raw = read_capped(path, where, CLASSES_MAX_BYTES)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid(where, "a UTF-8 text file, one name a line", f"a byte "
                      f"{raw[exc.start]:#04x} at offset {exc.start} that is not UTF-8") from None
    names = [ln.strip() for ln in text.split("\n") if ln.strip()]
    return check_class_names(names, where)


def check_output_suffix(path: StrPath, allowed: Iterable[str] = OUTPUT_SUFFIXES,
                        role: str = "output") -> str:
    """Refuse an output path whose extension names no format we write."""
    return _check_suffix(path, allowed, role)


def _npy_header(fh: IO[bytes], shape: Sequence[int], dtype: npt.DTypeLike | None) -> None:
    np.lib.format.write_array_header_1_0(fh, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False, "shape": tuple(shape)})


def _counted(blocks: Iterable[np.ndarray], n_rows: int) -> Iterator[np.ndarray]:
    """``blocks`` as they come, refusing to end on another row count than the
    header declared (a .npy whose header lied would be a silent wrong answer)."""
    seen = 0
    for b in blocks:
        seen += len(b)
        yield b
    if seen != n_rows:
        raise CalibrateError(f"output: expected {n_rows} rows, found {seen} (internal error)")


def prediction_writer(suffix: str, blocks: np.ndarray | Iterable[np.ndarray],
                      classes: Sequence[str], abstain: int = -1,
                      shape: Sequence[int] | None = None,
                      dtype: npt.DTypeLike | None = None) -> Writer:
    """A function writing decision ``blocks`` (arrays of consecutive rows) to a
    binary stream in the format of ``suffix``, one block at a time."""
    if isinstance(blocks, np.ndarray):
        shape, dtype, blocks = blocks.shape, blocks.dtype, [blocks]
    assert shape is not None, "blocks of rows come with their total shape"
    multilabel = len(shape) == 2
    blocks = _counted(blocks, shape[0])

    if suffix == ".npy":
        def write(fh: IO[bytes]) -> None:
            _npy_header(fh, shape, dtype)
            for b in blocks:
                fh.write(np.ascontiguousarray(b, dtype=dtype).tobytes())
        return write

    names = [_csv_field(c) for c in classes] if suffix == ".csv" else list(classes)

    def lines(d: np.ndarray) -> Iterator[str]:
        for r in d:
            if suffix == ".csv":
                if multilabel:
                    yield ",".join("1" if v else "0" for v in r)
                else:
                    yield f"{int(r)},{names[r] if r != abstain else ''}"
            elif multilabel:
                yield json.dumps({"labels": [names[j] for j in np.flatnonzero(r)]})
            else:
                v = int(r)
                yield json.dumps({"prediction": v, "label": names[v] if v != abstain else None})

    def write_text(fh: IO[bytes]) -> None:
        if suffix == ".csv":
            head = ",".join(names) if multilabel else "prediction,label"
            fh.write((head + "\n").encode("utf-8"))
        for b in blocks:
            fh.write("".join(line + "\n" for line in lines(b)).encode("utf-8"))
    return write_text


def array_writer(suffix: str, array: Any,
                 shape: Sequence[int] | None = None,
                 dtype: npt.DTypeLike | None = None) -> Writer:
    """A function writing a float array (or row blocks of the total ``shape``
    and ``dtype``) to a binary stream as .npy or .csv, one block at a time."""
    if isinstance(array, np.ndarray) or shape is None:
        a = np.asarray(array)
        shape, dtype, array = a.shape, a.dtype, [a]
    blocks = _counted(array, shape[0])

    def write(fh: IO[bytes]) -> None:
        if suffix == ".npy":
            _npy_header(fh, shape, dtype)
        for b in blocks:
            b = np.ascontiguousarray(b, dtype=dtype)
            if suffix == ".npy":
                fh.write(b.tobytes())
            else:
                np.savetxt(fh, b.reshape(len(b), -1), delimiter=",", fmt="%.9g")
    return write


def write_predictions(path: StrPath, decisions: np.ndarray | Iterable[np.ndarray],
                      classes: Sequence[str], abstain: int = -1,
                      shape: Sequence[int] | None = None,
                      dtype: npt.DTypeLike | None = None) -> None:
    """Write decisions by extension: .npy (the array), .csv or .jsonl.

    ``decisions`` is an array, or an iterable of row blocks with the total
    ``shape`` and ``dtype`` given (written as they come: memory stays flat).
    csv/jsonl rows carry the class id and name (multiclass/binary; empty name
    for an abstention), or one 0/1 column per class (multilabel).
    """
    suffix = check_output_suffix(path)
    atomic_write(path, prediction_writer(suffix, decisions, classes, abstain, shape, dtype))


def write_predictions_to(fh: IO[bytes], suffix: str,
                         decisions: np.ndarray | Iterable[np.ndarray], classes: Sequence[str],
                         abstain: int = -1, shape: Sequence[int] | None = None,
                         dtype: npt.DTypeLike | None = None) -> None:
    """:func:`write_predictions` into an open binary stream (e.g. stdout)."""
    prediction_writer(suffix, decisions, classes, abstain, shape, dtype)(fh)


def write_array(path: StrPath, array: Any,
                shape: Sequence[int] | None = None, dtype: npt.DTypeLike | None = None) -> None:
    """Write a float array by extension (.npy or .csv).

    ``array`` is an array, or an iterable of row blocks with the total
    ``shape`` and ``dtype`` given (written as they come: memory stays flat).
    """
    suffix = check_output_suffix(path, (".npy", ".csv"))
    atomic_write(path, array_writer(suffix, array, shape, dtype))


#: First characters that make a spreadsheet run a cell as a formula (OWASP,
#: "CSV Injection"); such a cell gets a leading single quote.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


#: A plain decimal number: a spreadsheet reads "-1" or "+1" as one, never runs it.
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _csv_field(name: object) -> str:
    """A class name as a CSV cell: quoted when it holds a comma, a quote or a
    line break, and prefixed with ``'`` when a spreadsheet would run it (it
    starts with = + - @, a tab or a carriage return, and is not a plain number:
    the classes "-1" and "+1" stay as they are)."""
    s = str(name)
    if s.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(s):
        s = "'" + s
    return '"' + s.replace('"', '""') + '"' if any(ch in s for ch in ',"\r\n') else s
