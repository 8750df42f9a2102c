"""Synthetic camera moves: static labeled shots filmed again as pushes, pulls and pans.

Push and Pull are rare in real footage (a few percent of shots), so a
movement classifier sees too few of them to learn them. A labeled clip of a
source class (usually ``Static``) can be filmed again by a virtual camera
(:mod:`semisup.data.camera`): its frames, in time order, are cropped along
a push (the window shrinks: what is in frame grows), a pull or a pan, and
the clip is labelled with the move's class. The trajectories ease in and out
at a random pace (non-uniform), and zooms drift off-centre, as real moves do.

The decision is drawn per clip from the clip's own seed, so the labeled
stream stays a pure function of (seed, step) and resumes exactly, and the
frames a clip shows are the same with or without synthesis. A converted clip
is decoded at a larger size first, so its zoomed-in frames are as sharp as
the others (where the source frames have the pixels).

A move changes what is in frame, so a converted clip keeps only its labels
for the movement task and for the tasks named in ``keep_labels`` (a genre
does not change when the camera zooms; a shot scale does): the others are
masked out of the loss for that clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from PIL import Image

from semisup.data.camera import camera_path, render_clip

MOVE_KINDS: tuple[str, ...] = ("push", "pull", "motion")
PAN_WIDTH = 0.6
"""A pan's window, as a share of the frame width: room for the camera to travel."""


@dataclass(frozen=True)
class SyntheticMoves:
    """Turns labeled clips of ``sources`` classes into camera moves, at ``rate``.

    Args:
        task: the multi-class movement task whose label a move sets.
        sources: classes of ``task`` whose clips are filmed again (e.g. ``("Static",)``).
        moves: class of ``task`` -> camera move (``push``, ``pull`` or ``motion``);
            a converted clip becomes one of them, drawn uniformly.
        rate: chance that a clip of a source class is converted, each time it is drawn.
        zoom: range of a push's or pull's zoom (start / end window width).
        drift: how far a zoom's centre drifts, a share of the frame.
        keep_labels: other tasks whose labels a move leaves valid; the rest are masked.

    Example:
        >>> moves = SyntheticMoves("movement", ("Static",), {"Push": "push"}, rate=1.0)
        >>> moves.draw({"movement": ("Static",)}, np.random.default_rng(0))
        'Push'
        >>> moves.draw({"movement": ("Pull",)}, np.random.default_rng(0)) is None
        True
    """

    task: str
    sources: tuple[str, ...]
    moves: Mapping[str, str]
    rate: float
    zoom: tuple[float, float] = (1.4, 2.0)
    drift: float = 0.08
    keep_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.moves.values()) - set(MOVE_KINDS))
        if unknown:
            raise ValueError(f"unknown camera move {unknown[0]!r} (expected {', '.join(MOVE_KINDS)})")
        if not 1.0 <= self.zoom[0] <= self.zoom[1]:
            raise ValueError(f"zoom must be a range 1 <= low <= high, got {list(self.zoom)}")

    @property
    def decode_scale(self) -> float:
        """How much larger than the frame size to decode a clip that is converted, so its
        smallest window still holds a frame's worth of pixels."""
        return max(self.zoom[1], 1.0 / PAN_WIDTH)

    def draw(self, labels: Mapping[str, tuple[str, ...] | None], rng: np.random.Generator) -> str | None:
        """The class a clip with ``labels`` becomes, or ``None`` to keep it as it is."""
        label = labels.get(self.task)
        if not label or label[0] not in self.sources or rng.random() >= self.rate:
            return None
        classes = list(self.moves)
        return classes[int(rng.integers(len(classes)))]

    def film(self, frames: np.ndarray, target: str, size: int, rng: np.random.Generator) -> np.ndarray:
        """Film ``frames`` (``(T, H, W, 3)`` uint8, time order) with the move of class ``target``.

        Returns:
            ``(T, size, size, 3)`` uint8 frames.
        """
        kind = self.moves[target]
        if kind == "motion":
            path = camera_path("motion", len(frames), PAN_WIDTH, rng)
        else:
            path = camera_path(kind, len(frames), 1.0, rng, zoom=self.zoom, drift=self.drift)
            path[:, 2] /= path[:, 2].max()  # the widest window is the whole frame
        images = render_clip([Image.fromarray(f) for f in frames], path, (size, size))
        return np.stack([np.asarray(image) for image in images])

    def relabel(self, labels: Mapping[str, tuple[str, ...] | None], target: str) -> dict[str, tuple[str, ...] | None]:
        """A converted clip's labels: ``target`` for the task, the kept tasks' labels, nothing else.

        Example:
            >>> moves = SyntheticMoves("movement", ("Static",), {"Push": "push"}, 1.0, keep_labels=("genre",))
            >>> moves.relabel({"movement": ("Static",), "scale": ("CS",), "genre": ("Drama",)}, "Push")
            {'movement': ('Push',), 'scale': None, 'genre': ('Drama',)}
        """
        return {name: (target,) if name == self.task else (value if name in self.keep_labels else None)
                for name, value in labels.items()}
