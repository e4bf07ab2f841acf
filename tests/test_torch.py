"""PyTorch integration: tensors in fit/predict, the GPU path, ThresholdHead, collect, .pt files.

The GPU path (scores kept on their device, torch kernels for the passes) is
checked on CPU tensors by forcing it; the CUDA tests run where a GPU exists.
"""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import special

torch = pytest.importorskip("torch")

import calibrate  # noqa: E402
from calibrate import backends, rules  # noqa: E402
from calibrate import scores as _scores  # noqa: E402
from calibrate.backends import torch_kernels as tk  # noqa: E402
from calibrate.backends.torch import TorchBackend  # noqa: E402
from calibrate.torch import SoftmaxOutputWarning, ThresholdHead, collect  # noqa: E402
from conftest import make_binary, make_multiclass, make_multilabel  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

SAMPLE = "sample_data"


def _sample(name):
    if name == "multiclass":
        return (np.load(f"{SAMPLE}/val_logits.npy"), np.load(f"{SAMPLE}/val_labels.npy"),
                np.load(f"{SAMPLE}/test_logits.npy"))
    v, t = np.load(f"{SAMPLE}/{name}_val.npz"), np.load(f"{SAMPLE}/{name}_test.npz")
    return v["logits"], v["labels"], t["logits"]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)


@pytest.fixture
def device_path(monkeypatch):
    """Send CPU tensors through the on-device path (torch kernels), and count
    the kernel calls to prove it."""
    calls = {"softmax": 0, "sigmoid": 0, "top": 0}
    monkeypatch.setattr(backends, "DEVICE_TYPES", ("cuda", "cpu"))
    for name, key in (("softmax_stats", "softmax"), ("sigmoid_stats", "sigmoid"),
                      ("top_log_prob", "top")):
        orig = getattr(tk, name)

        def spy(*a, _orig=orig, _key=key, **k):
            calls[_key] += 1
            return _orig(*a, **k)
        monkeypatch.setattr(tk, name, spy)
    return calls


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _decisions_agree(a, b, scores, thresholds, tol=1e-6):
    """Decisions equal, except where a score is within tol of a threshold."""
    diff = a != b
    if not diff.any():
        return True
    near = np.abs(scores[..., None] - np.asarray(thresholds)).min(-1) <= tol
    return bool(np.all(near[diff.reshape(diff.shape[0], -1).any(-1)]))


# -- the module is torch itself inside, and import calibrate stays light --------

def test_calibrate_torch_uses_the_real_torch_and_calibrate_does_not_import_it():
    import calibrate.torch as ct
    assert ct.torch is sys.modules["torch"] and hasattr(ct.torch, "Tensor")
    assert "calibrate" not in Path(ct.torch.__file__).parts
    code = "import sys, calibrate; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- fit on tensors: the on-device path agrees with numpy ------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel"])
def test_device_path_fit_matches_numpy(device_path, task, dtype):
    make = {"multiclass": make_multiclass, "binary": make_binary,
            "multilabel": make_multilabel}[task]
    z, y = make(seed=3, n=3000, dtype=dtype)
    a = calibrate.fit(z, y)
    b = calibrate.fit(_t(z), _t(y))
    assert device_path["softmax" if task == "multiclass" else "sigmoid"] >= 3
    assert b.task == a.task == task and b.input_kind == "logits"
    np.testing.assert_allclose(np.asarray(b.temperature), np.asarray(a.temperature), rtol=1e-6)
    assert b.summary["temperature"]["status"] == a.summary["temperature"]["status"]
    # held-out decisions: identical (thresholds sit midway between scores)
    assert np.array_equal(b.predict(z), a.predict(z))
    pa, pb = a.summary["per_class"], b.summary["per_class"]
    assert [r["predicted"] for r in pa] == [r["predicted"] for r in pb]
    assert [r["status"] for r in pa] == [r["status"] for r in pb]
    assert b.summary["nll"]["after"] == pytest.approx(a.summary["nll"]["after"], rel=1e-6)


def test_device_path_on_sample_data_and_new_data(device_path):
    zv, yv, zt = _sample("multiclass")
    a = calibrate.fit(zv, yv)
    b = calibrate.fit(_t(zv), _t(yv))
    assert device_path["top"] >= 1
    assert b.temperature == pytest.approx(a.temperature, rel=1e-6)
    for rule in ("per-class", "global"):
        da, db = a.predict(zt, rule=rule), b.predict(zt, rule=rule)
        k, logp = calibrate.rules.top_scores(zt, a.temperature)
        taus = [v for v in a.decision_thresholds["per_class"] + [a.decision_thresholds["global"]]
                if v is not None]
        assert _decisions_agree(da, db, logp, taus)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_kernels_match_the_numpy_passes(dtype):
    z, y = make_multiclass(seed=9, n=3000, dtype=dtype)
    for beta in (0.3, 1.0):
        a = backends.as_backend(z).softmax_stats(y, beta, nll_at_one=True)
        b = TorchBackend(_t(z)).softmax_stats(y, beta, True, True)
        keys = ("nll", "gradient", "curvature", "gradient_at_zero", "nll_at_one")
        np.testing.assert_allclose([getattr(b, k) for k in keys], [getattr(a, k) for k in keys],
                                   rtol=1e-6, atol=1e-9)
    zm, ym = make_multilabel(seed=9, n=3000, dtype=dtype)
    beta = np.array([0.3, 0.5, 1.0])
    for with_g0 in (True, False):
        a = backends.as_backend(zm).sigmoid_stats(ym.astype(dtype), beta, nll_at_one=True,
                                                  with_g0=with_g0)
        b = TorchBackend(_t(zm)).sigmoid_stats(ym, beta, nll_at_one=True, with_g0=with_g0)
        for x, w in zip(list(b.__dict__.values())[:5], list(a.__dict__.values())[:5],
                        strict=True):
            np.testing.assert_allclose(x, w, rtol=1e-6, atol=1e-9)
        # NLL'(0) only when asked for (a fit's first pass), zeros otherwise
        assert np.all(b.gradient_at_zero != 0) == with_g0
        assert np.all(b.gradient_at_zero == 0) != with_g0
    k, lp = rules.top_scores(z, 2.5)
    kt, lpt = TorchBackend(_t(z)).top_scores(2.5)
    assert np.array_equal(k, kt)
    np.testing.assert_allclose(lpt, lp, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["probabilities", "log-probabilities"])
def test_device_path_detects_and_converts_inputs_like_numpy(device_path, kind):
    z, y = make_multiclass(seed=4, n=2000, dtype=np.float64)
    s = special.softmax(z, axis=1) if kind == "probabilities" else special.log_softmax(z, axis=1)
    a = calibrate.fit(s, y)
    b = calibrate.fit(_t(s), _t(y))
    assert a.input_kind == b.input_kind == kind
    assert b.temperature == pytest.approx(a.temperature, rel=1e-6)
    assert np.array_equal(a.predict(s), b.predict(s))


def test_device_path_binary_two_columns_and_sigmoid_probabilities(device_path):
    z, y = make_binary(seed=5, n=2000, dtype=np.float64)
    two = np.stack([-z / 2, z / 2], axis=1)
    a = calibrate.fit(z, y)
    b = calibrate.fit(_t(two), _t(y), task="binary")
    assert b.task == "binary" and b.temperature == pytest.approx(a.temperature, rel=1e-6)
    assert np.array_equal(a.predict(z), b.predict(two))
    p = special.expit(z)
    with pytest.warns(_scores.InputKindWarning):
        c = calibrate.fit(_t(p), _t(y))
    assert c.input_kind == "probabilities"
    assert c.temperature == pytest.approx(a.temperature, rel=1e-5)


def test_device_path_multilabel_shared_temperature(device_path):
    z, y = make_multilabel(seed=6, n=2000, c=4)
    y[:, 2] = 0
    y[:4, 2] = 1                                  # 4 positives: too few for its own T
    a = calibrate.fit(z, y)
    b = calibrate.fit(_t(z), _t(y))
    assert b.summary["temperature"]["status"] == a.summary["temperature"]["status"]
    assert b.summary["temperature"]["status"][2] == "shared"
    np.testing.assert_allclose(b.temperature, a.temperature, rtol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (lambda z, y: (z.index_fill(0, torch.tensor([3]), float("nan")), y),
     "scores: expected finite scores, found NaN"),
    (lambda z, y: (z, y + 20), "labels: expected class ids in [0, 10), found the value"),
    (lambda z, y: (z[:, :1].repeat(1, 3)[:, :0], y),
     "scores: expected at least one score column, found shape (300, 0)"),
    (lambda z, y: (z[:0], y[:0]), "scores: expected at least one row, found an empty array"),
    (lambda z, y: (-z, y), "expected a model better than chance"),
])
def test_device_path_refuses_bad_data_with_the_numpy_message(device_path, bad, message):
    z, y = make_multiclass(seed=7, n=300)
    zs, ys = bad(_t(z), _t(y))
    with pytest.raises(calibrate.CalibrateError) as e:
        calibrate.fit(zs, ys)
    assert message in str(e.value)


def test_half_precision_tensors_are_fitted_exactly_in_float32():
    z, y = make_multiclass(seed=8, n=2000)
    zb = _t(z).to(torch.bfloat16)
    ref = calibrate.fit(zb.float().numpy(), y)
    assert calibrate.fit(zb, _t(y)).temperature == ref.temperature
    assert np.array_equal(ref.predict(zb.float().numpy()),
                          calibrate.fit(zb, _t(y)).predict(zb))


def test_predict_and_predict_proba_accept_tensors():
    zv, yv, zt = _sample("multiclass")
    cal = calibrate.fit(zv, yv)
    assert np.array_equal(cal.predict(_t(zt)), cal.predict(zt))
    assert np.array_equal(cal.predict_proba(_t(zt)), cal.predict_proba(zt))
    grad = _t(zt).clone().requires_grad_(True)
    assert np.array_equal(cal.predict(grad), cal.predict(zt))


# -- ThresholdHead -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", ["per-class", "global"])
def test_head_reproduces_predict_multiclass(dtype, rule):
    zv, yv, zt = _sample("multiclass")
    cal = calibrate.fit(zv, yv)
    head = ThresholdHead(cal, rule=rule)
    for z in (zv.astype(dtype), zt.astype(dtype)):
        d, p = head(_t(z))
        assert d.dtype == torch.int64 and p.dtype == _t(z).dtype
        assert np.array_equal(d.numpy(), cal.predict(z, rule=rule))
        np.testing.assert_allclose(p.numpy(), cal.predict_proba(z),
                                   atol=1e-6 if dtype == np.float32 else 1e-13)
    assert (head(_t(zt))[0] == -1).any()             # it does abstain


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_head_reproduces_predict_binary_in_every_shape(dtype):
    zv, yv, zt = _sample("binary")
    cal = calibrate.fit(zv, yv)
    head = ThresholdHead(cal)
    want = cal.predict(zt.astype(dtype))
    assert 0 < want.mean() < 1
    for z in (zt, zt[:, None], np.stack([np.zeros_like(zt), zt], axis=1)):
        z = z.astype(dtype)
        d, p = head(_t(z))
        assert d.dtype == torch.int64 and d.shape == (len(zt),)
        assert np.array_equal(d.numpy(), want)
        assert np.array_equal(d.numpy(), cal.predict(z) if z.ndim == 1 or z.shape[1] == 1
                              else calibrate.fit(np.stack([np.zeros_like(zv), zv], 1), yv,
                                                 task="binary").predict(z))
        np.testing.assert_allclose(p.numpy(), cal.predict_proba(zt.astype(dtype)),
                                   atol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_head_reproduces_predict_multilabel(dtype):
    zv, yv, zt = _sample("multilabel")
    cal = calibrate.fit(zv, yv)
    for rule in ("per-class", "global"):
        head = ThresholdHead(cal, rule=rule)
        for z in (zv.astype(dtype), zt.astype(dtype)):
            d, p = head(_t(z))
            assert d.dtype == torch.bool and d.shape == z.shape
            assert np.array_equal(d.numpy(), cal.predict(z, rule=rule))
            np.testing.assert_allclose(p.numpy(), cal.predict_proba(z),
                                       atol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("task, transform", [
    ("multiclass", lambda z: special.softmax(z.astype(np.float64), axis=1)),
    ("multiclass", lambda z: special.log_softmax(z.astype(np.float64), axis=1)),
    ("multilabel", lambda z: special.expit(z.astype(np.float64))),
    ("multilabel", lambda z: special.log_expit(z.astype(np.float64))),
    ("binary", lambda z: np.stack([special.expit(-z), special.expit(z)], 1).astype(np.float64)),
])
def test_head_takes_the_input_kind_the_file_was_fitted_on(task, transform):
    zv, yv, zt = _sample(task)
    sv, st = transform(zv), transform(zt)
    kw = {"task": "binary"} if task == "binary" else {}
    if task == "multilabel" and sv.max() <= 0:
        kw["input_kind"] = "log-probabilities"
    cal = calibrate.fit(sv, yv, **kw)
    assert cal.input_kind != "logits"
    head = ThresholdHead(cal)
    d, p = head(_t(st))
    assert np.array_equal(d.numpy(), cal.predict(st))
    np.testing.assert_allclose(p.numpy(), cal.predict_proba(st), atol=1e-12)


def test_head_from_a_file_and_a_null_threshold(tmp_path):
    z, y = make_multiclass(seed=25, n=3000)
    y = y.copy()
    noisy = z.argmax(1) == 3
    y[noisy] = np.random.default_rng(0).integers(0, 10, noisy.sum())
    cal = calibrate.fit(z, y, confidence=None)
    assert cal.thresholds["per_class"][3] is None
    cal.save(tmp_path / "t.json")
    head = ThresholdHead(tmp_path / "t.json")
    assert torch.isinf(head.thresholds[3]) and head.thresholds[3] > 0
    d, _ = head(_t(z))
    assert not (d == 3).any() and np.array_equal(d.numpy(), cal.predict(z))
    assert head.classes == cal.classes and "multiclass" in repr(head)


def test_head_state_dict_round_trip_with_weights_only():
    zv, yv, zt = _sample("multiclass")
    a = ThresholdHead(calibrate.fit(zv, yv))
    other = calibrate.fit(zv[:2000], yv[:2000], precision=0.8)
    b = ThresholdHead(other)
    assert not torch.equal(a.thresholds, b.thresholds)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert set(a.state_dict()) == {"temperature", "inv_temperature", "thresholds"}
    for k, v in a.state_dict().items():
        assert v.dtype == torch.float64 and torch.equal(v, b.state_dict()[k])
    x = _t(zt)
    assert all(torch.equal(u, v) for u, v in zip(a(x), b(x), strict=True))


def test_head_keeps_float64_thresholds_when_the_model_is_cast():
    zv, yv, zt = _sample("multiclass")
    cal = calibrate.fit(zv, yv)
    model = torch.nn.Sequential(torch.nn.Identity(), ThresholdHead(cal))
    model.half()
    head = model[1]
    assert head.thresholds.dtype == torch.float64 and head.temperature.dtype == torch.float64
    x = _t(zt).half()
    d, p = model(x)
    assert p.dtype == torch.float16
    assert np.array_equal(d.numpy(), cal.predict(x))     # both compute in float32


def test_head_refuses_a_wrong_class_count_and_abstains_on_nan():
    zv, yv, zt = _sample("multiclass")
    head = ThresholdHead(calibrate.fit(zv, yv))
    with pytest.raises(ValueError, match="class count"):
        head(_t(zt[:, :5]))
    x = _t(zt[:4]).clone()
    x[1, 2] = float("nan")
    assert head(x)[0][1] == -1
    with pytest.raises(TypeError):
        ThresholdHead(42)


@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel"])
def test_head_torchscript(task):
    zv, yv, zt = _sample(task)
    head = ThresholdHead(calibrate.fit(zv, yv))
    scripted = torch.jit.script(head)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    x = _t(zt)
    want = head(x)
    for m in (scripted, loaded):
        got = m(x)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_head_torch_export_with_a_dynamic_batch(task):
    zv, yv, zt = _sample(task)
    cal = calibrate.fit(zv, yv)
    head = ThresholdHead(cal)
    ep = torch.export.export(head, (_t(zt),),
                             dynamic_shapes={"scores": {0: torch.export.Dim("batch")}})
    for n in (len(zt), 37):
        got = ep.module()(_t(zt[:n]))
        assert np.array_equal(got[0].numpy(), cal.predict(zt[:n]))
        assert torch.equal(got[1], head(_t(zt[:n]))[1])


# -- collect -------------------------------------------------------------------

class _Net(torch.nn.Module):
    """Dropout and batch norm: outputs differ between train and eval mode."""

    def __init__(self, softmax=False, kind="tensor"):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.BatchNorm1d(16),
                                        torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                        torch.nn.Linear(16, 3))
        self.softmax, self.kind = softmax, kind

    def forward(self, x):
        z = self.body(x)
        if self.softmax:
            z = torch.softmax(z, dim=1)
        if self.kind == "tuple":
            return z, x
        if self.kind == "dict":
            return {"logits": z}
        return z


def _loader(n=100, dict_batches=False):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    ds = torch.utils.data.TensorDataset(x, y)
    if dict_batches:
        ds = [{"x": a, "labels": b} for a, b in ds]
    return torch.utils.data.DataLoader(ds, batch_size=32), x, y


def test_collect_runs_in_eval_mode_without_gradients_and_restores_the_mode():
    net = _Net()
    net.train()
    loader, x, y = _loader()
    stats_before = net.body[1].running_mean.clone()
    z, labels = collect(net, loader)
    assert net.training                                         # restored
    assert torch.equal(net.body[1].running_mean, stats_before)  # BN statistics untouched
    assert not z.requires_grad and z.grad_fn is None
    assert all(p.grad is None for p in net.parameters())
    net.eval()
    with torch.no_grad():
        assert torch.allclose(z, net(x), atol=1e-6)              # eval-mode outputs
    assert torch.equal(labels, y) and z.shape == (100, 3)
    net.train()
    with torch.no_grad():
        assert not torch.allclose(z, net(x), atol=1e-3)          # train mode would differ


@pytest.mark.parametrize("kind", ["tuple", "dict"])
def test_collect_takes_dict_batches_and_structured_outputs(kind):
    net = _Net(kind=kind)
    loader, x, y = _loader(dict_batches=True)

    class Kw(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

    z, labels = collect(Kw(), loader)
    net.eval()
    want = net(x)
    want = want[0] if kind == "tuple" else want["logits"]
    assert torch.allclose(z, want, atol=1e-6) and torch.equal(labels, y)


def test_collect_warns_when_the_model_outputs_softmax_probabilities():
    loader, x, y = _loader()
    with pytest.warns(SoftmaxOutputWarning, match="remove the final softmax"):
        z, labels = collect(_Net(softmax=True), loader)
    cal = calibrate.fit(z, labels, confidence=None, precision=0.5)
    assert cal.input_kind == "probabilities"                 # never read as logits


def test_collect_then_fit_then_head():
    net = _Net()
    loader, x, y = _loader(n=300)
    z, labels = collect(net, loader, device="cpu")
    cal = calibrate.fit(z, labels, confidence=None, precision=0.34)
    head = ThresholdHead(cal)
    d, p = torch.nn.Sequential(net.eval(), head)(x)
    assert np.array_equal(d.numpy(), cal.predict(z))


# -- .pt files on the command line ---------------------------------------------

def _fit_pt(tmp_path, name, z, y):
    from click.testing import CliRunner

    from calibrate_cli.main import cli
    torch.save({"logits": z, "labels": _t(y)}, tmp_path / name)
    r = CliRunner().invoke(cli, ["fit", str(tmp_path / name), "-o", str(tmp_path / "t.json")])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception                               # a traceback, not a clean error
    assert r.exit_code == 0, r.output
    return calibrate.load(tmp_path / "t.json")


def test_cli_reads_a_pt_tensor_that_requires_grad(tmp_path):
    z, y = make_multiclass(seed=30, n=1000)
    cal = _fit_pt(tmp_path, "grad.pt", _t(z).requires_grad_(True), y)
    assert cal.temperature == pytest.approx(calibrate.fit(z, y).temperature, rel=1e-12)


def test_cli_reads_bfloat16_pt(tmp_path):
    z, y = make_multiclass(seed=30, n=1000)
    zb = _t(z).to(torch.bfloat16)
    cal = _fit_pt(tmp_path, "bf16.pt", zb, y)
    assert cal.temperature == pytest.approx(
        calibrate.fit(zb.float().numpy(), y).temperature, rel=1e-12)


def test_cli_refuses_a_pickled_module_in_pt_without_running_it(tmp_path):
    from click.testing import CliRunner

    from calibrate_cli.main import cli
    torch.save(_Net(), tmp_path / "model.pt")                 # a whole pickled model
    r = CliRunner().invoke(cli, ["fit", str(tmp_path / "model.pt")])
    assert r.exit_code == 1
    assert "weights_only" in r.output and "Traceback" not in r.output


# -- CUDA (run where a GPU exists) ---------------------------------------------

@cuda
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel"])
def test_cuda_fit_matches_numpy(task, monkeypatch):
    make = {"multiclass": make_multiclass, "binary": make_binary,
            "multilabel": make_multilabel}[task]
    z, y = make(seed=40, n=20000)
    seen = []
    orig = tk.softmax_stats if task == "multiclass" else tk.sigmoid_stats

    def spy(zz, *a, **k):
        seen.append(zz.device.type)
        return orig(zz, *a, **k)
    monkeypatch.setattr(tk, orig.__name__, spy)
    a = calibrate.fit(z, y)
    b = calibrate.fit(_t(z).cuda(), _t(y).cuda())
    assert seen and set(seen) == {"cuda"}
    np.testing.assert_allclose(np.asarray(b.temperature), np.asarray(a.temperature), rtol=1e-5)
    assert np.array_equal(b.predict(z), a.predict(z))
    assert np.array_equal(b.predict(_t(z).cuda()), a.predict(z))


@cuda
def test_cuda_head_and_collect():
    zv, yv, zt = _sample("multiclass")
    cal = calibrate.fit(zv, yv)
    head = ThresholdHead(cal).cuda()
    d, p = head(_t(zt).cuda())
    assert d.device.type == "cuda" and p.device.type == "cuda"
    assert np.array_equal(d.cpu().numpy(), cal.predict(zt))
    net = _Net()
    loader, x, y = _loader()
    z, labels = collect(net, loader, device="cuda")
    assert z.device.type == "cuda" and labels.device.type == "cuda"
    z2, _ = collect(net, loader, device="cuda", out_device="cpu")
    assert z2.device.type == "cpu"


@pytest.mark.parametrize("task, method", [
    ("binary", "temperature"), ("binary", "platt"), ("binary", "isotonic"),
    ("multilabel", "temperature"), ("multilabel", "platt"), ("multilabel", "isotonic"),
    ("multiclass", "temperature"), ("multiclass", "vector"), ("multiclass", "mix"),
])
def test_head_takes_an_empty_batch(task, method):
    # isotonic reshaped its columns with -1, which an empty batch cannot resolve
    zv, yv, zt = _sample(task)
    head = ThresholdHead(calibrate.fit(zv, yv, method=method))
    d3, p3 = head(_t(zt[:3]))
    for m in (head, torch.jit.script(head)):
        d, p = m(_t(zt[:0]))
        assert d.shape == (0,) + tuple(d3.shape[1:]) and p.shape == (0,) + tuple(p3.shape[1:])
        assert d.dtype == d3.dtype and p.dtype == p3.dtype
