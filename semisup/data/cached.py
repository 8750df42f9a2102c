"""Frame features computed once by a frozen encoder, read back instead of frames.

A feature cache is a folder written by ``semisup features``
(:mod:`semisup.features`)::

    key.json        what the features depend on: the encoder and its weights, the
                    image size, the frames per trailer and every trailer's frame files;
                    plus the feature width and whether the cache is complete
    features.npy    (trailers, frames, width) float16, memory-mapped
    counts.npy      (trailers,) int32: frames cached per trailer (-1: not yet computed)

A cache written by N processes (``torchrun ... -m semisup features``) is cut
into N parts of consecutive trailers, each written by one process into its
own files, ``features-<i>-of-<N>.npy`` and ``counts-<i>-of-<N>.npy``; the key
lists the parts (``parts``: each part's first and last-plus-one trailer) and a
reader sees one array of rows. Separate files, not disjoint rows of one file:
processes on other machines writing into one memory-mapped file over a
network file system can lose each other's writes to a shared page.

A recipe with ``data.features`` trains from it: :class:`CachedTrailers`
serves a trailer's cached features as its "frames", and the model's encoder
is :class:`~semisup.models.encoder.CachedEncoder`, which passes them through.
The cache is opened only when its key equals the key the recipe and the data
give now, so a cache of another encoder, size, or of changed frames is never
used.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset

from semisup.data.loaders import FramePicker, TrailerItem
from semisup.data.samples import Sample, TaskSpec
from semisup.errors import SemisupError

KEY_FILE, FEATURES_FILE, COUNTS_FILE = "key.json", "features.npy", "counts.npy"


def frames_digest(samples: Sequence[Sample]) -> str:
    """A digest of every trailer's id and frame files (path, size, modification time).

    A frame replaced, added or removed, or a trailer added, changes it.
    """
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(sample.id.encode() + b"\0")
        for path in ([sample.video] if sample.video is not None else sample.frames):
            if hasattr(path, "digest_text"):  # a frame in shards: the shards' identity and its place
                digest.update(f"{path.digest_text()}\0".encode())
                continue
            try:
                stat = Path(path).stat()
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
            except OSError:
                digest.update(f"{path}\0missing\0".encode())
    return digest.hexdigest()


def weights_identity(pretrained: bool | Path | str) -> str:
    """What the encoder's weights are: ``random``, ``timm-hub``, or a local file's path, size and time."""
    if pretrained is True:
        return "timm-hub"
    if not pretrained:
        return "random"
    path = Path(pretrained).expanduser()
    try:
        stat = path.stat()
    except OSError:
        return f"{path} (missing)"
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def cache_key(encoder: str, pretrained: bool | Path | str, image_size: int, frames: int,
              samples: Sequence[Sample]) -> dict[str, Any]:
    """Everything a cache's features depend on (compared field by field when it is opened)."""
    return {"encoder": encoder, "weights": weights_identity(pretrained), "image_size": image_size,
            "frames_per_trailer": frames, "trailers": len(samples), "frames": frames_digest(samples)}


KEY_NAMES = {"encoder": "model.encoder", "weights": "model.pretrained (the weights)", "image_size": "data.image_size",
             "frames_per_trailer": "data.eval_frames", "trailers": "the dataset's trailers",
             "frames": "the trailers' frame files"}


def key_mismatch(found: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """The first field on which two cache keys differ, described; None when they agree."""
    for field, name in KEY_NAMES.items():
        if found.get(field) != expected.get(field):
            if field == "frames":
                return f"{name} changed since the cache was computed"
            return f"{name} is {expected.get(field)!r} but the cache holds {found.get(field)!r}"
    return None


def read_cache_key(path: Path) -> dict[str, Any] | None:
    """A cache folder's ``key.json``; None when the folder has none.

    Raises:
        SemisupError: the file is not JSON (a torn or edited key): not a readable cache.
    """
    key_path = path / KEY_FILE
    if not key_path.is_file():
        return None
    try:
        key = json.loads(key_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SemisupError(f"{key_path}: not a readable feature cache ({_cause(exc)}); recompute it with "
                           "`semisup features RECIPE --force`") from exc
    if not isinstance(key, dict) or not isinstance(key.get("width"), int):
        raise SemisupError(f"{key_path}: not a readable feature cache (no feature width in its key); "
                           "recompute it with `semisup features RECIPE --force`")
    return key


def cache_parts(key: dict[str, Any]) -> list[tuple[int, int]]:
    """A cache's parts as ``(first, stop)`` trailer rows (one part when one process wrote it)."""
    parts = key.get("parts")
    return [(int(a), int(b)) for a, b in parts] if parts else [(0, int(key.get("trailers") or 0))]


def part_files(key: dict[str, Any], part: int) -> tuple[str, str]:
    """The features and counts file names of one part of a cache."""
    parts = key.get("parts")
    if not parts:
        return FEATURES_FILE, COUNTS_FILE
    return f"features-{part}-of-{len(parts)}.npy", f"counts-{part}-of-{len(parts)}.npy"


def open_part(path: Path, key: dict[str, Any], part: int, mode: str = "r") -> tuple[np.ndarray, np.ndarray]:
    """Memory-map one part's features and counts and check their shapes against the key.

    Raises:
        SemisupError: a file is missing, truncated (numpy cannot map it) or of another shape.
    """
    first, stop = cache_parts(key)[part]
    names = part_files(key, part)
    expected = ((stop - first, key.get("frames_per_trailer"), key.get("width")), (stop - first,))
    arrays = []
    for name, shape in zip(names, expected):
        try:
            array = np.load(path / name, mmap_mode=mode)
        except (OSError, ValueError, EOFError) as exc:  # numpy: a torn file is "mmap length is greater..."
            raise SemisupError(f"{path / name}: not a readable feature cache ({_cause(exc)}); recompute it "
                               "with `semisup features RECIPE --force`") from exc
        if tuple(array.shape) != shape:
            raise SemisupError(f"{path / name}: not a readable feature cache (shape {tuple(array.shape)}, "
                               f"its key says {shape}); recompute it with `semisup features RECIPE --force`")
        arrays.append(array)
    return arrays[0], arrays[1]


class PartRows:
    """The rows of several memory-mapped parts, indexed as one array's first dimension
    (``rows[i, picked]``): a cache written by several processes."""

    def __init__(self, parts: Sequence[np.ndarray], firsts: Sequence[int]) -> None:
        self.parts, self.firsts = list(parts), list(firsts)

    @property
    def shape(self) -> tuple[int, ...]:
        return (sum(len(p) for p in self.parts), *self.parts[0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        row, rest = (index[0], index[1:]) if isinstance(index, tuple) else (index, ())
        part = bisect_right(self.firsts, row) - 1
        return self.parts[part][(row - self.firsts[part], *rest)]


def open_cache_arrays(path: Path, key: dict[str, Any], mode: str = "r") -> tuple[np.ndarray | PartRows, np.ndarray]:
    """Memory-map a cache's features and counts (every part) and check their shapes against its key.

    Args:
        path: the cache folder.
        key: its key (:func:`read_cache_key`).
        mode: ``"r"`` to read, ``"r+"`` to continue writing (a one-part cache).

    Returns:
        ``features (trailers, frames, width)`` (of several parts: a :class:`PartRows`) and
        ``counts (trailers,)``.

    Raises:
        SemisupError: a file is missing, truncated (numpy cannot map it) or of another shape.
    """
    parts = cache_parts(key)
    opened = [open_part(path, key, i, mode) for i in range(len(parts))]
    if len(opened) == 1:
        return opened[0]
    return PartRows([f for f, _ in opened], [a for a, _ in parts]), np.concatenate([c for _, c in opened])


def _cause(exc: BaseException) -> str:
    """An exception's first line, for a one-line message."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class FeatureCache:
    """An opened, complete feature cache whose key matches the recipe and data.

    Attributes:
        path: the folder.
        key: its ``key.json``.
        features: ``(trailers, frames, width)`` float16, memory-mapped read-only.
        counts: ``(trailers,)`` frames cached per trailer (0: no frame was readable).
        row: sample id -> row of ``features``.
    """

    def __init__(self, path: Path, samples: Sequence[Sample], expected_key: dict[str, Any]) -> None:
        self.path = path
        key = read_cache_key(path)
        if key is None:
            raise SemisupError(f"data.features: {path}: not a feature cache (no {KEY_FILE}); "
                               "write one with `semisup features RECIPE`")
        self.key = key
        if not self.key.get("complete"):
            raise SemisupError(f"data.features: {path}: the cache is incomplete; finish it with "
                               "`semisup features RECIPE` (it continues where it stopped)")
        problem = key_mismatch(self.key, expected_key)
        if problem:
            raise SemisupError(f"data.features: {path}: stale cache: {problem}; recompute it with "
                               "`semisup features RECIPE --force`")
        self.features, counts = open_cache_arrays(path, self.key)
        self.counts = np.array(counts)
        self.row = {s.id: i for i, s in enumerate(samples)}

    @property
    def width(self) -> int:
        return int(self.key["width"])


class CachedTrailers(Dataset):
    """A trailer's cached frame features, picked as :class:`~semisup.data.loaders.TrailerFrames`
    picks frames: items are ``(index, seed)`` and the seed drives the picker over the
    cached frames. ``TrailerItem.frames`` holds ``(T, width)`` float16 features.

    Args:
        cache: the opened cache (rows for every sample of the dataset).
        samples: the trailers this dataset serves.
        tasks: tasks whose targets to encode.
        pick: frame picker, applied to the trailer's cached frames.
    """

    def __init__(self, cache: FeatureCache, samples: Sequence[Sample], tasks: Sequence[TaskSpec],
                 pick: FramePicker) -> None:
        self.cache, self.samples, self.tasks, self.pick = cache, list(samples), list(tasks), pick

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> TrailerItem:
        index, seed = key
        sample = self.samples[index]
        row = self.cache.row[sample.id]
        count = int(self.cache.counts[row])
        picked = self.pick(count, np.random.default_rng(seed)) if count > 0 else np.zeros(0, np.int64)
        features = np.asarray(self.cache.features[row, picked], dtype=np.float16)
        targets = {t.name: t.encode(sample.labels.get(t.name)) for t in self.tasks}
        has_label = {t.name: sample.labels.get(t.name) is not None for t in self.tasks}
        return TrailerItem(index, features, targets, has_label, [])
