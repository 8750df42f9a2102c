"""Numbers for a task on a split: mAP and P/R/F1 under each decision rule."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from semisup.evaluate.decisions import DecisionRule
from semisup.evaluate.metrics import average_precision, precision_recall_f1
from semisup.evaluate.predictions import Predictions

REPORTED_AVERAGES = ("micro", "macro", "samples")


def task_metrics(targets: np.ndarray, scores: np.ndarray, labels: Sequence[str],
                 rules: Sequence[DecisionRule]) -> dict[str, Any]:
    """mAP, per-class AP and support, and micro/macro/samples P/R/F1 per rule.

    Args:
        targets: ``(N, C)`` 0/1 ground truth of the labeled samples.
        scores: ``(N, C)`` probabilities.
        labels: the ``C`` label names.
        rules: decision rules to score.

    Returns:
        A JSON-ready dict (NaN APs become ``None``).
    """
    ap = average_precision(targets, scores)
    out: dict[str, Any] = {
        "samples": int(len(targets)),
        "mAP": float(np.nanmean(ap)) if np.isfinite(ap).any() else None,
        "ap": {label: (None if np.isnan(v) else float(v)) for label, v in zip(labels, ap)},
        "support": {label: int(n) for label, n in zip(labels, np.asarray(targets).sum(0))},
        "rules": {},
    }
    for rule in rules:
        prf = precision_recall_f1(targets, rule(scores))
        out["rules"][rule.describe()] = {avg: dict(zip(("precision", "recall", "f1"), prf.averages[avg]))
                                   for avg in REPORTED_AVERAGES}
    return out


def multiclass_metrics(targets: np.ndarray, scores: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class P/R/F1 and AP, and the confusion matrix of argmax decisions.

    Args:
        targets: ``(N, C)`` one-hot ground truth.
        scores: ``(N, C)`` class probabilities.
        labels: the ``C`` class names.

    Returns:
        A JSON-ready dict; ``confusion[i][j]`` counts samples of class ``i``
        predicted as ``j``. Macro averages run over every class of the
        vocabulary (scikit-learn's ``labels=range(C)``).
    """
    n_classes = len(labels)
    truth, decided = np.asarray(targets).argmax(1), np.asarray(scores).argmax(1)
    prf = precision_recall_f1(targets, np.eye(n_classes, dtype=bool)[decided])
    confusion = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(confusion, (truth, decided), 1)
    ap = average_precision(targets, scores)
    return {
        "samples": int(len(targets)),
        "accuracy": float((truth == decided).mean()) if len(truth) else None,
        "macro_f1": prf.averages["macro"][2],
        "mAP": float(np.nanmean(ap)) if np.isfinite(ap).any() else None,
        "ap": {label: (None if np.isnan(v) else float(v)) for label, v in zip(labels, ap)},
        "support": {label: int(n) for label, n in zip(labels, prf.support)},
        "per_class": {label: {"precision": float(p), "recall": float(r), "f1": float(f)}
                      for label, p, r, f in zip(labels, prf.precision, prf.recall, prf.f1)},
        "confusion": confusion.tolist(),
    }


def split_metrics(predictions: Predictions, rules: Sequence[DecisionRule]) -> dict[str, dict[str, Any]]:
    """Metrics of every task on the samples labeled for it: :func:`task_metrics`
    (multi-label) or :func:`multiclass_metrics` (multi-class)."""
    out = {}
    for task, labels in predictions.labels.items():
        keep = predictions.labeled[task]
        targets, scores = predictions.targets[task][keep], predictions.scores[task][keep]
        if predictions.kinds[task] == "multiclass":
            out[task] = multiclass_metrics(targets, scores, labels)
        else:
            out[task] = task_metrics(targets, scores, labels, rules)
    return out
