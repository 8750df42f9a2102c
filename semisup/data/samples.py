"""The data model: a sample is a trailer (or a shot) with ordered frames and labels per task.

Every dataset reader (folder, demo, MovieNet, MovieShots) produces the same
:class:`Dataset`: samples, one :class:`TaskSpec` per task, and the problems it
met. A run stops at the first fatal problem; ``semisup data inspect`` lists
them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np

SPLITS = ("train", "val", "test", "unlabeled")
Split = Literal["train", "val", "test", "unlabeled"]
TaskKind = Literal["multilabel", "multiclass"]


class FrameFiles(Sequence[Path]):
    """A sample's frame files: a folder and the names of its frames, in time order.

    Reads like a tuple of paths (``len``, indexing, iteration, ``==`` with a tuple);
    each path is made when it is read. Listing a million frames makes no path
    objects: making them would take most of the listing's time.

    Example:
        >>> frames = FrameFiles(Path("frames/t1"), ["000.jpg", "001.jpg"])
        >>> len(frames), frames[1].as_posix()
        (2, 'frames/t1/001.jpg')
    """

    __slots__ = ("folder", "names")

    def __init__(self, folder: Path, names: Sequence[str]) -> None:
        self.folder, self.names = folder, tuple(names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return tuple(self.folder / name for name in self.names[index])
        return self.folder / self.names[index]

    def __iter__(self):
        return (self.folder / name for name in self.names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrameFiles):
            return self.folder == other.folder and self.names == other.names
        if isinstance(other, (tuple, list)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"FrameFiles({str(self.folder)!r}, {len(self.names)} frames)"


@dataclass(frozen=True)
class Sample:
    """One trailer (or shot): where its frames are, and its labels.

    Attributes:
        id: unique identifier.
        frames: image files in time order (a tuple, or :class:`FrameFiles`); empty when the
            frames come from ``video``.
        video: a video file whose frames are decoded on the fly.
        labels: per task, the sample's labels, or ``None`` when it is unlabeled for that task.
        split: ``train``, ``val``, ``test`` or ``unlabeled``.
        group: samples of one group (e.g. the shots of a trailer) are kept in
            one split by ``semisup data split``.
    """

    id: str
    frames: Sequence[Path] = ()
    video: Path | None = None
    labels: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    split: Split = "train"
    group: str | None = None

    def is_labeled(self) -> bool:
        """True when the sample has labels for at least one task."""
        return any(v is not None for v in self.labels.values())


@dataclass(frozen=True)
class TaskSpec:
    """A labeled task as the data layer sees it.

    Attributes:
        name: the task's name.
        labels: its label vocabulary, in output order.
        kind: ``multilabel`` (any number of labels per sample) or
            ``multiclass`` (exactly one).
    """

    name: str
    labels: tuple[str, ...]
    kind: TaskKind = "multilabel"

    def encode(self, labels: Sequence[str] | None) -> np.ndarray:
        """Multi-hot (or one-hot) vector ``(C,)`` for ``labels``; zeros when ``None``."""
        index = {name: i for i, name in enumerate(self.labels)}
        out = np.zeros(len(self.labels), dtype=np.float32)
        for label in labels or ():
            out[index[label]] = 1.0
        return out


@dataclass(frozen=True)
class Problem:
    """Something wrong with a dataset.

    Attributes:
        kind: short category, e.g. ``"missing frames"``, ``"unknown label"``.
        message: one line naming the file, sample and what is expected.
        fatal: a run cannot start with it (non-fatal problems are reported
            and the affected frames or labels skipped).
    """

    kind: str
    message: str
    fatal: bool = True


@dataclass
class Dataset:
    """What a reader returns.

    Attributes:
        samples: readable samples (those with fatal problems are left out).
        tasks: one spec per task, vocabularies filled in.
        problems: everything found wrong, in reading order.
        source: the file or folder the labels came from, for messages.
    """

    samples: list[Sample]
    tasks: list[TaskSpec]
    problems: list[Problem] = field(default_factory=list)
    source: str = ""

    def fatal(self) -> list[Problem]:
        return [p for p in self.problems if p.fatal]


def split_samples(samples: Sequence[Sample], split: Split) -> list[Sample]:
    """The samples of one split, in their original order."""
    return [s for s in samples if s.split == split]


def labeled_pool(samples: Sequence[Sample]) -> list[Sample]:
    """Training samples with labels for at least one task."""
    return [s for s in samples if s.split == "train" and s.is_labeled()]


def unlabeled_pool(samples: Sequence[Sample], include_labeled: bool = False) -> list[Sample]:
    """Samples for pretext tasks: the ``unlabeled`` split, train samples without
    labels, and (optionally) the labeled train samples too."""
    return [s for s in samples
            if s.split == "unlabeled" or (s.split == "train" and (include_labeled or not s.is_labeled()))]


def label_counts(samples: Sequence[Sample], task: str) -> dict[str, int]:
    """How many samples carry each label of ``task``."""
    counts: dict[str, int] = {}
    for sample in samples:
        for label in sample.labels.get(task) or ():
            counts[label] = counts.get(label, 0) + 1
    return counts
