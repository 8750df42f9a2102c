"""The whole network: shared encoder, temporal pooling, task heads, pretext tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from semisup.models.encoder import Encoder
from semisup.models.heads import MLPHead
from semisup.models.pooling import TemporalPool

if TYPE_CHECKING:
    from semisup.pretext.base import PretextTask


class TrailerModel(nn.Module):
    """A shared frame encoder with one head per labeled task and its pretext tasks.

    Args:
        encoder: the shared frame encoder.
        pool: turns packed frame features into trailer features.
        task_sizes: number of classes of each labeled task, by task name.
        head_hidden: hidden width of the task heads.
        head_dropout: dropout inside the task heads.
        pretext: pretext tasks by name (each owns its head).
    """

    def __init__(self, encoder: Encoder, pool: TemporalPool, task_sizes: dict[str, int],
                 head_hidden: int, head_dropout: float, pretext: dict[str, PretextTask] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.pool = pool
        self.heads = nn.ModuleDict({name: MLPHead(encoder.num_features, head_hidden, size, head_dropout)
                                    for name, size in task_sizes.items()})
        self.pretext = nn.ModuleDict(pretext or {})

    def trailer_features(self, frames: torch.Tensor, owner: torch.Tensor, num_trailers: int) -> torch.Tensor:
        """Embed packed frames ``(N, C, H, W)`` and pool them into ``(B, D)`` fp32 trailer features."""
        return self.pool(self.encoder(frames).float(), owner, num_trailers)

    def forward(self, frames: torch.Tensor, owner: torch.Tensor, num_trailers: int) -> dict[str, torch.Tensor]:
        """Logits ``(B, C_task)`` of every task head for a batch of packed frames.

        Args:
            frames: ``(N, C, H, W)`` normalised frames of B trailers.
            owner: ``(N,)`` index of the trailer each frame belongs to.
            num_trailers: B.
        """
        features = self.trailer_features(frames, owner, num_trailers)
        return {name: head(features) for name, head in self.heads.items()}

    def supervised_parameters(self) -> list[nn.Parameter]:
        """Trainable encoder parameters plus the task heads."""
        return self.encoder.trainable_parameters() + list(self.heads.parameters())

    def pretext_parameters(self, name: str) -> list[nn.Parameter]:
        """Trainable encoder parameters plus the head of pretext task ``name``."""
        return self.encoder.trainable_parameters() + list(self.pretext[name].parameters())
