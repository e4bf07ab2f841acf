"""PyTorch integration: deploy a threshold file as a module, collect logits.

Needs the ``torch`` extra (``pip install 'calibrate-thresholds[torch]'``); ``import
calibrate`` never imports this module or torch.

* :class:`ThresholdHead` -- an ``nn.Module`` that holds a fitted calibration
  (a temperature, or any family of :mod:`calibrate.families`) and decision
  thresholds as buffers and maps a batch of scores to ``(decisions,
  calibrated probabilities)`` on the scores' device, with the decision rule
  of :meth:`calibrate.Calibrator.predict`.  It survives ``state_dict`` round
  trips, ``torch.jit.script`` and ``torch.export``.
* :func:`collect` -- run a model over a ``DataLoader`` in eval mode under
  ``no_grad`` and return ``(logits, labels)`` ready for :func:`calibrate.fit`.

``calibrate.fit`` and ``Calibrator.predict`` take tensors directly; a GPU
tensor given to ``fit`` stays on its GPU for the temperature passes.
"""

import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Final

import numpy as np
import torch
from torch import Tensor, nn

from . import kernels, params
from .artifact import Calibrator, load
from .backends import torch_kernels as tk

__all__ = ["ThresholdHead", "collect", "SoftmaxOutputWarning"]

_TASK_IDS = {"multiclass": 0, "binary": 1, "multilabel": 2}
_METHOD_IDS = {"temperature": 0, "mix": 1, "vector": 2, "ovr-platt": 3, "platt": 4,
               "isotonic": 5}


class SoftmaxOutputWarning(UserWarning):
    """A model's outputs look like softmax probabilities, not logits."""


class ThresholdHead(nn.Module):
    """A fitted threshold file as a module: scores -> (decisions, probabilities).

    ``ThresholdHead(cal)`` takes a :class:`calibrate.Calibrator` or the path
    of a threshold file.  ``forward(scores)`` returns, on the scores' device:

    ===========  ===========================================  ==========================
    task         decisions                                    probabilities
    ===========  ===========================================  ==========================
    multiclass   int64 (N,): argmax class k if log p_k >=     softmax(z / T), (N, C)
                 tau_k, else -1 (abstain)
    binary       int64 (N,): 1 if z / T >= tau else 0         sigmoid(z / T), (N,)
    multilabel   bool (N, C): z_k / T_k >= tau_k              sigmoid(z_k / T_k), (N, C)
    ===========  ===========================================  ==========================

    or the file's calibration family in place of z / T (``mix``: (1 - w)
    softmax(z / T) + w / C; ``vector``: softmax(a * log_softmax(z) + b);
    ``ovr-platt``: sigmoid(a * log_softmax(z) + b) renormalised; ``platt``:
    sigmoid(a z + b), compared as a z + b; ``isotonic``: a lookup of the
    piecewise-linear map by ``torch.searchsorted``, compared as the model's
    logit z), as ``cal.predict`` / ``cal.predict_proba`` do (same input kind:
    the one the file was fitted on unless ``input_kind`` says otherwise;
    binary scores may be (N,), (N, 1) or (N, 2) with d = z1 - z0).
    Probabilities come back in the scores' dtype (float16 and bfloat16 are
    computed in float32); the decision scores are accumulated and compared
    in float64, against thresholds stored in float64 in the space the rule
    compares in (log-probability for softmax, logit for sigmoid), +inf for a
    class that is never predicted.

    The buffers ``temperature``, ``inv_temperature`` and ``thresholds`` (and a
    family's parameters: ``cal_a``, ``cal_b``, ``mix_weight``, ``iso_knots``,
    ``iso_values``, ``iso_count``, ``iso_lo``, ``iso_hi``, in the state dict only
    for the family that uses them) stay float64 when the module is cast
    (``model.half()``), and follow it across devices (so not to Apple's MPS,
    which has no float64: run the head on the CPU there).  The global rule's
    thresholds are stored per column, in the per-class space.  The head does not
    validate its input: a NaN row abstains (multiclass) or is negative (sigmoid
    tasks).
    """

    task_id: Final[int]
    input_id: Final[int]
    n_scored: Final[int]
    method_id: Final[int]
    # the buffers (registered in __init__)
    temperature: Tensor
    inv_temperature: Tensor
    thresholds: Tensor
    cal_a: Tensor
    cal_b: Tensor
    mix_weight: Tensor
    iso_knots: Tensor
    iso_values: Tensor
    iso_count: Tensor
    iso_lo: Tensor
    iso_hi: Tensor

    def __init__(self, cal: Calibrator | str | os.PathLike[str] | dict[str, Any],
                 rule: str | None = None, input_kind: str | None = None) -> None:
        super().__init__()
        if isinstance(cal, (str, os.PathLike)):
            cal = load(cal)
        elif isinstance(cal, dict):
            cal = Calibrator.from_dict(cal)
        elif not isinstance(cal, Calibrator):
            raise TypeError(f"ThresholdHead: expected a calibrate.Calibrator or a threshold "
                            f"file path, found {type(cal).__name__}")
        params.validate({"rule": rule, "input": input_kind}, params.HEAD)
        rule = rule or cal.rule
        kind = input_kind or cal.input_kind
        self.task = cal.task
        self.rule = rule
        self.input_kind = kind
        self.classes: list[str] = list(cal.classes)
        self.task_id = _TASK_IDS[cal.task]
        self.input_id = tk.KIND_IDS[kind]
        self.n_scored = cal.n_scored
        self.method = cal.method
        self.method_id = _METHOD_IDS[cal.method]
        f: Any = cal.calibrator   # its parameters, per family, are read below
        t = np.atleast_1d(np.asarray(
            f.temperature if cal.method in ("temperature", "mix") else 1.0, dtype=np.float64))
        self.register_buffer("temperature", torch.tensor(t, dtype=torch.float64))
        # 1 / T exactly as the decision kernels compute it (a Python float).
        self.register_buffer("inv_temperature",
                             torch.tensor(1.0 / float(t[0]), dtype=torch.float64))
        self.register_buffer("thresholds", torch.tensor(cal.rule_thresholds(rule),
                                                        dtype=torch.float64))
        self._family_buffers(f)

    def _family_buffers(self, f: Any) -> None:
        """The family's parameters as float64 buffers (empty and left out of
        the state dict where the family has none: TorchScript needs them all)."""
        m = f.method
        empty = torch.zeros(0, dtype=torch.float64)
        ab = m in ("vector", "ovr-platt", "platt")
        for name, value in (("cal_a", f.a if ab else None), ("cal_b", f.b if ab else None)):
            self.register_buffer(name, empty.clone() if value is None else
                                 torch.tensor(value, dtype=torch.float64), persistent=ab)
        w = f.weight if m == "mix" else 0.0
        self.register_buffer("mix_weight", torch.tensor(w, dtype=torch.float64),
                             persistent=m == "mix")
        iso = m == "isotonic"
        width = max(len(k) for k in f.knots) if iso else 0
        knots = np.full((len(f.knots) if iso else 0, width), np.inf)
        values = np.zeros_like(knots)
        for j, (k, v) in enumerate(zip(f.knots, f.values, strict=True) if iso else ()):
            knots[j, :len(k)], values[j, :len(v)], values[j, len(v):] = k, v, v[-1]
        for name, value in (("iso_knots", knots), ("iso_values", values),
                            ("iso_lo", f.lo if iso else []), ("iso_hi", f.hi if iso else [])):
            self.register_buffer(name, torch.tensor(np.asarray(value, dtype=np.float64)),
                                 persistent=iso)
        self.register_buffer("iso_count", torch.tensor(
            [len(k) for k in f.knots] if iso else [], dtype=torch.int64), persistent=iso)

    def extra_repr(self) -> str:
        return (f"task={self.task}, classes={len(self.classes)}, rule={self.rule}, "
                f"input_kind={self.input_kind}, method={self.method}")

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> "ThresholdHead":
        # Follow device moves, but keep the float64 buffers float64 under
        # .half() / .float() / .to(dtype): thresholds must not be rounded.
        def keep_dtype(t: Tensor) -> Tensor:
            out = fn(t)
            return out if out.dtype == t.dtype else t.to(out.device)
        return super()._apply(keep_dtype, recurse)

    def forward(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        x = tk.compute_dtype(scores)
        acc = torch.float64
        tau = self.thresholds.to(device=x.device, dtype=acc)
        if self.task_id == 0:
            if x.dim() != 2 or x.size(1) != self.n_scored:
                raise ValueError("scores: expected shape (N, C) with C matching the "
                                 "threshold file's class count")
            z = tk.softmax_logits(x, self.input_id)
            beta = self.inv_temperature.to(device=z.device, dtype=z.dtype)
            if self.method_id == 1:
                k, logp = tk.mix_top(z, beta, self.mix_weight)
                proba = tk.mix_proba(z, beta, self.mix_weight)
            elif self.method_id == 2:
                t = tk.scaled_log_softmax(z, self.cal_a, self.cal_b)
                k, logp = tk.top_log_prob(t, torch.ones((), dtype=t.dtype, device=t.device))
                proba = torch.softmax(t, dim=1)
            elif self.method_id == 3:
                t = tk.scaled_log_softmax(z, self.cal_a, self.cal_b)
                k, logp = tk.ovr_top(t)
                proba = torch.softmax(torch.nn.functional.logsigmoid(t), dim=1)
            else:
                k, logp = tk.top_log_prob(z, beta)
                proba = torch.softmax(z * beta, dim=1)
            decisions = tk.decide_multiclass(k, logp, tau)
            return decisions, proba.to(scores.dtype) if scores.is_floating_point() else proba
        if self.task_id == 1:
            if not (x.dim() == 1 or (x.dim() == 2 and (x.size(1) == 1 or x.size(1) == 2))):
                raise ValueError("scores: expected binary scores of shape (N,), (N, 1) or (N, 2)")
            z = tk.binary_logits(x, self.input_id)
        else:
            if x.dim() != 2 or x.size(1) != self.n_scored:
                raise ValueError("scores: expected shape (N, C) with C matching the "
                                 "threshold file's class count")
            z = tk.sigmoid_logits(x, self.input_id)
        if self.method_id == 4:
            s = z.to(torch.float64) * self.cal_a + self.cal_b
            decisions = s >= tau
            proba = torch.sigmoid(s).to(z.dtype)
        elif self.method_id == 5:
            cols = z.reshape(z.size(0), self.n_scored)   # (not -1: a batch may be empty)
            p = tk.interp_columns(cols, self.iso_knots, self.iso_values, self.iso_count)
            p = torch.minimum(torch.maximum(p, self.iso_lo), self.iso_hi).to(z.dtype)
            decisions = z.to(torch.float64) >= tau
            proba = p.reshape(z.shape)
        else:
            t = self.temperature.to(z.device)
            decisions = tk.sigmoid_scores(z, t) >= tau
            proba = torch.sigmoid(z / t.to(z.dtype))
        if self.task_id == 1:
            decisions = decisions.to(torch.int64)
        return decisions, proba.to(scores.dtype) if scores.is_floating_point() else proba


# -- collecting held-out outputs ------------------------------------------------

_LABEL_KEYS = ("labels", "label", "targets", "target", "y")


def _to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _split_batch(batch: Any) -> tuple[Any, Any, bool]:
    """(inputs, labels, as_kwargs) from a (x, y, ...) sequence or a dict."""
    if isinstance(batch, dict):
        key = next((k for k in _LABEL_KEYS if k in batch), None)
        if key is None:
            raise ValueError("collect: a dict batch needs its labels under one of "
                             + ", ".join(_LABEL_KEYS))
        rest = {k: v for k, v in batch.items() if k != key}
        return rest, batch[key], True
    if isinstance(batch, (list, tuple)) and len(batch) >= 2:
        return batch[0], batch[1], False
    raise ValueError("collect: expected batches of (inputs, labels) or dicts with labels, "
                     f"found {type(batch).__name__}")


def _logits_of(out: Any) -> Tensor:
    if isinstance(out, Tensor):
        return out
    if isinstance(out, dict) and "logits" in out:
        return out["logits"]
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], Tensor):
        return out[0]
    raise ValueError(f"collect: the model returned {type(out).__name__}; expected a tensor "
                     "of logits (or a tuple, dict or object with .logits)")


def collect(model: nn.Module, loader: Iterable[Any], device: torch.device | str | None = None,
            out_device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Run ``model`` over ``loader`` and return ``(logits, labels)``.

    The model runs in eval mode (dropout off, batch-norm running statistics)
    under ``torch.no_grad()``, and its training mode is restored afterwards;
    the outputs are detached.  ``loader`` yields ``(inputs, labels, ...)``
    (inputs may be a tensor or a tuple of tensors, passed positionally) or
    dicts (labels under ``labels``, ``label``, ``targets``, ``target`` or
    ``y``; the rest passed as keyword arguments).  The model may return a
    tensor, a tuple (its first element), or a dict / object with ``logits``.

    ``device``: where the model runs (default: where its parameters are;
    the model is moved there if needed).  ``out_device``: where the returned
    tensors live (default ``device``), so ``calibrate.fit`` runs its
    temperature passes on that GPU.

    Outputs whose rows are all in [0, 1] and sum to 1 are softmax
    probabilities, not logits: a :class:`SoftmaxOutputWarning` says so
    (``calibrate.fit`` still reads them correctly, as probabilities).
    """
    device = torch.device(device) if device is not None else _model_device(model)
    out_device = torch.device(out_device) if out_device is not None else device
    if _model_device(model) != device:
        model.to(device)
    was_training = model.training
    model.eval()
    logits, labels = [], []
    try:
        with torch.no_grad():
            for batch in loader:
                inputs, y, as_kwargs = _split_batch(batch)
                inputs = _to(inputs, device)
                if as_kwargs:
                    out = model(**inputs)
                elif isinstance(inputs, (list, tuple)):
                    out = model(*inputs)
                else:
                    out = model(inputs)
                logits.append(_logits_of(out).detach().to(out_device))
                labels.append(torch.as_tensor(y).to(out_device))
    finally:
        model.train(was_training)
    if not logits:
        raise ValueError("collect: the loader yielded no batches")
    z, y = torch.cat(logits), torch.cat(labels)
    _warn_if_softmax(z)
    return z, y


def _warn_if_softmax(z: Tensor) -> None:
    if z.ndim != 2 or z.shape[1] < 2 or not z.is_floating_point() or z.numel() == 0:
        return
    lo, hi = float(z.min()), float(z.max())
    if kernels.in_unit_range(lo, hi) and float(
            (z.sum(dim=1, dtype=torch.float64) - 1).abs().max()) <= kernels.SUM_TOL:
        warnings.warn(
            "collect: the model's outputs are softmax probabilities (rows in [0, 1] summing "
            "to 1), not logits. calibrate.fit reads them as probabilities, but a model "
            "trained with CrossEntropyLoss must output logits: remove the final softmax "
            "(CrossEntropyLoss applies log-softmax itself)", SoftmaxOutputWarning, stacklevel=3)
