"""Multi-label metrics, vectorised over the whole score matrix.

Definitions are scikit-learn's (``precision_recall_fscore_support``,
``f1_score``, ``average_precision_score``), including its ``zero_division=0``
convention: a ratio with a zero denominator counts as 0. One deliberate
difference: the average precision of a class without positives in the split
is undefined; scikit-learn reports 0, we report NaN and leave the class out
of mAP (the common choice in the MovieNet and COCO-style literature), so a
split that lacks a rare genre does not drag mAP down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AVERAGES = ("micro", "macro", "samples", "weighted")


def average_precision(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Non-interpolated average precision of every class.

    Args:
        targets: ``(N, C)`` 0/1 (or bool) ground truth.
        scores: ``(N, C)`` scores; higher means more likely positive. Tied
            scores are one threshold, as in scikit-learn.

    Returns:
        ``(C,)`` AP per class; NaN for classes without positives.

    Example:
        >>> average_precision(np.array([[1], [0], [1]]), np.array([[0.9], [0.8], [0.3]]))
        array([0.83333333])
    """
    targets = np.asarray(targets).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    order = np.argsort(-scores, axis=0, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=0)
    hits = np.take_along_axis(targets, order, axis=0)
    true_pos = np.cumsum(hits, axis=0)
    # Precision is taken at the end of each group of tied scores.
    group_end = np.ones_like(hits)
    group_end[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    rows = np.arange(n)[:, None]
    end_index = np.minimum.accumulate(np.where(group_end, rows, n)[::-1], axis=0)[::-1]
    precision_at_end = np.take_along_axis(true_pos / (rows + 1.0), end_index, axis=0)
    positives = targets.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (hits * precision_at_end).sum(axis=0) / positives
    return np.where(positives > 0, ap, np.nan)


def mean_average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """Mean AP over the classes that have positives (NaN if none has)."""
    ap = average_precision(targets, scores)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1, per class and averaged.

    Attributes:
        precision, recall, f1: ``(C,)`` per class.
        support: ``(C,)`` number of true positives in the ground truth per class.
        averages: ``{"micro" | "macro" | "samples" | "weighted": (P, R, F1)}``.
    """

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    averages: dict[str, tuple[float, float, float]]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def precision_recall_f1(targets: np.ndarray, predictions: np.ndarray) -> PRF:
    """Precision, recall and F1 of 0/1 predictions against 0/1 targets.

    Args:
        targets: ``(N, C)`` ground truth.
        predictions: ``(N, C)`` decided labels (from a decision rule).

    Returns:
        A :class:`PRF` equal to scikit-learn's ``precision_recall_fscore_support``
        with ``zero_division=0`` for ``average`` in None, micro, macro,
        samples and weighted.
    """
    t = np.asarray(targets).astype(bool)
    p = np.asarray(predictions).astype(bool)
    tp_c, pred_c, true_c = (t & p).sum(0), p.sum(0), t.sum(0)
    precision, recall = _ratio(tp_c, pred_c), _ratio(tp_c, true_c)
    f1 = _ratio(2 * tp_c, pred_c + true_c)
    tp, pred, true = tp_c.sum(), pred_c.sum(), true_c.sum()
    tp_s, pred_s, true_s = (t & p).sum(1), p.sum(1), t.sum(1)
    weights = true_c / true_c.sum() if true_c.sum() else np.zeros(len(true_c))
    averages = {
        "micro": (float(_ratio(tp, pred)), float(_ratio(tp, true)), float(_ratio(2 * tp, pred + true))),
        "macro": (float(precision.mean()), float(recall.mean()), float(f1.mean())),
        "samples": (float(_ratio(tp_s, pred_s).mean()), float(_ratio(tp_s, true_s).mean()),
                    float(_ratio(2 * tp_s, pred_s + true_s).mean())),
        "weighted": (float(precision @ weights), float(recall @ weights), float(f1 @ weights)),
    }
    return PRF(precision, recall, f1, true_c, averages)
