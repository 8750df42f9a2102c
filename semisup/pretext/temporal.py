"""Temporal tasks on frame sequences: is the order right, and which way does time run?

Trailers are videos: the frames of a clip arrive in time order, and the
order itself is a free label. The encoder embeds each frame; the head sees
the ``T`` frame features side by side.

* ``frame-order``: were the frames shuffled? (after Misra et al., "Shuffle
  and Learn", ECCV 2016);
* ``arrow-of-time``: do they run forward or reversed? (after Wei et al.,
  "Learning and Using the Arrow of Time", CVPR 2018).
"""

from __future__ import annotations

import abc

import torch

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
