"""The objective API: one way of learning, as the training loop sees it.

An objective takes one stream's batch (the labeled trailers, or the
unlabeled ones) and the model, and returns a loss and its logs. The loop
(:mod:`semisup.train.engine`) is the same for all of them: it hands each
objective its batch, steps the objective's own Adam (``optim.mode =
"separate"``) or one Adam on the weighted sum of all losses (``"joint"``),
and averages the logs over the epoch.

What an objective may ask for:

* ``stream``: ``"labeled"`` (packed frames with targets) or ``"unlabeled"``
  (clips of ``frames`` frames each);
* views: :meth:`StepBatch.view` gives a named augmentation of the batch
  (``"labeled"``, ``"pretext"``, ``"weak"``, ``"strong"``, ``"contrastive"``),
  made once per step and shared by the objectives that ask for it;
* a teacher: ``context.teacher``, the exponential moving average of the
  model (``[ema]``), when the recipe has one.

The built-in objectives: the supervised task losses
(:mod:`~semisup.objectives.supervised`), every pretext task
(:mod:`~semisup.objectives.pretext`, an adapter over the
:class:`~semisup.pretext.PretextTask` plug-in API), the consistency methods
(:mod:`~semisup.objectives.fixmatch`, :mod:`~semisup.objectives.mean_teacher`)
and SimCLR (:mod:`~semisup.objectives.simclr`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Literal, NamedTuple

import torch
from torch import nn

if TYPE_CHECKING:
    from semisup.models import TrailerModel

Stream = Literal["labeled", "unlabeled"]
Augment = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Augments uint8 frames ``(N, 3, S, S)`` given each frame's clip ``owner (N,)`` into normalised floats."""


class ObjectiveOutput(NamedTuple):
    """What an objective returns for one step."""

    loss: torch.Tensor
    """Scalar loss to minimise (already multiplied by any warm-up ramp)."""
    logs: dict[str, float]
    """Numbers to average over the epoch (``loss`` is added by the loop)."""
    images: int
    """Frames this objective put through the encoder (for images/s)."""


@dataclass
class StepBatch:
    """One stream's batch of a step on the training device, with its views made on demand.

    Attributes:
        frames: ``(N, 3, S, S)`` uint8, every trailer's frames contiguous and in time order.
        owner: ``(N,)`` the trailer (0..B-1) each frame belongs to.
        num_trailers: B.
        targets, has_label: per task ``(B, C)`` targets and ``(B,)`` label masks (labeled stream only).
        frames_per_trailer: T when every trailer has T frames (the unlabeled stream), else None.
    """

    frames: torch.Tensor
    owner: torch.Tensor
    num_trailers: int
    augmentations: dict[str, Augment]
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    has_label: dict[str, torch.Tensor] = field(default_factory=dict)
    frames_per_trailer: int | None = None
    _views: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False)

    def view(self, name: str, copy: int = 0) -> torch.Tensor:
        """The frames augmented by the step's ``name`` augmentation, normalised ``(N, 3, S, S)``.

        Made once per step and shared by every objective that asks; ``copy``
        gives further independent draws (SimCLR's second view).
        """
        key = (name, copy)
        if key not in self._views:
            if name not in self.augmentations:
                raise KeyError(f"no {name!r} augmentation in this run (have: {', '.join(self.augmentations)})")
            with torch.profiler.record_function(f"semisup/view:{name}"):
                self._views[key] = self.augmentations[name](self.frames, self.owner)
        return self._views[key]

    def clips(self, frames: torch.Tensor) -> torch.Tensor:
        """Packed frames ``(B*T, ...)`` as clips ``(B, T, ...)`` (streams with T frames per trailer)."""
        if self.frames_per_trailer is None:
            raise ValueError("this stream's trailers have different frame counts")
        return frames.view(self.num_trailers, self.frames_per_trailer, *frames.shape[1:])


@dataclass
class StepContext:
    """Where training is, for objectives that ramp up or read a teacher.

    Attributes:
        step: the global step (0-based), ``total_steps`` of the run, ``steps_per_epoch``.
        teacher: the exponential moving average of the model (``[ema]``), or None.
        autocast: a context manager factory for the forward passes (mixed precision).
    """

    step: int
    steps_per_epoch: int
    total_steps: int
    teacher: "TrailerModel | None"
    autocast: Callable[[], object]

    @property
    def epoch(self) -> float:
        """Epochs done, fractional: 1.5 is half-way through the second epoch."""
        return self.step / self.steps_per_epoch

    def ramp(self, warmup_epochs: float, start_epoch: float = 0.0) -> float:
        """A linear ramp from 0 to 1 over ``warmup_epochs`` epochs from ``start_epoch`` (1 when 0)."""
        if warmup_epochs <= 0:
            return 1.0
        return min(1.0, (self.step + 1 - start_epoch * self.steps_per_epoch) / (warmup_epochs * self.steps_per_epoch))


class Objective(nn.Module, abc.ABC):
    """One way of learning. Subclasses set ``stream`` and implement :meth:`forward`.

    Args:
        name: the objective's name in logs and optimisers (``supervised``,
            ``pretext/sesemi``, ``consistency/fixmatch``, ``simclr``).
        weight: its loss weight in joint mode.
        lr: its Adam learning rate in separate mode (0: ``optim.lr``).
        group: where its logs go in ``metrics.jsonl``: ``""`` (top level,
            e.g. ``loss``), ``"pretext"`` or ``"consistency"`` (``record[group][short name]``).
        optimizer: the name of the optimiser that steps its loss in separate mode: its own
            (its name, the default), or another objective's whose parameters it trains too
            (a consistency method shares ``supervised``: its losses are summed, so its weight
            and warm-up really scale its share of each step, which Adam's per-optimiser
            normalisation would otherwise undo).
    """

    stream: ClassVar[Stream] = "unlabeled"

    def __init__(self, name: str, weight: float = 1.0, lr: float = 0.0, group: str = "",
                 optimizer: str = "") -> None:
        super().__init__()
        self.objective_name, self.weight, self.lr, self.group = name, weight, lr, group
        self.optimizer = optimizer or name

    @abc.abstractmethod
    def forward(self, batch: StepBatch, model: "TrailerModel", context: StepContext) -> ObjectiveOutput:
        """The loss of one step on ``batch``."""

    def active(self, context: StepContext) -> bool:
        """Whether the objective runs this step (e.g. not before a supervised warm-up ends)."""
        return True

    @abc.abstractmethod
    def trained_parameters(self, model: "TrailerModel") -> list[nn.Parameter]:
        """What this objective's own optimiser steps: the trainable encoder plus its heads."""

    @property
    def short_name(self) -> str:
        """The name inside its log group (``sesemi`` for ``pretext/sesemi``)."""
        return self.objective_name.split("/", 1)[-1]
