"""Self-training: label the unlabeled trailers with a trained run, as a new folder-format dataset.

``semisup pseudo-label RUN_DIR --out DIR`` scores every unlabeled trailer of
the run's dataset (the ``unlabeled`` split and train trailers without labels)
with a checkpoint, turns the scores into labels with the run's decision rules
(``threshold-sweep --apply``; else 0.5 for multi-label tasks, the top class
for multi-class ones) and writes ``DIR`` in the folder format::

    DIR/labels.csv            every trailer: the labeled ones as they were, val and
                              test untouched, the pseudo-labeled ones moved to train
                              with the teacher's labels; columns pseudo (1 for them)
                              and <task>_confidence
    DIR/frames/<id>           links to each trailer's frames (or DIR/videos/<id>.mp4)
    DIR/pseudo_labels.json    where the labels came from, how many, per class

A student then trains on labeled plus pseudo-labeled trailers with any
recipe (Noisy Student, Xie et al. 2020: a student as large or larger, with
noise: augmentation, dropout)::

    semisup run recipes/sesemi.toml --set data.format=folder --set data.root=DIR

A trailer's confidence is its top probability (multi-class) or its least
certain label's ``max(p, 1 - p)`` (multi-label); ``min_confidence`` leaves the
less certain trailers unlabeled.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from semisup.data.samples import Sample, TaskSpec, unlabeled_pool
from semisup.errors import SemisupError
from semisup.io import atomic_folder, atomic_write, write_json

MARKER = "pseudo_labels.json"


@dataclass
class PseudoLabels:
    """What :func:`pseudo_label` wrote.

    Attributes:
        out: the new dataset folder.
        scored: unlabeled trailers scored; ``labeled``: those given labels
            (confident enough); ``unreadable``: those without a readable frame.
        counts: per task, pseudo-labeled trailers per class.
    """

    out: Path
    scored: int
    labeled: int
    unreadable: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def trailer_confidence(scores: np.ndarray, kind: str) -> np.ndarray:
    """``(N,)`` how sure the model is of a trailer's labels for one task.

    Example:
        >>> trailer_confidence(np.array([[0.9, 0.05], [0.6, 0.1]]), "multilabel").round(2).tolist()
        [0.9, 0.6]
        >>> trailer_confidence(np.array([[0.7, 0.2, 0.1]]), "multiclass").round(2).tolist()
        [0.7]
    """
    if kind == "multiclass":
        return scores.max(1)
    return np.maximum(scores, 1 - scores).min(1)


def pseudo_label(run_dir: Path, out: Path, checkpoint: str = "best", min_confidence: float = 0.0,
                 force: bool = False) -> PseudoLabels:
    """Pseudo-label a run's unlabeled trailers into a new folder-format dataset at ``out``.

    Raises:
        SemisupError: not a finished run, no unlabeled trailers, ``out`` exists
            (without ``force``; with it, only an earlier pseudo-label folder is
            replaced), or ``min_confidence`` outside [0, 1].
    """
    from semisup.build import read_recipe_data
    from semisup.evaluate.runs import RunDir, score_samples, stored_rules

    if not 0 <= min_confidence <= 1:
        raise SemisupError(f"--min-confidence: expected a value in [0, 1], got {min_confidence}")
    run = RunDir.open(run_dir)
    recipe = run.recipe()
    if recipe.data.format == "shards":  # its new folder dataset links to the original frame files
        raise SemisupError(f"{run_dir}: pseudo-label writes a folder dataset linking to the trailers' files, and this "
                           "run read shards; run it on the run of the source dataset, then shard the result")
    dataset = read_recipe_data(recipe.data, recipe.tasks)
    if dataset.fatal():
        raise SemisupError(dataset.fatal()[0].message)
    pool = unlabeled_pool(dataset.samples)
    if not pool:
        raise SemisupError(f"{dataset.source}: no unlabeled trailers to pseudo-label")
    _make_room(out, force)
    predictions = score_samples(recipe, dataset.tasks, run.checkpoint(checkpoint), pool,
                                all_samples=dataset.samples)
    rules = stored_rules(run, {t.name: t.kind for t in dataset.tasks})
    scores = predictions.scores  # rows: the readable trailers, in predictions.ids order
    confidence = np.min([trailer_confidence(scores[t.name], t.kind) for t in dataset.tasks], axis=0)
    kept = np.flatnonzero(confidence >= min_confidence)
    labels = {t.name: rules[t.name](scores[t.name]) for t in dataset.tasks}
    pseudo = {predictions.ids[i]: {t.name: [t.labels[c] for c in np.flatnonzero(labels[t.name][i])]
                                   for t in dataset.tasks} for i in kept}
    confidences = {predictions.ids[i]: {t.name: float(trailer_confidence(scores[t.name][i:i + 1], t.kind)[0])
                                        for t in dataset.tasks} for i in kept}
    counts = {t.name: {label: sum(label in p[t.name] for p in pseudo.values()) for label in t.labels}
              for t in dataset.tasks}
    unreadable = len(predictions.unreadable)
    with atomic_folder(out) as tmp:
        _write_labels(tmp / "labels.csv", dataset.samples, dataset.tasks, pseudo, confidences)
        _link_media(tmp, dataset.samples)
        write_json(tmp / MARKER, {"run": str(run.path), "checkpoint": checkpoint, "min_confidence": min_confidence,
                                  "rules": {t: r.to_dict() for t, r in rules.items()}, "scored": len(pool),
                                  "pseudo_labeled": len(pseudo), "unreadable": unreadable, "counts": counts})
    return PseudoLabels(out, len(pool), len(pseudo), unreadable, counts)


def _make_room(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise SemisupError(f"{out}: is a file, expected a folder for the pseudo-labeled dataset (--out)")
    if not any(out.iterdir()):
        return
    if not force:
        raise SemisupError(f"{out}: already exists (use --force to replace an earlier pseudo-label folder, "
                           "or choose another --out)")
    if not (out / MARKER).is_file():
        raise SemisupError(f"{out}: not a pseudo-label folder (no {MARKER}); --force replaces only those")
    shutil.rmtree(out)  # links are removed, never what they point to


def _write_labels(path: Path, samples: Sequence[Sample], tasks: Sequence[TaskSpec], pseudo: dict[str, dict],
                  confidences: dict[str, dict[str, float]]) -> None:
    columns = ["id", "split", "group", *(t.name for t in tasks), "pseudo", *(f"{t.name}_confidence" for t in tasks)]
    with atomic_write(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for sample in samples:
            row = {"id": sample.id, "split": sample.split, "group": sample.group or ""}
            if sample.id in pseudo:
                row.update(split="train", pseudo="1", **{t.name: "|".join(pseudo[sample.id][t.name]) for t in tasks},
                           **{f"{t.name}_confidence": f"{confidences[sample.id][t.name]:.4f}" for t in tasks})
            else:
                row.update({t.name: "|".join(sample.labels.get(t.name) or ()) for t in tasks})
            writer.writerow(row)


def _link_media(root: Path, samples: Sequence[Sample]) -> None:
    """``frames/<id>`` (a link to the frames folder, or a folder of links to each frame) or
    ``videos/<id><suffix>`` for every sample, pointing at the original files."""
    for sample in samples:
        if sample.video is not None:
            link = root / "videos" / f"{sample.id}{sample.video.suffix}"
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(sample.video.resolve(), link)
            continue
        link = root / "frames" / sample.id
        link.parent.mkdir(parents=True, exist_ok=True)
        folders = {frame.parent for frame in sample.frames}
        if len(folders) == 1 and _holds_exactly(next(iter(folders)), sample.frames):
            os.symlink(next(iter(folders)).resolve(), link, target_is_directory=True)
        else:
            link.mkdir()
            for i, frame in enumerate(sample.frames):  # numbered: the folder reader sorts by name
                os.symlink(frame.resolve(), link / f"{i:06d}{frame.suffix}")


def _holds_exactly(folder: Path, frames: Sequence[Path]) -> bool:
    from semisup.data.folder import frame_files

    try:
        return set(frame_files(folder)) == set(frames)
    except SemisupError:
        return False
