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

    def encode(self, frames: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        """Frame features ``(N, D)`` of normalised frames ``(N, C, H, W)``: the shared encoder
        alone (what pretext tasks and SimCLR learn from). ``owner``: the clip of each frame,
        for an encoder that sees motion (``None``: every frame a clip of its own)."""
        return self.encoder(frames, owner)

    def trailer_features(self, frames: torch.Tensor, owner: torch.Tensor, num_trailers: int
                         ) -> dict[str, torch.Tensor]:
        """Embed packed frames ``(N, C, H, W)`` (each trailer's contiguous, in time order) and
        aggregate them per task into ``(B, D_task)`` fp32 trailer features."""
        x, mask = pad_packed(self.encode(frames, owner).float(), owner, num_trailers)
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


def describe_misfit(found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> str:
    """How a checkpoint's weights (``found``) differ from a :class:`TrailerModel`'s (``expected``),
    part by part, in a user's words: the tasks and their label counts, the encoder, the
    aggregators, the pretext heads ("" when every weight fits).

    Example:
        >>> here = {"heads.genres.3.bias": torch.zeros(9), "encoder.w": torch.zeros(2)}
        >>> describe_misfit({"heads.genres.3.bias": torch.zeros(12), "encoder.w": torch.zeros(2)}, here)
        'its tasks are genres (12 labels), this run has genres (9 labels)'
    """
    def tasks(state: dict[str, torch.Tensor]) -> dict[str, int]:
        last: dict[str, tuple[str, int]] = {}
        for key, value in state.items():
            parts = key.split(".")
            if parts[0] == "heads" and parts[-1] == "bias" and len(parts) >= 4:
                layer = int(parts[2]) if parts[2].isdigit() else 0
                if parts[1] not in last or layer >= last[parts[1]][1]:
                    last[parts[1]] = (str(value.shape[0]), layer)
        return {name: int(size) for name, (size, _) in last.items()}

    def shown(sizes: dict[str, int]) -> str:
        return ", ".join(f"{name} ({size} labels)" for name, size in sizes.items()) or "no tasks"

    def part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in state.items() if k.startswith(prefix)}

    differences = []
    if tasks(found) != tasks(expected):
        differences.append(f"its tasks are {shown(tasks(found))}, this run has {shown(tasks(expected))}")
    encoder_found, encoder_here = part(found, "encoder."), part(expected, "encoder.")
    if encoder_found != encoder_here:
        odd = next((k for k in encoder_here if encoder_found.get(k) != encoder_here[k]),
                   next(iter(encoder_found.keys() - encoder_here.keys()), ""))
        differences.append(f"its encoder is another network (first difference {odd}: "
                           f"{encoder_found.get(odd, 'absent')} there, {encoder_here.get(odd, 'absent')} here)")
    for prefix, what in (("aggregators.", "task aggregators"), ("pretext.", "pretext heads")):
        if part(found, prefix) != part(expected, prefix) and not differences:
            differences.append(f"its {what} differ")
    return "; ".join(differences)
