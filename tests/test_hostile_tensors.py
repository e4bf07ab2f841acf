"""Issue 10, family 5: tensors numpy cannot take, in a ``.pt`` file.

Refused with one line: nested (ragged), quantized, meta (no data), complex,
expanded views (more elements than their storage: reading them would allocate
more than the file holds), 0-d, sparse tensors with indices out of range, and
sparse tensors too large to densify.  Converted, losslessly and as documented:
float16 / bfloat16 / float8 (widened to float32, exact) and sparse tensors of
at most 2**24 values (densified).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from hostile_helpers import assert_clean_failure, invoke, make_data, snapshot

torch = pytest.importorskip("torch")


def _bad_sparse():
    i = torch.tensor([[0, 500], [1, 0]])
    return torch.sparse_coo_tensor(i, torch.tensor([1.0, 2.0]), (300, 10), check_invariants=False)


# (id, logits tensor from z, words in the line)
REFUSED = [
    ("nested", lambda z: torch.nested.nested_tensor([z[0], z[1, :5]]), ["nested (ragged)"]),
    ("quantized", lambda z: torch.quantize_per_tensor(z, 0.1, 0, torch.qint8),
     ["quantized", "qint8", "dequantize"]),
    ("quantized-per-channel", lambda z: torch.quantize_per_channel(
        z, torch.full((10,), 0.1, dtype=torch.float64), torch.zeros(10, dtype=torch.int64), 1,
        torch.quint8), ["quantized"]),
    ("meta", lambda z: torch.empty(300, 10, device="meta"), ["meta tensor"]),
    ("complex", lambda z: z.to(torch.complex64), ["complex", "complex64"]),
    ("complex128", lambda z: z.to(torch.complex128), ["complex128"]),
    ("expanded", lambda z: torch.randn(1, 10).expand(300, 10),
     ["expanded view of 3000 elements over 40 bytes"]),
    ("expanded-huge", lambda z: torch.randn(1, 10).expand(10 ** 9, 10),
     ["10000000000 elements"]),
    ("zero-d", lambda z: torch.tensor(1.5), ["a single number"]),
    ("sparse-too-large", lambda z: torch.sparse_coo_tensor(
        torch.tensor([[0], [0]]), torch.tensor([1.0]), (300, 100_000)),
     ["sparse one of at most 16777216", "to_dense"]),
    ("sparse-out-of-range", lambda z: _bad_sparse(), ["index 500"]),
]


@pytest.mark.parametrize("make, must", [pytest.param(m, w, id=i) for i, m, w in REFUSED])
@pytest.mark.parametrize("layout", ["tensor", "dict"])
def test_tensors_numpy_cannot_take_are_refused(tmp_path, monkeypatch, make, must, layout):
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    t = make(torch.from_numpy(z))
    torch.save(t if layout == "tensor" else {"logits": t, "labels": torch.from_numpy(y)}, "x.pt")
    args = (["apply", "t.json", "x.pt", "-o", "out.npy"] if layout == "tensor"
            else ["fit", "x.pt", "-o", "out.json"])
    before = snapshot(tmp_path)
    res = invoke(args)
    assert_clean_failure(res, 1, ["scores file 'x.pt'", *must], tmp_path, before)


def _labels_as(kind, y):
    y = torch.from_numpy(y)
    if kind == "labels-nested":
        return torch.nested.nested_tensor([y[:3], y[3:5]])
    if kind == "labels-meta":
        return torch.empty(300, dtype=torch.int64, device="meta")
    return torch.quantize_per_tensor(y.float(), 1.0, 0, torch.quint8)


@pytest.mark.parametrize("kind", ["labels-nested", "labels-meta", "labels-quantized"])
def test_bad_label_tensors_are_refused(tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    torch.save(_labels_as(kind, y), "lab.pt")
    before = snapshot(tmp_path)
    res = invoke(["fit", "z.npy", "--labels", "lab.pt", "-o", "out.json"])
    assert_clean_failure(res, 1, ["labels file 'lab.pt'", "a dense real tensor"], tmp_path,
                         before)


# ---- accepted: the conversion is lossless, so the fit equals the numpy fit
ACCEPTED = [
    ("sparse-coo", lambda z, y: {"logits": z.to_sparse(), "labels": y}),
    ("sparse-coo-uncoalesced", lambda z, y: {"logits": torch.sparse_coo_tensor(
        torch.cat([z.to_sparse().indices()] * 2, 1), torch.cat([z.to_sparse().values() / 2] * 2),
        z.shape), "labels": y}),
    ("sparse-csr", lambda z, y: {"logits": z.to_sparse_csr(), "labels": y}),
    ("sparse-labels", lambda z, y: {"logits": z, "labels": y.to_sparse()}),
    ("float16-exact", lambda z, y: {"logits": z.half(), "labels": y}),
    ("bfloat16-exact", lambda z, y: {"logits": z.bfloat16(), "labels": y}),
    ("float8-exact", lambda z, y: {"logits": z.to(torch.float8_e4m3fn), "labels": y}),
    ("non-contiguous", lambda z, y: {"logits": z.t().contiguous().t(), "labels": y}),
    ("view-of-larger-storage", lambda z, y: {"logits": torch.cat([z, z])[300:], "labels": y}),
    ("a-meta-tensor-nobody-reads", lambda z, y: {"logits": z, "labels": y,
                                                  "extra": torch.empty(5, device="meta")}),
]


def _reference(t):
    """The float32 values the conversion must give, computed independently."""
    if t.layout != torch.strided:
        t = t.to_dense()
    a = t.float().numpy() if t.is_floating_point() else t.numpy()
    return np.ascontiguousarray(a)


@pytest.mark.parametrize("make", [pytest.param(m, id=i) for i, m in ACCEPTED])
def test_lossless_conversions_fit_as_numpy(tmp_path, monkeypatch, make):
    monkeypatch.chdir(tmp_path)
    z, y = make_data(tmp_path)
    d = make(torch.from_numpy(z), torch.from_numpy(y))
    torch.save(d, "x.pt")
    np.save("ref_z.npy", _reference(d["logits"]))
    np.save("ref_y.npy", _reference(d["labels"]))
    assert invoke(["fit", "ref_z.npy", "--labels", "ref_y.npy", "-o", "ref.json"]).code == 0
    res = invoke(["fit", "x.pt", "-o", "out.json"])
    assert res.code == 0, res
    a, b = json.loads(Path("ref.json").read_text()), json.loads(Path("out.json").read_text())
    assert b["temperature"] == a["temperature"]
    assert b["decision_thresholds"] == a["decision_thresholds"]
