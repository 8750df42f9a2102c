"""Look at a dataset before training on it: counts, frames, label frequencies, problems."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

from semisup.data.health import check_split, describe
from semisup.data.images import DECODE_ERRORS, load_frame
from semisup.data.samples import SPLITS, Dataset, Problem, Sample
from semisup.data.index import Listing
from semisup.data.video import VideoError, iter_frames, probe
from semisup.errors import SemisupError


@dataclass
class Summary:
    """What ``semisup data inspect`` shows.

    Attributes:
        splits: samples per split.
        frames: (min, median, max) frames per sample.
        labels: per task and label, how many samples carry it, per split.
        unlabeled: per task, samples (outside the unlabeled split) without its labels.
        kinds: per task, its kind.
    """

    splits: dict[str, int]
    frames: tuple[int, float, int]
    labels: dict[str, dict[str, dict[str, int]]]
    unlabeled: dict[str, int]
    kinds: dict[str, str] = field(default_factory=dict)


def frame_count(sample: Sample, listing: Listing | None = None) -> int:
    """Frames of a sample: its image files, or what its video's header says (recorded in the
    dataset index when ``listing`` holds it; 0 if unreadable)."""
    if sample.video is None:
        return len(sample.frames)
    recorded = listing.video(sample.video) if listing is not None else None
    if recorded is not None:
        return recorded[0]
    try:
        return probe(sample.video).frames
    except VideoError:
        return 0


def summarise(dataset: Dataset, listing: Listing | None = None) -> Summary:
    """Counts per split, frames per sample and label frequencies of a dataset (video frame counts
    from the dataset index when ``listing`` is read from one)."""
    samples = dataset.samples
    counts = [frame_count(s, listing) for s in samples] or [0]
    labels: dict[str, dict[str, dict[str, int]]] = {}
    unlabeled: dict[str, int] = {}
    for spec in dataset.tasks:
        table = {label: {split: 0 for split in SPLITS} for label in spec.labels}
        for sample in samples:
            for label in sample.labels.get(spec.name) or ():
                table[label][sample.split] += 1
        labels[spec.name] = table
        unlabeled[spec.name] = sum(1 for s in samples if s.split != "unlabeled" and s.labels.get(spec.name) is None)
    return Summary(dict(Counter(s.split for s in samples)), (min(counts), statistics.median(counts), max(counts)),
                   labels, unlabeled, {t.name: t.kind for t in dataset.tasks})


def check_frames(samples: Sequence[Sample], on_sample: Callable[[], None] | None = None,
                 max_unreadable: float = 0.2) -> list[Problem]:
    """Decode every frame of every sample and apply the run's rule for unreadable samples.

    One warning per unreadable image or video, one per sample with no
    readable frame at all, and an error (a run would stop) for each split
    where more than ``max_unreadable`` of the samples, or all of them, have
    no readable frame (see :mod:`semisup.data.health`).

    Args:
        samples: the samples to check.
        on_sample: called after each sample (progress display).
        max_unreadable: the recipe's ``data.max_unreadable``.
    """
    problems, unreadable = [], set()
    for sample in samples:
        readable = 0
        if sample.video is not None:
            try:
                readable = sum(1 for _ in iter_frames(sample.video, short_side=32))
                if not readable:
                    problems.append(Problem("unreadable video", f"{sample.video}: no frame decodes", fatal=False))
            except VideoError as exc:
                problems.append(Problem("unreadable video", str(exc), fatal=False))
        for path in sample.frames:
            try:
                load_frame(path, 16)
                readable += 1
            except DECODE_ERRORS as exc:
                problems.append(Problem("unreadable image", f"{path}: {type(exc).__name__}: {exc}", fatal=False))
        if not readable:
            unreadable.add(sample.id)
            problems.append(Problem("sample without a readable frame", describe(sample), fatal=False))
        if on_sample:
            on_sample()
    for split in SPLITS:
        members = [s for s in samples if s.split == split]
        try:
            check_split(split, members, [s.id for s in members if s.id in unreadable], max_unreadable)
        except SemisupError as exc:
            problems.append(Problem("too many unreadable samples", str(exc)))
    return problems


def problem_summary(problems: Sequence[Problem], examples: int = 2) -> list[str]:
    """One line per kind of problem: its count and the first ``examples`` messages."""
    by_kind: dict[str, list[Problem]] = {}
    for problem in problems:
        by_kind.setdefault(problem.kind, []).append(problem)
    lines = []
    for kind, found in by_kind.items():
        shown = "; ".join(p.message for p in found[:examples])
        lines.append(f"{len(found)} x {kind}: {shown}" + (" ..." if len(found) > examples else ""))
    return lines


def has_readable_frame(sample: Sample) -> bool:
    """Whether any frame of ``sample`` decodes, stopping at the first that does (usually one decode).

    Example:
        >>> has_readable_frame(Sample("empty"))
        False
    """
    if sample.video is not None:
        try:
            for _ in iter_frames(sample.video, short_side=16):
                return True
        except VideoError:
            pass
    for path in sample.frames:
        try:
            load_frame(path, 16)
            return True
        except DECODE_ERRORS:
            continue
    return False


def check_readable_splits(samples: Sequence[Sample], splits: Sequence[str], max_unreadable: float,
                          on_sample: Callable[[], None] | None = None) -> dict[str, list[str]]:
    """Before training: find the samples of ``splits`` without a readable frame (one decode per
    readable sample) and apply the run's rule, so that a split the run could not evaluate stops
    it before it trains rather than after.

    Args:
        samples: every sample of the dataset.
        splits: the splits to check (``train`` is named "labeled train" in messages, as in training).
        max_unreadable: the recipe's ``data.max_unreadable``.
        on_sample: called after each sample checked.

    Returns:
        per split, the ids of its unreadable samples (within the limit).

    Raises:
        SemisupError: more than ``max_unreadable`` of a split, or all of it, is unreadable.
    """
    found = {}
    for split in splits:
        members = [s for s in samples if s.split == split]
        unreadable = []
        for sample in members:
            if not has_readable_frame(sample):
                unreadable.append(sample.id)
            if on_sample:
                on_sample()
        try:
            check_split("labeled train" if split == "train" else split, members, unreadable, max_unreadable)
        except SemisupError as exc:
            raise SemisupError(f"{exc} (found before training)") from None
        found[split] = unreadable
    return found
