"""Issue 10, family 4: lying file headers, and files that are not files.

``.npy`` headers with negative, overflowing or absurd shapes, shape products
that wrap in int64, versions numpy does not define; ``.npz`` members that
declare more than their compressed bytes can hold or inflate beyond what they
declare; FIFOs, devices and folders under an input's name.  One line each,
never an allocation larger than the file can hold (the rows marked ``AS`` run
under a 1 GiB address-space limit), and a FIFO never blocks.
"""

import io
import os
import resource
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hostile_helpers import assert_clean_failure, invoke, make_data, run, snapshot


def npy(header, data=b"", version=(1, 0), length=None):
    """A .npy file with this header text, whatever it says."""
    h = header.encode("latin-1")
    pad = (64 - (12 + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    fmt = "<H" if version == (1, 0) else "<I"
    return (b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(h) if length is None else length)
            + h + data)


def hdr(shape, descr="'<f4'", fortran="False"):
    return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"


def npy_bytes(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def patch_declared_size(path, member, size):
    """Rewrite a zip member's declared uncompressed size (local and central headers)."""
    b = bytearray(Path(path).read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    struct.pack_into("<I", b, info.header_offset + 22, size)
    i = b.find(b"PK\x01\x02")
    while i >= 0:
        n = struct.unpack_from("<H", b, i + 28)[0]
        if bytes(b[i + 46:i + 46 + n]) == member.encode():
            struct.pack_into("<I", b, i + 24, size)
        i = b.find(b"PK\x01\x02", i + 1)
    Path(path).write_bytes(bytes(b))


# ---- .npy: (name, file bytes, words in the line); each is tried as scores and as labels
NPY = [
    ("negative-dim", npy(hdr("(-1, 10)")), ["shape", "(-1, 10)"]),
    ("wraps-to-zero", npy(hdr("(4294967296, 4294967296)", "'<i8'")),
     ["147573952589676412928 data bytes", "found 0"]),
    ("wraps-to-small", npy(hdr("(4611686018427387905, 4)", "'<i8'"), b"\0" * 32),
     ["147573952589676412960 data bytes", "found 32"]),
    ("absurd-rows", npy(hdr("(1099511627776, 10)"), b"\0" * 40),
     ["43980465111040 data bytes", "truncated"]),
    ("huge-int-dim", npy(hdr(f"({10 ** 40},)")), ["data bytes", str(4 * 10 ** 40)]),
    ("bool-dim", npy(hdr("(True, 10)"), b"\0" * 40), ["shape", "True"]),
    ("list-shape", npy(hdr("[1, 10]"), b"\0" * 40), ["shape", "[1, 10]"]),
    ("float-dim", npy(hdr("(1.0, 10)"), b"\0" * 40), ["shape"]),
    ("too-many-dims", npy(hdr("(1,) * 40".replace("(1,) * 40", "(" + "1, " * 40 + ")")),
                         b"\0" * 4), ["shape"]),
    ("empty-with-huge-rows", npy(hdr("(0, 1099511627776)")), ["empty array", "16777216"]),
    ("version-9.9", npy(hdr("(1, 10)"), b"\0" * 40, version=(9, 9)), ["format version 9.9"]),
    ("version-0.0", npy(hdr("(1, 10)"), b"\0" * 40, version=(0, 0)), ["format version 0.0"]),
    ("header-length-2GiB", npy(hdr("(1, 10)"), b"\0" * 40, version=(2, 0), length=1 << 31),
     ["header of 2147483648 bytes"]),
    ("header-longer-than-file", npy(hdr("(1, 10)"), b"", length=60000), ["header of 60000"]),
    ("header-is-code", npy("__import__('os').system('touch PWNED')"), ["unreadable header"]),
    ("header-deeply-nested", npy("{'descr': '<f4', 'fortran_order': False, 'shape': "
                                 + "(" * 3000 + ")" * 3000 + "}"), ["unreadable header"]),
    ("header-extra-key", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                             b"\0" * 4), ["unreadable header"]),
    ("fortran-not-bool", npy(hdr("(1, 10)", fortran="'yes'"), b"\0" * 40), ["fortran_order"]),
    ("descr-object", npy(hdr("(2,)", "'|O'"), b"\0" * 16), ["object array"]),
    ("descr-string", npy(hdr("(1, 10)", "'<U5'"), b"\0" * 200), ["numeric array", "<U5"]),
    ("descr-structured", npy(hdr("(1, 10)", "[('a', '<f4')]"), b"\0" * 40), ["numeric array"]),
    ("descr-subarray", npy(hdr("(1, 10)", "('<f4', (1000000000,))"), b"\0" * 40), ["dtype"]),
    ("descr-void0", npy(hdr(f"({10 ** 12}, 10)", "'|V0'")), ["numeric array", "V0"]),
    ("descr-complex", npy(hdr("(1, 10)", "'<c8'"), b"\0" * 80), ["numeric array", "complex64"]),
    ("descr-datetime", npy(hdr("(1, 10)", "'<M8[s]'"), b"\0" * 80), ["numeric array"]),
    ("descr-garbage", npy(hdr("(1, 10)", "'zz'"), b"\0" * 40), ["dtype"]),
    ("bytes-after-array", npy(hdr("(1, 10)"), b"\0" * 80), ["40 data bytes", "found 80",
                                                             "bytes after the array"]),
    ("no-magic", b"0.1,0.2\n" * 20, ["no .npy magic"]),
    ("eof-in-magic", b"\x93NUM", ["EOF"]),
]
AS_LIMITED = {"wraps-to-zero", "wraps-to-small", "absurd-rows", "empty-with-huge-rows",
              "header-length-2GiB", "descr-void0"}


@pytest.mark.parametrize("role", ["scores", "labels"])
@pytest.mark.parametrize("data, must", [pytest.param(d, m, id=i) for i, d, m in NPY])
def test_lying_npy_refused(tmp_path, monkeypatch, role, data, must):
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    Path("bad.npy").write_bytes(data)
    args = (["apply", "t.json", "bad.npy", "-o", "out.npy"] if role == "scores"
            else ["fit", "z.npy", "--labels", "bad.npy", "-o", "out.json"])
    before = snapshot(tmp_path)
    assert_clean_failure(invoke(args), 1, [f"{role} file 'bad.npy'", *must], tmp_path, before)
    assert not Path("PWNED").exists()


def _as_limit():
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("data, must", [pytest.param(d, m, id=i) for i, d, m in NPY
                                        if i in AS_LIMITED])
def test_lying_npy_allocates_nothing(tmp_path, data, must):
    """Under a 1 GiB address space the same refusal, not a MemoryError."""
    make_data(tmp_path)
    (tmp_path / "bad.npy").write_bytes(data)
    before = snapshot(tmp_path)
    res = run(["apply", "t.json", "bad.npy", "-o", "out.npy"], tmp_path, preexec=_as_limit)
    assert_clean_failure(res, 1, must, tmp_path, before)


# ---- .npz: builders write bad.npz from the valid z, y
def _npz_member_too_big(z, y):
    np.savez_compressed("bad.npz", logits=z, labels=y)
    patch_declared_size("bad.npz", "logits.npy", 0xFFFFFFF0)
    return ["zip bomb", "4294967280 bytes declared"]


def _npz_header_lies(z, y):
    member = npy(hdr("(25000000000,)", "'<f8'"), b"\0" * 100)
    with zipfile.ZipFile("bad.npz", "w") as zf:
        zf.writestr("logits.npy", member)
        zf.writestr("labels.npy", npy_bytes(y))
    return ["member 'logits'", "200000000000 data bytes", "found 100"]


def _npz_inflates_beyond_declared(z, y):
    with zipfile.ZipFile("bad.npz", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("logits.npy", npy_bytes(np.zeros((2_000_000, 10), np.float32)))
        zf.writestr("labels.npy", npy_bytes(y))
    patch_declared_size("bad.npz", "logits.npy", 1000)
    return ["member 'logits'"]


def _npz_duplicate_member(z, y):
    with zipfile.ZipFile("bad.npz", "w") as zf:
        zf.writestr("logits.npy", npy_bytes(z))
        zf.writestr("labels.npy", npy_bytes(y))
        with pytest.warns(UserWarning):
            zf.writestr("logits.npy", npy_bytes(-z))
    return ["one array per name", "'logits' twice"]


def _npz_bzip2(z, y):
    with zipfile.ZipFile("bad.npz", "w", compression=zipfile.ZIP_BZIP2) as zf:
        zf.writestr("logits.npy", npy_bytes(z))
        zf.writestr("labels.npy", npy_bytes(y))
    return ["stored or deflated", "compression method 12"]


def _npz_not_npy_member(z, y):
    with zipfile.ZipFile("bad.npz", "w") as zf:
        zf.writestr("logits", b"just some bytes here")
        zf.writestr("labels.npy", npy_bytes(y))
    return ["member 'logits'", "no .npy magic"]


def _npz_object_member(z, y):
    np.savez("bad.npz", logits=np.array([1, "a"], dtype=object), labels=y)
    return ["member 'logits'", "object array"]


def _npz_zero_d(z, y):
    np.savez("bad.npz", logits=np.float32(1.5), labels=y)
    return ["a single number"]


def _npz_bad_crc(z, y):
    np.savez("bad.npz", logits=z, labels=y)
    b = bytearray(Path("bad.npz").read_bytes())
    b[b.find(b"\x93NUMPY") + 300] ^= 0xFF
    Path("bad.npz").write_bytes(bytes(b))
    return ["Bad CRC-32"]


def _npz_truncated(z, y):
    np.savez("bad.npz", logits=z, labels=y)
    Path("bad.npz").write_bytes(Path("bad.npz").read_bytes()[:5000])
    return ["an .npz archive"]


def _npz_not_zip(z, y):
    Path("bad.npz").write_text("not a zip file at all")
    return ["an .npz archive", "not a zip file"]


def _npz_lying_npy_version(z, y):
    with zipfile.ZipFile("bad.npz", "w") as zf:
        zf.writestr("logits.npy", npy(hdr("(300, 10)"), z.tobytes(), version=(7, 0)))
        zf.writestr("labels.npy", npy_bytes(y))
    return ["format version 7.0"]


NPZ = [_npz_member_too_big, _npz_header_lies, _npz_inflates_beyond_declared,
       _npz_duplicate_member, _npz_bzip2, _npz_not_npy_member, _npz_object_member, _npz_zero_d,
       _npz_bad_crc, _npz_truncated, _npz_not_zip, _npz_lying_npy_version]
NPZ_AS = {_npz_member_too_big, _npz_header_lies, _npz_inflates_beyond_declared}


@pytest.mark.parametrize("build", NPZ, ids=[f.__name__[5:] for f in NPZ])
def test_lying_npz_refused(tmp_path, monkeypatch, build):
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    must = build(z, y)
    before = snapshot(tmp_path)
    res = invoke(["fit", "bad.npz", "-o", "out.json"])
    assert_clean_failure(res, 1, ["scores file 'bad.npz'", *must], tmp_path, before)


@pytest.mark.parametrize("build", sorted(NPZ_AS, key=lambda f: f.__name__),
                         ids=lambda f: f.__name__[5:])
def test_lying_npz_allocates_nothing(tmp_path, monkeypatch, build):
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    must = build(z, y)
    before = snapshot(tmp_path)
    res = run(["fit", "bad.npz", "-o", "out.json"], tmp_path, preexec=_as_limit)
    assert_clean_failure(res, 1, must, tmp_path, before)


def test_npz_reads_only_the_members_it_needs(tmp_path, monkeypatch):
    """A broken member nobody asked for costs nothing: scores and labels load."""
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    with zipfile.ZipFile("ok.npz", "w") as zf:
        zf.writestr("logits.npy", npy_bytes(z))
        zf.writestr("labels.npy", npy_bytes(y))
        zf.writestr("junk.npy", npy(hdr(f"({10 ** 12},)", "'<f8'")))
    assert invoke(["fit", "ok.npz", "-o", "a.json"]).code == 0
    assert invoke(["fit", "z.npy", "--labels", "y.npy", "-o", "b.json"]).code == 0
    assert Path("a.json").read_text() == Path("b.json").read_text()
    # labels given apart: the file's own labels member is never read, broken or not
    with zipfile.ZipFile("nolab.npz", "w") as zf:
        zf.writestr("logits.npy", npy_bytes(z))
        zf.writestr("labels.npy", npy(hdr(f"({10 ** 12},)", "'<i8'")))
    assert invoke(["fit", "nolab.npz", "--labels", "y.npy", "-o", "c.json"]).code == 0
    assert Path("c.json").read_text() == Path("b.json").read_text()
    assert invoke(["apply", "t.json", "nolab.npz", "-o", "d.npy"]).code == 0


def test_valid_odd_npy_files_read_exactly(tmp_path, monkeypatch):
    """What the checks let through reads exactly: big-endian, version 2.0 and
    3.0 headers, Fortran order inside an .npz."""
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    np.save("be.npy", z.astype(">f4"))
    Path("v2.npy").write_bytes(npy(hdr("(300, 10)"), z.tobytes(), version=(2, 0)))
    Path("v3.npy").write_bytes(npy(hdr("(300, 10)"), z.tobytes(), version=(3, 0)))
    np.savez("f.npz", logits=np.asfortranarray(z), labels=y)
    assert invoke(["apply", "t.json", "z.npy", "-o", "ref.npy"]).code == 0
    for f in ("be.npy", "v2.npy", "v3.npy", "f.npz"):
        assert invoke(["apply", "t.json", f, "-o", "d.npy"]).code == 0, f
        assert np.array_equal(np.load("d.npy"), np.load("ref.npy")), f


# ---- files that are not regular files, under every input's name
def _special(kind, name):
    if kind == "fifo":
        os.mkfifo(name)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", name)
    elif kind == "folder":
        os.mkdir(name)
    return {"fifo": "a FIFO", "dev-zero": "a character device", "folder": "a folder"}[kind]


SPECIAL_ARGS = {
    "scores.npy": ["apply", "t.json", "IN", "-o", "out.npy"],
    "scores.npz": ["apply", "t.json", "IN", "-o", "out.npy"],
    "scores.pt": ["apply", "t.json", "IN", "-o", "out.npy"],
    "scores.csv": ["apply", "t.json", "IN", "-o", "out.npy"],
    "labels.npy": ["fit", "z.npy", "--labels", "IN", "-o", "out.json"],
    "labels.csv": ["fit", "z.npy", "--labels", "IN", "-o", "out.json"],
    "names.txt": ["fit", "z.npy", "--labels", "y.npy", "--classes", "IN", "-o", "out.json"],
    "shard.npy": ["apply", "t.json", "z.npy", "IN", "-o", "out.npy"],
}


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
@pytest.mark.parametrize("name", sorted(SPECIAL_ARGS))
def test_inputs_that_are_not_files(tmp_path, monkeypatch, name, kind):
    """Refused at once; FIFOs in a subprocess with a timeout (one must not block)."""
    if name.endswith(".pt"):
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path)
    found = _special(kind, name)
    args = [name if a == "IN" else a for a in SPECIAL_ARGS[name]]
    before = snapshot(tmp_path)
    res = run(args, tmp_path, timeout=60) if kind == "fifo" else invoke(args)
    if kind == "folder" and name == "names.txt":
        # click's own check of a --classes folder (dir_okay=False): a usage error
        assert_clean_failure(res, 2, [name], tmp_path, before)
    else:
        assert_clean_failure(res, 1, [f"'{name}'", "a regular file", found], tmp_path, before)
