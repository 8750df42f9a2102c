"""The threshold sweep: choose a decision rule on validation, report it on test.

For every multi-label task each rule family is tuned on the validation
predictions only (top-k over k, a global threshold over a grid, per-class
thresholds, each with and without an "at least one label" fallback, MCut,
and plain rounding for reference). The family whose tuned rule scores best on
validation by the chosen objective (micro-F1 by default) is chosen. Test
predictions are only ever scored with rules fixed on validation; they never
influence a choice. Multi-class tasks take the argmax.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from semisup.errors import SemisupError
from semisup.evaluate.decisions import (AtLeastOne, Argmax, DecisionRule, MCut, Threshold, TopK,
                                        tune_per_class_thresholds)
from semisup.evaluate.metrics import (AVERAGES, average_precision, precision_recall_f1, threshold_family,
                                      top_k_family)
from semisup.evaluate.predictions import Predictions

OBJECTIVES = {"micro-f1": "micro", "macro-f1": "macro", "samples-f1": "samples"}
THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.05, 0.951, 0.025), 3))
MAX_K = 10


@dataclass
class Scored:
    """A rule with its scores: ``{average: (precision, recall, f1)}`` on val and (if any) test."""

    rule: DecisionRule
    val: dict[str, tuple[float, float, float]]
    test: dict[str, tuple[float, float, float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        def pack(scores: dict | None) -> dict | None:
            if scores is None:
                return None
            return {avg: dict(zip(("precision", "recall", "f1"), scores[avg])) for avg in AVERAGES}
        return {"family": self.rule.name, "rule": self.rule.describe(), "params": self.rule.to_dict(),
                "val": pack(self.val), "test": pack(self.test)}


@dataclass
class TaskSweep:
    """The sweep of one task.

    Attributes:
        candidates: the best rule of each family, by validation objective.
        chosen: the best of the candidates.
        curves: F1 (by the objective's average) against k and against the
            global threshold, on val and test, for plots.
        map_val, map_test: mAP (NaN-classes excluded) on each split.
    """

    task: str
    kind: str
    objective: str
    candidates: list[Scored]
    chosen: Scored
    curves: dict[str, list[float]] = field(default_factory=dict)
    map_val: float | None = None
    map_test: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "kind": self.kind, "objective": self.objective,
                "chosen": self.chosen.to_dict(), "candidates": [c.to_dict() for c in self.candidates],
                "curves": self.curves, "mAP": {"val": self.map_val, "test": self.map_test}}


def _scores(targets: np.ndarray, decided: np.ndarray) -> dict[str, tuple[float, float, float]]:
    return precision_recall_f1(targets, decided).averages


def _map(targets: np.ndarray | None, scores: np.ndarray | None) -> float | None:
    if targets is None or not len(targets):
        return None
    ap = average_precision(targets, scores)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else None


def sweep_task(task: str, val_targets: np.ndarray, val_scores: np.ndarray, test_targets: np.ndarray | None = None,
               test_scores: np.ndarray | None = None, kind: str = "multilabel",
               objective: str = "micro-f1") -> TaskSweep:
    """Tune every rule family on validation and score the tuned rules on test.

    Args:
        task: task name.
        val_targets, val_scores: ``(N, C)`` validation ground truth and probabilities.
        test_targets, test_scores: the same for test, or None.
        kind: ``multilabel`` or ``multiclass`` (argmax only).
        objective: ``micro-f1``, ``macro-f1`` or ``samples-f1``.

    Raises:
        ValueError: unknown objective.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    average = OBJECTIVES[objective]
    has_test = test_targets is not None and test_scores is not None and len(test_targets) > 0

    def score(rule: DecisionRule) -> Scored:
        test = _scores(test_targets, rule(test_scores)) if has_test else None
        return Scored(rule, _scores(val_targets, rule(val_scores)), test)

    def f1(scored: Scored) -> float:
        return scored.val[average][2]

    if kind == "multiclass":
        chosen = score(Argmax())
        return TaskSweep(task, kind, objective, [chosen], chosen, {}, _map(val_targets, val_scores),
                         _map(test_targets, test_scores) if has_test else None)

    n_classes = val_scores.shape[1]
    ks = range(1, min(MAX_K, n_classes) + 1)
    # The top-k and threshold families come from one sort each (same numbers as
    # scoring rule by rule, much faster on large matrices).
    val_k, val_t = top_k_family(val_targets, val_scores, len(ks)), threshold_family(val_targets, val_scores, THRESHOLDS)
    test_k = top_k_family(test_targets, test_scores, len(ks)) if has_test else [None] * len(ks)
    test_t = threshold_family(test_targets, test_scores, THRESHOLDS) if has_test else [None] * len(THRESHOLDS)
    by_k = [Scored(TopK(k), v.averages, t.averages if t else None) for k, v, t in zip(ks, val_k, test_k)]
    by_t = [Scored(Threshold(x), v.averages, t.averages if t else None) for x, v, t in zip(THRESHOLDS, val_t, test_t)]
    best_k, best_t = max(by_k, key=f1), max(by_t, key=f1)
    per_class = tune_per_class_thresholds(val_targets, val_scores, fallback=best_t.rule.t)
    rounding = next(scored for scored in by_t if scored.rule.t == 0.5)
    candidates = [best_k, rounding, best_t, score(AtLeastOne(best_t.rule)), score(per_class),
                  score(AtLeastOne(per_class)), score(MCut())]
    chosen = max(candidates, key=f1)  # ties go to the earlier, simpler family
    curves = {"k": [s.rule.k for s in by_k], "val_f1_by_k": [f1(s) for s in by_k],
              "threshold": list(THRESHOLDS), "val_f1_by_threshold": [f1(s) for s in by_t]}
    if has_test:
        curves["test_f1_by_k"] = [s.test[average][2] for s in by_k]
        curves["test_f1_by_threshold"] = [s.test[average][2] for s in by_t]
    return TaskSweep(task, kind, objective, candidates, chosen, curves, _map(val_targets, val_scores),
                     _map(test_targets, test_scores) if has_test else None)


def sweep(val: Predictions, test: Predictions | None = None, objective: str = "micro-f1",
          tasks: Sequence[str] | None = None) -> dict[str, TaskSweep]:
    """:func:`sweep_task` for every task, on the samples labeled for it.

    Raises:
        SemisupError: ``test`` lacks a task of ``val``, or holds it with other labels (predictions
            of another run or dataset).
    """
    out = {}
    for task in tasks or list(val.labels):
        if test is not None and task not in test.labels:
            raise SemisupError(f"test predictions have no task {task!r} (they hold {', '.join(test.labels)}); "
                               "give val and test predictions of the same run")
        if test is not None and list(test.labels[task]) != list(val.labels[task]):
            raise SemisupError(f"task {task!r} has other labels in the test predictions than in the val ones "
                               f"({len(test.labels[task])} vs {len(val.labels[task])}); give val and test "
                               "predictions of the same run")
        keep = val.labeled[task]
        test_args: tuple = (None, None)
        if test is not None:
            test_keep = test.labeled[task]
            test_args = (test.targets[task][test_keep], test.scores[task][test_keep])
        out[task] = sweep_task(task, val.targets[task][keep], val.scores[task][keep], *test_args,
                               kind=val.kinds[task], objective=objective)
    return out


def sweep_rows(sweeps: dict[str, TaskSweep]) -> list[dict[str, Any]]:
    """Flat rows (task, rule, split, average, P, R, F1) for ``sweep.csv``."""
    rows = []
    for task, result in sweeps.items():
        for scored in result.candidates:
            for split, values in (("val", scored.val), ("test", scored.test)):
                for avg, (p, r, f) in (values or {}).items():
                    rows.append({"task": task, "rule": scored.rule.describe(), "family": scored.rule.name,
                                 "chosen": scored is result.chosen, "split": split, "average": avg,
                                 "precision": round(p, 6), "recall": round(r, 6), "f1": round(f, 6)})
    return rows


def write_sweep(sweeps: dict[str, TaskSweep], out_dir: Path) -> list[Path]:
    """Write ``sweep.json`` and ``sweep.csv`` into ``out_dir`` (the plots: :func:`~semisup.evaluate.plots.plot_sweeps`)."""
    import csv

    from semisup.io import atomic_write, write_json

    write_json(out_dir / "sweep.json", {t: s.to_dict() for t, s in sweeps.items()})
    rows = sweep_rows(sweeps)
    with atomic_write(out_dir / "sweep.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["task"])
        writer.writeheader()
        writer.writerows(rows)
    return [out_dir / "sweep.json", out_dir / "sweep.csv"]
