"""PNG plots of results: F1 against k and threshold, PR curves, per-class AP,
training curves, confusion matrices. Each function writes one file and returns its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from semisup.evaluate.metrics import average_precision, precision_recall_curve  # noqa: E402
from semisup.evaluate.predictions import Predictions  # noqa: E402
from semisup.evaluate.sweep import TaskSweep  # noqa: E402
from semisup.io import atomic_write  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, dpi=110, format="png")
    plt.close(fig)
    return path


def plot_f1_curves(result: TaskSweep, path: Path) -> Path:
    """F1 (the sweep's objective) against k and against the global threshold, val and test."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    curves, name = result.curves, result.objective
    for split, style in (("val", "-o"), ("test", "--s")):
        if f"{split}_f1_by_k" in curves:
            left.plot(curves["k"], curves[f"{split}_f1_by_k"], style, ms=4, label=split)
            right.plot(curves["threshold"], curves[f"{split}_f1_by_threshold"], style, ms=3, label=split)
    left.set(xlabel="k (top-k)", ylabel=name, title=f"{result.task}: {name} against k")
    right.set(xlabel="global threshold t (p >= t)", title=f"{result.task}: {name} against threshold")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    return _save(fig, path)


def plot_pr_curves(targets: np.ndarray, scores: np.ndarray, labels: Sequence[str], path: Path,
                   most: int = 6, title: str = "") -> Path:
    """Precision-recall curves of the ``most`` most frequent classes."""
    support = np.asarray(targets).sum(0)
    fig, axis = plt.subplots(figsize=(5.5, 4.2))
    ap = average_precision(targets, scores)
    for c in np.argsort(-support, kind="stable")[:most]:
        if support[c] == 0:
            continue
        precision, recall, _ = precision_recall_curve(targets[:, c], scores[:, c])
        axis.step(np.concatenate([[0], recall]), np.concatenate([[precision[0]], precision]), where="post",
                  label=f"{labels[c]} (AP {ap[c]:.2f}, n={support[c]})")
    axis.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
             title=title or "precision-recall, most frequent classes")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower left")
    return _save(fig, path)


def plot_per_class_bars(values: dict[str, float | None], path: Path, xlabel: str = "average precision",
                        title: str = "") -> Path:
    """Horizontal bars, one per class, best at the top (classes without a value are left out)."""
    items = sorted(((k, v) for k, v in values.items() if v is not None), key=lambda kv: kv[1])
    fig, axis = plt.subplots(figsize=(6, 0.3 * len(items) + 1.2))
    axis.barh([k for k, _ in items], [v for _, v in items], color="#4C72B0")
    for i, (_, v) in enumerate(items):
        axis.text(v + 0.01, i, f"{v:.2f}", va="center", fontsize=8)
    axis.set(xlim=(0, 1.1), xlabel=xlabel, title=title)
    return _save(fig, path)


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str = "") -> Path:
    """A confusion matrix, rows = true class, columns = predicted class."""
    matrix = np.asarray(confusion)
    fig, axis = plt.subplots(figsize=(1 + 0.6 * len(labels), 0.8 + 0.55 * len(labels)))
    axis.imshow(matrix, cmap="Blues")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            axis.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                      color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    axis.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
             xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path)


def plot_training(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Training losses (supervised, pretext, consistency) and validation scores per epoch (from metrics.jsonl)."""
    epochs = [r["epoch"] for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(epochs, [r["loss"] for r in records], "-o", ms=3, label="supervised loss")
    for group in ("pretext", "consistency"):
        for name in records[0].get(group, {}) if records else ():
            losses = [r.get(group, {}).get(name, {}).get("loss", float("nan")) for r in records]  # nan: not yet started
            left.plot(epochs, losses, "-s", ms=3, label=f"{name} loss")
    left.set(xlabel="epoch", title="training losses")
    for task in records[0].get("val", {}) if records else ():
        for metric in records[0]["val"][task]:
            right.plot(epochs, [r["val"][task][metric] for r in records], "-o", ms=3, label=f"val {task} {metric}")
    for name in records[0].get("pretext", {}) if records else ():
        right.plot(epochs, [r["pretext"][name]["accuracy"] for r in records], ":", label=f"{name} accuracy")
    right.set(xlabel="epoch", ylim=(0, 1), title="validation scores and pretext accuracy")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return _save(fig, path)


def sweep_plots(result: TaskSweep, test_targets: np.ndarray | None, test_scores: np.ndarray | None,
                labels: Sequence[str], out_dir: Path) -> list[Path]:
    """The plots of one task's sweep: F1 against k and threshold, PR curves and
    per-class AP (multi-label), or the confusion matrix and per-class F1 (multi-class)."""
    from semisup.evaluate.report import multiclass_metrics

    paths = []
    if result.kind == "multiclass":
        if test_targets is not None and len(test_targets):
            metrics = multiclass_metrics(test_targets, test_scores, labels)
            paths.append(plot_confusion(metrics["confusion"], labels, out_dir / f"{result.task}-confusion.png",
                                        f"{result.task}: test confusion"))
            paths.append(plot_per_class_bars({k: v["f1"] for k, v in metrics["per_class"].items()},
                                             out_dir / f"{result.task}-f1.png", "F1", f"{result.task}: test F1"))
        return paths
    paths.append(plot_f1_curves(result, out_dir / f"{result.task}-f1-curves.png"))
    if test_targets is not None and len(test_targets):
        ap = average_precision(test_targets, test_scores)
        paths.append(plot_pr_curves(test_targets, test_scores, labels, out_dir / f"{result.task}-pr.png",
                                    title=f"{result.task}: test precision-recall"))
        paths.append(plot_per_class_bars({label: None if np.isnan(v) else float(v) for label, v in zip(labels, ap)},
                                         out_dir / f"{result.task}-ap.png", title=f"{result.task}: test AP per class"))
    return paths


def plot_pretraining(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """The contrastive stage: NT-Xent loss and the kNN probe (labeled train -> val) per epoch."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    trained = [r for r in records if r.get("loss") is not None]
    left.plot([r["epoch"] for r in trained], [r["loss"] for r in trained], "-o", ms=3)
    left.set(xlabel="epoch", title="NT-Xent loss")
    for task in records[0].get("knn", {}) if records else ():
        for metric in records[0]["knn"][task]:
            right.plot([r["epoch"] for r in records], [r["knn"][task][metric] for r in records], "-o", ms=3,
                       label=f"kNN {task} {metric}")
    right.set(xlabel="epoch (0: before pretraining)", ylim=(0, 1), title="frozen features, kNN probe on val")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    right.legend(fontsize=8)
    return _save(fig, path)


def plot_sweeps(sweeps: dict[str, TaskSweep], out_dir: Path, val: Predictions,
                test: Predictions | None = None) -> list[Path]:
    """Every task's sweep plots (:func:`sweep_plots`) into ``out_dir``, with test curves when ``test`` is given."""
    written = []
    for task, result in sweeps.items():
        targets = scores = None
        if test is not None:
            keep = test.labeled[task]
            targets, scores = test.targets[task][keep], test.scores[task][keep]
        written += sweep_plots(result, targets, scores, val.labels[task], out_dir)
    return written


def plot_selection_curves(points: Sequence[tuple[str, int, float]], path: Path, ylabel: str = "test mAP") -> Path:
    """Metric against labeled trailers, one line per strategy: the mean over seeds at each
    label count, with the seeds' range shaded (``points``: strategy, labels, value)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy in dict.fromkeys(s for s, _, _ in points):
        by_labels: dict[int, list[float]] = {}
        for s, labels, value in points:
            if s == strategy:
                by_labels.setdefault(labels, []).append(value)
        xs = sorted(by_labels)
        means = [float(np.mean(by_labels[x])) for x in xs]
        line, = ax.plot(xs, means, marker="o", label=strategy)
        ax.fill_between(xs, [min(by_labels[x]) for x in xs], [max(by_labels[x]) for x in xs],
                        color=line.get_color(), alpha=0.15)
    ax.set_xlabel("labeled train trailers")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)
