"""Torch versions of the fit passes, for scores that live on a GPU.

``calibrate.fit`` keeps a tensor that is not on the CPU where it is: input
detection, logit recovery, the temperature passes and the argmax scores run
with torch ops on its device.  Only results of one value per decision unit
(the argmax class and its log-probability for multiclass) and per-class sums
come back to the CPU, where the threshold search runs as for numpy.  CPU
tensors take the numpy path (zero-copy), unless a caller forces this one
(the tests do, to compare the two).

The math is that of :mod:`.temperature` and :mod:`.rules`: max-shifted
logits, element-wise work in the logits' dtype, row results and sums
accumulated in float64.  Rows are processed in chunks so that temporaries
stay bounded.

This module imports torch; nothing imports it unless it was handed a tensor.
"""

import math
import weakref

import numpy as np
import torch

from . import scores as _scores
from .errors import invalid
from .rows import RowSource

#: Elements per chunk: about 64 MiB of float32 per temporary.
_CHUNK_ELEMENTS = 1 << 24

_F64 = torch.float64


def _row_chunks(n, c):
    rows = max(1, _CHUNK_ELEMENTS // max(1, int(c)))
    return [slice(a, min(a + rows, n)) for a in range(0, n, rows)]


def as_float_tensor(x, name="scores"):
    """A detached floating tensor: integers and bool become float64, float16
    and bfloat16 become float32 (exact); anything else is refused."""
    x = x.detach()
    if x.is_complex():
        raise invalid(name, "a numeric array", f"dtype {x.dtype}")
    if not x.is_floating_point():
        return x.to(_F64)
    if x.element_size() < 4:
        return x.to(torch.float32)
    return x


# -- input detection and logits ---------------------------------------------

def row_stats(scores):
    """The statistics :func:`calibrate.scores.detect_input_kind` needs, on the
    tensor's device: finiteness, min, max, and row-sum / logsumexp spread."""
    x = scores if scores.ndim == 2 else scores.reshape(-1, 1)
    c = x.shape[1]
    inf = math.inf
    nan = posinf = neginf = False
    if not bool(torch.isfinite(x).all()):
        nan = bool(torch.isnan(x).any())
        posinf = bool(torch.isposinf(x).any())
        neginf = bool(torch.isneginf(x).any())
        if nan:
            return dict(nan=True, posinf=posinf, neginf=neginf, min=math.nan,
                        max=math.nan, sum_err=inf, lse_err=inf)
    lo, hi = float(x.min()), float(x.max())
    sum_err = lse_err = inf
    if c > 1 and _scores.in_unit_range(lo, hi):
        sum_err = max(float((x[s].sum(dim=1, dtype=_F64) - 1.0).abs().max())
                      for s in _row_chunks(x.shape[0], c))
    if c > 1 and hi <= _scores._SUM_TOL:
        lse_err = max(float(torch.logsumexp(x[s].to(_F64), dim=1).abs().max())
                      for s in _row_chunks(x.shape[0], c))
    return dict(nan=nan, posinf=posinf, neginf=neginf, min=lo, max=hi,
                sum_err=sum_err, lse_err=lse_err)


def _softmax_logits(x, input_kind):
    """Softmax-task scores -> logits, as :func:`calibrate.scores._softmax_logits`."""
    if input_kind == "logits":
        return x
    tiny = torch.finfo(x.dtype).tiny
    if input_kind == "log-probabilities":
        return torch.clamp_min(x, math.log(tiny))
    return torch.log(torch.clamp(x, tiny, 1))


def _sigmoid_logits(x, input_kind):
    """Sigmoid-task scores -> logits, as :func:`calibrate.scores._sigmoid_logits`."""
    if input_kind == "logits":
        return x
    fi = torch.finfo(x.dtype)
    if input_kind == "log-probabilities":
        lp = torch.clamp(x, math.log(fi.tiny), math.log1p(-fi.eps))
        return lp - torch.log(-torch.expm1(lp))
    p = torch.clamp(x, fi.tiny, 1 - fi.eps)
    return torch.log(p) - torch.log1p(-p)


def to_logits(x, task, input_kind):
    """:func:`calibrate.scores.to_logits` with torch ops (same formulas)."""
    if task == "binary" and x.ndim == 2 and x.shape[1] == 2:
        lz = _softmax_logits(x, input_kind)   # the log-odds z1 - z0
        return lz[:, 1] - lz[:, 0]
    if task == "binary":
        return _sigmoid_logits(x.reshape(-1), input_kind)
    if task == "multilabel":
        return _sigmoid_logits(x, input_kind)
    return _softmax_logits(x, input_kind)


def _shape_only(x):
    """A zero-memory numpy stand-in with ``x``'s shape, for shape checks."""
    return np.broadcast_to(np.zeros((), np.uint8), tuple(x.shape))


def prepare(scores, labels, task="auto", input_kind="auto",
            scores_name="scores", labels_name="labels"):
    """:func:`calibrate.scores.prepare` for a tensor that stays on its device.

    Returns ``(logits, labels, task, input_kind)``: logits a tensor on the
    scores' device, labels a validated int64 numpy array (one per row, or
    (N, C) 0/1 for multilabel) as the threshold search needs them on the CPU.
    """
    s = as_float_tensor(scores, scores_name)
    y = None if labels is None else _scores.as_array(labels, labels_name)
    shape = _shape_only(s)
    task = _scores.resolve_task(shape, y, task)
    _scores.check_shape(shape, task, scores_name)
    kind = _scores.detect_input_kind(s, task, input_kind, scores_name)
    z = to_logits(s, task, kind)
    if y is not None:
        y = _scores.check_labels(y, task, s.shape[0], _scores.n_classes(shape, task),
                                 labels_name)
    return z, y, task, kind


# -- labels on the device, moved once ---------------------------------------

_label_cache = {}


def labels_on(y, device, dtype):
    """``y`` (numpy or tensor) as a tensor on ``device``; a numpy array is
    copied there once and reused while it lives (the Newton passes hand the
    same labels over several times)."""
    if isinstance(y, torch.Tensor):
        return y.to(device=device, dtype=dtype)
    key = (id(y), str(device), dtype)
    hit = _label_cache.get(key)
    if hit is not None and hit[0]() is y:
        return hit[1]
    t = torch.from_numpy(np.ascontiguousarray(y)).to(device=device, dtype=dtype)
    try:
        ref = weakref.ref(y, lambda _r, k=key, cache=_label_cache: cache.pop(k, None))
    except TypeError:  # not weak-referenceable: no caching
        return t
    _label_cache[key] = (ref, t)
    return t


# -- temperature passes ---------------------------------------------------------

def softmax_stats(z, y, beta, with_g0=True, nll_at_one=False):
    """:func:`calibrate.temperature.softmax_stats` on ``z``'s device."""
    n, c = z.shape
    yt = labels_on(y, z.device, torch.int64)
    b = float(beta)
    zero = torch.zeros((), dtype=_F64, device=z.device)
    acc = torch.zeros(5, dtype=_F64, device=z.device)
    for s in _row_chunks(n, c):
        zc = z[s]
        u = zc - zc.amax(dim=1, keepdim=True)
        uy = u.gather(1, yt[s].unsqueeze(1)).squeeze(1).to(_F64)
        e = torch.exp(u * b)
        tot = e.sum(dim=1, dtype=_F64)
        eu = e.mul_(u)
        m1 = eu.sum(dim=1, dtype=_F64) / tot                 # E_p[u]
        m2 = eu.mul_(u).sum(dim=1, dtype=_F64) / tot         # E_p[u^2]
        nll = torch.log(tot) - b * uy
        g0 = (u.sum(dim=1, dtype=_F64) / c - uy).sum() if with_g0 else zero
        nll1 = ((torch.log(torch.exp(u).sum(dim=1, dtype=_F64)) - uy).sum() if nll_at_one
                else zero)                                   # NLL at beta = 1
        acc += torch.stack([nll.sum(), (m1 - uy).sum(),
                            torch.clamp_min(m2 - m1 * m1, 0).sum(), g0, nll1])
    out = [v / n for v in acc.tolist()]
    return tuple(out if nll_at_one else out[:4])


def sigmoid_stats(z, y, beta):
    """:func:`calibrate.temperature.sigmoid_stats` on ``z``'s device; returns
    numpy arrays of one value per column."""
    n, c = z.shape
    yt = labels_on(y, z.device, z.dtype)
    bt = torch.as_tensor(np.asarray(beta, dtype=np.float64), device=z.device).to(z.dtype)
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    acc = torch.zeros((4, c), dtype=_F64, device=z.device)
    for s in _row_chunks(n, c):
        zc, yc = z[s], yt[s]
        a = zc * bt
        sig = torch.sigmoid(a)
        nll = torch.logaddexp(zero, torch.where(yc == 1, -a, a))
        acc += torch.stack([nll.sum(dim=0, dtype=_F64),
                            ((sig - yc) * zc).sum(dim=0, dtype=_F64),
                            (sig * (1 - sig) * zc * zc).sum(dim=0, dtype=_F64),
                            ((0.5 - yc) * zc).sum(dim=0, dtype=_F64)])
    f, g, h, g0 = acc.cpu().numpy() / n
    return f, g, h, g0


# -- decision scores ----------------------------------------------------------

def top_scores(z, temperature):
    """:func:`calibrate.rules.top_scores` on ``z``'s device; returns numpy
    (k int64, log p_k float64), the only N-sized results that leave it."""
    n, c = z.shape
    b = 1.0 / float(temperature)
    ks, lps = [], []
    for s in _row_chunks(n, c):
        zc = z[s]
        kc = zc.argmax(dim=1, keepdim=True)       # first maximum: lowest index
        e = torch.exp((zc - zc.gather(1, kc)) * b)
        e.scatter_(1, kc, 0)                       # the argmax term is exactly 1
        ks.append(kc.squeeze(1))
        lps.append(-torch.log1p(e.sum(dim=1, dtype=_F64)))
    return torch.cat(ks).cpu().numpy(), torch.cat(lps).cpu().numpy()


class TensorRows(RowSource):
    """A tensor as a row source (:mod:`.rows`): numpy passes that need its
    values (the fit summary's metrics) copy one row chunk at a time from its
    device, never the whole array."""

    def __init__(self, tensor):
        self.tensor = tensor.detach()
        self.shape = tuple(self.tensor.shape)
        self.dtype = torch.empty(0, dtype=self.tensor.dtype).numpy().dtype

    def read(self, start, stop):
        return self.tensor[start:stop].cpu().numpy()
