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

import time
from pathlib import Path

import numpy as np
import torch

from semisup.augment import FrameNormalize
from semisup.build import build_eval_loader, feature_cache_key, read_recipe_data
from semisup.config import Recipe
from semisup.data.cached import (COUNTS_FILE, FEATURES_FILE, KEY_FILE, key_mismatch, open_cache_arrays,
                                  read_cache_key)
from semisup.device import autocast, resolve_device, resolve_precision
from semisup.errors import SemisupError
from semisup.io import write_json
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

    Returns:
        a summary: ``status`` ("written", "resumed" or "up to date"), ``trailers``,
        ``width``, ``unreadable_trailers`` and ``skipped_frames``.

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
    dataset = read_recipe_data(recipe.data, recipe.tasks)
    if dataset.fatal():
        raise SemisupError(dataset.fatal()[0].message)
    samples = dataset.samples
    key = feature_cache_key(recipe, samples)
    found = _existing_cache(out, key, force)
    if found is not None and found.get("complete"):
        counts = np.load(out / COUNTS_FILE, mmap_mode="r")
        return {"status": "up to date", "trailers": len(samples), "width": found["width"],
                "unreadable_trailers": int((counts == 0).sum()), "skipped_frames": 0}

    d = recipe.data
    device = resolve_device(recipe.run.device)
    amp_dtype = resolve_precision(device, recipe.run.precision)
    torch.manual_seed(recipe.run.seed)  # random weights (pretrained = false) are the recipe seed's
    encoder = Encoder(m.encoder, m.pretrained, trainable_stages=0, channels_last=m.channels_last).to(device).eval()
    encoder.check_image_size(d.image_size)
    normalize = FrameNormalize(encoder.mean, encoder.std).to(device)
    shape = (len(samples), d.eval_frames, encoder.num_features)
    if found is None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / KEY_FILE, {**key, "width": encoder.num_features, "dtype": "float16", "complete": False})
        features = np.lib.format.open_memmap(out / FEATURES_FILE, mode="w+", dtype=np.float16, shape=shape)
        counts = np.lib.format.open_memmap(out / COUNTS_FILE, mode="w+", dtype=np.int32, shape=(len(samples),))
        counts[:] = -1
        counts.flush()
    else:
        features = np.load(out / FEATURES_FILE, mmap_mode="r+")
        counts = np.load(out / COUNTS_FILE, mmap_mode="r+")
    todo = np.flatnonzero(counts < 0)
    start = int(todo[0]) if len(todo) else len(samples)

    loader = build_eval_loader(samples[start:], (), d.image_size, d.eval_frames, recipe.train.eval_batch_size,
                               d.num_workers, device.type == "cuda", decoder=d.decoder)
    progress.start(len(loader), 0)
    progress.start_epoch(0, 1, len(loader), 0)
    skipped, tic, last_flush, done = 0, time.perf_counter(), time.monotonic(), 0
    try:
        for batch in loader:
            skipped += len(batch.bad_frames)
            for index in batch.unreadable:
                counts[start + index] = 0
            if batch.num_trailers:
                with torch.inference_mode(), autocast(device, amp_dtype):
                    x = encoder(normalize(batch.frames.to(device, non_blocking=True)))
                x = x.float().cpu().numpy().astype(np.float16)
                owner = batch.owner.numpy()
                for j, index in enumerate(batch.indices.tolist()):
                    rows = x[owner == j]
                    features[start + index, :len(rows)] = rows
                    counts[start + index] = -2 - len(rows)  # written, not yet flushed
            done += batch.num_trailers + len(batch.unreadable)
            if time.monotonic() - last_flush > FLUSH_SECONDS:
                _flush(features, counts)
                last_flush = time.monotonic()
            progress.advance({"trailers/s": done / max(time.perf_counter() - tic, 1e-9)})
        _flush(features, counts)
    finally:
        progress.close(failed=False)
    write_json(out / KEY_FILE, {**key, "width": encoder.num_features, "dtype": "float16", "complete": True})
    return {"status": "resumed" if start else "written", "trailers": len(samples), "width": encoder.num_features,
            "unreadable_trailers": int((counts == 0).sum()), "skipped_frames": skipped}


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
        if found is not None and problem is None:
            open_cache_arrays(out, found)  # a torn array is found now, not half way through
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
        for name in (KEY_FILE, FEATURES_FILE, COUNTS_FILE):
            (out / name).unlink(missing_ok=True)
        return None
    return found
