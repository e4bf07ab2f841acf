"""The hot kernels in torch, for tensors that stay on their device.

The same formulas as :mod:`calibrate.kernels`, written so that TorchScript
compiles them: :class:`calibrate.torch.ThresholdHead` calls them inside its
``forward``, and :class:`calibrate.backends.torch.TorchBackend` calls them on
row chunks during a fit.  Element-wise work stays in the tensor's dtype;
decision scores and sums accumulate in float64.

This module imports torch; nothing imports it unless it was handed a tensor.
"""

import torch
from torch import Tensor

#: Input kinds as TorchScript-friendly ints.
KIND_IDS = {"logits": 0, "probabilities": 1, "log-probabilities": 2}



def _log_zero() -> float:
    """:data:`calibrate.kernels.LOG_ZERO` (a literal in a function: TorchScript
    takes no module-level float)."""
    return -87.3365478515625


def compute_dtype(x: Tensor) -> Tensor:
    """``x`` in the dtype computations run in: integers and bools become
    float64, float16 and bfloat16 float32 (exact); float32/64 stay."""
    if not x.is_floating_point():
        return x.to(torch.float64)
    if x.dtype == torch.float16 or x.dtype == torch.bfloat16:
        return x.to(torch.float32)
    return x


def softmax_logits(x: Tensor, kind: int) -> Tensor:
    """Softmax-task scores -> logits, as :func:`calibrate.kernels.softmax_logits`:
    max(log p, LOG_ZERO) for probabilities, max(lp, LOG_ZERO) for log-probabilities."""
    if kind == 1:
        return torch.clamp_min(torch.log(torch.clamp(x, 0.0, 1.0)), _log_zero())
    if kind == 2:
        return torch.clamp_min(x, _log_zero())
    return x


def sigmoid_logits(x: Tensor, kind: int) -> Tensor:
    """Sigmoid-task scores -> logits, as :func:`calibrate.kernels.sigmoid_logits`:
    logit(p) clipped to [LOG_ZERO, -LOG_ZERO]."""
    if kind == 1:
        p = torch.clamp(x, 0.0, 1.0)
        z = torch.log(p) - torch.log1p(-p)
    elif kind == 2:
        lp = torch.clamp_max(x, 0.0)
        z = lp - torch.log(-torch.expm1(lp))
    else:
        return x
    return torch.clamp(z, _log_zero(), -_log_zero())


def binary_logits(x: Tensor, kind: int) -> Tensor:
    """One logit per row: z1 - z0 for two softmax columns, else the sigmoid logit."""
    if x.dim() == 2 and x.size(1) == 2:
        lz = softmax_logits(x, kind)
        return lz[:, 1] - lz[:, 0]
    return sigmoid_logits(x.reshape(-1), kind)


def top_log_prob(z: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Argmax class (first maximum: lowest index) and its log-probability under
    softmax(beta z): -log1p(sum_{c != k} exp(beta (z_c - z_k))), summed in float64.
    ``beta`` is a 0-d tensor in ``z``'s dtype."""
    k = torch.argmax(z, dim=1, keepdim=True)
    e = torch.exp((z - z.gather(1, k)) * beta)
    e = e.scatter(1, k, 0.0)                          # the argmax term is exactly 1
    logp = -torch.log1p(e.sum(dim=1, dtype=torch.float64))
    return k.squeeze(1), logp


def softmax_stats(z: Tensor, y: Tensor, beta: float, nll_at_one: bool,
                  unit: float = 1.0) -> list[Tensor]:
    """Sums over the rows of ``z`` of NLL, NLL', NLL'', NLL'(0) and the NLL at
    beta = ``unit`` (T = 1; zero unless ``nll_at_one``), as
    :func:`calibrate.kernels.softmax_stats` on logits already divided by ``unit``."""
    c = z.size(1)
    u = z - z.amax(dim=1, keepdim=True)
    uy = u.gather(1, y.unsqueeze(1)).squeeze(1).to(torch.float64)
    e = torch.exp(u * beta)
    tot = e.sum(dim=1, dtype=torch.float64)
    eu = e.mul_(u)
    m1 = eu.sum(dim=1, dtype=torch.float64) / tot                  # E_p[u]
    m2 = eu.mul_(u).sum(dim=1, dtype=torch.float64) / tot          # E_p[u^2]
    nll = torch.log(tot) - beta * uy
    g0 = (u.sum(dim=1, dtype=torch.float64) / c - uy).sum()
    nll1 = torch.zeros((), dtype=torch.float64, device=z.device)
    if nll_at_one:
        nll1 = (torch.log(torch.exp(u * unit).sum(dim=1, dtype=torch.float64)) - uy * unit).sum()
    return [nll.sum(), (m1 - uy).sum(), torch.clamp_min(m2 - m1 * m1, 0.0).sum(), g0, nll1]


def sigmoid_nll(z: Tensor, y: Tensor, beta: Tensor) -> Tensor:
    """Column sums (C,) of the NLL softplus(beta z) - y beta z; ``y`` in ``z``'s dtype."""
    return _nll_sums(z * beta, y)


def _nll_sums(a: Tensor, y: Tensor) -> Tensor:
    """Column sums of softplus(a) - y a, the NLL of logits ``a``."""
    nll = torch.logaddexp(torch.zeros((), dtype=a.dtype, device=a.device),
                          torch.where(y == 1, -a, a))
    return nll.sum(dim=0, dtype=torch.float64)


def sigmoid_stats(z: Tensor, y: Tensor, beta: Tensor, with_g0: bool = True) -> Tensor:
    """Column sums (4, C) of NLL, NLL', NLL'', NLL'(0) of sigmoid(beta z), as
    :func:`calibrate.kernels.sigmoid_stats` (the NLL'(0) row zeros without
    ``with_g0``: only a fit's first pass needs it); ``y`` in ``z``'s dtype."""
    a = z * beta
    sig = torch.sigmoid(a)
    g0 = ((0.5 - y) * z).sum(dim=0, dtype=torch.float64) if with_g0 \
        else torch.zeros(z.shape[1:], dtype=torch.float64, device=z.device)
    return torch.stack([_nll_sums(a, y),
                        ((sig - y) * z).sum(dim=0, dtype=torch.float64),
                        (sig * (1 - sig) * z * z).sum(dim=0, dtype=torch.float64), g0])


def decide_multiclass(k: Tensor, logp: Tensor, tau: Tensor) -> Tensor:
    """k where log p_k >= tau_k, else -1."""
    return torch.where(logp >= tau[k], k, torch.full_like(k, -1))


def sigmoid_scores(z: Tensor, temperature: Tensor) -> Tensor:
    """Calibrated logits z / T in float64."""
    return z.to(torch.float64) / temperature.to(device=z.device, dtype=torch.float64)


# -- the calibration families (calibrate.families), for ThresholdHead -------------

def mix_top(z: Tensor, beta: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Argmax and log p_k of (1 - w) softmax(beta z) + w / C, in log space:
    logaddexp(log1p(-w) + log s_k, log(w / C)) (w = 0: log s_k exactly)."""
    k, logp = top_log_prob(z, beta)
    w = weight.to(torch.float64)
    return k, torch.logaddexp(torch.log1p(-w) + logp, torch.log(w / z.size(1)))


def mix_proba(z: Tensor, beta: Tensor, weight: Tensor) -> Tensor:
    """(1 - w) softmax(beta z) + w / C in ``z``'s dtype."""
    w = weight.to(z.dtype)
    return (1.0 - w) * torch.softmax(z * beta, dim=1) + w / z.size(1)


def scaled_log_softmax(z: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """t = a * log_softmax(z) + b per class (vector scaling, one-vs-rest Platt)."""
    return torch.log_softmax(z, dim=1) * a.to(z.dtype) + b.to(z.dtype)


def ovr_top(t: Tensor) -> tuple[Tensor, Tensor]:
    """One-vs-rest Platt: argmax of t (that of p_k = s_k / sum s, s = sigmoid(t))
    and log p_k = -log1p(sum_{l != k} exp(log s_l - log s_k)), summed in float64."""
    k = torch.argmax(t, dim=1, keepdim=True)
    ls = torch.nn.functional.logsigmoid(t)
    e = torch.exp(ls - ls.gather(1, k)).scatter(1, k, 0.0)
    return k.squeeze(1), -torch.log1p(e.sum(dim=1, dtype=torch.float64))


def interp_columns(z: Tensor, knots: Tensor, values: Tensor, count: Tensor) -> Tensor:
    """numpy's ``interp`` per column: z (N, S) at the piecewise-linear curves of
    ``knots`` / ``values`` (S, K), each of ``count`` points (padded with +inf
    knots), constant beyond the ends; float64.  (Isotonic calibration: a
    lookup by ``torch.searchsorted``.)"""
    zt = z.to(torch.float64).t().contiguous()
    idx = torch.searchsorted(knots, zt, right=True)          # knots <= z
    last = (count - 1).unsqueeze(1)
    hi = torch.minimum(idx, last)
    lo = torch.clamp(torch.minimum(idx - 1, last), min=0)
    k0, k1 = knots.gather(1, lo), knots.gather(1, hi)
    v0, v1 = values.gather(1, lo), values.gather(1, hi)
    span = k1 - k0
    frac = torch.where(span > 0, (zt - k0) / torch.where(span > 0, span, torch.ones_like(span)),
                       torch.zeros_like(zt))
    return (v0 + frac * (v1 - v0)).t()
