"""Temporal pooling: frame features of each trailer become one trailer feature."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

PoolingMode = Literal["mean", "max"]


class TemporalPool(nn.Module):
    """Pool a variable number of frame features per trailer.

    Frames of a batch are packed: ``features[i]`` belongs to trailer
    ``owner[i]``. Trailers may have different frame counts; every trailer in
    ``0..num_trailers-1`` must own at least one frame.

    Args:
        mode: ``"mean"`` or ``"max"`` over each trailer's frames.

    Example:
        >>> pool = TemporalPool("mean")
        >>> pool(torch.tensor([[1.], [3.], [5.]]), torch.tensor([0, 0, 1]), 2)
        tensor([[2.],
                [5.]])
    """

    def __init__(self, mode: PoolingMode = "mean") -> None:
        super().__init__()
        if mode not in ("mean", "max"):
            raise ValueError(f'pooling mode must be "mean" or "max", got {mode!r}')
        self.mode = mode

    def forward(self, features: torch.Tensor, owner: torch.Tensor, num_trailers: int) -> torch.Tensor:
        """Args: features ``(N, D)``, owner ``(N,)`` trailer index per frame. Returns ``(B, D)``."""
        out = features.new_zeros(num_trailers, features.shape[1])
        index = owner.view(-1, 1).expand_as(features)
        reduce = "mean" if self.mode == "mean" else "amax"
        return out.scatter_reduce(0, index, features, reduce, include_self=False)
