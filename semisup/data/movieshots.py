"""MovieShots shot types (scale, movement), read in MovieShots' own layout.

::

    ROOT/v1_full_trailer.json     {imdb_id: {shot_id: {"scale": {"label": "CS", "value": 3},
                                                       "movement": {"label": "Static", "value": 0}}}}
    ROOT/v1_split_trailer.json    the same under "train", "val" and "test"
    ROOT/trailer/<imdb_id>/shot_<NNNN>.mp4      one clip per shot
    ROOT/frames/<imdb_id>/shot_<NNNN>/*.jpg     ... or frames extracted from it (used when present)

A sample is one shot (id ``<imdb_id>/<shot_id>``), grouped by trailer.
Classes come from the ``label`` strings, never the integer ``value`` (public
copies of the files disagree on it). A shot without a task's key is
unlabeled for that task. The official split is used when its file exists;
otherwise ``split.csv`` (``semisup data split`` keeps each trailer's shots
together); shots of the annotations missing from the split file join the
unlabeled pool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from semisup.data.folder import frame_files, require_folder
from semisup.data.index import Listing, live
from semisup.data.labels import TaskColumn, resolve_labels
from semisup.data.movienet import read_split_file
from semisup.data.samples import Dataset, Problem, Sample
from semisup.errors import SemisupError

SCALE_CLASSES = ("LS", "FS", "MS", "CS", "ECS")
MOVEMENT_CLASSES = ("Static", "Motion", "Push", "Pull")
OFFICIAL_SPLIT = "v1_split_trailer.json"


def read_movieshots(root: Path, tasks: Sequence[TaskColumn], annotations: str = "v1_full_trailer.json",
                    clips_dir: str = "trailer", split_file: str = "", ignore_split: bool = False,
                    listing: Listing | None = None) -> Dataset:
    """Read MovieShots shots with their scale and movement labels.

    Args:
        root: the MovieShots folder.
        tasks: tasks whose ``column`` is a per-shot key (``scale``, ``movement``).
        annotations: the full annotation file inside ``root``.
        clips_dir: folder of ``<imdb_id>/shot_<NNNN>.mp4`` clips.
        split_file: ``""`` uses the official split file when present, else
            ``split.csv``; or name a JSON split (MovieShots style) or CSV (``id,split``).
        ignore_split: read every shot as ``train`` (to make a new split).
        listing: lists the folders (from the dataset index when there is one); default: live.

    Raises:
        SemisupError: missing root or unreadable annotation file.
    """
    require_folder(root)
    listing = listing or live(root)
    shots = _load_json(root / annotations)
    if not isinstance(shots, dict):
        raise SemisupError(f"{root / annotations}: expected {{imdb_id: {{shot_id: {{...}}}}}}")
    problems: list[Problem] = []
    ids = {f"{imdb}/{shot}" for imdb, entries in shots.items() if isinstance(entries, dict) for shot in entries}
    if not ignore_split:
        splits, split_problems = _splits(root, split_file, ids)
        problems += split_problems
    else:
        splits = {}
    samples = []
    for imdb in sorted(shots):
        entries = shots[imdb]
        if not isinstance(entries, dict):
            problems.append(Problem("bad annotation", f"{root / annotations}: {imdb}: expected an object of shots"))
            continue
        for shot in sorted(entries):
            sample_id = f"{imdb}/{shot}"
            split = splits.get(sample_id, "train" if not splits else "unlabeled")
            frames_folder = root / "frames" / imdb / f"shot_{shot}"
            clip = root / clips_dir / imdb / f"shot_{shot}.mp4"
            folder_entry, clip_entry = listing.lookup(frames_folder), listing.lookup(clip)
            if folder_entry is not None and folder_entry.is_dir:
                media: dict[str, Any] = {"frames": frame_files(frames_folder, sample_id, listing)}
            elif clip_entry is not None and clip_entry.is_file:
                media = {"video": clip}
            else:
                problems.append(Problem("missing clip", f"{clip}: missing (shot {sample_id} of {annotations})"))
                continue
            labels = {t.name: None if split == "unlabeled" else _label(entries[shot], t.column) for t in tasks}
            samples.append(Sample(sample_id, labels=labels, split=split, group=imdb, **media))
    samples, specs, label_problems = resolve_labels(samples, tasks, str(root / annotations))
    return Dataset(samples, specs, problems + label_problems, str(root / annotations))


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SemisupError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SemisupError(f"{path}: not readable JSON ({exc})") from None


def _label(entry: Any, key: str) -> tuple[str, ...] | None:
    if not isinstance(entry, dict) or not isinstance(entry.get(key), dict):
        return None
    label = entry[key].get("label")
    return (str(label).strip(),) if isinstance(label, str) and label.strip() else None


def _splits(root: Path, split_file: str, ids: set[str]) -> tuple[dict[str, str], list[Problem]]:
    name = split_file or (OFFICIAL_SPLIT if (root / OFFICIAL_SPLIT).is_file() else "split.csv")
    path = root / name
    if not path.is_file():
        if split_file:
            raise SemisupError(f"{path}: split file not found")
        return {}, [Problem("no split", f"{root}: no {OFFICIAL_SPLIT} or split.csv; every shot counts as train "
                            f"(write one with `semisup data split {root} --format movieshots`)", fatal=False)]
    if path.suffix.lower() == ".csv":
        return read_split_file(path, ids)
    data = _load_json(path)
    splits, problems = {}, []
    for split in ("train", "val", "test"):
        for imdb, entries in (data.get(split) or {}).items() if isinstance(data, dict) else ():
            for shot in entries if isinstance(entries, dict) else ():
                sample_id = f"{imdb}/{shot}"
                if sample_id in ids:
                    splits[sample_id] = split
                else:
                    problems.append(Problem("unknown id", f"{path}: {split}: shot {sample_id} is not in the "
                                            "annotations", fatal=False))
    return splits, problems
