"""Orientation tasks: which rotation or flip was applied to a frame?

SESEMI (Tran, "Exploring Self-Supervised Regularization for Supervised and
Semi-Supervised Learning", arXiv:1906.10343): six classes, rotation by 0, 90,
180 or 270 degrees, a left-right flip or an up-down flip. Rotation (Gidaris et
al., "Unsupervised Representation Learning by Predicting Image Rotations",
ICLR 2018): the four rotations only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from semisup.pretext.base import Encode, PretextOutput, PretextTask, register_pretext

SESEMI_CLASSES = ("rot0", "rot90", "rot180", "rot270", "hflip", "vflip")


def sesemi_transform(frames: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Apply transform ``target[i]`` (an index into :data:`SESEMI_CLASSES`) to ``frames[i]``.

    Args:
        frames: ``(N, C, H, W)`` square images.
        target: ``(N,)`` integers in 0..5.

    Returns:
        ``(N, C, H, W)`` transformed images.

    Raises:
        ValueError: the images are not square (right-angle rotations need H == W).

    Example:
        >>> x = torch.arange(4.).view(1, 1, 2, 2)
        >>> sesemi_transform(x, torch.tensor([4]))  # left-right flip
        tensor([[[[1., 0.],
                  [3., 2.]]]])
    """
    if frames.shape[-1] != frames.shape[-2]:
        raise ValueError(f"SESEMI needs square frames, got {tuple(frames.shape[-2:])}")
    out = torch.empty_like(frames)
    for k, apply in enumerate(_TRANSFORMS):
        picked = (target == k).nonzero().squeeze(1)
        if picked.numel():
            out[picked] = apply(frames[picked])
    return out


_TRANSFORMS = (
    lambda x: x,
    lambda x: torch.rot90(x, 1, dims=(2, 3)),
    lambda x: torch.rot90(x, 2, dims=(2, 3)),
    lambda x: torch.rot90(x, 3, dims=(2, 3)),
    lambda x: torch.flip(x, dims=(3,)),
    lambda x: torch.flip(x, dims=(2,)),
)


def predict_transform(task: PretextTask, frames: torch.Tensor, encode: Encode, classes: int,
                      transforms: str) -> PretextOutput:
    """Shared by SESEMI and rotation: transform frames by class ``0..classes-1``
    (the first ``classes`` of :data:`SESEMI_CLASSES`) and classify which.

    ``transforms = "all"`` applies every class to every frame (``classes``
    times the images); ``"one"`` one random class per frame.
    """
    x = frames.flatten(0, 1)
    n = x.shape[0]
    if transforms == "all":  # every frame in every class, class by class: one concatenation, no scatter
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"SESEMI needs square frames, got {tuple(x.shape[-2:])}")
        target = torch.arange(classes, device=x.device).repeat_interleave(n)
        return task.classify(encode(torch.cat([apply(x) for apply in _TRANSFORMS[:classes]])), target)
    target = torch.randint(0, classes, (n,), device=x.device)
    return task.classify(encode(sesemi_transform(x, target)), target)


@register_pretext("sesemi")
class Sesemi(PretextTask):
    """6-way rotation / flip prediction on single frames (SESEMI, Tran 2019)."""

    num_classes = len(SESEMI_CLASSES)

    @dataclass(frozen=True)
    class Options:
        """``transforms``: "all" applies all six transforms to every frame (as in
        the paper: six times the images, and the network sees each frame in every
        orientation at once), "one" applies one random transform per frame
        (cheaper, but on the demo its pretext accuracy barely left chance level
        in 12 epochs and it helped less)."""

        transforms: Literal["one", "all"] = "all"

    def forward(self, frames: torch.Tensor, encode: Encode) -> PretextOutput:
        return predict_transform(self, frames, encode, self.num_classes, self.options.transforms)


@register_pretext("rotation")
class Rotation(PretextTask):
    """4-way rotation prediction, 0/90/180/270 degrees (RotNet, Gidaris et al. 2018)."""

    num_classes = 4

    @dataclass(frozen=True)
    class Options:
        """``transforms``: "all" four rotations of every frame, or "one" random one."""

        transforms: Literal["one", "all"] = "all"

    def forward(self, frames: torch.Tensor, encode: Encode) -> PretextOutput:
        return predict_transform(self, frames, encode, self.num_classes, self.options.transforms)
