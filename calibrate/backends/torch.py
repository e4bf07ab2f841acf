"""Rows of a torch tensor that stays on its device (a GPU).

Input detection, logit recovery, the temperature passes, the decision scores
and apply run with the torch kernels of :mod:`.torch_kernels` on the tensor's
device, a chunk of rows at a time (about 64 MiB of float32 per temporary).
Only small results come back: sums, and one or two values per row.  Passes
that have no torch kernel (the summary's metrics, the other calibration
families) copy one row chunk at a time to the CPU and run the numpy kernel.

This module imports torch; nothing imports it unless it was handed a tensor.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from .. import kernels
from . import torch_kernels as tk
from .base import Backend, FusedPass, Progress, RowStats, SigmoidStats, SoftmaxPass, SoftmaxStats
from .local import chunk_rows, fold_chunks, row_slices, run_chunks, sample_rows

#: Elements per chunk on the device: about 64 MiB of float32 per temporary.
CHUNK_ELEMENTS = 1 << 24

_F64 = torch.float64


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=dtype).numpy().dtype


class TorchBackend(Backend):
    """A tensor on its device (float16/bfloat16 computed in float32, integers in float64)."""

    kind = "torch"

    def __init__(self, tensor: torch.Tensor, name: str = "scores",
                 progress: Progress | None = None) -> None:
        t = tk.compute_dtype(tensor.detach())
        super().__init__(tuple(t.shape), numpy_dtype(t.dtype), name, progress)
        self.tensor = t
        self.device = t.device

    def _slices(self, max_elements: int = CHUNK_ELEMENTS) -> list[slice]:
        return row_slices(self.n_rows, chunk_rows(self.row_elements, max_elements))

    # -- generic passes: numpy kernels on chunks copied to the CPU ------------------
    def map(self, kernel: Callable, *aligned: np.ndarray, args: tuple = (),
            label: str | None = None) -> list:
        run = kernel if not args else (lambda *blocks: kernel(*blocks, *args))
        slices = row_slices(self.n_rows, chunk_rows(self.row_elements))  # ~4 MiB copies
        return run_chunks(run, (_CpuRows(self.tensor),) + aligned, slices, self.progress, label)

    def fold(self, kernel: Callable, *aligned: np.ndarray, args: tuple = (),
             init: Callable, label: str | None = None) -> Any:
        # the numpy kernels on CPU copies, in the chunks and runs of an array's
        # fold: the same sums, bit for bit
        slices = row_slices(self.n_rows, chunk_rows(self.row_elements))
        return fold_chunks(kernel, (_CpuRows(self.tensor),) + aligned, slices, init, args,
                           self.progress, label)

    def blocks(self, max_elements: int) -> Iterator[np.ndarray]:
        for s in self._slices(max_elements):
            yield self.tensor[s].cpu().numpy()

    def sample(self, n_rows: int) -> np.ndarray:
        return sample_rows(_CpuRows(self.tensor), n_rows)

    def to_numpy(self) -> np.ndarray:
        return self.tensor.cpu().numpy()

    def take(self, rows: np.ndarray) -> np.ndarray:
        idx = torch.as_tensor(rows, device=self.device)
        return self.tensor.index_select(0, idx).cpu().numpy()

    def mapped(self, fn: Callable, dtype: Any, row_shape: tuple[int, ...]) -> Backend:
        raise NotImplementedError("TorchBackend converts with its own kernels (logits)")

    def columns(self) -> Backend:
        if self.ndim == 2:
            return self
        return TorchBackend(self.tensor.reshape(-1, 1), self.name, self.progress)

    # -- the passes with torch kernels ---------------------------------------------
    def row_stats(self) -> RowStats:
        x = self.tensor if self.ndim == 2 else self.tensor.reshape(-1, 1)
        c = x.shape[1]
        inf = math.inf
        nan = posinf = neginf = False
        if not bool(torch.isfinite(x).all()):
            nan = bool(torch.isnan(x).any())
            posinf = bool(torch.isposinf(x).any())
            neginf = bool(torch.isneginf(x).any())
            if nan:
                return RowStats(True, posinf, neginf, math.nan, math.nan, inf, inf)
        lo, hi = float(x.min()), float(x.max())
        sum_err = lse_err = inf
        if c > 1 and kernels.in_unit_range(lo, hi):
            sum_err = max(float((x[s].sum(dim=1, dtype=_F64) - 1.0).abs().max())
                          for s in self._slices())
        if c > 1 and hi <= kernels.SUM_TOL:
            lse_err = max(float(torch.logsumexp(x[s].to(_F64), dim=1).abs().max())
                          for s in self._slices())
        return RowStats(nan, posinf, neginf, lo, hi, sum_err, lse_err)

    def logits(self, task: str, input_kind: str) -> Backend:
        kind = tk.KIND_IDS[input_kind]
        x = self.tensor
        if task == "binary":
            z = tk.binary_logits(x, kind)
        elif task == "multilabel":
            z = tk.sigmoid_logits(x, kind)
        else:
            z = tk.softmax_logits(x, kind)
        return self if z is x else TorchBackend(z, self.name, self.progress)

    def _labels(self, y: np.ndarray | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return labels_on(y, self.device, dtype)

    def _in_units(self, z: torch.Tensor, unit: Any) -> torch.Tensor:
        if np.all(np.asarray(unit) == 1.0):
            return z
        inv = torch.as_tensor(1.0 / np.asarray(unit, dtype=np.float64), device=self.device)
        return z * inv.to(z.dtype)     # a power of two: exact

    def softmax_pass(self, y: np.ndarray, beta: float, unit: float = 1.0, with_g0: bool = True,
                     nll_at_one: bool = False, metrics_at_one: bool = False,
                     metrics_at_beta: bool = False, n_bins: int = 15,
                     third: bool = False) -> FusedPass:
        # the statistics on the device (no third derivative: Newton steps);
        # the metrics from CPU copies (not fused)
        stats = self._softmax_stats(y, beta, with_g0, nll_at_one, unit)
        return FusedPass(
            stats,
            self.softmax_metrics(y, 1.0, n_bins, scores=False) if metrics_at_one else None,
            self.softmax_metrics(y, unit / beta, n_bins) if metrics_at_beta else None)

    def _softmax_stats(self, y: np.ndarray, beta: float, with_g0: bool, nll_at_one: bool,
                       unit: float) -> SoftmaxStats:
        yt = self._labels(y, torch.int64)
        acc = torch.zeros(5, dtype=_F64, device=self.device)
        for s in self._slices():
            z = self._in_units(self.tensor[s], unit)
            acc += torch.stack(tk.softmax_stats(z, yt[s], float(beta), nll_at_one, float(unit)))
        v = [x / self.n_rows for x in acc.tolist()]
        return SoftmaxStats(v[0], v[1], v[2], v[3] if with_g0 else 0.0,
                            v[4] if nll_at_one else None)

    def sigmoid_stats(self, y: Any, beta: np.ndarray, unit: Any = 1.0,
                      nll_at_one: bool = False, third: bool = False,
                      with_g0: bool = True) -> SigmoidStats:
        # (``third`` asks for more than needed: without those rows Newton takes
        # plain steps)
        z = self.tensor
        yt = self._labels(y, z.dtype).reshape(z.shape)
        bt = torch.as_tensor(np.asarray(beta, dtype=np.float64), device=self.device).to(z.dtype)
        acc = torch.zeros((4, z.shape[1]), dtype=_F64, device=self.device)
        one = torch.zeros(z.shape[1], dtype=_F64, device=self.device)
        for s in self._slices():
            acc += tk.sigmoid_stats(self._in_units(z[s], unit), yt[s], bt, with_g0)
            if nll_at_one:   # the NLL of the logits as given: beta = 1 on them
                one += tk.sigmoid_nll(z[s], yt[s], torch.ones_like(bt))
        f, g, h, g0 = acc.cpu().numpy() / self.n_rows
        return SigmoidStats(f, g, h, g0, one.cpu().numpy() / self.n_rows if nll_at_one else None)

    def _beta(self, temperature: float) -> torch.Tensor:
        return torch.tensor(1.0 / float(temperature), dtype=_F64,
                            device=self.device).to(self.tensor.dtype)

    def top_scores(self, temperature: float) -> tuple[np.ndarray, np.ndarray]:
        ks, lps = [], []
        beta = self._beta(temperature)
        for s in self._slices():
            k, lp = tk.top_log_prob(self.tensor[s], beta)
            ks.append(k)
            lps.append(lp)
        return torch.cat(ks).cpu().numpy(), torch.cat(lps).cpu().numpy()

    def softmax_metrics(self, y: np.ndarray, temperature: float, n_bins: int,
                        scores: bool = True) -> SoftmaxPass:
        # the metrics from CPU copies, the decision scores from the device
        sp = super().softmax_metrics(y, temperature, n_bins, scores=False)
        if not scores:
            return sp
        k, logp = self.top_scores(temperature)
        return dataclasses.replace(sp, k=k, logp=logp)

    # -- apply on the device --------------------------------------------------------
    def iter_decisions(self, task: str, calibration: Any, tau: np.ndarray,
                       max_elements: int) -> Iterator[np.ndarray]:
        temperature = _temperature_of(calibration)
        if temperature is None:   # another family: its numpy kernels on CPU copies
            yield from super().iter_decisions(task, calibration, tau, max_elements)
            return
        tau_t = torch.as_tensor(tau, dtype=_F64, device=self.device)
        t_t = torch.as_tensor(np.atleast_1d(np.asarray(temperature, dtype=np.float64)),
                              device=self.device)
        for s in self._slices(max_elements):
            z = self.tensor[s]
            if task == "multiclass":
                k, logp = tk.top_log_prob(z, self._beta(temperature))
                yield tk.decide_multiclass(k, logp, tau_t).cpu().numpy()
            else:
                d = tk.sigmoid_scores(z, t_t if task == "multilabel" else t_t[0]) >= tau_t
                yield (d.to(torch.int64) if task == "binary" else d).cpu().numpy()

    def iter_proba(self, task: str, calibration: Any, max_elements: int) -> Iterator[np.ndarray]:
        temperature = _temperature_of(calibration)
        if temperature is None:
            yield from super().iter_proba(task, calibration, max_elements)
            return
        for s in self._slices(max_elements):
            z = self.tensor[s]
            if task == "multiclass":
                p = torch.softmax(z * (1.0 / float(temperature)), dim=1)
            else:
                t = torch.as_tensor(np.asarray(temperature, dtype=np.float64),
                                    device=self.device).to(z.dtype)
                p = torch.sigmoid(z / t)
            yield p.cpu().numpy()


def _temperature_of(calibration: Any) -> Any:
    """T of a temperature (a number, or a temperature family); None for
    another calibration family."""
    if not kernels.is_family(calibration):
        return calibration
    return calibration.value if calibration.method == "temperature" else None


class _CpuRows:
    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor, self.shape = tensor, tuple(tensor.shape)

    def __getitem__(self, s: slice) -> np.ndarray:
        return self.tensor[s].cpu().numpy()


# -- labels on the device, moved once ---------------------------------------------

_label_cache: dict = {}


def labels_on(y: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``y`` (numpy or tensor) as a tensor on ``device``; a numpy array is copied
    there once and reused while it lives (the Newton passes hand the same
    labels over several times)."""
    if isinstance(y, torch.Tensor):
        return y.to(device=device, dtype=dtype)
    key = (id(y), str(device), dtype)
    hit = _label_cache.get(key)
    if hit is not None and hit[0]() is y:
        return hit[1]
    t = torch.from_numpy(np.ascontiguousarray(np.asarray(y))).to(device=device, dtype=dtype)

    def forget(_r: object, k: tuple = key, cache: dict = _label_cache) -> None:
        cache.pop(k, None)
    try:
        ref = weakref.ref(y, forget)
    except TypeError:  # not weak-referenceable: no caching
        return t
    _label_cache[key] = (ref, t)
    return t
