"""SESEMI: predict which rotation or flip was applied to a frame.

Tran, "Exploring Self-Supervised Regularization for Supervised and
Semi-Supervised Learning", arXiv:1906.10343. Six classes: rotation by 0, 90,
180 or 270 degrees, a left-right flip or an up-down flip.
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


@register_pretext("sesemi")
class Sesemi(PretextTask):
    """6-way rotation / flip prediction on single frames (SESEMI)."""

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
        x = frames.flatten(0, 1)
        n = x.shape[0]
        if self.options.transforms == "all":
            target = torch.arange(self.num_classes, device=x.device).repeat_interleave(n)
            x = x.repeat(self.num_classes, 1, 1, 1)
        else:
            target = torch.randint(0, self.num_classes, (n,), device=x.device)
        return self.classify(encode(sesemi_transform(x, target)), target)
