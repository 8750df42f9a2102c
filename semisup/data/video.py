"""Video decoding with PyAV: frame counts, picked frames, evenly spaced frames, shots.

torchvision 0.29 has no video reader, so frames come from PyAV directly. A
broken or truncated file raises :class:`VideoError` (an ``OSError``), which
the loaders treat like an unreadable image: skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg")


class VideoError(OSError):
    """A video file that cannot be opened or decoded."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video's first video stream."""

    frames: int
    fps: float
    width: int
    height: int


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{path}: not a readable video ({type(exc).__name__})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: holds no video stream")
    return container


@lru_cache(maxsize=4096)
def probe(path: Path) -> VideoInfo:
    """Frame count, frame rate and size from the container (estimated from the
    duration when the container does not store a count).

    Raises:
        VideoError: the file cannot be opened.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frames = stream.frames
        if not frames:
            seconds = (float(stream.duration * stream.time_base) if stream.duration
                       else (container.duration or 0) / av.time_base)
            frames = int(round(seconds * fps))
        return VideoInfo(int(frames), fps, stream.codec_context.width, stream.codec_context.height)


def _square(frame: av.VideoFrame, size: int) -> np.ndarray:
    """Scale the short side to ``size`` in the decoder, then crop the centre square."""
    scale = size / min(frame.width, frame.height)
    width, height = max(size, round(frame.width * scale)), max(size, round(frame.height * scale))
    rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    top, left = (height - size) // 2, (width - size) // 2
    return np.ascontiguousarray(rgb[top:top + size, left:left + size])


def read_frames(path: Path, indices: Sequence[int], size: int) -> list[np.ndarray]:
    """Decode the frames at ``indices`` (sorted), as ``(size, size, 3)`` uint8 squares.

    Frames are decoded in order and only the picked ones converted; a file
    that ends early yields fewer frames.

    Raises:
        VideoError: the file cannot be opened, or breaks before any picked frame.
    """
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return []
    out: dict[int, np.ndarray] = {}
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    out[i] = _square(frame, size)
                if i >= wanted[-1]:
                    break
        except (av.error.FFmpegError, OSError) as exc:
            if not out:
                raise VideoError(f"{path}: decoding failed ({type(exc).__name__})") from None
    if not out:
        raise VideoError(f"{path}: no frame could be decoded")
    return [out[i] for i in indices if i in out]


def iter_frames(path: Path, short_side: int | None = None) -> Iterator[np.ndarray]:
    """Every frame in order as RGB arrays, the short side scaled to ``short_side``.

    Raises:
        VideoError: the file cannot be opened or decoding fails at the start.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = 0
        try:
            for frame in container.decode(stream):
                if short_side:
                    scale = short_side / min(frame.width, frame.height)
                    frame = frame.reformat(width=max(1, round(frame.width * scale) // 2 * 2),
                                           height=max(1, round(frame.height * scale) // 2 * 2))
                decoded += 1
                yield frame.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, OSError) as exc:
            if not decoded:
                raise VideoError(f"{path}: decoding failed ({type(exc).__name__})") from None


def shot_boundaries(frames: Sequence[np.ndarray], threshold: float = 0.4, min_length: int = 4) -> list[int]:
    """Indices where a new shot starts (always including 0).

    A cut is declared where the colour histograms of consecutive frames
    differ by more than ``threshold`` (total variation distance of 8x8x8 RGB
    histograms, 0..1); shots shorter than ``min_length`` frames are merged.

    Example:
        >>> dark, light = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
        >>> shot_boundaries([dark] * 5 + [light] * 5)
        [0, 5]
    """
    cuts = [0]
    previous = None
    for i, frame in enumerate(frames):
        bins = (frame[..., 0] // 32).astype(np.int32) * 64 + (frame[..., 1] // 32) * 8 + frame[..., 2] // 32
        hist = np.bincount(bins.ravel(), minlength=512) / bins.size
        if previous is not None and 0.5 * np.abs(hist - previous).sum() > threshold and i - cuts[-1] >= min_length:
            cuts.append(i)
        previous = hist
    return cuts
