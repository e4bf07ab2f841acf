"""``calibrate.fit``: temperature, thresholds for both rules, and the summary.

This module only wires the pure pieces together: :mod:`.scores` (task, input
kind, logits), :mod:`.temperature`, :mod:`.rules` (scores in comparison
space), :mod:`.thresholds` with :mod:`.guarantee`, and :mod:`.metrics`.
"""

import os

import numpy as np
from scipy import special

from . import metrics, rules, thresholds as _thr
from . import scores as _scores
from .artifact import RULES, Calibrator, to_probability
from .errors import check_unit_interval, invalid
from .temperature import fit_temperature


def _check_params(precision, confidence, rule):
    check_unit_interval("precision", precision)
    check_unit_interval("confidence", confidence, allow_none=True)
    if rule not in RULES:
        raise invalid("rule", "per-class or global", repr(rule))


def _class_names(classes, task, n_cls, where="classes"):
    want = 2 if task == "binary" else n_cls
    if classes is None:
        return [str(i) for i in range(want)]
    names = [str(c) for c in classes]
    if len(names) != want:
        raise invalid(where, f"{want} class names for {task} scores", f"{len(names)}")
    if len(set(names)) != len(names):
        raise invalid(where, "distinct class names", "duplicates")
    return names


def fit(scores, labels, precision=0.9, confidence=0.95, rule="per-class", task="auto",
        input_kind="auto", classes=None, simultaneous=False, *, scores_name="scores",
        labels_name="labels", classes_name="classes"):
    """Fit a temperature and precision-targeted thresholds on held-out data.

    Parameters
    ----------
    scores : array (N, C), (N,) or (N, 1); numpy, torch tensor or memmap
        Logits, probabilities or log-probabilities (``input_kind``).
    labels : array
        Class ids (N,) for multiclass, 0/1 (N,) for binary, 0/1 (N, C) for
        multilabel.
    precision : float in (0, 1)
        Precision each class (``per-class``) or all predictions (``global``)
        must reach.
    confidence : float in (0, 1) or None
        Probability that the target holds on new data from the same
        distribution (Clopper-Pearson bounds with fixed-sequence testing,
        see :mod:`calibrate.guarantee`); None for the plain held-out estimate.
    rule : "per-class" or "global"
        The rule ``predict`` uses by default; both are fitted and stored.
    task : "auto", "multiclass", "binary" or "multilabel"
    input_kind : "auto", "logits", "probabilities" or "log-probabilities"
    classes : list of names, optional
    simultaneous : bool
        Make the per-class guarantee hold for all classes at once
        (Bonferroni: each class tested at (1 - confidence) / C).
    scores_name, labels_name, classes_name : str
        How error messages name the inputs (the CLI passes the file names).

    Returns
    -------
    Calibrator
    """
    _check_params(precision, confidence, rule)
    if labels is None:
        # Like the CLI: a .npz / .pt file may hold its labels beside the scores.
        if isinstance(scores, (str, os.PathLike)):
            from . import io
            scores, labels = io.read_scores(scores)
        if labels is None:
            raise invalid(labels_name, "an array, or scores in a .npz / .pt file holding "
                          "an array named 'labels'", "None")
    z, y, task, kind = _scores.prepare(scores, labels, task, input_kind,
                                       scores_name, labels_name)
    n_cls = _scores.n_classes(z if task != "binary" else z.reshape(-1, 1), task)
    names = _class_names(classes, task, n_cls, classes_name)
    # The summary's metric pass at T = 1 gives the NLL before: no need to
    # spend an extra exp on it in the temperature fit.
    temp = fit_temperature(z, y, task, scores_name, names, nll_before=False)
    T = temp.temperature
    if _scores.is_tensor(z) and task != "multiclass":
        # GPU scores: the temperature passes ran there.  Sigmoid decision
        # units are the (N, C) scores themselves, so they come back now.
        z = z.detach().cpu().numpy()

    m_after = None
    if task == "multiclass" and not _scores.is_tensor(z):
        # One pass gives the summary metrics at T and the decision scores.
        m_after, (k, logp) = metrics.summary_metrics(z, y, task, T, with_scores=True)
        cls, sc, correct = k, logp, k == y
        support = np.bincount(y, minlength=z.shape[1])
    else:
        cls, sc, correct, support = rules.decision_units(z, y, task, T, n_cls)
    if _scores.is_tensor(z):
        # The summary's metric passes read GPU logits a row chunk at a time.
        from ._torch_kernels import TensorRows
        z = TensorRows(z)
    alpha = None
    if confidence is not None:
        alpha = (1 - confidence) / n_cls if simultaneous else 1 - confidence
    # The model's own calibrated probability of being right picks where the
    # confidence sequence starts (scores only, plus the one fitted T).
    expected = np.exp(sc) if task == "multiclass" else special.expit(sc)
    if task == "multilabel":
        # The classes are the columns: no need to sort N x C class ids.
        cols = (np.reshape(a, (-1, n_cls)) for a in (sc, correct, expected))
        s2, c2, e2 = cols
        per = [_thr.search(s2[:, j], c2[:, j], precision, confidence, alpha, e2[:, j])
               for j in range(n_cls)]
    else:
        per = _thr.search_per_class(cls, sc, correct, n_cls, precision, confidence, alpha,
                                    expected)
    glob = _thr.search(sc, correct, precision, confidence,
                       None if confidence is None else 1 - confidence, expected)

    summary = _summary(z, y, task, kind, temp, names, per, glob, support, sc, m_after)
    return Calibrator(
        task=task, classes=names, input_kind=kind, temperature=T, rule=rule,
        decision_thresholds={"per_class": [t.value for t in per], "global": glob.value},
        target={"precision": float(precision),
                "confidence": None if confidence is None else float(confidence),
                "simultaneous": bool(simultaneous)},
        summary=summary)


def _row(t, support, n_units, task):
    return {
        "threshold": to_probability(t.value, task),
        "precision": t.precision,
        "recall": (t.n_correct / support) if support else None,
        "support": int(support),
        "predicted": t.n_predicted,
        "coverage": t.n_predicted / n_units if n_units else None,
        "lower_bound": t.lower_bound,
        "status": t.status,
    }


def _ece_before_after(z, y, task, temperature, sc, after=None):
    """The summary's metrics (:data:`metrics.NAMES`) at T = 1 and at the fitted T.

    Returns two dicts keyed like :func:`metrics.summary_metrics`.  Multiclass
    costs one chunked pass over the logits per temperature and never holds
    (N, C) probabilities (``after``, when the caller already made that pass,
    saves one); binary and multilabel reuse ``sc`` (z / T, already held in
    float64) for the fitted side.
    """
    if task == "multiclass":
        return (metrics.summary_metrics(z, y, task, 1.0),
                after or metrics.summary_metrics(z, y, task, temperature))
    return (metrics.summary_metrics(z, y, task, 1.0),
            metrics.summary_metrics(np.reshape(sc, np.shape(z)), y, task, 1.0))


def _summary(z, y, task, kind, temp, names, per, glob, support, sc, m_after=None):
    T = temp.temperature
    m_b, m_a = _ece_before_after(z, y, task, T, sc, m_after)
    # multilabel: the mean over classes of each class's binary cross entropy
    if task == "multiclass":
        # exact at T = 1 and at the fitted T, from the metric passes
        nll_b, nll_a = m_b["nll"], m_a["nll"]
    else:
        nll_b, nll_a = float(np.mean(temp.nll_before)), float(np.mean(temp.nll_after))
        m_b["nll"], m_a["nll"] = nll_b, nll_a  # the temperature fit's own objective
    named = {key: {"definition": metrics.describe(key, task),
                   "before": metrics.finite(m_b[key]), "after": metrics.finite(m_a[key])}
             for key in m_b}
    n_units = len(sc)
    per_rows = []
    scored = names[1:] if task == "binary" else names
    for name, t, s in zip(scored, per, support):
        row = {"class": name}
        row.update(_row(t, s, n_units, task))
        per_rows.append(row)
    g = _row(glob, int(np.sum(support)), n_units, task)
    temperature = {"value": T if np.ndim(T) == 0 else [float(v) for v in T],
                   "status": temp.status, "passes": temp.n_passes,
                   "converged": temp.converged}
    if temp.shared_temperature is not None:
        temperature["shared_value"] = temp.shared_temperature
    return {
        "n": int(z.shape[0]),
        "task": task,
        "input_kind": kind,
        "temperature": temperature,
        "nll": {"before": nll_b, "after": nll_a},
        "ece": {"before": m_b["ece_15_equal_width"], "after": m_a["ece_15_equal_width"]},
        "metrics": named,
        "per_class": per_rows,
        "global": g,
    }
