"""The answers of the labeling page, kept in the selection CSV itself.

``semisup select`` writes ``select.csv`` with an empty column per task beside
the model's guess (``genres_guess``, ``genres``). The page writes each answer
into that row at once (the whole file rewritten atomically: a killed server
loses nothing that was answered), and a ``status`` column records what the
person did: ``answered``, ``skipped`` or ``unsure``. The file stays what
``semisup data label`` merges, so a person may switch between the page and a
spreadsheet, and the merge is the same either way.

Answers are checked here, on the server, against the run's vocabularies: a
label outside a task's vocabulary, two labels for a one-label task or an
answer without any label is refused with a one-line reason.
"""

from __future__ import annotations

import csv
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from semisup.data.annotate import GUESS_SUFFIX, STATUS_COLUMN
from semisup.data.folder import parse_cell, read_csv
from semisup.data.samples import TaskSpec
from semisup.errors import SemisupError
from semisup.io import atomic_write

STATUSES = ("answered", "skipped", "unsure")
"""What a person can say about a trailer: its labels, nothing (skipped), or labels they doubt."""


class AnswerError(ValueError):
    """An answer the page refuses (unknown row, label or status); the message is one line for the person."""


@dataclass(frozen=True)
class Row:
    """One selected trailer as the page shows it.

    Attributes:
        index: its position in the selection (0 = the best).
        id: the trailer's id; ``rank``, ``score``: as ``semisup select`` wrote them.
        guess: per task, the model's labels; ``answer``: per task, the person's labels (empty when none).
        status: ``""`` (not answered yet) or one of :data:`STATUSES`.
    """

    index: int
    id: str
    rank: str
    score: str
    guess: Mapping[str, tuple[str, ...]]
    answer: Mapping[str, tuple[str, ...]]
    status: str


class Answers:
    """The selection CSV, read once and rewritten atomically on every answer.

    Args:
        path: the CSV ``semisup select`` wrote (answered rows from an earlier session are kept).
        tasks: the run's tasks: their names are the CSV's task columns, their labels the vocabulary.
        separator: between labels in a cell (``labels.csv``'s, ``|``).

    Raises:
        SemisupError: the file is unreadable, has no ``id`` column, or lacks a task's column.
    """

    def __init__(self, path: Path, tasks: Sequence[TaskSpec], separator: str = "|") -> None:
        self.path = Path(path)
        self.tasks = list(tasks)
        self.separator = separator
        rows, columns = read_csv(self.path)
        if "id" not in columns:
            raise SemisupError(f"{self.path}: no 'id' column (expected the CSV `semisup select` wrote)")
        missing = [t.name for t in self.tasks if t.name not in columns]
        if missing:
            raise SemisupError(f"{self.path}: no column {missing[0]!r} for the run's task {missing[0]!r} "
                               "(expected the CSV `semisup select` wrote for this run)")
        self.columns = columns + ([STATUS_COLUMN] if STATUS_COLUMN not in columns else [])
        self._cells = [{c: row.get(c) or "" for c in self.columns} for _, row in rows]
        seen: dict[str, int] = {}
        for line, row in rows:
            sample_id = (row.get("id") or "").strip()
            if sample_id in seen:
                raise SemisupError(f"{self.path}:{line}: id {sample_id!r} appears twice (first on line "
                                   f"{seen[sample_id]})")
            seen[sample_id] = line
        self._lock = threading.Lock()
        self._stamp = self._disk_stamp()

    def __len__(self) -> int:
        return len(self._cells)

    def row(self, index: int) -> Row:
        """The selected trailer at ``index`` (0 = the best)."""
        cells = self._cells[index]
        answer = {t.name: self._split(cells[t.name]) for t in self.tasks}
        status = cells[STATUS_COLUMN].strip()
        if status not in STATUSES:  # filled in by hand in a spreadsheet, or not at all
            status = "answered" if any(answer.values()) else ""
        return Row(index, cells["id"].strip(), cells.get("rank", ""), cells.get("score", ""),
                   {t.name: self._split(cells.get(f"{t.name}{GUESS_SUFFIX}", "")) for t in self.tasks},
                   answer, status)

    def rows(self) -> list[Row]:
        """Every selected trailer, best first."""
        return [self.row(i) for i in range(len(self))]

    def first_open(self) -> int:
        """The first trailer not answered, skipped or marked unsure (``len(self)`` when none is left)."""
        return next((i for i in range(len(self)) if not self.row(i).status), len(self))

    def counts(self) -> dict[str, int]:
        """How many trailers are in each status, ``open`` for those not done."""
        out = {status: 0 for status in ("open", *STATUSES)}
        for row in self.rows():
            out[row.status or "open"] += 1
        return out

    def save(self, index: int, labels: Mapping[str, Sequence[str]], status: str) -> Row:
        """Record the answer for trailer ``index`` (replacing an earlier one) and rewrite the file.

        Args:
            index: the trailer's position.
            labels: per task, the labels chosen (tasks left out: no label).
            status: ``answered``, ``unsure`` (labels kept, not merged) or ``skipped`` (labels dropped).

        Raises:
            AnswerError: an unknown row, task, label or status; two labels for a one-label task;
                ``answered`` or ``unsure`` without any label; the file was changed by someone else.
        """
        if not isinstance(index, int) or not 0 <= index < len(self):
            raise AnswerError(f"no selected trailer at position {index!r} (there are {len(self)})")
        if status not in STATUSES:
            raise AnswerError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        chosen = self._check(labels) if status != "skipped" else {t.name: () for t in self.tasks}
        if status != "skipped" and not any(chosen.values()):
            raise AnswerError("no label chosen: pick at least one, or skip the trailer (S)")
        with self._lock:
            if self._disk_stamp() != self._stamp:
                raise AnswerError(f"{self.path} was changed by another program since the page read it; "
                                  "restart `semisup label` to read it again (nothing was written)")
            cells = dict(self._cells[index])
            cells.update({name: self.separator.join(values) for name, values in chosen.items()})
            cells[STATUS_COLUMN] = status
            previous, self._cells[index] = self._cells[index], cells
            try:
                self._write()
            except BaseException:
                self._cells[index] = previous  # the file is unchanged: so is what the page is told
                raise
            self._stamp = self._disk_stamp()
        return self.row(index)

    def _check(self, labels: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
        if not isinstance(labels, Mapping):
            raise AnswerError("labels must map each task to a list of labels")
        known = {t.name: t for t in self.tasks}
        unknown = [name for name in labels if name not in known]
        if unknown:
            raise AnswerError(f"no task {unknown[0]!r} (the run's tasks: {', '.join(known)})")
        chosen: dict[str, tuple[str, ...]] = {}
        for task in self.tasks:
            values = labels.get(task.name) or ()
            if isinstance(values, str) or not all(isinstance(v, str) for v in values):
                raise AnswerError(f"{task.name}: expected a list of labels, got {values!r}")
            values = tuple(dict.fromkeys(values))
            outside = [v for v in values if v not in task.labels]
            if outside:
                raise AnswerError(f"{task.name}: label {outside[0]!r} is not in the task's vocabulary")
            if task.kind == "multiclass" and len(values) > 1:
                raise AnswerError(f"{task.name}: one label per trailer, got {len(values)} ({', '.join(values)})")
            chosen[task.name] = tuple(v for v in task.labels if v in values)  # the vocabulary's order
        return chosen

    def _write(self) -> None:
        with atomic_write(self.path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self._cells)

    def _split(self, cell: str) -> tuple[str, ...]:
        return tuple(parse_cell(cell, self.separator) or ())

    def _disk_stamp(self) -> tuple[int, int]:
        stat = os.stat(self.path)
        return stat.st_mtime_ns, stat.st_size
