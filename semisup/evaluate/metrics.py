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
from typing import Sequence

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
    # Work class by class on contiguous rows (the transpose): sorting along the
    # fast axis is several times quicker than sorting columns in place.
    hits_by_class = np.ascontiguousarray(np.asarray(targets).astype(bool).T)
    scores_by_class = np.ascontiguousarray(np.asarray(scores, dtype=np.float64).T)
    n = scores_by_class.shape[1]
    order = np.argsort(-scores_by_class, axis=1)  # any order within ties: they are grouped below
    sorted_scores = np.take_along_axis(scores_by_class, order, axis=1)
    hits = np.take_along_axis(hits_by_class, order, axis=1)
    true_pos = np.cumsum(hits, axis=1)
    # Precision is taken at the end of each group of tied scores.
    group_end = np.ones_like(hits)
    group_end[:, :-1] = sorted_scores[:, :-1] != sorted_scores[:, 1:]
    cols = np.arange(n)[None, :]
    end_index = np.minimum.accumulate(np.where(group_end, cols, n)[:, ::-1], axis=1)[:, ::-1]
    precision_at_end = np.take_along_axis(true_pos / (cols + 1.0), end_index, axis=1)
    positives = hits_by_class.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (hits * precision_at_end).sum(axis=1) / positives
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


def prf_from_counts(tp_c: np.ndarray, pred_c: np.ndarray, true_c: np.ndarray, tp_s: np.ndarray, pred_s: np.ndarray,
                    true_s: np.ndarray) -> PRF:
    """Precision, recall and F1 from true-positive, predicted and true counts,
    per class (``_c``, shape ``(C,)``) and per sample (``_s``, shape ``(N,)``)."""
    precision, recall = _ratio(tp_c, pred_c), _ratio(tp_c, true_c)
    f1 = _ratio(2 * tp_c, pred_c + true_c)
    tp, pred, true = tp_c.sum(), pred_c.sum(), true_c.sum()
    weights = true_c / true_c.sum() if true_c.sum() else np.zeros(len(true_c))
    averages = {
        "micro": (float(_ratio(tp, pred)), float(_ratio(tp, true)), float(_ratio(2 * tp, pred + true))),
        "macro": (float(precision.mean()), float(recall.mean()), float(f1.mean())),
        "samples": (float(_ratio(tp_s, pred_s).mean()), float(_ratio(tp_s, true_s).mean()),
                    float(_ratio(2 * tp_s, pred_s + true_s).mean())),
        "weighted": (float(precision @ weights), float(recall @ weights), float(f1 @ weights)),
    }
    return PRF(precision, recall, f1, true_c, averages)


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
    t = np.asarray(targets).astype(bool, copy=False)
    p = np.asarray(predictions).astype(bool, copy=False)
    both = t & p
    return prf_from_counts(both.sum(0), p.sum(0), t.sum(0), both.sum(1), p.sum(1), t.sum(1))


def threshold_family(targets: np.ndarray, scores: np.ndarray, thresholds: Sequence[float]) -> list[PRF]:
    """:func:`precision_recall_f1` of ``scores >= t`` for every ``t``, without a loop over thresholds.

    Every score is binned once by how many thresholds it reaches; per-class
    and per-sample histograms of those bins (plain and restricted to true
    labels), summed from the top bin down, give the predicted and
    true-positive counts at every threshold. Equal to calling
    :func:`precision_recall_f1` per threshold.
    """
    t = np.asarray(targets).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n, c = s.shape
    ordered = np.argsort(thresholds)
    levels = np.asarray(thresholds, dtype=np.float64)[ordered]
    bins = np.searchsorted(levels, s, side="right")      # thresholds each score reaches: 0..T
    width = len(levels) + 1

    def reached(keys: np.ndarray, groups: int, weights: np.ndarray | None) -> np.ndarray:
        """(groups, T): per group, how many (weighted) scores reach each threshold."""
        hist = np.bincount(keys.ravel(), weights=None if weights is None else weights.ravel(),
                           minlength=groups * width).reshape(groups, width)
        return np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]

    by_sample = np.arange(n)[:, None] * width + bins
    by_class = np.arange(c)[None, :] * width + bins
    pred_s, tp_s = reached(by_sample, n, None), reached(by_sample, n, t)
    pred_c, tp_c = reached(by_class, c, None), reached(by_class, c, t)
    true_c, true_s = t.sum(0), t.sum(1)
    out: list[PRF | None] = [None] * len(levels)
    for j, original in enumerate(ordered):
        out[original] = prf_from_counts(tp_c[:, j], pred_c[:, j], true_c, tp_s[:, j], pred_s[:, j], true_s)
    return out


def top_k_family(targets: np.ndarray, scores: np.ndarray, max_k: int) -> list[PRF]:
    """:func:`precision_recall_f1` of top-k decisions for ``k = 1..max_k``, from one sort.

    Each step adds every sample's k-th label: per-class counts grow by a
    ``bincount``, per-sample counts are running sums. Ties are broken by
    the sort order (as any top-k must break them somehow).
    """
    t = np.asarray(targets).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n, c = s.shape
    true_c, true_s = t.sum(0), t.sum(1)
    order = np.argsort(-s, axis=1)[:, :max_k]
    rows = np.arange(n)
    pred_c, tp_c, tp_s = np.zeros(c, np.int64), np.zeros(c, np.int64), np.zeros(n, np.int64)
    out = []
    for k in range(min(max_k, c)):
        picked = order[:, k]
        hit = t[rows, picked]
        pred_c += np.bincount(picked, minlength=c)
        tp_c += np.bincount(picked, weights=hit, minlength=c).astype(np.int64)
        tp_s += hit
        out.append(prf_from_counts(tp_c.copy(), pred_c.copy(), true_c, tp_s.copy(), np.full(n, k + 1), true_s))
    return out


def precision_recall_curve(targets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of one class at every distinct score used as a threshold.

    Args:
        targets: ``(N,)`` 0/1 ground truth of the class.
        scores: ``(N,)`` its scores.

    Returns:
        ``(precision, recall, thresholds)`` ordered by decreasing threshold
        (recall rising), as scikit-learn's ``precision_recall_curve`` without
        its final (1, 0) point.
    """
    targets = np.asarray(targets).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], targets[order]
    ends = np.flatnonzero(np.append(ranked[:-1] != ranked[1:], True))
    true_pos = np.cumsum(hits)[ends]
    precision = true_pos / (ends + 1)
    recall = true_pos / max(1, targets.sum())
    return precision, recall, ranked[ends]
