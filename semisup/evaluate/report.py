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
        out["rules"][rule.name] = {avg: dict(zip(("precision", "recall", "f1"), prf.averages[avg]))
                                   for avg in REPORTED_AVERAGES}
    return out


def split_metrics(predictions: Predictions, rules: Sequence[DecisionRule]) -> dict[str, dict[str, Any]]:
    """:func:`task_metrics` of every task, on the samples labeled for it."""
    out = {}
    for task, labels in predictions.labels.items():
        keep = predictions.labeled[task]
        out[task] = task_metrics(predictions.targets[task][keep], predictions.scores[task][keep], labels, rules)
    return out
