"""The generic folder format, which users can write by hand.

::

    ROOT/labels.csv          id,split,genres
                             tt001,train,Action|Drama
                             tt002,unlabeled,
    ROOT/frames/<id>/*.jpg   frames of each sample, time order = sorted file names

``split`` is optional per file (``train``, ``val``, ``test``, ``unlabeled``)
and there is one column per task; labels inside a cell are separated by
``|``. An empty cell means the sample is unlabeled for that task; rows of the
``unlabeled`` split are never used as labeled, whatever their cells hold.
"""

from __future__ import annotations

import csv
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from semisup.data.samples import SPLITS, Sample, TaskSpec
from semisup.errors import SemisupError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class TaskColumn:
    """How one task is read from the CSV.

    Attributes:
        name: task name.
        column: CSV column holding its labels.
        labels: fixed vocabulary; empty means "read it from the data".
        separator: separates labels inside a cell.
    """

    name: str
    column: str
    labels: tuple[str, ...] = ()
    separator: str = "|"


def read_folder(root: Path, tasks: Sequence[TaskColumn], labels_file: str = "labels.csv"
                ) -> tuple[list[Sample], list[TaskSpec]]:
    """Read a dataset in the generic folder format.

    Args:
        root: dataset folder.
        tasks: the tasks to read.
        labels_file: CSV file name inside ``root``.

    Returns:
        The samples (CSV order) and one :class:`TaskSpec` per task, whose
        vocabulary is the given one or, if none was given, the sorted labels
        found in the labeled rows.

    Raises:
        SemisupError: missing file or column, bad split value, duplicate id,
            unknown label, frames folder missing or empty.
    """
    csv_path = root / labels_file
    if not root.is_dir():
        raise SemisupError(f"{root}: dataset root {'is not a folder' if root.exists() else 'does not exist'}")
    if not csv_path.is_file():
        raise SemisupError(f"{csv_path}: labels file not found (expected a CSV with an 'id' column)")
    rows, columns = _read_csv(csv_path)
    for needed in ["id", *(t.column for t in tasks)]:
        if needed not in columns:
            guess = difflib.get_close_matches(needed, columns, n=1)
            hint = f'did you mean "{guess[0]}"?' if guess else "columns: " + ", ".join(columns)
            raise SemisupError(f"{csv_path}: no column {needed!r} ({hint})")
    samples, seen = [], set()
    for line, row in rows:
        where = f"{csv_path}:{line}"
        sample_id = (row.get("id") or "").strip()
        if not sample_id:
            raise SemisupError(f"{where}: empty id")
        if sample_id in seen:
            raise SemisupError(f"{where}: id {sample_id!r} appears twice")
        seen.add(sample_id)
        split = (row.get("split") or "train").strip() or "train"
        if split not in SPLITS:
            raise SemisupError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
        labels = {t.name: (None if split == "unlabeled" else _parse_cell(row.get(t.column), t.separator))
                  for t in tasks}
        samples.append(Sample(sample_id, frame_files(root / "frames" / sample_id, where), labels, split))
    specs = [_task_spec(task, samples, csv_path) for task in tasks]
    return samples, specs


def _read_csv(path: Path) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            reader.fieldnames = columns
            rows = [(reader.line_num, row) for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SemisupError(f"{path}: not a readable UTF-8 CSV ({exc})") from None
    if not columns:
        raise SemisupError(f"{path}: empty CSV (expected a header with an 'id' column)")
    return rows, columns


def _parse_cell(cell: str | None, separator: str) -> tuple[str, ...] | None:
    if cell is None or not cell.strip():
        return None
    return tuple(dict.fromkeys(part.strip() for part in cell.split(separator) if part.strip()))


def frame_files(folder: Path, where: str = "") -> tuple[Path, ...]:
    """Image files of one sample's frames folder, sorted by name.

    Raises:
        SemisupError: the folder is missing or holds no images.
    """
    prefix = f"{where}: " if where else ""
    try:
        names = sorted(e.name for e in os.scandir(folder)
                       if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))
    except FileNotFoundError:
        raise SemisupError(f"{prefix}frames folder {folder} does not exist") from None
    except NotADirectoryError:
        raise SemisupError(f"{prefix}{folder} is a file, expected a frames folder") from None
    if not names:
        raise SemisupError(f"{prefix}frames folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return tuple(folder / name for name in names)


def _task_spec(task: TaskColumn, samples: list[Sample], csv_path: Path) -> TaskSpec:
    found = sorted({label for s in samples for label in (s.labels[task.name] or ())})
    if not task.labels:
        if not found:
            raise SemisupError(f"{csv_path}: column {task.column!r} (task {task.name!r}) holds no labels")
        return TaskSpec(task.name, tuple(found))
    unknown = [label for label in found if label not in task.labels]
    if unknown:
        sample = next(s for s in samples if unknown[0] in (s.labels[task.name] or ()))
        raise SemisupError(f"{csv_path}: sample {sample.id!r}: label {unknown[0]!r} of task {task.name!r} "
                           f"is not in the recipe's labels ({len(unknown)} unknown labels in all)")
    return TaskSpec(task.name, tuple(task.labels))
