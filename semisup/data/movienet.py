"""MovieNet trailers with genre metadata, read in MovieNet's own layout.

::

    ROOT/meta/tt0000000.json              {"imdb_id": ..., "genres": ["Drama", "Romance"], ...}
    ROOT/keyframes/tt0000000/shot_0000_img_0.jpg
                             shot_0000_img_1.jpg      K = 0, 1, 2: first, middle, last frame of a shot
                             ...
    ROOT/split.csv                        id,split  (written by `semisup data split`)

A sample is one trailer; its frames are all its keyframes in shot order.
Trailers with keyframes but no metadata join the unlabeled pool; metadata
without keyframes is ignored (MovieNet has metadata for more films than
trailers).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

from semisup.data.folder import read_csv, require_folder, too_many_fields
from semisup.data.index import Listing, live
from semisup.data.labels import TaskColumn, resolve_labels
from semisup.data.samples import SPLITS, Dataset, Problem, Sample

KEYFRAME = re.compile(r"^shot_(\d+)_img_(\d+)\.(jpe?g|png)$", re.IGNORECASE)


def keyframe_files(folder: Path, listing: Listing | None = None) -> tuple[Path, ...]:
    """A trailer's keyframes sorted by (shot number, frame index); other files are ignored."""
    keyed = []
    for name in (listing or live(folder)).file_names(folder):
        match = KEYFRAME.match(name)
        if match:
            keyed.append(((int(match.group(1)), int(match.group(2))), folder / name))
    return tuple(path for _, path in sorted(keyed))


def read_split_file(path: Path, ids: set[str]) -> tuple[dict[str, str], list[Problem]]:
    """``id,split`` rows of a split CSV, with problems for bad values and unknown ids."""
    rows, columns = read_csv(path)
    problems = []
    if "id" not in columns or "split" not in columns:
        return {}, [Problem("bad split file", f"{path}: expected columns id and split, found {', '.join(columns)}")]
    splits = {}
    for line, row in rows:
        sample_id, split = (row.get("id") or "").strip(), (row.get("split") or "").strip()
        if too_many_fields(row, columns):
            problems.append(Problem("too many fields", f"{path}:{line}: {too_many_fields(row, columns)}"))
        elif split not in SPLITS:
            problems.append(Problem("bad split", f"{path}:{line}: split {split!r} is not one of {', '.join(SPLITS)}"))
        elif sample_id not in ids:
            problems.append(Problem("unknown id", f"{path}:{line}: id {sample_id!r} has no frames", fatal=False))
        else:
            splits[sample_id] = split
    return splits, problems


def read_movienet(root: Path, tasks: Sequence[TaskColumn], meta_dir: str = "meta",
                  keyframes_dir: str = "keyframes", split_file: str = "split.csv",
                  ignore_split: bool = False, listing: Listing | None = None) -> Dataset:
    """Read MovieNet trailers: keyframes, genres (or other list fields) from the metadata.

    Args:
        root: the MovieNet folder.
        tasks: tasks whose ``column`` names a list-of-strings field of the
            metadata JSON (``genres``).
        meta_dir, keyframes_dir: sub-folders of ``root``.
        split_file: CSV of ``id,split`` inside ``root``; without it every
            trailer is ``train`` and a problem says to run ``semisup data split``.
        ignore_split: read every trailer as ``train`` (to make a new split).
        listing: lists the folders (from the dataset index when there is one); default: live.

    Raises:
        SemisupError: missing root or keyframes folder.
    """
    require_folder(root)
    require_folder(root / keyframes_dir, "keyframes folder")
    meta = root / meta_dir
    problems: list[Problem] = []
    listing = listing or live(root)
    trailers = [e.name for e in listing.entries(root / keyframes_dir) if e.is_dir and not e.name.startswith(".")]
    split_path = root / split_file
    if ignore_split:
        splits = {}
    elif split_path.is_file():
        splits, split_problems = read_split_file(split_path, set(trailers))
        problems += split_problems
    else:
        splits = {}
        problems.append(Problem("no split", f"{split_path}: no split file; every trailer counts as train "
                                f"(write one with `semisup data split {root} --format movienet`)", fatal=False))
    samples = []
    for trailer in trailers:
        frames = keyframe_files(root / keyframes_dir / trailer, listing)
        if not frames:
            problems.append(Problem("missing frames", f"{root / keyframes_dir / trailer}: holds no "
                                    "shot_NNNN_img_K.jpg keyframes"))
            continue
        split = splits.get(trailer, "train" if not splits else "unlabeled")
        fields, problem = _metadata(meta / f"{trailer}.json")
        if problem:
            problems.append(problem)
        labels = {t.name: None if split == "unlabeled" else _list_field(fields, t.column) for t in tasks}
        samples.append(Sample(trailer, frames, None, labels, split, trailer))
    samples, specs, label_problems = resolve_labels(samples, tasks, str(meta))
    return Dataset(samples, specs, problems + label_problems, str(root))


def _metadata(path: Path) -> tuple[dict, Problem | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, Problem("no metadata", f"{path}: no metadata; the trailer joins the unlabeled pool", fatal=False)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {}, Problem("bad metadata", f"{path}: not readable JSON ({exc}); the trailer joins the "
                           "unlabeled pool", fatal=False)
    return (data, None) if isinstance(data, dict) else ({}, Problem("bad metadata", f"{path}: expected a JSON "
                                                                    "object", fatal=False))


def _list_field(fields: dict, key: str) -> tuple[str, ...] | None:
    value = fields.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return None
    return tuple(dict.fromkeys(str(v).strip() for v in value if str(v).strip())) or None
