"""The generic folder format, which users can write by hand.

::

    ROOT/labels.csv            id,split,genres
                               tt001,train,Action|Drama
                               tt002,unlabeled,
    ROOT/frames/<id>/*.jpg     frames of each sample, time order = sorted file names
    ROOT/videos/<id>.mp4       ... or a video per sample, decoded on the fly

A row may leave out trailing empty cells, but a row with more cells than
the header is an error (its extra cells would be lost). ``split`` is optional (``train``, ``val``, ``test``, ``unlabeled``; missing
means ``train``), so is ``group`` (samples of one group stay in one split
when splitting). There is one column per task; labels inside a cell are
separated by ``|``. An empty cell means the sample is unlabeled for that
task; rows of the ``unlabeled`` split are never used as labeled, whatever
their cells hold. A frames folder wins over a video of the same id.
"""

from __future__ import annotations

import csv
import difflib
from pathlib import Path
from typing import Callable, Sequence

from semisup.data.index import Listing, live
from semisup.data.labels import TaskColumn, resolve_labels
from semisup.data.samples import SPLITS, Dataset, FrameFiles, Problem, Sample
from semisup.data.video import VIDEO_SUFFIXES
from semisup.errors import SemisupError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

__all__ = ["IMAGE_SUFFIXES", "TaskColumn", "frame_files", "read_csv", "read_folder", "read_labeled_rows",
           "require_folder", "too_many_fields"]


def require_folder(root: Path, what: str = "dataset root") -> None:
    """Raise a one-line error unless ``root`` is an existing folder."""
    if not root.is_dir():
        state = "is a file, expected a folder" if root.exists() else "does not exist"
        raise SemisupError(f"{root}: {what} {state}")


def read_folder(root: Path, tasks: Sequence[TaskColumn], labels_file: str = "labels.csv",
                ignore_split: bool = False, listing: Listing | None = None) -> Dataset:
    """Read a dataset in the generic folder format.

    Args:
        root: dataset folder.
        tasks: the tasks to read.
        labels_file: CSV file name inside ``root``.
        ignore_split: read every row as ``train`` with its labels (to make a new split).
        listing: lists the folders (from the dataset index when there is one); default: live.

    Returns:
        The :class:`Dataset`; samples whose frames are missing are left out
        and reported as fatal problems.

    Raises:
        SemisupError: no root, no labels file, no ``id`` column or no task column.
    """
    require_folder(root)
    listing = listing or live(root)
    videos = _video_index(root / "videos", listing)
    frames_root = root / "frames"

    def frames_of(sample_id: str, where: str) -> tuple[Sequence[Path], Path | None]:
        folder = frames_root / sample_id
        if listing.lookup(folder) is None and sample_id in videos:
            return (), videos[sample_id]
        return frame_files(folder, where, listing), None

    return read_labeled_rows(root / labels_file, tasks, frames_of, ignore_split)


def read_labeled_rows(csv_path: Path, tasks: Sequence[TaskColumn],
                      frames_of: Callable[[str, str], tuple[Sequence, Path | None]],
                      ignore_split: bool = False, source: str = "") -> Dataset:
    """The samples of a labels file in the folder format, their frames found by ``frames_of``.

    Args:
        csv_path: the labels file (id, split, group, one column per task).
        tasks: the tasks to read.
        frames_of: ``(sample id, "file:line") -> (frames, video)``; raises
            :class:`SemisupError` when the sample has none (reported, the sample left out).
        ignore_split: read every row as ``train`` with its labels.
        source: what messages name as the dataset (default: ``csv_path``).
    """
    rows, columns = read_csv(csv_path)
    source = source or str(csv_path)
    for needed in ["id", *(t.column for t in tasks)]:
        if needed not in columns:
            guess = difflib.get_close_matches(needed, columns, n=1)
            hint = f'did you mean "{guess[0]}"?' if guess else "columns: " + ", ".join(columns)
            raise SemisupError(f"{source}: no column {needed!r} ({hint})")
    samples, problems, seen = [], [], set()
    for line, row in rows:
        where = f"{source}:{line}"
        extra = too_many_fields(row, columns)
        if extra:
            problems.append(Problem("too many fields", f"{where}: {extra}"))
            continue
        sample_id = (row.get("id") or "").strip()
        if not sample_id:
            problems.append(Problem("empty id", f"{where}: empty id"))
            continue
        if sample_id in seen:
            problems.append(Problem("duplicate id", f"{where}: id {sample_id!r} appears twice"))
            continue
        seen.add(sample_id)
        split = "train" if ignore_split else (row.get("split") or "").strip() or "train"
        if split not in SPLITS:
            problems.append(Problem("bad split", f"{where}: split {split!r} is not one of {', '.join(SPLITS)}"))
            continue
        try:
            frames, video = frames_of(sample_id, where)
        except SemisupError as exc:
            problems.append(Problem("missing frames", str(exc)))
            continue
        labels = {t.name: (None if split == "unlabeled" else parse_cell(row.get(t.column), t.separator))
                  for t in tasks}
        samples.append(Sample(sample_id, frames, video, labels, split, (row.get("group") or "").strip() or None))
    samples, specs, label_problems = resolve_labels(samples, tasks, source)
    return Dataset(samples, specs, problems + label_problems, source)


def read_csv(path: Path) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """Rows (with their line numbers) and column names of a UTF-8 CSV.

    Raises:
        SemisupError: missing, unreadable or empty file, or a column named twice.
    """
    if not path.is_file():
        raise SemisupError(f"{path}: labels file not found (expected a CSV with an 'id' column)")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            reader.fieldnames = columns
            rows = [(reader.line_num, row) for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SemisupError(f"{path}: not a readable UTF-8 CSV ({exc})") from None
    except OSError as exc:  # permission denied, an I/O error
        raise SemisupError(f"{path}: labels file not readable ({exc.strerror or exc})") from None
    if not columns:
        raise SemisupError(f"{path}: empty CSV (expected a header with an 'id' column)")
    for i, column in enumerate(columns):
        if column and column in columns[:i]:  # csv would keep only the last column's cells, silently
            raise SemisupError(f"{path}: column {column!r} appears twice in the header (columns "
                               f"{columns.index(column) + 1} and {i + 1}); keep one")
    return rows, columns


def too_many_fields(row: dict, columns: Sequence[str]) -> str:
    """What is wrong with a CSV row that has more non-empty cells than the header
    has columns (``""`` when nothing is): such cells would be dropped unread.

    Example:
        >>> too_many_fields({"id": "a", "genres": "Drama", None: ["Comedy"]}, ["id", "genres"])
        '3 fields, the header has 2'
    """
    extra = [cell for cell in row.get(None) or () if cell.strip()]  # type: ignore[call-overload]
    if not extra:
        return ""
    return f"{len(columns) + len(row[None])} fields, the header has {len(columns)}"  # type: ignore[index]


def parse_cell(cell: str | None, separator: str) -> tuple[str, ...] | None:
    """The labels of one CSV cell, stripped, without repeats, in order (``None`` when empty).

    Example:
        >>> parse_cell(" Drama | Comedy|Drama ", "|")
        ('Drama', 'Comedy')
    """
    if cell is None or not cell.strip():
        return None
    return tuple(dict.fromkeys(part.strip() for part in cell.split(separator) if part.strip())) or None


def _video_index(folder: Path, listing: Listing) -> dict[str, Path]:
    """``videos/<id>.<ext>`` files by id (ids may contain sub-folders); hidden files are skipped."""
    found: dict[str, Path] = {}
    try:
        entries = listing.entries(folder)
    except OSError:  # no videos folder
        return found
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        if entry.is_dir:
            found.update({f"{entry.name}/{key}": value for key, value in _video_index(path, listing).items()})
        elif entry.is_file and path.suffix.lower() in VIDEO_SUFFIXES:
            found[path.with_suffix("").name] = path
    return found


def frame_files(folder: Path, where: str = "", listing: Listing | None = None) -> FrameFiles:
    """Image files of one sample's frames folder, sorted by name; hidden files are skipped.

    Args:
        folder: the frames folder.
        where: prefix of the error message (the labels file's line).
        listing: lists the folder (from the dataset index when there is one); default: live.

    Raises:
        SemisupError: the folder is missing, not readable or holds no images.
    """
    prefix = f"{where}: " if where else ""
    try:  # hidden files (macOS "._000.jpg" resource forks, ".DS_Store") are not frames
        names = [name for name in (listing or live(folder)).file_names(folder)
                 if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")]
    except FileNotFoundError:
        raise SemisupError(f"{prefix}frames folder {folder} does not exist") from None
    except NotADirectoryError:
        raise SemisupError(f"{prefix}{folder} is a file, expected a frames folder") from None
    except OSError as exc:  # permission denied, a symbolic link to itself (ELOOP), an I/O error
        raise SemisupError(f"{prefix}frames folder {folder} is not readable ({exc.strerror or exc})") from None
    if not names:
        raise SemisupError(f"{prefix}frames folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return FrameFiles(folder, names)
