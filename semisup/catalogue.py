"""Predictions for a whole catalogue in one file, resumable: ``semisup predict ... --out FILE``.

The output is a CSV or Parquet file with one row per input: ``input``, ``status`` (``ok`` or
``unreadable``), ``error`` (why an input could not be read), ``frames`` (frames the model
saw), ``skipped_frames`` (unreadable frames left out), then per task its decided labels
(column ``TASK``, joined by ``|``) and each label's score (columns ``TASK.LABEL``).

While the job runs, rows go to a journal beside the output (``OUT.partial.csv``), a batch at
a time: each batch's rows in one write, flushed to disk, so a killed job loses at most the
batch it was computing. ``OUT.partial.json`` says which model, recipe and rules wrote the
journal. The same command started again reads the journal, drops a torn last line and the rows
of inputs no longer given, and predicts only the inputs that are not in it: every input given
is written exactly once, and nothing else. When every input is done the
output appears in one rename (CSV) or is written from the journal atomically (Parquet), and
the journal goes. Nothing is ever at ``OUT`` but a whole file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from semisup.data.samples import TaskSpec
from semisup.errors import SemisupError
from semisup.io import WRITE_FAILURES, atomic_write, link_target, refuse_existing, write_failed, write_json
from semisup.predict import InputPrediction, Inputs, Predictor

SUFFIXES = (".csv", ".parquet")
FIXED = ["input", "status", "error", "frames", "skipped_frames"]


@dataclass
class CatalogueResult:
    """What a ``predict --out`` job did."""

    out: Path
    total: int
    """Inputs in the catalogue."""
    predicted: int
    """Inputs predicted by this call (the others were in the journal of an earlier, interrupted one)."""
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """Every unreadable input of the output and why."""
    ignored: int = 0
    """Files in the input folders that are neither videos nor images."""


def columns(tasks: Sequence[TaskSpec]) -> list[str]:
    """The output's header.

    Example:
        >>> columns([TaskSpec("scale", ("close", "wide"), "multiclass")])
        ['input', 'status', 'error', 'frames', 'skipped_frames', 'scale', 'scale.close', 'scale.wide']
    """
    return FIXED + [c for t in tasks for c in (t.name, *(f"{t.name}.{label}" for label in t.labels))]


def row(prediction: InputPrediction, tasks: Sequence[TaskSpec]) -> list[str]:
    """One output row (scores to 7 significant digits: what float32 holds)."""
    if prediction.error is not None:
        return [prediction.input, "unreadable", prediction.error, "0", "0"] + [
            "" for t in tasks for _ in range(1 + len(t.labels))]
    cells = [prediction.input, "ok", "", str(prediction.frames), str(prediction.skipped_frames)]
    for t in tasks:
        cells.append("|".join(prediction.labels[t.name]))
        cells += [format(prediction.scores[t.name][label], ".7g") for label in t.labels]
    return cells


def _csv_lines(rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def predict_catalogue(predictor: Predictor, inputs: Inputs, out: Path, force: bool = False,
                      on_start: Callable[[int, int], None] | None = None,
                      on_batch: Callable[[int, int], None] | None = None) -> CatalogueResult:
    """Predict every input into ``out``, continuing an interrupted job with the same ``out``.

    Args:
        predictor: the model.
        inputs: the expanded inputs (:func:`~semisup.predict.expand_inputs`).
        out: ``.csv`` or ``.parquet`` file.
        force: replace an existing ``out``, and start over instead of continuing a journal.
        on_start: called with (inputs in all, inputs done before) once the journal is read.
        on_batch: called after each batch with (inputs, frames) it predicted.

    Raises:
        SemisupError: another suffix; ``out`` exists (without ``force``); a journal written by
            another model, recipe or rules; no inputs; the disk is full (the journal keeps what
            was written).
    """
    out = Path(out)
    check_target(out, inputs, force)
    out = link_target(out)  # the journal goes beside the file a link points to, which is replaced
    header = columns(predictor.tasks)
    journal, about = out.with_name(out.name + ".partial.csv"), out.with_name(out.name + ".partial.json")
    identity = {**predictor.identity(), "columns": header}
    if force:
        journal.unlink(missing_ok=True)
        about.unlink(missing_ok=True)
    done = _read_journal(journal, about, identity, header, {str(p) for p in inputs.paths})
    if not journal.exists():
        write_json(about, identity)
        with atomic_write(journal, "w", encoding="utf-8", newline="") as handle:
            handle.write(_csv_lines([header]))
    if on_start:
        on_start(len(inputs.paths), len(done))
    todo = [p for p in inputs.paths if str(p) not in done]
    try:
        with journal.open("a", encoding="utf-8", newline="") as handle:
            for results in predictor.predict(todo):
                handle.write(_csv_lines([row(r, predictor.tasks) for r in results]))
                handle.flush()
                os.fsync(handle.fileno())
                if on_batch:
                    on_batch(len(results), sum(r.frames for r in results))
    except OSError as exc:  # a full disk: the journal keeps what was written, the same command continues
        if exc.errno in WRITE_FAILURES:
            raise write_failed(journal, exc.strerror or str(exc)) from exc
        raise
    scores = {f"{t.name}.{label}" for t in predictor.tasks for label in t.labels}
    unreadable = _finish(journal, out, header, scores)
    about.unlink(missing_ok=True)
    return CatalogueResult(out, len(inputs.paths), len(todo), unreadable, inputs.ignored)


def check_target(out: Path, inputs: Inputs, force: bool) -> None:
    """Refuse, before any model is loaded, an output of another kind, one that exists (without
    ``force``) and a catalogue without inputs.

    Raises:
        SemisupError: naming the file or what is missing.
    """
    if Path(out).suffix.lower() not in SUFFIXES:
        raise SemisupError(f"{out}: --out must end in .csv or .parquet")
    if not inputs.paths:
        raise SemisupError("predict: no inputs found (videos, frame folders or images)"
                           + (f"; {inputs.ignored} other files were skipped" if inputs.ignored else ""))
    refuse_existing(Path(out), force, "predictions")


def _read_journal(journal: Path, about: Path, identity: dict, header: list[str], wanted: set[str]) -> set[str]:
    """The inputs of ``wanted`` an interrupted job wrote; a torn last line (the job was killed
    mid-write) is cut off, and rows of inputs no longer asked for are dropped from the journal."""
    if not journal.exists():
        return set()
    try:
        stored = json.loads(about.read_text())
    except (OSError, ValueError):
        stored = None
    if stored != json.loads(json.dumps(identity)):
        raise SemisupError(f"{journal}: an interrupted job's predictions made with another model, recipe, "
                           "checkpoint or decision rules; continue it with the same model, or start over with --force")
    _cut_torn_line(journal)
    done, stray = set(), 0
    with journal.open(encoding="utf-8", newline="") as handle:  # row by row: a journal may hold millions
        rows = csv.reader(handle)
        if next(rows, None) != header:
            raise SemisupError(f"{journal}: not this job's journal (its header differs); start over with --force")
        for r in rows:
            if len(r) == len(header) and r[0] in wanted and r[0] not in done:
                done.add(r[0])
            else:
                stray += 1
    if stray:  # the inputs changed since (another list, a file gone): keep each wanted input's first row only
        kept: set[str] = set()
        with journal.open(encoding="utf-8", newline="") as source, \
                atomic_write(journal, "w", encoding="utf-8", newline="") as target:
            writer = csv.writer(target, lineterminator="\n")
            rows = csv.reader(source)
            writer.writerow(next(rows))  # the header, checked above
            for r in rows:
                if len(r) == len(header) and r[0] in done and r[0] not in kept:
                    writer.writerow(r)
                    kept.add(r[0])
    return done


def _cut_torn_line(journal: Path, chunk: int = 1 << 16) -> None:
    """Truncate the file after its last newline (a job killed in the middle of a write leaves part of a line)."""
    with journal.open("r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - chunk)
            handle.seek(start)
            block = handle.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                if start + newline + 1 != end:
                    handle.truncate(start + newline + 1)
                return
            position = start
        handle.truncate(0)


def _finish(journal: Path, out: Path, header: list[str], scores: set[str]) -> list[tuple[str, str]]:
    """Put the whole output in place, reading the journal row by row (Parquet: scores as float32,
    counts as int32, the rest as strings, written in row groups); return the unreadable inputs."""
    with journal.open(encoding="utf-8", newline="") as handle:
        unreadable = [(r[0], r[2]) for r in csv.reader(handle) if len(r) > 2 and r[1] == "unreadable"]
    if out.suffix.lower() == ".csv":
        os.replace(journal, out)
        return unreadable
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    types = {name: pa.float32() if name in scores else pa.string() for name in header}
    types.update(frames=pa.int32(), skipped_frames=pa.int32())
    reader = pa_csv.open_csv(journal, read_options=pa_csv.ReadOptions(block_size=1 << 22),
                             parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                             convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False,
                                                                   quoted_strings_can_be_null=False))
    schema = pa.schema([(name, types[name]) for name in header])
    with atomic_write(out, "wb") as handle, pq.ParquetWriter(handle, schema) as writer:
        for batch in reader:
            writer.write_table(pa.Table.from_batches([batch]).select(header).cast(schema))
    journal.unlink()
    return unreadable
