"""The whole network: shared encoder, a temporal aggregator and a head per task, pretext tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from semisup.models.aggregators import Aggregator, pad_packed
from semisup.models.encoder import Encoder
from semisup.models.heads import MLPHead

if TYPE_CHECKING:
    from semisup.pretext.base import PretextTask


class TrailerModel(nn.Module):
    """A shared frame encoder; per labeled task an aggregator and a head; the pretext tasks.

    Every task reads the same frame features; its aggregator turns them (in
    time order) into one feature of the trailer, its head into logits.

    Args:
        encoder: the shared frame encoder.
        aggregators: per task name, its temporal aggregator (input: the encoder's features).
        task_sizes: number of classes of each labeled task, by task name.
        head_hidden: hidden width of the task heads.
        head_dropout: dropout inside the task heads.
        pretext: pretext tasks by name (each owns its head).
    """

    def __init__(self, encoder: Encoder, aggregators: dict[str, Aggregator], task_sizes: dict[str, int],
                 head_hidden: int, head_dropout: float, pretext: dict[str, PretextTask] | None = None) -> None:
        super().__init__()
        if set(aggregators) != set(task_sizes):
            raise ValueError(f"one aggregator per task: tasks {sorted(task_sizes)}, aggregators {sorted(aggregators)}")
        self.encoder = encoder
        self.aggregators = nn.ModuleDict(aggregators)
        self.heads = nn.ModuleDict({name: MLPHead(aggregators[name].out_dim, head_hidden, size, head_dropout)
                                    for name, size in task_sizes.items()})
        self.pretext = nn.ModuleDict(pretext or {})

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frame features ``(N, D)`` of normalised frames ``(N, C, H, W)``: the shared encoder
        alone (what pretext tasks and SimCLR learn from)."""
        return self.encoder(frames)

    def trailer_features(self, frames: torch.Tensor, owner: torch.Tensor, num_trailers: int
                         ) -> dict[str, torch.Tensor]:
        """Embed packed frames ``(N, C, H, W)`` (each trailer's contiguous, in time order) and
        aggregate them per task into ``(B, D_task)`` fp32 trailer features."""
        x, mask = pad_packed(self.encode(frames).float(), owner, num_trailers)
        return {name: aggregator(x, mask) for name, aggregator in self.aggregators.items()}

    def forward(self, frames: torch.Tensor, owner: torch.Tensor, num_trailers: int) -> dict[str, torch.Tensor]:
        """Logits ``(B, C_task)`` of every task head for a batch of packed frames.

        Args:
            frames: ``(N, C, H, W)`` normalised frames of B trailers, each trailer's
                frames contiguous and in time order.
            owner: ``(N,)`` index of the trailer each frame belongs to (non-decreasing).
            num_trailers: B.
        """
        features = self.trailer_features(frames, owner, num_trailers)
        return {name: head(features[name]) for name, head in self.heads.items()}

    def supervised_parameters(self) -> list[nn.Parameter]:
        """Trainable encoder parameters plus the task aggregators and heads."""
        return (self.encoder.trainable_parameters() + list(self.aggregators.parameters())
                + list(self.heads.parameters()))

    def pretext_parameters(self, name: str) -> list[nn.Parameter]:
        """Trainable encoder parameters plus the head of pretext task ``name``."""
        return self.encoder.trainable_parameters() + list(self.pretext[name].parameters())
