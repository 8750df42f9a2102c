"""Label Studio round trip: the selection out as tasks with the model's guesses, the answers back in.

Label Studio (community edition) has no active-learning loop of its own; it
imports tasks with *predictions* (pre-annotations the annotator corrects) and
exports the annotations as JSON. This module writes, from a ``select.csv``:

* ``*.label-studio.json``: one task per selected trailer, best first. Its
  ``data`` holds the trailer id (``trailer``), its rank and score, and its media:
  ``frames`` (a list of frame URLs, evenly spaced) or ``video`` (one URL). Its
  ``predictions`` hold the model's guess per task as ``choices`` results, with
  the selection's score and a model version naming the run.
* ``*.label-studio.xml``: the labeling configuration: an ``Image`` (with
  ``valueList``: every frame of the strip) or ``Video`` tag, and per task a
  ``Choices`` tag (``choice="multiple"`` for multi-label tasks, ``single`` for
  one-label ones) listing the vocabulary.

Media URLs are ``<media_url><path relative to the dataset root>``; the default
prefix is Label Studio's local-files URL (``/data/local-files/?d=``), which serves
files under ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (the dataset root).

:func:`read_export` reads Label Studio's JSON export back into rows of the
selection's shape (``id``, one cell per task, ``status``), which
:func:`semisup.data.annotate.merge_rows` checks and merges exactly as it does
the CSV. The latest annotation of a task that was not cancelled counts;
a task whose only annotations were cancelled (skipped in Label Studio) is
left out, as a skipped row of the page is.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from semisup.data.annotate import GUESS_SUFFIX, STATUS_COLUMN, Merged, merge_rows
from semisup.data.frames import even_frames
from semisup.data.folder import parse_cell, read_csv
from semisup.data.samples import Sample, TaskSpec
from semisup.errors import SemisupError
from semisup.io import refuse_existing, write_json, write_text

LOCAL_FILES = "/data/local-files/?d="
"""Label Studio's URL prefix for files under ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``."""


def studio_paths(selection: Path) -> tuple[Path, Path]:
    """The import file and the labeling config written beside ``selection``.

    Example:
        >>> [p.name for p in studio_paths(Path("run/select.csv"))]
        ['select.label-studio.json', 'select.label-studio.xml']
    """
    return selection.with_suffix(".label-studio.json"), selection.with_suffix(".label-studio.xml")


def labeling_config(tasks: Sequence[TaskSpec], media: str) -> str:
    """The labeling configuration (XML) for ``tasks`` over ``media`` (``"frames"`` or ``"video"``).

    Example:
        >>> print(labeling_config([TaskSpec("scale", ("CS", "LS"), "multiclass")], "video"))
        <View>
          <Header value="$trailer" />
          <Video name="video" value="$video" />
          <Header value="scale" />
          <Choices name="scale" toName="video" choice="single" showInline="true">
            <Choice value="CS" />
            <Choice value="LS" />
          </Choices>
        </View>
    """
    view = ET.Element("View")
    ET.SubElement(view, "Header", value="$trailer")
    if media == "video":
        ET.SubElement(view, "Video", name="video", value="$video")
    else:
        ET.SubElement(view, "Image", name="frames", valueList="$frames")
    for task in tasks:
        ET.SubElement(view, "Header", value=task.name)
        choices = ET.SubElement(view, "Choices", name=task.name, toName=media,
                                choice="multiple" if task.kind == "multilabel" else "single", showInline="true")
        for label in task.labels:
            ET.SubElement(choices, "Choice", value=label)
    ET.indent(view)
    return ET.tostring(view, encoding="unicode")


def write_import(selection: Path, samples: Mapping[str, Sample], tasks: Sequence[TaskSpec], root: Path,
                 model_version: str, frames: int = 12, media_url: str = LOCAL_FILES,
                 force: bool = False) -> tuple[Path, Path]:
    """Write the Label Studio import file and labeling config for the trailers of ``selection``.

    Args:
        selection: the CSV ``semisup select`` wrote.
        samples: the dataset's samples by id (the selected ones must be there).
        tasks: the run's tasks.
        root: the dataset root: media URLs are relative to it.
        model_version: names the model in Label Studio's prediction list (the run).
        frames: frame URLs per trailer, evenly spaced (all of them when the trailer has fewer).
        media_url: prefix of every media URL.
        force: overwrite existing files.

    Returns:
        The import file and the config file.

    Raises:
        SemisupError: a selected id outside the dataset, a trailer in shards (nothing to link to),
            a file that exists without ``force``.
    """
    json_path, xml_path = studio_paths(Path(selection))
    for path in (json_path, xml_path):
        refuse_existing(path, force, "Label Studio", "--out")
    rows, _ = read_csv(Path(selection))
    picked = []
    for line, row in rows:
        sample_id = (row.get("id") or "").strip()
        if sample_id not in samples:
            raise SemisupError(f"{selection}:{line}: id {sample_id!r} is not in the run's dataset")
        picked.append((row, samples[sample_id]))
    media = "video" if picked and all(s.video is not None for _, s in picked) else "frames"
    root = Path(os.path.abspath(root))
    out = []
    for row, sample in picked:
        data: dict[str, Any] = {"trailer": sample.id, "rank": int(row.get("rank") or 0) or None,
                                "score": _number(row.get("score"))}
        if media == "video":
            data["video"] = _url(Path(sample.video), root, media_url, selection)
        else:
            if not sample.frames or not isinstance(sample.frames[0], (str, Path)):
                raise SemisupError(f"{selection}: trailer {sample.id!r} has no frame files to link to "
                                   "(trailers in shards cannot be shown in Label Studio; use `semisup label`)")
            data["frames"] = [_url(Path(sample.frames[int(i)]), root, media_url, selection)
                              for i in even_frames(len(sample.frames), frames)]
        result = [{"from_name": t.name, "to_name": media, "type": "choices",
                   "value": {"choices": list(parse_cell(row.get(f"{t.name}{GUESS_SUFFIX}"), "|") or ())}}
                  for t in tasks]
        prediction = {"model_version": model_version, "score": data["score"],
                      "result": [r for r in result if r["value"]["choices"]]}
        out.append({"data": data, "predictions": [prediction]})
    write_json(json_path, out)
    write_text(xml_path, labeling_config(tasks, media) + "\n")
    return json_path, xml_path


def read_export(path: Path) -> tuple[list[tuple[str, dict[str, str]]], list[str]]:
    """Rows ``(where, row)`` in the selection's shape, and the task names answered, from a Label Studio export.

    Each row holds ``id`` (the task's ``data.trailer``), ``status`` and one cell per task
    (the ``from_name`` of a ``choices`` result), labels joined by ``|``.

    Args:
        path: the export (Label Studio's "JSON" format: a list of tasks with ``annotations``).

    Raises:
        SemisupError: not JSON, not a list of tasks, a task without ``data.trailer``.
    """
    try:
        exported = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SemisupError(f"{path}: file not found (expected a Label Studio JSON export)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SemisupError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(exported, list) or not all(isinstance(t, dict) for t in exported):
        raise SemisupError(f"{path}: expected a Label Studio JSON export (a list of tasks), "
                           f"got {type(exported).__name__}; export with the \"JSON\" format")
    rows, names = [], {}
    for n, task in enumerate(exported, start=1):
        where = f"{path}: task {task.get('id', n)}"
        trailer = (task.get("data") or {}).get("trailer")
        if not isinstance(trailer, str) or not trailer:
            raise SemisupError(f"{where}: no data.trailer (expected tasks imported from the file "
                               "`semisup select --format label-studio` wrote)")
        row = {"id": trailer, STATUS_COLUMN: ""}
        annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
        kept = [a for a in annotations if not a.get("was_cancelled")]
        if kept:  # the latest annotation counts (Label Studio keeps every annotator's)
            latest = max(enumerate(kept), key=lambda ia: (str(ia[1].get("updated_at") or ""), ia[0]))[1]
            for result in latest.get("result") or []:
                name = result.get("from_name") if isinstance(result, dict) else None
                if result and result.get("type") == "choices" and isinstance(name, str) and name not in row:
                    names[name] = None
                    row[name] = "|".join(str(c) for c in (result.get("value") or {}).get("choices") or [])
        elif annotations:
            row[STATUS_COLUMN] = "skipped"  # every annotation cancelled: the annotator skipped it
        rows.append((where, row))
    tasks = list(names)
    return [(where, {"id": row["id"], STATUS_COLUMN: row[STATUS_COLUMN], **{t: row.get(t, "") for t in tasks}})
            for where, row in rows], tasks


def merge_export(root: Path, export: Path, labels_file: str = "labels.csv", partial: bool = False,
                 allow_new_labels: bool = False) -> Merged:
    """Merge a Label Studio JSON export into ``root/labels_file`` with the checks of ``semisup data label``.

    Raises:
        SemisupError: as :func:`read_export`; no annotation at all; any problem of
            :func:`~semisup.data.annotate.merge_rows` (nothing is written then).
    """
    rows, tasks = read_export(export)
    if not tasks:
        raise SemisupError(f"{export}: no task holds an annotation with choices (nothing to merge)")
    return merge_rows(root, rows, ["id", *tasks, STATUS_COLUMN], str(export), labels_file, partial=partial,
                      allow_new_labels=allow_new_labels)


def _url(path: Path, root: Path, prefix: str, selection: Path) -> str:
    try:  # as listed: a frames folder that is a link elsewhere keeps its place under the root
        relative = Path(os.path.abspath(path)).relative_to(root)
    except ValueError:
        raise SemisupError(f"{selection}: {path} is outside the dataset root {root}; Label Studio serves "
                           "local files from one document root") from None
    return prefix + quote(relative.as_posix())


def _number(cell: str | None) -> float | None:
    try:
        return float(cell) if cell not in (None, "") else None
    except ValueError:
        return None
