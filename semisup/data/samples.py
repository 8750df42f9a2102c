"""The data model: a sample is a trailer (ordered frames) with labels per task."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np

SPLITS = ("train", "val", "test", "unlabeled")
Split = Literal["train", "val", "test", "unlabeled"]


@dataclass(frozen=True)
class Sample:
    """One trailer (or shot): its frames in time order and its labels.

    Attributes:
        id: unique identifier (the CSV ``id``).
        frames: image files in time order.
        labels: per task, the sample's labels, or ``None`` when the sample is
            unlabeled for that task.
        split: ``train``, ``val``, ``test`` or ``unlabeled``.
    """

    id: str
    frames: tuple[Path, ...]
    labels: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    split: Split = "train"

    def is_labeled(self) -> bool:
        """True when the sample has labels for at least one task."""
        return any(v is not None for v in self.labels.values())


@dataclass(frozen=True)
class TaskSpec:
    """A labeled task as the data layer sees it: its name and label vocabulary."""

    name: str
    labels: tuple[str, ...]
    kind: Literal["multilabel"] = "multilabel"

    def encode(self, labels: Sequence[str] | None) -> np.ndarray:
        """Multi-hot vector ``(C,)`` for ``labels`` (all zeros when ``None``)."""
        index = {name: i for i, name in enumerate(self.labels)}
        out = np.zeros(len(self.labels), dtype=np.float32)
        for label in labels or ():
            out[index[label]] = 1.0
        return out


def split_samples(samples: Sequence[Sample], split: Split) -> list[Sample]:
    """The samples of one split, in their original order."""
    return [s for s in samples if s.split == split]


def labeled_pool(samples: Sequence[Sample]) -> list[Sample]:
    """Training trailers with labels for at least one task."""
    return [s for s in samples if s.split == "train" and s.is_labeled()]


def unlabeled_pool(samples: Sequence[Sample], include_labeled: bool = False) -> list[Sample]:
    """Trailers for pretext tasks: the ``unlabeled`` split, train trailers without
    labels, and (optionally) the labeled train trailers too."""
    return [s for s in samples
            if s.split == "unlabeled" or (s.split == "train" and (include_labeled or not s.is_labeled()))]


def label_counts(samples: Sequence[Sample], task: str) -> dict[str, int]:
    """How many samples carry each label of ``task``."""
    counts: dict[str, int] = {}
    for sample in samples:
        for label in sample.labels.get(task) or ():
            counts[label] = counts.get(label, 0) + 1
    return counts
