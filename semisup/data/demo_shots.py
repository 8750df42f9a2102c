"""The demo's shot variant: short shots with a shot scale and a real camera movement.

Each shot is a subject cut from a real photo (scikit-image ships them) placed
on a background photo, filmed by a virtual camera (:mod:`semisup.data.camera`):

* ``scale`` is the subject's height in the frame at the middle of the shot:
  LS (long, about a fifth of the frame), FS (full, two fifths), MS (medium,
  two thirds), CS (close-up, the whole height), ECS (extreme close-up,
  larger than the frame);
* ``movement`` is the camera's move: Static, Motion (a pan), Push (zoom in:
  the subject grows frame over frame), Pull (zoom out), long-tailed like real
  trailers: Static and Motion common, Push and Pull rare.

Frames come in time order, so a push and a pull hold nearly the same frames in
opposite order: only a model that reads the order can tell them apart, and the
temporal pretext tasks (arrow-of-time, frame-order) have a real order to learn.
A distractor object sometimes shares the frame, so the amount of "object" in
a frame is not the scale.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from semisup.data.camera import camera_path, render_path

SCALES: tuple[str, ...] = ("LS", "FS", "MS", "CS", "ECS")
SCALE_HEIGHT = {"LS": 0.2, "FS": 0.4, "MS": 0.65, "CS": 0.95, "ECS": 1.45}  # subject height / frame height
SCALE_SHARE = (0.2, 0.25, 0.25, 0.2, 0.1)
MOVEMENTS: tuple[str, ...] = ("Static", "Motion", "Push", "Pull")
MOVEMENT_SHARE = (0.45, 0.35, 0.12, 0.08)
SPLIT_SIZES = {"train": 100, "unlabeled": 400, "val": 100, "test": 200}
CANVAS = (512, 384)            # the scene the camera films (4:3, like the frames)
WINDOW = 0.42                  # the camera's window width at mid-shot, as a share of the scene
SUBJECTS = ("person", "cat", "motorbike", "cameraman", "cup", "horse")


def draw_labels(rng: np.random.Generator) -> tuple[str, str]:
    """A shot's scale and movement, drawn from the demo's long-tailed shares."""
    return (SCALES[rng.choice(len(SCALES), p=SCALE_SHARE)], MOVEMENTS[rng.choice(len(MOVEMENTS), p=MOVEMENT_SHARE)])


def render_shot(scale: str, movement: str, rng: np.random.Generator, frame_size: tuple[int, int],
                assets) -> tuple[list[Image.Image], np.ndarray]:
    """The frames of one shot and the camera path that filmed them (see :func:`camera_path`).

    Args:
        scale, movement: the shot's labels.
        rng: all randomness of the shot.
        frame_size: output (width, height).
        assets: the demo's photo cut-outs and backgrounds.
    """
    scene = compose_scene(scale, rng, frame_size, assets)
    frames = int(rng.integers(8, 13))
    path = camera_path(movement.lower(), frames, WINDOW, rng, centre=(0.5, 0.5))
    return render_path(scene, path, frame_size), path


def compose_scene(scale: str, rng: np.random.Generator, frame_size: tuple[int, int], assets) -> Image.Image:
    """A background photo with the subject at the centre, sized for ``scale`` in the mid-shot window
    (``assets``: the demo's photo cut-outs and backgrounds, ``semisup.data.demo._assets()``)."""
    w, h = CANVAS
    source = assets.neutral[int(rng.integers(len(assets.neutral)))]
    scene = source.resize((w, h), Image.BILINEAR, box=_box(source.size, w / h, rng))
    window_height = WINDOW * w * frame_size[1] / frame_size[0]
    if rng.random() < 0.3:  # a distractor somewhere else, at any size
        pool = assets.objects["distractor"]
        _place(scene, pool[int(rng.integers(len(pool)))], window_height * rng.uniform(0.2, 0.6),
               (rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h), rng)
    pool = assets.objects[SUBJECTS[int(rng.integers(len(SUBJECTS)))]]
    height = window_height * SCALE_HEIGHT[scale] * rng.uniform(0.9, 1.1)
    _place(scene, pool[int(rng.integers(len(pool)))], height, (w / 2, h / 2), rng)
    return scene


def _box(size: tuple[int, int], aspect: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    sw, sh = size
    cw = min(sw, sh * aspect) * rng.uniform(0.7, 1.0)
    ch = cw / aspect
    x0, y0 = rng.uniform(0, sw - cw), rng.uniform(0, sh - ch)
    return x0, y0, x0 + cw, y0 + ch


def _place(scene: Image.Image, patch: Image.Image, height: float, centre: tuple[float, float],
           rng: np.random.Generator) -> None:
    """Paste an RGBA cut-out of the given height, centred at ``centre``, maybe mirrored."""
    height = max(4, int(height))
    patch = patch.resize((max(4, int(height * patch.width / patch.height)), height), Image.BILINEAR)
    if rng.random() < 0.5:
        patch = patch.transpose(Image.FLIP_LEFT_RIGHT)
    scene.paste(patch, (int(centre[0] - patch.width / 2), int(centre[1] - patch.height / 2)), patch)
