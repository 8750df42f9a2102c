"""Seeded, stratified, grouped splits into train (labeled / unlabeled), val and test.

Multi-label stratification uses the iterative stratification of Sechidis et
al. (2011) from ``iterative-stratification``: every label keeps close to its
overall share in every split. Groups (the shots of one trailer) are split as
units, so no group lands in two splits.
"""

from __future__ import annotations

import csv
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from iterstrat.ml_stratifiers import IterativeStratification

from semisup.data.samples import Sample, TaskSpec
from semisup.io import atomic_write


@dataclass(frozen=True)
class SplitPlan:
    """How to split.

    Attributes:
        val, test: fractions of the labeled samples that go to val and test.
        labeled_fraction: of the remaining train samples, the share that keeps
            its labels; the rest become ``unlabeled``.
        labeled_count: instead, about this many train samples keep their
            labels (0: use the fraction).
        seed: the same seed gives the same split.
    """

    val: float = 0.1
    test: float = 0.2
    labeled_fraction: float = 1.0
    labeled_count: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.val < 1 and 0 <= self.test < 1 and self.val + self.test < 1):
            raise ValueError(f"val and test fractions must be in [0, 1) and sum below 1, got {self.val}, {self.test}")
        if not 0 < self.labeled_fraction <= 1 or self.labeled_count < 0:
            raise ValueError(f"labeled fraction must be in (0, 1] and the count >= 0, got "
                             f"{self.labeled_fraction}, {self.labeled_count}")


def label_matrix(samples: Sequence[Sample], tasks: Sequence[TaskSpec]) -> np.ndarray:
    """``(N, sum of C)`` 0/1 indicators of every task's labels, side by side."""
    blocks = [np.stack([t.encode(s.labels.get(t.name)) for s in samples]) if samples else
              np.zeros((0, len(t.labels))) for t in tasks]
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(samples), 0))


def split_dataset(samples: Sequence[Sample], tasks: Sequence[TaskSpec], plan: SplitPlan) -> dict[str, str]:
    """A split name for every sample id.

    Samples without any label become ``unlabeled``. Labeled samples are
    split by group (or individually) into train / val / test, stratified on
    their labels; then the train groups are split into labeled ``train`` and
    ``unlabeled``, stratified again.

    Args:
        samples: the samples (their current splits are ignored).
        tasks: tasks whose labels to stratify on.
        plan: fractions and seed.

    Returns:
        ``{sample id: "train" | "val" | "test" | "unlabeled"}``.

    Raises:
        ValueError: ``plan.labeled_count`` is more than the train samples that
            val and test leave, or the plan leaves no labeled train sample.
    """
    rng = np.random.RandomState(plan.seed)
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.group or sample.id, []).append(sample)
    names = sorted(groups)
    labels = label_matrix(samples, tasks)
    row = {s.id: i for i, s in enumerate(samples)}
    unit_labels = np.stack([labels[[row[s.id] for s in groups[g]]].sum(0) for g in names]) if names else labels
    has_labels = np.array([any(s.is_labeled() for s in groups[g]) for g in names], dtype=bool)
    out = {s.id: "unlabeled" for s in samples}
    labeled_units = np.flatnonzero(has_labels)
    if not len(labeled_units):
        return out
    ratios = np.array([1 - plan.val - plan.test, plan.val, plan.test])
    folds = _stratify(unit_labels[labeled_units], ratios, rng)
    train_units = labeled_units[folds == 0]
    for fold, split in ((1, "val"), (2, "test")):
        for unit in labeled_units[folds == fold]:
            for sample in groups[names[unit]]:
                out[sample.id] = split
    keep = plan.labeled_fraction
    if plan.labeled_count:
        available = sum(len(groups[names[u]]) for u in train_units)
        if plan.labeled_count > available:
            raise ValueError(f"cannot keep labels on {plan.labeled_count} train samples: val and test leave "
                             f"{available} labeled samples for train (of {len(samples)})")
        keep = plan.labeled_count / available
    if keep < 1:
        inner = _stratify(unit_labels[train_units], np.array([keep, 1 - keep]), rng)
        train_units = train_units[inner == 0]
    if not len(train_units):
        raise ValueError(f"no labeled train sample would remain of {len(samples)} samples "
                         "(keep more labels, or give val and test smaller shares)")
    for unit in train_units:
        for sample in groups[names[unit]]:
            out[sample.id] = "train"
    return out


def _stratify(labels: np.ndarray, ratios: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """Fold index (0..len(ratios)-1) per row, iterative stratification on 0/1 (or count) labels.

    The labels must reach ``IterativeStratification`` as a *boolean* matrix: it
    indexes label columns with each row, which only works as a mask. Rows are
    shuffled first: the algorithm walks samples in order and draws at random
    only to break ties, so without a shuffle every seed gives nearly the same split.
    """
    if labels.shape[1] == 0:
        labels = np.zeros((len(labels), 1))
    order = rng.permutation(len(labels))
    folds = np.empty(len(labels), dtype=int)
    folds[order] = IterativeStratification(labels=labels[order] > 0, r=ratios, random_state=rng)
    return folds


def split_shares(samples: Sequence[Sample], tasks: Sequence[TaskSpec], splits: dict[str, str]
                 ) -> dict[str, dict[str, dict[str, float]]]:
    """Per task and label, its share of the samples of each split (and of all labeled samples).

    Returns:
        ``{task: {label: {"all": share, "train": share, "val": ..., "test": ...}}}``.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for task in tasks:
        labeled = [s for s in samples if s.labels.get(task.name) is not None]
        table = {}
        for label in task.labels:
            shares = {}
            for split in ("all", "train", "val", "test"):
                members = [s for s in labeled if split == "all" or splits[s.id] == split]
                hits = sum(label in s.labels[task.name] for s in members)
                shares[split] = hits / len(members) if members else float("nan")
            table[label] = shares
        out[task.name] = table
    return out


def _backup(path: Path) -> Path | None:
    """Copy ``path`` aside (``<name>.<timestamp>.bak``) before it is rewritten."""
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.{stamp}.bak")
    shutil.copy2(path, backup)
    return backup


def _write_rows(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_split_column(csv_path: Path, splits: dict[str, str]) -> Path | None:
    """Set the ``split`` column of a labels CSV (added after ``id`` if missing).

    The old file is kept as a timestamped ``.bak`` copy; the new one is
    written atomically. Rows whose id has no split keep their old value.

    Returns:
        The backup's path.
    """
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    if "split" not in columns:
        columns.insert(columns.index("id") + 1 if "id" in columns else 0, "split")
    for row in rows:
        row["split"] = splits.get((row.get("id") or "").strip(), row.get("split") or "")
    backup = _backup(csv_path)
    _write_rows(csv_path, columns, rows)
    return backup


def write_split_file(path: Path, splits: dict[str, str]) -> Path | None:
    """Write ``id,split`` rows (sorted by id) atomically, keeping a ``.bak`` of an older file."""
    backup = _backup(path)
    _write_rows(path, ["id", "split"], [{"id": i, "split": s} for i, s in sorted(splits.items())])
    return backup
