"""Video decoding: frame counts and timestamps, picked frames by seeking, every frame, shots.

torchvision 0.29 has no video reader, so frames come from PyAV directly, or
from torchcodec (``decoder="torchcodec"``, an optional extra that needs FFmpeg's
shared libraries from the system). A broken or truncated file raises
:class:`VideoError` (an ``OSError``), which the loaders treat like an
unreadable image: skipped and counted.

Picked frames are read by seeking: each video's packets are read once per
process (:func:`frame_times`: the file is read, nothing decoded) for the
presentation time of every frame and its keyframes; a picked
frame is then decoded from the keyframe before it, and the decoder runs on
only when the next pick follows in the same group of pictures. Frame ``i`` is
exactly the ``i``-th frame a full decode yields (matched by timestamp, so
B-frames and variable frame rates read true). PyAV can seek but does not map
frame indices to timestamps, which :func:`frame_times` adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Literal, Sequence

import av
import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg")
DECODERS = ("pyav", "torchcodec")
Decoder = Literal["pyav", "torchcodec"]


class VideoError(OSError):
    """A video file that cannot be opened or decoded."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container's header says about a video's first video stream.

    Attributes:
        frames: frame count (the container's, or estimated from its duration; see
            :func:`count_frames` for the exact one).
        fps: average frame rate.
        width, height: frame size in pixels.
        duration: seconds.
    """

    frames: int
    fps: float
    width: int
    height: int
    duration: float = 0.0


@dataclass(frozen=True)
class FrameTimes:
    """Where each frame of a video is, in display order.

    Attributes:
        pts: presentation timestamp of each frame (the stream's time base).
        keyframe: for each frame, the index of the last keyframe at or before it.
    """

    pts: np.ndarray
    keyframe: np.ndarray


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
    """Frame count, rate, size and duration from the container's header (nothing is decoded).

    Raises:
        VideoError: the file cannot be opened.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        seconds = (float(stream.duration * stream.time_base) if stream.duration
                   else (container.duration or 0) / av.time_base)
        frames = stream.frames or int(round(seconds * fps))
        return VideoInfo(int(frames), fps, stream.codec_context.width, stream.codec_context.height, seconds)


@lru_cache(maxsize=4096)
def frame_times(path: Path) -> FrameTimes | None:
    """Every frame's timestamp and keyframe, from one pass over the packets (nothing is decoded);
    remembered per process. ``None`` where packets carry no timestamps.

    Packets the demuxer marks to discard (before an edit list's start) are no
    frames: a full decode does not yield them either.

    Raises:
        VideoError: the file cannot be opened or no packet can be read.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        stamps, keys = [], []
        try:
            for packet in container.demux(stream):
                if not packet.size or packet.is_discard:  # the end-of-stream packet; edit-list lead-in
                    continue
                if packet.pts is None:
                    return None
                stamps.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except (av.error.FFmpegError, OSError) as exc:
            if not stamps:
                raise VideoError(f"{path}: its packets cannot be read ({type(exc).__name__})") from None
    if not stamps or not keys:
        return None
    pts = np.unique(np.asarray(stamps, np.int64))
    keyframe = np.maximum.accumulate(np.where(np.isin(pts, keys), np.arange(len(pts)), 0))
    return FrameTimes(pts, keyframe)


def count_frames(path: Path) -> int:
    """A video's exact frame count where its packets have timestamps, else the header's.

    Raises:
        VideoError: the file cannot be opened.
    """
    times = frame_times(path)
    return len(times.pts) if times is not None else probe(path).frames


def _square(frame: av.VideoFrame, size: int) -> np.ndarray:
    """Scale the short side to ``size`` in the decoder, then crop the centre square."""
    scale = size / min(frame.width, frame.height)
    width, height = max(size, round(frame.width * scale)), max(size, round(frame.height * scale))
    rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    top, left = (height - size) // 2, (width - size) // 2
    return np.ascontiguousarray(rgb[top:top + size, left:left + size])


def read_frames(path: Path, indices: Sequence[int], size: int, decoder: Decoder = "pyav") -> list[np.ndarray]:
    """Decode the frames at ``indices``, as ``(size, size, 3)`` uint8 squares, in the order asked.

    Each picked frame is decoded from the keyframe before it (see the module's
    docstring); a frame that cannot be decoded, or lies past a file that ends
    early, is left out.

    Args:
        path: the video file.
        indices: frame indices (any order, repeats allowed).
        size: square side; the short side is scaled to it, the centre cropped.
        decoder: ``"pyav"`` or ``"torchcodec"``.

    Raises:
        VideoError: the file cannot be opened, or no picked frame can be decoded.
    """
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return []
    if decoder == "torchcodec":
        out = _read_torchcodec(path, wanted, size)
    else:
        times = frame_times(path)
        out = _read_sequential(path, wanted, size) if times is None else _read_seeking(path, times, wanted, size)
    if not out:
        raise VideoError(f"{path}: no frame could be decoded")
    return [out[i] for i in indices if i in out]


def _read_seeking(path: Path, info: FrameTimes, wanted: list[int], size: int) -> dict[int, np.ndarray]:
    """Frames by timestamp: seek to a pick's keyframe unless decoding on reaches it sooner."""
    position = {int(t): i for i, t in enumerate(info.pts)}
    out: dict[int, np.ndarray] = {}
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames: Iterator[av.VideoFrame] | None = None
        held: av.VideoFrame | None = None  # the last frame decoded, kept for a pick it may be
        at = -1  # its display index
        for target in (i for i in wanted if i < len(info.pts)):
            if frames is None or int(info.keyframe[target]) > at:
                container.seek(int(info.pts[info.keyframe[target]]), stream=stream, backward=True, any_frame=False)
                frames, held, at = container.decode(stream), None, -1
            goal = int(info.pts[target])
            try:
                while held is None or held.pts < goal:
                    held = next(frames)
                    if held.pts is None:
                        held = None
                    else:
                        at = position.get(int(held.pts), at)
            except StopIteration:
                break  # the file ends before this pick
            except (av.error.FFmpegError, OSError):
                frames = None  # a broken stretch: the next pick seeks afresh
                continue
            if held.pts == goal:  # else this frame is missing from the stream
                out[target] = _square(held, size)
    return out


def _read_sequential(path: Path, wanted: list[int], size: int) -> dict[int, np.ndarray]:
    """Frames by counting from the start: for files whose packets carry no timestamps."""
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
    return out


def decoder_missing(decoder: Decoder) -> str | None:
    """Why ``decoder`` cannot run on this machine, or ``None`` when it can."""
    if decoder != "torchcodec":
        return None
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except ImportError:
        return 'torchcodec is not installed (pip install "semisup[torchcodec]")'
    except (RuntimeError, OSError) as exc:  # torchcodec raises RuntimeError without FFmpeg's shared libraries
        return f"torchcodec cannot load FFmpeg's shared libraries (apt install ffmpeg): {str(exc).splitlines()[0]}"
    return None


def _read_torchcodec(path: Path, wanted: list[int], size: int) -> dict[int, np.ndarray]:
    """Frames through torchcodec's exact seeking, scaled and cropped as PyAV's (bilinear, antialiased)."""
    import torch
    from torchcodec.decoders import VideoDecoder

    try:
        video = VideoDecoder(str(path), seek_mode="exact")
        present = [i for i in wanted if i < video.metadata.num_frames]
        batch = video.get_frames_at(present).data if present else None
    except (RuntimeError, ValueError) as exc:
        raise VideoError(f"{path}: not a readable video ({type(exc).__name__})") from None
    if batch is None:
        return {}
    height, width = batch.shape[-2:]
    scale = size / min(height, width)
    shape = (max(size, round(height * scale)), max(size, round(width * scale)))
    scaled = torch.nn.functional.interpolate(batch.float(), size=shape, mode="bilinear", antialias=True,
                                             align_corners=False)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    squares = scaled[..., top:top + size, left:left + size].round().clamp(0, 255).to(torch.uint8)
    return {i: np.ascontiguousarray(f.permute(1, 2, 0).numpy()) for i, f in zip(present, squares)}


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
