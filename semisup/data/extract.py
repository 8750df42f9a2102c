"""Turn a folder of videos into the folder format's frame folders.

``semisup data extract SRC OUT`` decodes every video under ``SRC`` (mp4, mkv,
mov, webm, ...) with PyAV, in parallel over files, and writes
``OUT/frames/<id>/<frame index>.jpg``, where ``<id>`` is the video's path
under ``SRC`` without its suffix. Two ways to choose frames:

* ``even``: ``count`` evenly spaced frames;
* ``shots``: one frame per detected shot (the middle frame of each shot;
  cuts found from colour-histogram jumps).

Each video is written into a hidden temporary folder and renamed into place
when complete, so an interrupted extraction never leaves a half-written
folder and a second run skips what is done. A corrupt or truncated video is
reported and skipped. ``OUT/extract.csv`` lists every video's outcome, and
``OUT/labels.csv`` (if absent) is started with every extracted id in the
``unlabeled`` split.
"""

from __future__ import annotations

import csv
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

from PIL import Image

from semisup.data.frames import even_frames
from semisup.data.video import VIDEO_SUFFIXES, VideoError, iter_frames, probe, shot_boundaries
from semisup.errors import SemisupError
from semisup.io import atomic_folder, atomic_write, remove_stale_partials

Mode = Literal["even", "shots"]


@dataclass(frozen=True)
class ExtractResult:
    """The outcome for one video: ``done``, ``skipped`` (already there) or ``failed``."""

    id: str
    source: str
    status: str
    frames: int = 0
    message: str = ""


def find_videos(src: Path) -> list[tuple[str, Path]]:
    """``(id, path)`` of every video under ``src``, sorted; ids are paths without suffix.
    Hidden files (``._clip.mp4`` from macOS) are skipped.

    Raises:
        SemisupError: ``src`` is not a folder, holds no video, or two videos would share an id.
    """
    if not src.is_dir():
        raise SemisupError(f"{src}: {'is a file, expected a folder of videos' if src.exists() else 'does not exist'}")
    found: dict[str, Path] = {}
    for path in sorted(src.rglob("*")):
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith("."):
            video_id = path.relative_to(src).with_suffix("").as_posix()
            if video_id in found:
                raise SemisupError(f"{path}: same id {video_id!r} as {found[video_id]} (rename one)")
            found[video_id] = path
    if not found:
        raise SemisupError(f"{src}: no videos found (looked for {', '.join(VIDEO_SUFFIXES)} files, "
                           "in sub-folders too)")
    return sorted(found.items())


def extract_video(path: Path, folder: Path, mode: Mode = "even", count: int = 16, short_side: int = 240,
                  quality: int = 90, shot_threshold: float = 0.4) -> tuple[int, str]:
    """Write one video's chosen frames as JPEGs into ``folder`` (which must exist).

    Returns:
        Frames written, and a note (e.g. the video ended early).

    Raises:
        VideoError: the video cannot be decoded at all.
    """
    if mode == "shots":
        wanted = _shot_middles(path, shot_threshold)
    else:
        total = probe(path).frames
        wanted = even_frames(max(total, 1), count).tolist()
    written, last = 0, -1
    wanted_set = set(wanted)
    for i, frame in enumerate(iter_frames(path, short_side)):
        last = i
        if i in wanted_set:
            Image.fromarray(frame).save(folder / f"{i:06d}.jpg", quality=quality)
            written += 1
        if i >= max(wanted):
            break
    if not written:
        raise VideoError(f"{path}: no frame could be decoded")
    note = "" if written == len(wanted) else f"ended early at frame {last + 1}: {written} of {len(wanted)} frames"
    return written, note


def _shot_middles(path: Path, threshold: float) -> list[int]:
    """Middle frame index of every shot (a first, cheap pass on tiny frames)."""
    small = list(iter_frames(path, short_side=32))
    if not small:
        raise VideoError(f"{path}: no frame could be decoded")
    cuts = shot_boundaries(small, threshold) + [len(small)]
    return [(start + end - 1) // 2 for start, end in zip(cuts[:-1], cuts[1:])]


def _extract_one(job: tuple) -> ExtractResult:
    video_id, path, out, mode, count, short_side, quality = job
    final = out / "frames" / video_id
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_folder(final) as tmp:
            written, note = extract_video(path, tmp, mode, count, short_side, quality)
        return ExtractResult(video_id, str(path), "done", written, note)
    except (VideoError, OSError) as exc:
        return ExtractResult(video_id, str(path), "failed", 0, str(exc))


def check_extract_options(mode: str, count: int, short_side: int, quality: int, workers: int) -> None:
    """Check :func:`extract_videos`'s options, each by its name.

    Raises:
        SemisupError: the first option out of its range, with the value given.
    """
    if mode not in ("even", "shots"):
        raise SemisupError(f"--mode: expected even or shots, got {mode!r}")
    for option, value, ok, expected in (("--count", count, count >= 1, ">= 1"),
                                        ("--short-side", short_side, short_side >= 16, ">= 16"),
                                        ("--quality", quality, 1 <= quality <= 100, "1 to 100"),
                                        ("--workers", workers, workers >= 1, ">= 1")):
        if not ok:
            raise SemisupError(f"{option}: expected {expected}, got {value}")


def extract_videos(src: Path, out: Path, mode: Mode = "even", count: int = 16, short_side: int = 240,
                   quality: int = 90, workers: int = 2,
                   on_result: Callable[[ExtractResult], None] | None = None) -> list[ExtractResult]:
    """Extract every video under ``src`` into ``out`` (see the module docstring).

    Args:
        src: folder of videos (searched recursively).
        out: dataset folder to write.
        mode: ``"even"`` or ``"shots"``.
        count: frames per video in ``even`` mode.
        short_side: frames are scaled so their short side has this many pixels.
        quality: JPEG quality.
        workers: decoding processes.
        on_result: called with each video's outcome as it finishes (progress).

    Returns:
        One result per video, in id order.

    Raises:
        SemisupError: bad ``src``/``out``, or bad options.
    """
    check_extract_options(mode, count, short_side, quality, workers)
    if out.exists() and not out.is_dir():
        raise SemisupError(f"{out}: is a file, expected an output folder")
    videos = find_videos(src)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out / "frames")  # folders of an extraction that was killed
    results: dict[str, ExtractResult] = {}
    jobs = []
    for video_id, path in videos:
        if (out / "frames" / video_id).is_dir():
            results[video_id] = ExtractResult(video_id, str(path), "skipped",
                                              len(list((out / "frames" / video_id).glob("*.jpg"))))
            if on_result:
                on_result(results[video_id])
        else:
            jobs.append((video_id, path, out, mode, count, short_side, quality))
    for result in _run(jobs, workers):
        results[result.id] = result
        if on_result:
            on_result(result)
    ordered = [results[video_id] for video_id, _ in videos]
    _write_manifest(out / "extract.csv", ordered)
    _start_labels(out / "labels.csv", [r.id for r in ordered if r.status != "failed"])
    return ordered


def _run(jobs: list[tuple], workers: int) -> Iterator[ExtractResult]:
    if workers == 1 or len(jobs) <= 1:
        yield from map(_extract_one, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for future in as_completed([pool.submit(_extract_one, job) for job in jobs]):
            yield future.result()


def _write_manifest(path: Path, results: list[ExtractResult]) -> None:
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "source", "status", "frames", "message"])
        for r in results:
            writer.writerow([r.id, r.source, "done" if r.status == "skipped" else r.status, r.frames, r.message])


def _start_labels(path: Path, ids: list[str]) -> None:
    """Begin a labels.csv listing the extracted ids as unlabeled (never overwrites one)."""
    if path.exists() or not ids:
        return
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "split"])
        writer.writerows([i, "unlabeled"] for i in ids)

