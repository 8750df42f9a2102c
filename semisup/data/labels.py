"""Label vocabularies: renaming, restricting to a given or top-N set, unknown labels.

Readers collect each sample's raw labels per task; :func:`resolve_labels`
then applies the task's rules, fixes its vocabulary and reports problems.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

from semisup.data.samples import Problem, Sample, TaskKind, TaskSpec


@dataclass(frozen=True)
class TaskColumn:
    """How one task's labels are read and cleaned.

    Attributes:
        name: task name.
        column: where the labels are (CSV column, JSON key).
        kind: ``multilabel`` or ``multiclass`` (one label per sample).
        labels: a fixed vocabulary; empty means "read it from the data".
        separator: separates labels inside a CSV cell.
        unknown: a label outside a fixed (or top-N) vocabulary is an
            ``"error"``, or is ``"drop"``-ped (a sample left with no label
            becomes unlabeled for the task).
        top: keep only the ``top`` most frequent labels (0: all).
        rename: maps raw label names to vocabulary names; mapping to ``""``
            drops the label.
    """

    name: str
    column: str
    kind: TaskKind = "multilabel"
    labels: tuple[str, ...] = ()
    separator: str = "|"
    unknown: Literal["error", "drop"] = "error"
    top: int = 0
    rename: Mapping[str, str] = field(default_factory=dict)


def resolve_labels(samples: Sequence[Sample], tasks: Sequence[TaskColumn], source: str
                   ) -> tuple[list[Sample], list[TaskSpec], list[Problem]]:
    """Clean every sample's labels by its task's rules and fix the vocabularies.

    Args:
        samples: samples holding raw labels (``None`` = unlabeled for a task).
        tasks: the tasks' rules.
        source: the labels file, for messages.

    Returns:
        The samples with cleaned labels, one :class:`TaskSpec` per task, and
        the problems met (unknown labels under ``unknown = "error"``, several
        labels for a multi-class task, a task without any label).
    """
    problems: list[Problem] = []
    specs: list[TaskSpec] = []
    for task in tasks:
        renamed = [_rename(s.labels.get(task.name), task.rename) for s in samples]
        counts = Counter(label for s, labels in zip(samples, renamed) if s.split != "unlabeled"
                         for label in labels or ())
        if task.labels:
            vocab = tuple(task.labels)
        elif task.top:
            vocab = tuple(sorted(sorted(counts), key=lambda label: -counts[label])[:task.top])
        else:
            vocab = tuple(sorted(counts))
        if not vocab:
            problems.append(Problem("no labels", f"{source}: task {task.name!r} (column {task.column!r}) "
                                                 "holds no labels"))
        known = set(vocab)
        reported: set[str] = set()
        cleaned = []
        for sample, labels in zip(samples, renamed):
            if labels is not None:
                unknown = [label for label in labels if label not in known]
                if unknown and (task.unknown == "error" and not task.top):
                    for label in unknown:
                        if label not in reported:
                            reported.add(label)
                            problems.append(Problem("unknown label", f"{source}: sample {sample.id!r}: label "
                                                    f"{label!r} of task {task.name!r} is not in its labels"))
                labels = tuple(label for label in labels if label in known) or None
            if task.kind == "multiclass" and labels is not None and len(labels) > 1:
                problems.append(Problem("several labels", f"{source}: sample {sample.id!r}: task {task.name!r} "
                                        f"is multi-class but has {len(labels)} labels {list(labels)}"))
                labels = None
            cleaned.append(labels)
        samples = [dataclasses.replace(s, labels={**s.labels, task.name: labels}) for s, labels in zip(samples, cleaned)]
        specs.append(TaskSpec(task.name, vocab, task.kind))
    return list(samples), specs, problems


def _rename(labels: tuple[str, ...] | None, rename: Mapping[str, str]) -> tuple[str, ...] | None:
    if labels is None or not rename:
        return labels
    out = tuple(dict.fromkeys(rename.get(label, label) for label in labels))
    return tuple(label for label in out if label) or None
