"""Streaming shards: a dataset written once into MDS shards, read from local disk or object storage.

``semisup data shard ROOT OUT`` writes any dataset semisup reads into OUT
(a folder, or an object-store URL such as ``s3://bucket/trailers``)::

    OUT/part-00000/shard.00000.mds ...   MDS shards (MosaicML streaming), one sample per trailer:
                                         its id, its frames as JPEGs in time order
    OUT/index.json                       the shards of every part (MDS's merged index)
    OUT/labels.csv                       id, split, group and one column per task (the folder format's)
    OUT/semisup-shards.parquet           per trailer, in shard order: id and frame count
    OUT/semisup-shards.json              how it was written (frame side, frames per video); written last

Frames are stored as the centre square at ``--side`` pixels, which is what
semisup's loaders read from any layout (they crop the centre square), so a
recipe's ``data.image_size`` up to that side trains as from the original frames.
Videos keep ``--video-frames`` evenly spaced frames.

Why MDS, through its shard files rather than its ``StreamingDataset``:
semisup's own samplers already give the guarantees training needs
(deterministic shuffling per epoch, equal shares per process, mid-epoch
resume by step), and they address trailers by position. MDS
(``mosaicml-streaming``) is an established, documented shard format with
writers and storage clients for S3-compatible stores, GCS, Azure and more;
semisup writes it with ``MDSWriter``, and reads a trailer by position with
its ``reader_from_json`` over a shard fetched by its ``CloudDownloader``. Its
``StreamingDataset`` is not used to read: its constructor is a collective
under ``torch.distributed`` and registers shared memory per job, which
conflicts with semisup reading the dataset on rank 0 first and with loader
workers forked after it; random access is all semisup needs. Other tools
(``StreamingDataset`` included) read the same shards.

A remote dataset's shards are downloaded on first use into a local cache
(``data.shard_cache``), each once, and kept: size the cache to the dataset.
An S3-compatible store other than AWS is named by ``S3_ENDPOINT_URL``;
credentials come from boto3's usual places (``AWS_ACCESS_KEY_ID``... or
``~/.aws``).
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from semisup.errors import SemisupError
from semisup.io import atomic_write

MANIFEST = "semisup-shards.parquet"
PLAN = "semisup-shards.json"
LABELS = "labels.csv"
SHARDS_VERSION = 1
COLUMNS = {"id": "str", "frames": "bytes", "sizes": "json"}
"""An MDS sample: the trailer's id, its JPEG frames concatenated, and each one's length."""


def is_url(location: str | Path) -> bool:
    """Whether ``location`` names object storage (``s3://...``, ``gs://...``) rather than a folder."""
    return re.match(r"^[a-z][a-z0-9+.-]*:/", str(location)) is not None


def location_of(root: str | Path) -> str:
    """The dataset's location as a string: a URL keeps its ``//`` (a ``Path`` made of
    ``s3://b/p`` collapses it to ``s3:/b/p``), a folder has ``~`` expanded."""
    text = str(root)
    match = re.match(r"^([a-z][a-z0-9+.-]*):/+(.*)$", text)
    if match:
        return f"{match.group(1)}://{match.group(2)}"
    return str(Path(text).expanduser())


def default_cache(location: str) -> Path:
    """Where a remote dataset's shards are kept: ``~/.cache/semisup/shards/<hash of its URL>``."""
    return Path("~/.cache/semisup/shards").expanduser() / hashlib.sha256(location.encode()).hexdigest()[:16]


def _streaming():
    try:
        import streaming  # noqa: F401
    except ImportError:
        raise SemisupError('data.format = "shards" needs MosaicML streaming: pip install "semisup[shards]"') from None
    from streaming.base.format import reader_from_json
    from streaming.base.storage import CloudDownloader

    return reader_from_json, CloudDownloader


def fetch(location: str, name: str, local: Path) -> Path:
    """``local/name``, downloaded from ``location/name`` first when it is not there (atomically:
    several loader workers may fetch one shard at once)."""
    target = local / name
    if target.exists():
        return target
    _, downloader = _streaming()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")  # unique across workers and machines
    try:
        downloader.direct_download(f"{location}/{name}", str(partial))
    except Exception as exc:  # boto3, google, azure... each raises its own
        partial.unlink(missing_ok=True)
        raise SemisupError(f"{location}/{name}: could not be downloaded ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    os.replace(partial, target)
    return target


def remote_plan(location: str) -> dict | None:
    """The plan of the shard dataset at a URL, read fresh; None when there is none (or no store)."""
    with tempfile.TemporaryDirectory() as scratch:
        try:
            return json.loads(fetch(location, PLAN, Path(scratch)).read_text())
        except SemisupError:
            return None


def _refuse_incomplete(location: str, plan: dict) -> None:
    if plan.get("incomplete"):
        raise SemisupError(f"{location}: the shard dataset is being written again, or that writing was stopped; "
                           "finish it with the same `semisup data shard ... --force` first")


class ShardStore:
    """Reads a trailer's JPEG frames out of a shard dataset by its position.

    Args:
        location: the dataset's folder or URL.
        cache: where a remote dataset's files are kept (ignored for a folder).

    Raises:
        SemisupError: no shard dataset there (no ``semisup-shards.json``, which is written last).
    """

    def __init__(self, location: str, cache: Path | None = None) -> None:
        self.location = location
        self.local = Path(location)
        if is_url(location):
            plan = remote_plan(location)
            if plan is None:
                raise SemisupError(f"{location}: not a shard dataset, or not reachable (no {PLAN}; "
                                   "write one with `semisup data shard ROOT OUT`)")
            _refuse_incomplete(location, plan)
            # each write of the dataset has its own folder in the cache: old shards are never read as new
            self.local = (cache or default_cache(location)) / str(plan["written"])
            if not (self.local / PLAN).is_file():
                self.local.mkdir(parents=True, exist_ok=True)
                with atomic_write(self.local / PLAN) as handle:
                    json.dump(plan, handle)
        self.plan = json.loads(self.file(PLAN).read_text())
        _refuse_incomplete(location, self.plan)
        index = json.loads(self.file("index.json").read_bytes())
        self.shards = index["shards"]
        self.starts = np.cumsum([0] + [s["samples"] for s in self.shards]).tolist()
        self.identity = hashlib.sha256(json.dumps(index, sort_keys=True).encode()).hexdigest()
        self._readers: dict[int, object] = {}
        self._last: tuple[int, list[bytes]] | None = None

    def file(self, name: str) -> Path:
        """One of the dataset's files, local (fetched first for a remote dataset)."""
        if not is_url(self.location):
            path = self.local / name
            if not path.is_file():
                raise SemisupError(f"{path}: not a shard dataset (write one with `semisup data shard ROOT OUT`)")
            return path
        return fetch(self.location, name, self.local)

    def frames(self, position: int) -> list[bytes]:
        """The JPEG frames of the trailer at ``position``, in time order."""
        if self._last is not None and self._last[0] == position:
            return self._last[1]
        shard = bisect.bisect_right(self.starts, position) - 1
        reader = self._readers.get(shard)
        if reader is None:
            reader_from_json, _ = _streaming()
            entry = self.shards[shard]
            self.file(entry["raw_data"]["basename"])
            reader = self._readers[shard] = reader_from_json(str(self.local), None, entry)
        sample = reader.get_item(position - self.starts[shard])
        blob, ends = sample["frames"], np.cumsum(sample["sizes"]).tolist()
        frames = [blob[a:b] for a, b in zip([0, *ends[:-1]], ends)]
        self._last = (position, frames)
        return frames

    def __getstate__(self) -> dict:  # loader workers started by spawn open their own readers
        return {**self.__dict__, "_readers": {}, "_last": None}


@dataclass(frozen=True)
class ShardFrame:
    """One frame of a trailer in a shard dataset: read with :meth:`frame_bytes`
    (what :func:`semisup.data.images.load_frame` reads instead of a file)."""

    store: ShardStore
    position: int
    index: int
    sample_id: str

    def frame_bytes(self) -> bytes:
        return self.store.frames(self.position)[self.index]

    def digest_text(self) -> str:
        """What the feature cache's key records for this frame: the dataset's identity and place."""
        return f"{self.store.identity}:{self.position}:{self.index}"

    def __str__(self) -> str:
        return f"{self.store.location}#{self.sample_id}/{self.index}"


class ShardFrames(Sequence[ShardFrame]):
    """A trailer's frames in a shard dataset, read like a tuple of frame files."""

    __slots__ = ("store", "position", "count", "sample_id")

    def __init__(self, store: ShardStore, position: int, count: int, sample_id: str) -> None:
        self.store, self.position, self.count, self.sample_id = store, position, count, sample_id

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self.count)))
        if not -self.count <= index < self.count:
            raise IndexError(index)
        return ShardFrame(self.store, self.position, index % self.count, self.sample_id)

    def __iter__(self) -> Iterator[ShardFrame]:
        return (self[i] for i in range(self.count))

    def __repr__(self) -> str:
        return f"ShardFrames({self.store.location!r}#{self.sample_id}, {self.count} frames)"


def open_shards(root: str | Path, cache: str | Path = "") -> tuple[ShardStore, Path, dict[str, tuple[int, int]]]:
    """Open a shard dataset: its store, its local ``labels.csv``, and per trailer id its
    position and frame count.

    Raises:
        SemisupError: no shard dataset at ``root``, or not one this version reads.
    """
    import pyarrow.parquet as pq

    location = location_of(root)
    store = ShardStore(location, Path(cache).expanduser() if str(cache) else None)
    if store.plan.get("semisup_shards") != SHARDS_VERSION:
        raise SemisupError(f"{location}: shards of version {store.plan.get('semisup_shards')!r}; this semisup reads "
                           f"version {SHARDS_VERSION} (write them again with `semisup data shard`)")
    table = pq.read_table(store.file(MANIFEST)).to_pydict()
    trailers = {sample_id: (position, count)
                for position, (sample_id, count) in enumerate(zip(table["id"], table["frames"]))}
    return store, store.file(LABELS), trailers


# ------------------------------------------------------------------ writing


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """A ``(H, W, 3)`` uint8 frame as JPEG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def trailer_frames(sample, side: int, video_frames: int, decoder: str = "pyav") -> tuple[list[bytes], int]:
    """A sample's frames as JPEGs of the centre square at ``side`` pixels, in time order, and the
    number of unreadable frames skipped (every frame of a frames folder; of a video, up to
    ``video_frames`` evenly spaced)."""
    from semisup.data.images import DECODE_ERRORS, load_frame
    from semisup.data.video import VideoError, count_frames, read_frames

    if sample.video is not None:
        try:
            total = count_frames(sample.video)
            picked = np.unique(np.linspace(0, max(total - 1, 0), min(total, video_frames)).round().astype(int))
            frames = read_frames(sample.video, picked.tolist(), side, decoder)
        except VideoError:
            return [], 1
        return [encode_jpeg(f) for f in frames], len(picked) - len(frames)
    out, bad = [], 0
    for path in sample.frames:
        try:
            out.append(encode_jpeg(load_frame(path, side)))
        except DECODE_ERRORS:
            bad += 1
    return out, bad


def labels_rows(samples, tasks) -> list[dict[str, str]]:
    """``labels.csv`` rows of ``samples`` in the folder format (labels joined by ``|``)."""
    rows = []
    for sample in samples:
        row = {"id": sample.id, "split": sample.split, "group": sample.group or ""}
        for task in tasks:
            labels = sample.labels.get(task.name)
            row[task.name] = "" if labels is None else "|".join(labels)
        rows.append(row)
    return rows


@dataclass
class ShardSummary:
    trailers: int
    frames: int
    parts: int
    resumed_parts: int
    skipped_frames: int
    left_out: list[str]


def write_shards(samples: Sequence, tasks: Sequence, out: str | Path, side: int = 256, video_frames: int = 32,
                 part_size: int = 1000, force: bool = False, decoder: str = "pyav",
                 on_trailer: Callable[[], None] | None = None, staging: Path | None = None) -> ShardSummary:
    """Write ``samples`` (every split) into MDS shards at ``out``, part by part (resumable).

    Each part of ``part_size`` consecutive trailers is written by one ``MDSWriter`` into
    ``out/part-NNNNN/``; a part that finished is kept by a later call with the same
    arguments (its marker is in the staging folder), so a killed call continues where it
    stopped. The labels, the manifest and last the plan are written when every part is.

    Args:
        samples, tasks: the dataset to write (``Dataset.samples``, ``Dataset.tasks``).
        out: a folder, or an object-store URL.
        side: side of the stored frames (centre squares).
        video_frames: frames kept per video, evenly spaced.
        part_size: trailers per part (the unit of resuming).
        force: replace a shard dataset already at ``out``.
        decoder: reads videos.
        on_trailer: called after each trailer (progress).
        staging: where the parts are written before upload, for a URL (default: under
            ``~/.cache/semisup/shard-staging``); the folder itself for a folder.

    Raises:
        SemisupError: ``out`` holds a shard dataset (without ``force``), or other files; a
            call with other arguments left unfinished parts there (without ``force``).
    """
    if not samples:
        raise SemisupError(f"{out}: no trailers to write (the dataset is empty)")
    _check_labels(samples, tasks)
    _streaming()
    from streaming import MDSWriter
    from streaming.base.util import merge_index

    location = location_of(out)
    remote = is_url(location)
    local = (staging or Path("~/.cache/semisup/shard-staging").expanduser()
             / hashlib.sha256(location.encode()).hexdigest()[:16]) if remote else Path(location)
    plan = {"semisup_shards": SHARDS_VERSION, "side": side, "video_frames": video_frames, "part_size": part_size,
            "trailers": len(samples),
            "tasks": [{"name": t.name, "kind": t.kind, "labels": list(t.labels)} for t in tasks],
            "ids": hashlib.sha256("\0".join(s.id for s in samples).encode()).hexdigest()}
    _prepare(location, local, plan, force)
    parts = range(0, len(samples), part_size)
    names, counts, left_out = [], [], []
    skipped = resumed = 0
    for number, first in enumerate(parts):
        part = f"part-{number:05d}"
        marker = local / f".{part}.done.json"
        if marker.is_file():
            done = json.loads(marker.read_text())
            resumed += 1
            for _ in range(len(samples[first:first + part_size])):
                if on_trailer is not None:
                    on_trailer()
        else:
            shutil.rmtree(local / part, ignore_errors=True)  # what a killed writer left of this part
            target = (str(local / part), f"{location}/{part}") if remote else str(local / part)
            done = {"ids": [], "frames": [], "left_out": [], "skipped": 0}
            try:
                _write_part(MDSWriter(out=target, columns=COLUMNS, size_limit=1 << 26, exist_ok=True),
                            samples[first:first + part_size], side, video_frames, decoder, done, on_trailer)
            except SemisupError:
                raise
            except Exception as exc:  # the storage clients' own errors (an upload that failed, a full disk)
                raise SemisupError(f"{location}/{part}: writing failed ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
            if remote:  # the part's index is on the store; keep a local copy for the merge

                fetch(f"{location}/{part}", "index.json", local / part)
            with atomic_write(marker) as handle:
                json.dump(done, handle)
        names += done["ids"]
        counts += done["frames"]
        left_out += done["left_out"]
        skipped += done["skipped"]
    part_indexes = [str(local / f"part-{n:05d}" / "index.json") for n in range(len(parts))]
    (local / "index.json").unlink(missing_ok=True)  # a merge a killed call left: merge_index will not replace it
    with _quiet():
        merge_index([(p, f"{location}/{Path(p).parent.name}/index.json") if remote else p for p in part_indexes],
                    (str(local), location) if remote else str(local), keep_local=True)
    missing = set(left_out)
    _write_last_files(location, local, remote, plan, [s for s in samples if s.id not in missing], tasks,
                      names, counts)
    return ShardSummary(len(names), sum(counts), len(parts), resumed, skipped, left_out)


def _check_labels(samples: Sequence, tasks: Sequence) -> None:
    """Refuse what the shards' labels.csv could not hold as it is: a task named like one of its
    own columns, a label with the ``|`` that separates labels."""
    for task in tasks:
        if task.name in ("id", "split", "group"):
            raise SemisupError(f"task {task.name!r}: a task may not be named like a column of labels.csv "
                               "(id, split, group); rename the task")
    for sample in samples:
        for task, labels in sample.labels.items():
            bad = next((label for label in labels or () if "|" in label), None)
            if bad is not None:
                raise SemisupError(f"{sample.id}: {task} label {bad!r} holds '|', which separates labels in "
                                   "the shards' labels.csv; rename it (the task's rename option)")


def _write_part(writer, samples: Sequence, side: int, video_frames: int, decoder: str, done: dict,
                on_trailer: Callable[[], None] | None) -> None:
    """Write one part's trailers with ``writer`` (an ``MDSWriter``), recording them in ``done``."""
    with _quiet(), writer:
        for sample in samples:
            frames, bad = trailer_frames(sample, side, video_frames, decoder)
            done["skipped"] += bad
            if frames:
                writer.write({"id": sample.id, "frames": b"".join(frames), "sizes": [len(f) for f in frames]})
                done["ids"].append(sample.id)
                done["frames"].append(len(frames))
            else:
                done["left_out"].append(sample.id)
            if on_trailer is not None:
                on_trailer()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hold back the streaming library's log lines about its temporary folders (it logs some
    through the root logger); semisup's own progress says what happens."""
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.WARNING))
    try:
        yield
    finally:
        logging.disable(previous)


def _prepare(location: str, local: Path, plan: dict, force: bool) -> None:
    """Check ``out`` can be written (or continued) with ``plan``, and remember the plan locally."""
    remote = is_url(location)
    if remote:
        found = remote_plan(location)
        finished = found is not None and not found.get("incomplete")
    else:
        finished = (local / PLAN).is_file()
    pending = local / ".semisup-shards-plan.json"
    if finished and not force:
        raise SemisupError(f"{location}: holds a shard dataset already; --force replaces it")
    if remote and not finished and not pending.is_file() and _exists(location, "index.json") and not force:
        raise SemisupError(f"{location}: holds other MDS data (an index.json, not written by semisup); "
                           "choose another OUT")
    if remote and force and (finished or found is not None):  # readers never pair an old plan with new shards
        local.mkdir(parents=True, exist_ok=True)
        with atomic_write(local / PLAN) as handle:
            json.dump({"semisup_shards": SHARDS_VERSION, "incomplete": True}, handle)
        from streaming.base.storage import CloudUploader

        CloudUploader.get((str(local), location), keep_local=True, exist_ok=True).upload_file(PLAN)
    if pending.is_file() and json.loads(pending.read_text()) != plan and not force:
        raise SemisupError(f"{location}: an unfinished `semisup data shard` with other arguments or data is there; "
                           "run it again as it was, or --force to start over")
    if not remote and local.exists() and not finished and not pending.is_file() and any(local.iterdir()):
        raise SemisupError(f"{location}: exists and is not a shard dataset; choose another OUT")
    if force and (finished or pending.is_file()):
        for child in list(local.glob("part-*")) + list(local.glob(".part-*.done.json")):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        for name in (PLAN, MANIFEST, LABELS, "index.json"):
            (local / name).unlink(missing_ok=True)
        local.mkdir(parents=True, exist_ok=True)
    local.mkdir(parents=True, exist_ok=True)
    with atomic_write(pending) as handle:
        json.dump(plan, handle)


def _exists(location: str, name: str) -> bool:
    with tempfile.TemporaryDirectory() as scratch:
        try:
            fetch(location, name, Path(scratch))
        except SemisupError:
            return False
    return True


def _write_last_files(location: str, local: Path, remote: bool, plan: dict, samples, tasks,
                      names: list[str], counts: list[int]) -> None:
    """The labels, the manifest, and last the plan (which marks the dataset complete)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = labels_rows(samples, tasks)
    with atomic_write(local / LABELS, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "split", "group", *(t.name for t in tasks)])
        writer.writeheader()
        writer.writerows(rows)
    with atomic_write(local / MANIFEST, "wb") as handle:
        pq.write_table(pa.table({"id": names, "frames": counts}), handle)
    with atomic_write(local / PLAN) as handle:
        json.dump({**plan, "written": uuid.uuid4().hex}, handle)
    if remote:
        from streaming.base.storage import CloudUploader

        uploader = CloudUploader.get((str(local), location), keep_local=True, exist_ok=True)
        for name in (LABELS, MANIFEST, PLAN):  # the plan last: readers look for it first
            uploader.upload_file(name)
        shutil.rmtree(local)  # the staging folder: every file is on the store now


# ------------------------------------------------------------------ reading


def shard_tasks(root: str | Path, cache: str | Path = "") -> list:
    """The tasks a shard dataset was written with (name, kind, vocabulary), for commands run
    without a recipe."""
    from semisup.data.labels import TaskColumn

    store = open_shards(root, cache)[0]
    return [TaskColumn(t["name"], t["name"], t["kind"], tuple(t["labels"]), unknown="error")
            for t in store.plan["tasks"]]


def read_shards(root: str | Path, tasks: Sequence, ignore_split: bool = False, cache: str | Path = "",
                image_size: int | None = None):
    """Read a shard dataset written by :func:`write_shards`: its labels (the folder format's,
    one column per task name, labels joined by ``|``) and, per trailer, its frames in the shards.

    Raises:
        SemisupError: no shard dataset there; ``image_size`` above the side its frames were stored at.
    """
    from dataclasses import replace

    from semisup.data.folder import read_labeled_rows

    store, labels, trailers = open_shards(root, cache)
    side = int(store.plan["side"])
    if image_size is not None and image_size > side:
        raise SemisupError(f"data.image_size: {image_size}, but the shards at {store.location} hold frames of "
                           f"{side} pixels; lower data.image_size or write the shards with --side {image_size}")

    def frames_of(sample_id: str, where: str) -> tuple[ShardFrames, None]:
        found = trailers.get(sample_id)
        if found is None:
            raise SemisupError(f"{where}: trailer {sample_id!r} has no frames in the shards")
        return ShardFrames(store, found[0], found[1], sample_id), None

    columns = [replace(t, column=t.name, separator="|") for t in tasks]
    return read_labeled_rows(labels, columns, frames_of, ignore_split, source=f"{store.location}/{LABELS}")
