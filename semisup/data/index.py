"""The dataset index: every folder a dataset's reader lists, in one Parquet file, so a start lists none.

Reading a large dataset is mostly listing folders: one ``scandir`` per
trailer (50,000 trailers x 20 frames: most of a run's 40 s to its first
step, and every process of a data-parallel run lists them all again).
``semisup data index ROOT`` runs the layout's reader once while recording
what it lists, and writes it to ``ROOT/semisup-index.parquet``: one row per
folder (its path relative to the root, its modification time, its entries
and which are folders), and one per video (the header's frame count, rate,
size and duration). Later reads take the listings from the file.

What is checked, and what is not (the cheap check):

- a folder that holds folders (``frames/``, ``videos/``, ``keyframes/``,
  ``trailer/<id>/``...) is stat-ed on every read and listed again when its
  modification time changed: trailers added, removed or renamed are seen at
  once, and only the new ones are listed;
- a leaf folder (one trailer's frames) is trusted as recorded: a frame
  added to or deleted from an existing trailer's folder is not seen until
  ``semisup data index ROOT --refresh`` (a deleted frame reads as an
  unreadable one: skipped and counted);
- labels and split files are not in the index: they are read fresh every
  time (a CSV of a million rows reads in seconds), so they are never stale.

Parquet through pyarrow: columnar, compressed (a million frame names that
share a pattern take a few MB), read in one call, and readable by the
user's own tools (pandas, DuckDB, Spark) as a manifest of the dataset.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from semisup.errors import SemisupError
from semisup.io import atomic_write

INDEX_FILE = "semisup-index.parquet"
INDEX_VERSION = "1"


class Entry(NamedTuple):
    """One entry of a folder: its name and whether it is a folder (symbolic links followed).
    A named tuple: a million of them are made in a second, frozen dataclasses take several."""

    name: str
    is_dir: bool
    is_file: bool


@dataclass
class Listing:
    """Lists folders for the dataset readers: live, recording, or from an index.

    A reader calls :meth:`entries` wherever it would call ``os.scandir``; the
    errors are ``os.scandir``'s (a missing folder, not a folder, unreadable).

    Attributes:
        root: the dataset's root; folders are recorded relative to it.
        recorded: relative folder -> (modification time in ns, its entries).
        stored: what an index file holds, made into ``recorded`` entries when first asked for
            (a million Entry objects made up front would cost more than the listing they save).
        videos: relative video path -> the header's ``(frames, fps, width, height, duration)``.
        record: keep what is listed live, to be written with :func:`write_index`.
        relisted: folders listed live although recorded (they changed since).
        listed: folders listed live.
    """

    root: Path
    recorded: dict[str, tuple[int, tuple[Entry, ...]]] = field(default_factory=dict)
    stored: dict[str, tuple[int, list[str], list[bool], list[bool]]] = field(default_factory=dict, repr=False)
    videos: dict[str, tuple[int, float, int, int, float]] = field(default_factory=dict)
    record: bool = False
    relisted: int = 0
    listed: int = 0
    _names: dict[str, dict[str, Entry]] = field(default_factory=dict, repr=False)

    def entries(self, folder: Path) -> tuple[Entry, ...]:
        """The entries of ``folder``, sorted by name.

        A recorded folder that holds folders is stat-ed and listed again when it
        changed; a recorded leaf is returned as recorded while its parent still
        holds it (see the module's docstring).

        Raises:
            OSError: as ``os.scandir`` (FileNotFoundError, NotADirectoryError, PermissionError, ...).
        """
        key = self._key(folder)
        known = self._known(key) if key is not None else None
        if known is not None:
            mtime, entries = known
            if any(e.is_dir for e in entries):  # a folder of folders: checked
                if _mtime(folder) == mtime:
                    return entries
                self.relisted += 1
            else:
                parent = key.rpartition("/")[0] or "."
                if self._known(parent) is None or self.lookup(folder) is not None:
                    return entries  # a leaf, trusted while its (checked) parent still holds it
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(folder))
        mtime = _mtime(folder)
        with os.scandir(folder) as scan:
            entries = tuple(sorted((Entry(e.name, e.is_dir(), e.is_file()) for e in scan), key=lambda e: e.name))
        self.listed += 1
        if self.record and key is not None:
            self.recorded[key] = (mtime, entries)
        return entries

    def file_names(self, folder: Path) -> list[str]:
        """The names of the files in ``folder``, sorted: :meth:`entries` without making an
        entry object per file when the folder comes from the index (a trailer's frames)."""
        key = self._key(folder)
        raw = self.stored.get(key) if key is not None and key not in self.recorded else None
        if raw is None or any(raw[2]):  # listed live, or a folder of folders (checked by entries)
            return [e.name for e in self.entries(folder) if e.is_file]
        if self._known(key.rpartition("/")[0] or ".") is not None and self.lookup(folder) is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(folder))
        return [name for name, is_file in zip(raw[1], raw[3]) if is_file]

    def lookup(self, path: Path) -> Entry | None:
        """The entry of ``path`` in its folder's listing; ``None`` when absent or the folder is unreadable."""
        parent, _, name = os.fspath(Path(path)).rpartition(os.sep)  # string work: called per trailer
        parent = parent or os.sep
        listed = self._names.get(parent)
        if listed is None:  # each folder once per read, a missing one too
            try:
                listed = {e.name: e for e in self.entries(Path(parent))}
            except OSError:
                listed = {}
            self._names[parent] = listed
        return listed.get(name)

    def video(self, path: Path) -> tuple[int, float, int, int, float] | None:
        """A video's recorded header (frames, fps, width, height, duration), or ``None``."""
        key = self._key(path)
        return self.videos.get(key) if key is not None else None

    def _known(self, key: str) -> tuple[int, tuple[Entry, ...]] | None:
        """A recorded folder's (mtime, entries), made from the index file's columns on first use."""
        known = self.recorded.get(key)
        if known is None and key in self.stored:
            mtime, names, dirs, files = self.stored.pop(key)
            known = self.recorded[key] = (mtime, tuple(map(Entry, names, dirs, files)))
        return known

    def _key(self, path: Path) -> str | None:
        """``path`` relative to the root, as the index writes it (string work: a million Path
        operations would cost seconds); None outside the root (never recorded)."""
        text, root = os.fspath(path), self._root_text
        if text == root:
            return "."
        if text.startswith(root) and text[len(root):len(root) + 1] == os.sep:
            return text[len(root) + 1:].replace(os.sep, "/")
        return None

    @property
    def _root_text(self) -> str:
        return os.fspath(self.root)


def _mtime(folder: Path) -> int:
    return os.stat(folder).st_mtime_ns


def live(root: Path) -> Listing:
    """A listing that lists every folder as it is asked (no index)."""
    return Listing(Path(root).expanduser())


def index_path(root: Path, index: str | Path = "") -> Path:
    """Where a dataset's index is: ``index`` when given, else ``ROOT/semisup-index.parquet``."""
    return Path(index).expanduser() if str(index) else Path(root).expanduser() / INDEX_FILE


def open_listing(root: Path, index: str | Path = "") -> Listing:
    """The listing for reading the dataset at ``root``: from its index when there is one, else live.

    Raises:
        SemisupError: ``index`` was named but does not exist, or the index is not readable
            or was written for another root.
    """
    root = Path(root).expanduser()
    path = index_path(root, index)
    if not path.is_file():
        if str(index):
            raise SemisupError(f"data.index: {path} does not exist; write it with `semisup data index {root}`")
        return live(root)
    return read_index(path, root)


def read_index(path: Path, root: Path) -> Listing:
    """Read an index written by :func:`write_index` for ``root``.

    Raises:
        SemisupError: not a readable index, or one of another dataset root.
    """
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise SemisupError(f"{path}: not a readable dataset index ({str(exc).splitlines()[0]}); "
                           f"write it again with `semisup data index {root} --refresh`") from None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if meta.get("semisup_index") != INDEX_VERSION:
        raise SemisupError(f"{path}: not a semisup dataset index (version {meta.get('semisup_index')!r}); "
                           f"write it again with `semisup data index {root} --refresh`")
    columns = table.to_pydict()
    listing = Listing(root)
    for kind, rel, mtime, names, dirs, files, header in zip(
            columns["kind"], columns["path"], columns["mtime_ns"], columns["names"], columns["dirs"],
            columns["files"], columns["video"]):
        if kind == "folder":
            listing.stored[rel] = (mtime, names, dirs, files)
        else:
            frames, fps, width, height, duration = header
            listing.videos[rel] = (int(frames), fps, int(width), int(height), duration)
    return listing


def write_index(listing: Listing, path: Path, fmt: str, probe: Callable[[Path], tuple] | None = None,
                videos: Iterator[Path] = iter(()), on_video: Callable[[], None] | None = None) -> dict[str, int]:
    """Write what ``listing`` recorded (and the header of each of ``videos``) to ``path``, atomically.

    Args:
        listing: a recording listing the dataset was read through.
        path: the Parquet file to write.
        fmt: the dataset's layout, kept in the file's metadata.
        probe: reads a video's header as ``(frames, fps, width, height, duration)``.
        videos: the dataset's videos to probe.
        on_video: called after each video (progress).

    Returns:
        Counts: folders, entries, videos (and unreadable videos, left out).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: dict[str, list] = {k: [] for k in ("kind", "path", "mtime_ns", "names", "dirs", "files", "video")}
    entries = 0
    for rel, (mtime, listed) in sorted(listing.recorded.items()):
        for key, value in (("kind", "folder"), ("path", rel), ("mtime_ns", mtime), ("names", [e.name for e in listed]),
                           ("dirs", [e.is_dir for e in listed]), ("files", [e.is_file for e in listed]),
                           ("video", None)):
            rows[key].append(value)
        entries += len(listed)
    probed = unreadable = 0
    for video in videos:
        key = listing._key(video)
        try:
            header = probe(video) if probe is not None and key is not None else None
        except OSError:
            header, unreadable = None, unreadable + 1
        if header is not None:
            for k, value in (("kind", "video"), ("path", key), ("mtime_ns", video.stat().st_mtime_ns),
                             ("names", None), ("dirs", None), ("files", None), ("video", list(header))):
                rows[k].append(value)
            probed += 1
        if on_video is not None:
            on_video()
    schema = pa.schema([("kind", pa.string()), ("path", pa.string()), ("mtime_ns", pa.int64()),
                        ("names", pa.list_(pa.string())), ("dirs", pa.list_(pa.bool_())),
                        ("files", pa.list_(pa.bool_())), ("video", pa.list_(pa.float64()))],
                       metadata={"semisup_index": INDEX_VERSION, "format": fmt, "root": str(listing.root),
                                 "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    table = pa.table(rows, schema=schema)
    with atomic_write(path, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
    return {"folders": len(listing.recorded), "entries": entries, "videos": probed, "unreadable videos": unreadable}
