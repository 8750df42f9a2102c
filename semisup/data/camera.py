"""Camera moves over a still image: smooth pans and zooms, as crop windows per frame.

A move is a sequence of crop windows ``(cx, cy, width)`` over an image (the
window keeps the output's aspect ratio); rendering crops each window and
resizes it to the frame size. ``push`` zooms in (the window shrinks, what is
in frame grows), ``pull`` zooms out, ``motion`` pans, ``static`` holds still
(with a breath of hand-held jitter). Trajectories ease in and out, may drift
off-centre, and zooms may be non-uniform, as real camera moves are. The demo's
shot variant draws its shots with these; the same paths can synthesise rare
movement classes from static shots.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

Move = Literal["static", "motion", "push", "pull"]
MOVES: tuple[str, ...] = ("static", "motion", "push", "pull")


def ease(t: np.ndarray, power: float = 2.0) -> np.ndarray:
    """Smooth 0 -> 1 over ``t`` in [0, 1] (slow start and end).

    Example:
        >>> ease(np.array([0.0, 0.5, 1.0])).tolist()
        [0.0, 0.5, 1.0]
    """
    t = np.clip(t, 0.0, 1.0)
    return t ** power / (t ** power + (1 - t) ** power)


def camera_path(move: Move, frames: int, width: float, rng: np.random.Generator,
                centre: tuple[float, float] = (0.5, 0.5), strength: float = 1.0,
                zoom: tuple[float, float] = (1.5, 2.2), drift: float = 0.08, pan_spread: float = 0.35
                ) -> np.ndarray:
    """Crop windows of a camera move: ``(frames, 3)`` rows of centre x, centre y and window width.

    Coordinates are fractions of the image width (x, width) and height (y).

    Args:
        move: ``static``, ``motion`` (pan), ``push`` (zoom in) or ``pull`` (zoom out).
        frames: number of frames.
        width: the window width at the middle of the move.
        rng: randomness of the path (direction, speed profile, drift, jitter).
        centre: where the window is centred at the middle of the move.
        strength: scales how far the camera travels or zooms.
        zoom: range of a push's or pull's start / end window width ratio.
        drift: how far a zoom's centre drifts (off-centre zooms), a share of ``width``.
        pan_spread: a pan's direction lies within this many radians of horizontal
            (left or right); ``pi`` pans in any direction, vertical ones included.

    Example:
        >>> path = camera_path("push", 5, 0.5, np.random.default_rng(0))
        >>> bool(np.all(np.diff(path[:, 2]) < 0))     # a push: the window shrinks every frame
        True
    """
    t = np.linspace(0.0, 1.0, frames)
    profile = ease(t, rng.uniform(1.2, 2.5))
    cx = np.full(frames, centre[0])
    cy = np.full(frames, centre[1])
    w = np.full(frames, width)
    if move == "motion":
        angle = rng.uniform(-pan_spread, pan_spread) + (np.pi if rng.random() < 0.5 else 0.0)
        span = width * rng.uniform(0.35, 0.6) * strength
        cx = cx + np.cos(angle) * span * (profile - 0.5)
        cy = cy + np.sin(angle) * span * (profile - 0.5)
    elif move in ("push", "pull"):
        ratio = rng.uniform(*zoom) ** strength                                  # start / end width
        growth = profile if move == "push" else 1.0 - profile
        w = width * ratio ** (0.5 - growth)                                        # geometric: even zoom
        shift = rng.uniform(-drift, drift, size=2) * width                         # off-centre zooms
        cx, cy = cx + shift[0] * (profile - 0.5), cy + shift[1] * (profile - 0.5)
    elif move != "static":
        raise ValueError(f"move must be one of {', '.join(MOVES)}, got {move!r}")
    jitter = rng.normal(0.0, 0.002, size=(frames, 2)) * width                    # hand-held
    return np.stack([cx + jitter[:, 0], cy + jitter[:, 1], w], axis=1)


def render_path(image: Image.Image, path: np.ndarray, size: tuple[int, int]) -> list[Image.Image]:
    """Crop ``image`` along ``path`` (from :func:`camera_path`) into frames of ``size`` (width, height).

    Windows are kept inside the image (a window larger than the image is
    shrunk to fit), so no frame shows an empty border.
    """
    return [image.resize(size, Image.BILINEAR, box=window_box(image.size, window, size)) for window in path]


def render_clip(frames: list[Image.Image], path: np.ndarray, size: tuple[int, int]) -> list[Image.Image]:
    """Film a clip with a virtual camera: frame ``i`` is cropped along window ``i`` of ``path``.

    The same as :func:`render_path`, but over moving footage instead of a
    still: a static shot becomes a push, pull or pan of the same scene.
    """
    if len(frames) != len(path):
        raise ValueError(f"{len(frames)} frames but a path of {len(path)} windows")
    return [frame.resize(size, Image.BILINEAR, box=window_box(frame.size, window, size))
            for frame, window in zip(frames, path)]


def window_box(image_size: tuple[int, int], window: np.ndarray,
               out_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The pixel box ``(x0, y0, x1, y1)`` of one ``(cx, cy, width)`` window, with the
    output's aspect ratio, inside an image of ``image_size``.

    Example:
        >>> window_box((200, 100), np.array([0.5, 0.5, 0.25]), (50, 50))
        (75.0, 25.0, 125.0, 75.0)
        >>> window_box((200, 100), np.array([0.9, 0.5, 0.25]), (50, 50))     # kept inside
        (150.0, 25.0, 200.0, 75.0)
    """
    cx, cy, width = (float(v) for v in window)
    out_w, out_h = out_size
    img_w, img_h = image_size
    w = min(width * img_w, img_w, img_h * out_w / out_h)
    h = w * out_h / out_w
    x0 = float(np.clip(cx * img_w - w / 2, 0, img_w - w))
    y0 = float(np.clip(cy * img_h - h / 2, 0, img_h - h))
    return x0, y0, x0 + w, y0 + h
