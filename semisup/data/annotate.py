"""Merge labels a person filled in (``semisup select``'s CSV) into a folder dataset's ``labels.csv``.

``semisup data label ROOT select.csv`` reads the filled-in task columns of the
selection (``genres``, ``scale``, ...; labels separated by ``|`` as in
``labels.csv``), checks every row first, and only when all are sound:

* copies the old ``labels.csv`` to ``labels.backup-<time>.csv`` beside it;
* writes the labels into those trailers' rows and moves them from the
  ``unlabeled`` split to ``train`` (every other row and column is kept as it was);
* replaces ``labels.csv`` atomically.

Each problem is one line naming ``select.csv:LINE``: an id not in the
dataset or already labeled, a label outside the task's vocabulary (the labels
``labels.csv`` already uses; ``allow_new_labels`` admits new ones), several
labels in a one-label column, a duplicate row, or a row left empty (with
``partial``, empty rows are skipped and stay unlabeled).

A ``status`` column (written by the labeling page, ``semisup label``) marks
rows a person ``skipped`` or was ``unsure`` about: those are left out, like
empty rows under ``partial``. A row whose trailer already holds exactly its
labels was merged before and is counted, not refused, so merging the same
answers twice (or after more were added) is safe.

:func:`merge_rows` does the checking and writing for rows from any source: a
Label Studio export comes through :mod:`semisup.label.studio` with the same checks.
"""

from __future__ import annotations

import csv
import difflib
import time
from dataclasses import dataclass, field
from pathlib import Path

from semisup.data.folder import parse_cell, read_csv, too_many_fields
from semisup.errors import SemisupError
from semisup.io import atomic_write, copy_file

GUESS_SUFFIX = "_guess"
SELECTION_COLUMNS = ("id", "rank", "strategy", "score", "media", "status")
STATUS_COLUMN = "status"
LEFT_OUT = ("skipped", "unsure")
"""Statuses of rows that are not merged: the person skipped the trailer, or was unsure of its labels."""


@dataclass
class Merged:
    """What :func:`merge_labels` did.

    Attributes:
        labels_file: the updated ``labels.csv``; ``backup``: the copy of the old one.
        labeled: ids that received labels (moved to ``train``); ``skipped``: rows left out (empty under
            ``partial``, or marked skipped / unsure); ``already``: rows whose trailer already held exactly
            their labels (merged before).
        tasks: the task columns merged.
    """

    labels_file: Path
    backup: Path
    labeled: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)


def task_columns(selection_columns: list[str], label_columns: list[str], where: str) -> list[str]:
    """The task columns of a selection: those with a ``<task>_guess`` partner, or any column
    ``labels.csv`` also has besides the selection's own.

    Raises:
        SemisupError: none, or one that ``labels.csv`` lacks.
    """
    tasks = [c for c in selection_columns if f"{c}{GUESS_SUFFIX}" in selection_columns]
    tasks += [c for c in selection_columns if c in label_columns and c not in (*SELECTION_COLUMNS, "split", "group")
              and c not in tasks]
    if not tasks:
        raise SemisupError(f"{where}: no task column to merge (expected a column such as 'genres' beside "
                           "'genres_guess', as `semisup select` writes)")
    missing = [t for t in tasks if t not in label_columns]
    if missing:
        raise SemisupError(f"{where}: column {missing[0]!r} is not a column of the dataset's labels file")
    return tasks


def merge_labels(root: Path, selection: Path, labels_file: str = "labels.csv", separator: str = "|",
                 partial: bool = False, allow_new_labels: bool = False) -> Merged:
    """Merge the filled-in labels of the CSV ``selection`` into ``root/labels_file``.

    Raises:
        SemisupError: unreadable files, or any problem in the selection (all of them,
            one line each, in the message); nothing is written then.
    """
    picked, picked_columns = read_csv(Path(selection))
    rows = [(f"{selection}:{line}", row) for line, row in picked]
    return merge_rows(root, rows, picked_columns, str(selection), labels_file, separator, partial, allow_new_labels)


def merge_rows(root: Path, picked: list[tuple[str, dict[str, str]]], picked_columns: list[str], source: str,
               labels_file: str = "labels.csv", separator: str = "|", partial: bool = False,
               allow_new_labels: bool = False) -> Merged:
    """Check rows of labels and merge them into ``root/labels_file`` (all or nothing).

    Args:
        root: the folder-format dataset.
        picked: ``(where, row)`` pairs: ``where`` names the row in messages (``select.csv:7``),
            ``row`` maps columns (``id``, each task, optionally ``<task>_guess`` and ``status``) to cells.
        picked_columns: the rows' columns, in order.
        source: the file the rows came from, for messages.
        labels_file, separator, partial, allow_new_labels: as :func:`merge_labels`.

    Raises:
        SemisupError: unreadable files, or any problem in the rows (all of them, one line each).
    """
    labels_path = Path(root) / labels_file
    rows, columns = read_csv(labels_path)
    if "id" not in picked_columns:
        raise SemisupError(f"{source}: no 'id' column (expected the CSV `semisup select` wrote)")
    tasks = task_columns(picked_columns, columns, source)
    by_id = {(row.get("id") or "").strip(): row for _, row in rows}
    vocabulary = {t: _vocabulary(rows, t, separator) for t in tasks}
    one_label = {t: _one_label_column(rows, t, separator) for t in tasks}
    problems: list[str] = []
    updates: dict[str, dict[str, str]] = {}
    skipped: list[str] = []
    already: list[str] = []
    for where, row in picked:
        extra = too_many_fields(row, picked_columns)
        if extra:
            problems.append(f"{where}: {extra}")
            continue
        sample_id = (row.get("id") or "").strip()
        if sample_id not in by_id:
            problems.append(f"{where}: id {sample_id!r} is not in {labels_path}")
            continue
        if sample_id in updates or sample_id in skipped or sample_id in already:
            problems.append(f"{where}: id {sample_id!r} appears twice")
            continue
        if (row.get(STATUS_COLUMN) or "").strip() in LEFT_OUT:
            skipped.append(sample_id)
            continue
        target = by_id[sample_id]
        split = (target.get("split") or "").strip() or "train"
        cells = {t: _labels(row.get(t), separator) for t in tasks}
        if split != "unlabeled" and any((target.get(t) or "").strip() for t in tasks):
            if all(_labels(target.get(t), separator) == cells[t] for t in tasks):
                already.append(sample_id)  # merged before: these very labels are in labels.csv
            else:
                problems.append(f"{where}: {sample_id!r} is already labeled ({split} split of {labels_path})")
            continue
        if not any(cells.values()):
            if partial:
                skipped.append(sample_id)
            else:
                problems.append(f"{where}: no labels filled in for {sample_id!r} (columns {', '.join(tasks)}; "
                                "use --partial to merge only the filled-in rows)")
            continue
        for task, labels in cells.items():
            problems += _check_labels(where, task, labels, vocabulary[task], one_label[task], allow_new_labels)
        updates[sample_id] = {t: separator.join(labels) for t, labels in cells.items()}
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise SemisupError(f"{source}: {len(problems)} problem(s), nothing merged:\n" + "\n".join(shown))
    if not updates:
        merged_before = f" ({len(already)} merged before)" if already else ""
        raise SemisupError(f"{source}: no filled-in rows to merge{merged_before}")
    backup = _backup(labels_path)
    try:
        _write(labels_path, rows, columns, updates)
    except BaseException:
        backup.unlink(missing_ok=True)  # labels.csv is unchanged: its backup would only be litter
        raise
    return Merged(labels_path, backup, list(updates), skipped, tasks, already)


def _labels(cell: str | None, separator: str) -> list[str]:
    return list(parse_cell(cell, separator) or ())


def _vocabulary(rows: list[tuple[int, dict[str, str]]], column: str, separator: str) -> set[str]:
    return {label for _, row in rows for label in _labels(row.get(column), separator)}


def _one_label_column(rows: list[tuple[int, dict[str, str]]], column: str, separator: str) -> bool:
    """Whether every labeled row of ``column`` holds exactly one label (a multi-class task)."""
    counts = [len(_labels(row.get(column), separator)) for _, row in rows]
    counts = [n for n in counts if n]
    return bool(counts) and max(counts) == 1


def _check_labels(where: str, task: str, labels: list[str], vocabulary: set[str], one_label: bool,
                  allow_new: bool) -> list[str]:
    problems = []
    if one_label and len(labels) > 1:
        problems.append(f"{where}: column {task!r} holds one label per trailer in the dataset, got {len(labels)} "
                        f"({'|'.join(labels)})")
    for label in labels:
        if label not in vocabulary and not allow_new:
            guess = difflib.get_close_matches(label, sorted(vocabulary), n=1)
            hint = f'did you mean "{guess[0]}"? ' if guess else ""
            problems.append(f"{where}: {task} label {label!r} is not in the dataset's vocabulary "
                            f"({hint}--allow-new-labels admits new labels)")
    return problems


def _backup(path: Path) -> Path:
    """Copy ``path`` to ``<stem>.backup-<time>.csv`` beside it (never over an earlier backup)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.stem}.backup-{stamp}{path.suffix}")
    n = 1
    while backup.exists():
        backup = path.with_name(f"{path.stem}.backup-{stamp}-{n}{path.suffix}")
        n += 1
    copy_file(path, backup)
    return backup


def _write(path: Path, rows: list[tuple[int, dict[str, str]]], columns: list[str],
           updates: dict[str, dict[str, str]]) -> None:
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for _, row in rows:
            row = {c: row.get(c) or "" for c in columns}
            sample_id = row["id"].strip()
            if sample_id in updates:
                row.update(updates[sample_id])
                if "split" in row:
                    row["split"] = "train"
            writer.writerow(row)
