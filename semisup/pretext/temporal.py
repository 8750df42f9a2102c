"""Temporal tasks on frame sequences: is the order right, and which way does time run?

Trailers are videos: the frames of a clip arrive in time order, and the
order itself is a free label. The encoder embeds each frame; the head sees
the ``T`` frame features side by side.

* ``frame-order``: were the frames shuffled? (after Misra et al., "Shuffle
  and Learn", ECCV 2016);
* ``arrow-of-time``: do they run forward or reversed? (after Wei et al.,
  "Learning and Using the Arrow of Time", CVPR 2018);
* ``camera-move``: which way did a virtual camera move over one of the clip's
  frames? (still, four pans, push, pull: camera movement's own question, asked
  without labels).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from semisup.augment import paste_moving_patch
from semisup.errors import check_option
from semisup.pretext.base import Encode, PretextOutput, PretextTask, register_pretext


class SequenceTask(PretextTask):
    """A binary question about a reordered clip; subclasses say how to reorder."""

    num_classes = 2
    reads_time = True

    def head_input_dim(self, feature_dim: int) -> int:
        return feature_dim * self.frames

    @abc.abstractmethod
    def reorder(self, length: int, target: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` frame indices per clip: time order where ``target`` is 0."""

    def forward(self, frames: torch.Tensor, encode: Encode) -> PretextOutput:
        b, t = frames.shape[:2]
        target = torch.randint(0, 2, (b,), device=frames.device)
        order = self.reorder(t, target)
        clips = torch.gather(frames, 1, order.view(b, t, 1, 1, 1).expand_as(frames))
        features = encode(clips.flatten(0, 1)).float().reshape(b, -1)  # (B, T*D): frame features in clip order
        return self.classify(features, target)


@register_pretext("arrow-of-time")
class ArrowOfTime(SequenceTask):
    """Forward or reversed? Classify the direction of a frame sequence."""

    min_frames = 2

    def reorder(self, length: int, target: torch.Tensor) -> torch.Tensor:
        forward = torch.arange(length, device=target.device).expand(len(target), length)
        return torch.where(target.view(-1, 1) == 1, forward.flip(1), forward)


@register_pretext("frame-order")
class FrameOrder(SequenceTask):
    """In order or shuffled? Classify whether a frame sequence was permuted."""

    min_frames = 3

    def reorder(self, length: int, target: torch.Tensor) -> torch.Tensor:
        forward = torch.arange(length, device=target.device).expand(len(target), length)
        shuffled = torch.argsort(torch.rand(len(target), length, device=target.device), dim=1)
        identity = (shuffled == forward).all(1)
        shuffled[identity] = forward[identity].roll(1, dims=1)       # never "shuffled" into the same order
        return torch.where(target.view(-1, 1) == 1, shuffled, forward)


CAMERA_MOVES: tuple[str, ...] = ("static", "left", "right", "up", "down", "push", "pull")
"""The moves of :class:`CameraMove`, in the order of its classes."""


@register_pretext("camera-move")
class CameraMove(PretextTask):
    """Which way did the camera move? One frame of each unlabeled clip is filmed again by a
    virtual camera (held still, panned left, right, up or down, pushed in or pulled out: 7
    classes) into a clip of ``T`` frames; the head classifies the move from the ``T`` frame
    features side by side.

    This is the labeled movement task's question asked of every unlabeled shot, with labels
    that cost nothing, on the footage the model will meet. A push and a pull of one frame hold
    the same pixels in opposite order, and each pan has its mirror: the encoder (and its motion
    input, with ``model.frame_differences`` or ``model.temporal_shift``) has to learn which way
    things move, not what they look like. The camera follows
    :mod:`semisup.data.camera`'s kind of path (eased, zooms geometric), drawn afresh on the
    batch's device (``torch.nn.functional.grid_sample``: one call for the whole batch).
    """

    num_classes = len(CAMERA_MOVES)
    min_frames = 2
    reads_time = True

    @dataclass(frozen=True)
    class Options:
        zoom: tuple[float, float] = (1.2, 2.0)
        """Range of a push's or pull's start / end window width ratio."""
        pan: tuple[float, float] = (0.15, 0.4)
        """Range of how far a pan travels, a share of the frame."""
        scene_motion: float = 0.0
        """Chance that a filmed clip also shows an object moving through it (a patch of another
        clip's frame, :func:`~semisup.augment.paste_moving_patch`), so that the still camera is
        not the only one whose picture moves."""

        def __post_init__(self) -> None:
            check_option(len(self.zoom) == 2 and 1.0 < self.zoom[0] <= self.zoom[1], "zoom",
                         "[low, high] with 1 < low <= high", list(self.zoom))
            check_option(len(self.pan) == 2 and 0.0 < self.pan[0] <= self.pan[1] <= 0.5, "pan",
                         "[low, high] with 0 < low <= high <= 0.5", list(self.pan))
            check_option(0.0 <= self.scene_motion <= 1.0, "scene_motion", "a chance in [0, 1]", self.scene_motion)

    def head_input_dim(self, feature_dim: int) -> int:
        return feature_dim * self.frames

    def forward(self, frames: torch.Tensor, encode: Encode) -> PretextOutput:
        b, t = frames.shape[:2]
        target = torch.randint(0, len(CAMERA_MOVES), (b,), device=frames.device)
        still = frames[:, t // 2]
        windows = camera_windows(target, t, self.options.zoom, self.options.pan)      # (B, T, 3)
        clips = film(still, windows).flatten(0, 1)                                     # (B*T, C, H, W)
        if self.options.scene_motion > 0:
            owner = torch.arange(b, device=frames.device).repeat_interleave(t)
            clips = paste_moving_patch(clips, owner, frames[:, 0].roll(1, 0), self.options.scene_motion)
        features = encode(clips).float().reshape(b, -1)
        return self.classify(features, target)


def camera_windows(moves: torch.Tensor, frames: int, zoom: tuple[float, float],
                   pan: tuple[float, float]) -> torch.Tensor:
    """Crop windows ``(B, T, 3)``: centre x, centre y and width, as shares of the frame, of the
    camera moves ``moves`` (indices into :data:`CAMERA_MOVES`), each inside the frame.

    Example:
        >>> w = camera_windows(torch.tensor([5, 6, 2]), 4, (1.5, 1.5), (0.2, 0.2))
        >>> bool((w[0, 1:, 2] < w[0, :-1, 2]).all()), bool((w[1, 1:, 2] > w[1, :-1, 2]).all())  # push, pull
        (True, True)
        >>> bool((w[2, 1:, 0] > w[2, :-1, 0]).all())          # right: the window travels right
        True
    """
    b, device = len(moves), moves.device
    static, left, right, up, down, push, pull = range(len(CAMERA_MOVES))
    uniform = lambda low, high: low + (high - low) * torch.rand(b, 1, device=device)  # noqa: E731
    t = torch.linspace(0.0, 1.0, frames, device=device).expand(b, frames)
    power = uniform(1.2, 2.5)
    profile = t ** power / (t ** power + (1 - t) ** power)                      # eased 0 -> 1
    ratio = uniform(*zoom)
    widest = uniform(0.75, 1.0)
    push_width = widest * ratio ** -profile                                      # shrinks: zoom in
    pull_width = widest * ratio ** -(1 - profile)
    still = uniform(0.55, 0.95).expand(b, frames)
    pan_width = uniform(0.5, 0.75).expand(b, frames)
    width = torch.where((moves == push).view(-1, 1), push_width, torch.where((moves == pull).view(-1, 1), pull_width,
                        torch.where((moves == static).view(-1, 1), still, pan_width)))
    largest = width.amax(1, keepdim=True)
    travel = torch.minimum(uniform(*pan), 1 - largest) * (profile - 0.5)       # centred on the middle frame
    sign = torch.where((moves == left) | (moves == up), -1.0, 1.0).view(-1, 1)
    horizontal = ((moves == left) | (moves == right)).view(-1, 1)
    vertical = ((moves == up) | (moves == down)).view(-1, 1)
    room = (1 - largest) / 2 - travel.abs().amax(1, keepdim=True)                # where the centre may lie
    cx = 0.5 + (2 * torch.rand(b, 1, device=device) - 1) * room + torch.where(horizontal, sign * travel, 0.0)
    cy = 0.5 + (2 * torch.rand(b, 1, device=device) - 1) * room + torch.where(vertical, sign * travel, 0.0)
    return torch.stack([cx.expand(b, frames), cy.expand(b, frames), width], dim=-1)


def film(still: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """Film ``still`` frames ``(B, C, H, W)`` through crop windows ``(B, T, 3)`` into clips
    ``(B, T, C, H, W)`` of the same size (bilinear, one ``grid_sample`` call)."""
    b, t = windows.shape[:2]
    cx, cy, w = windows.unbind(-1)
    theta = torch.zeros(b * t, 2, 3, device=still.device, dtype=torch.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = w.flatten()
    theta[:, 0, 2] = 2 * cx.flatten() - 1
    theta[:, 1, 2] = 2 * cy.flatten() - 1
    source = still.float().repeat_interleave(t, dim=0)
    grid = F.affine_grid(theta, list(source.shape), align_corners=False)
    clips = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return clips.to(still.dtype).view(b, t, *still.shape[1:])
