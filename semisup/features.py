"""``semisup features``: run a frozen encoder once over every trailer and cache its frame features.

Training a frozen encoder's aggregators and heads does not need the encoder
at every step: its features of a frame never change. The cache holds, per
trailer of the dataset (every split, unlabeled ones too), the features of
``data.eval_frames`` evenly spaced frames, as float16 in a memory-mapped
array (:mod:`semisup.data.cached` has the layout). A recipe with
``data.features`` set to the cache then trains and evaluates from it:
training picks its clips among the cached frames.

Writing is resumable: trailers are written in order and counted only after
their features are flushed, so a killed ``semisup features`` continues where
it stopped. The key (encoder, weights, image size, frames per trailer, every
frame file) is written first and compared on every open: a cache of other
inputs is never read, and never silently replaced (``--force`` does).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch

from semisup.augment import FrameNormalize
from semisup.build import build_eval_loader, feature_cache_key, read_recipe_data
from semisup.config import Recipe
from semisup import distributed
from semisup.data.cached import (COUNTS_FILE, FEATURES_FILE, KEY_FILE, cache_parts, key_mismatch,
                                  open_cache_arrays, open_part, part_files, read_cache_key)
from semisup.device import autocast, resolve_device, resolve_precision
from semisup.errors import SemisupError
from semisup.io import atomic_write, write_json
from semisup.models import Encoder
from semisup.models.video_encoder import is_video_encoder
from semisup.train.progress import NullProgress

FLUSH_SECONDS = 30.0
"""How often the counts of finished trailers are flushed (what a resumed write skips)."""


def cache_folder(recipe: Recipe, out: Path | None) -> Path:
    """``--out``, else the recipe's ``data.features``.

    Raises:
        SemisupError: neither names a folder.
    """
    if out is not None:
        return out.expanduser()
    if recipe.data.features:
        return Path(recipe.data.features).expanduser()
    raise SemisupError("features: give --out CACHE_DIR or set data.features in the recipe")


def write_features(recipe: Recipe, out: Path, force: bool = False,
                   progress: NullProgress | None = None) -> dict[str, int | str]:
    """Compute (or finish) the feature cache of ``recipe``'s encoder and dataset in ``out``.

    Under ``torchrun`` with N processes, a new cache is cut into N parts of consecutive
    trailers and each process writes its own (one GPU each); rank 0 computes the key
    (stats every frame file once) and marks the cache complete when every part is.
    A cache is continued with any number of processes: its parts stay as they were
    made, process ``r`` of ``n`` finishing parts ``r, r + n, ...``.

    Returns:
        a summary: ``status`` ("written", "resumed" or "up to date"), ``trailers``,
        ``width``, ``unreadable_trailers``, ``skipped_frames`` (by every process) and ``parts``.

    Raises:
        SemisupError: the dataset does not read; ``out`` is not empty and not a cache;
            ``out`` holds a cache of other inputs and ``force`` is off.
    """
    progress = progress or NullProgress()
    m = recipe.model
    if is_video_encoder(m.encoder) or m.frame_differences or m.temporal_shift:
        what = (f"model.encoder = {m.encoder!r} reads frames together" if is_video_encoder(m.encoder) else
                "model.frame_differences / model.temporal_shift make a frame's features depend on its neighbours")
        raise SemisupError(f"a feature cache holds each frame's features computed alone, but {what}; "
                           "train from frames instead")
    process, device = distributed.join(resolve_device(recipe.run.device))
    with distributed.main_first():  # rank 0 builds a demo folder before the others read it
        dataset = read_recipe_data(recipe.data, recipe.tasks)
    if dataset.fatal():
        raise SemisupError(dataset.fatal()[0].message)
    samples = dataset.samples
    # every process writes rows by position: the same trailers in the same order everywhere
    ids = hashlib.sha256("\0".join(s.id for s in samples).encode()).hexdigest()
    distributed.check_same({"trailer ids (a hash)": ids})
    patient = distributed.patient_group()  # rank 0 stats every frame file; the others may wait minutes
    key = distributed.on_main(lambda: feature_cache_key(recipe, samples), patient)  # once per run
    found = distributed.on_main(lambda: _existing_cache(out, key, force), patient)
    if found is not None and found.get("complete"):
        _, counts = open_cache_arrays(out, found)
        return {"status": "up to date", "trailers": len(samples), "width": found["width"],
                "unreadable_trailers": int((counts == 0).sum()), "skipped_frames": 0,
                "parts": len(cache_parts(found))}

    d = recipe.data
    amp_dtype = resolve_precision(device, recipe.run.precision)
    torch.manual_seed(recipe.run.seed)  # random weights (pretrained = false) are the recipe seed's, on every process
    encoder = Encoder(m.encoder, m.pretrained, trainable_stages=0, channels_last=m.channels_last).to(device).eval()
    encoder.check_image_size(d.image_size)
    normalize = FrameNormalize(encoder.mean, encoder.std).to(device)
    if found is None:
        found = distributed.on_main(lambda: _new_cache(out, key, encoder.num_features, process.world_size), patient)
    parts = cache_parts(found)
    resumed = False
    skipped = 0
    # a process that fails exits with its message, and torchrun stops the others
    for part in range(process.rank, len(parts), process.world_size):
        features, counts = _open_or_create_part(out, found, part)
        todo = np.flatnonzero(counts < 0)
        first = int(todo[0]) if len(todo) else len(counts)
        resumed |= first > 0
        if first == len(counts):
            continue
        loader = build_eval_loader(samples[parts[part][0] + first:parts[part][1]], (), d.image_size,
                                   d.eval_frames, recipe.train.eval_batch_size, d.num_workers,
                                   device.type == "cuda", decoder=d.decoder)
        progress.start(len(loader), 0)
        progress.start_epoch(0, 1, len(loader), 0)
        try:
            skipped += _write_rows(loader, encoder, normalize, device, amp_dtype, features, counts, first,
                                   progress)
        finally:
            progress.close(failed=False)
    skipped = sum(distributed.gather_objects(skipped, patient))  # waits for every share, however long
    resumed = any(distributed.gather_objects(resumed, patient))
    if process.main:
        write_json(out / KEY_FILE, {**found, "complete": True})
    _, counts = open_cache_arrays(out, found)
    return {"status": "resumed" if resumed else "written", "trailers": len(samples), "width": encoder.num_features,
            "unreadable_trailers": int((counts == 0).sum()), "skipped_frames": skipped, "parts": len(parts)}


def _new_cache(out: Path, key: dict, width: int, processes: int) -> dict:
    """Start a cache in ``out``: its key, not complete, with one part per process."""
    out.mkdir(parents=True, exist_ok=True)
    new = {**key, "width": width, "dtype": "float16", "complete": False}
    processes = min(processes, key["trailers"])  # no empty part when there are fewer trailers than processes
    if processes > 1:
        bounds = np.linspace(0, key["trailers"], processes + 1).round().astype(int).tolist()
        new["parts"] = [[a, b] for a, b in zip(bounds[:-1], bounds[1:])]
    write_json(out / KEY_FILE, new)
    for part in range(len(cache_parts(new))):  # every part's files now (sparse): any process count continues
        _open_or_create_part(out, new, part)
    return new


def _open_or_create_part(out: Path, key: dict, part: int) -> tuple[np.ndarray, np.ndarray]:
    """A part's features and counts to write into, created (every count -1) when it has none yet,
    or when its files do not read (a torn write): only that part starts again."""
    features_name, counts_name = part_files(key, part)
    try:
        return open_part(out, key, part, mode="r+")
    except SemisupError:
        (out / counts_name).unlink(missing_ok=True)
    if not (out / counts_name).is_file():  # the counts file comes second: without it, start the part afresh
        first, stop = cache_parts(key)[part]
        np.lib.format.open_memmap(out / features_name, mode="w+", dtype=np.float16,
                                  shape=(stop - first, key["frames_per_trailer"], key["width"])).flush()
        fresh = np.full(stop - first, -1, dtype=np.int32)
        with atomic_write(out / counts_name, "wb") as handle:
            np.save(handle, fresh)
    return open_part(out, key, part, mode="r+")


def _write_rows(loader, encoder: Encoder, normalize: FrameNormalize, device: torch.device, amp_dtype,
                features: np.ndarray, counts: np.ndarray, first: int, progress: NullProgress) -> int:
    """Encode the loader's trailers into rows ``first, first + 1, ...`` of one part; the frames skipped."""
    skipped, tic, last_flush, done = 0, time.perf_counter(), time.monotonic(), 0
    for batch in loader:
        skipped += len(batch.bad_frames)
        for index in batch.unreadable:
            counts[first + index] = 0
        if batch.num_trailers:
            with torch.inference_mode(), autocast(device, amp_dtype):
                x = encoder(normalize(batch.frames.to(device, non_blocking=True)))
            x = x.float().cpu().numpy().astype(np.float16)
            owner = batch.owner.numpy()
            for j, index in enumerate(batch.indices.tolist()):
                rows = x[owner == j]
                features[first + index, :len(rows)] = rows
                counts[first + index] = -2 - len(rows)  # written, not yet flushed
        done += batch.num_trailers + len(batch.unreadable)
        if time.monotonic() - last_flush > FLUSH_SECONDS:
            _flush(features, counts)
            last_flush = time.monotonic()
        progress.advance({"trailers/s": done / max(time.perf_counter() - tic, 1e-9)})
    _flush(features, counts)
    return skipped


def _flush(features: np.memmap, counts: np.memmap) -> None:
    """Make the written features durable, then count their trailers as done (in that order)."""
    features.flush()
    pending = counts < -1
    counts[pending] = -2 - counts[pending]
    counts.flush()


def _existing_cache(out: Path, key: dict, force: bool) -> dict | None:
    """The key of the cache of these inputs already in ``out`` (complete or to continue), or None
    when there is none to use; with ``force``, a cache of other inputs, or one that does not read
    (a torn key, a truncated array), is removed first.

    Raises:
        SemisupError: ``out`` is not empty and not a cache; without ``force``, it holds a cache of
            other inputs or one that does not read.
    """
    try:
        found = read_cache_key(out)
        problem = key_mismatch(found, key) if found is not None else None
        if found is not None and problem is None and found.get("complete"):
            open_cache_arrays(out, found)  # a torn array is found now (an unfinished part is started again)
    except SemisupError:
        if not force:
            raise
        found, problem = {}, "unreadable"
    if found is None:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise SemisupError(f"{out}: exists and is not a feature cache; choose another --out")
        return None
    if problem is not None:
        if not force:
            raise SemisupError(f"{out}: holds a feature cache of other inputs ({problem}); --force replaces it")
        for name in (FEATURES_FILE, COUNTS_FILE, *(f.name for f in out.glob("*-of-*.npy")), KEY_FILE):
            (out / name).unlink(missing_ok=True)  # the key last: a kill half way leaves a cache --force clears
        return None
    return found
