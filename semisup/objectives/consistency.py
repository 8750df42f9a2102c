"""Consistency objectives on unlabeled clips: the API and its registry.

A consistency objective learns from unlabeled clips through the task heads
themselves: the model's (or its teacher's) predictions on one view of a clip
become the targets of its predictions on another view. A recipe adds one
with a ``[[consistency]]`` table::

    [[consistency]]
    name = "fixmatch"          # built-in: fixmatch, mean-teacher; a plug-in; or package.module:Class
    weight = 1.0               # the unlabeled loss weight (lambda_u), added to the supervised loss
    start_epoch = 2            # epochs of supervised training before it starts
    warmup_epochs = 1.0        # then the weight ramps up linearly from 0 over these epochs
    frames_per_trailer = 4     # frames of each unlabeled clip
    threshold = "cap"          # the method's own options (its Options dataclass)

A plug-in subclasses :class:`ConsistencyObjective`, sets ``Options`` and
implements :meth:`~semisup.objectives.base.Objective.forward`; its
constructor receives the tasks, their losses and their labeled class priors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

import torch
from torch import nn

from semisup.objectives.base import Objective, StepContext
from semisup.registry import CatalogueEntry, Registry

if TYPE_CHECKING:
    from semisup.data.samples import TaskSpec
    from semisup.models import TrailerModel


class ConsistencyObjective(Objective):
    """Base class of consistency methods over the task heads.

    Args:
        options: an instance of the subclass's ``Options``.
        tasks: the labeled tasks (name, vocabulary, kind).
        losses: each task's loss (with ``masked(logits, targets, mask)``).
        priors: per task, ``(C,)`` each class's share among the labeled train samples.
        weight: the unlabeled loss weight.
        warmup_epochs: epochs over which the weight ramps up from 0 (after ``start_epoch``).
        lr: the learning rate of its own Adam (``own_optimizer``; 0: optim.lr).
        start_epoch: epochs of training before the objective starts (the teacher
            first learns from the labels: CAP and FixMatch-style methods start
            from a supervised warm-up).
        own_optimizer: step its loss with an Adam of its own in separate mode; by
            default its weighted loss joins the supervised loss in one step, as in
            FixMatch (``L = L_s + lambda_u L_u``).
    """

    stream = "unlabeled"
    name: ClassVar[str] = ""

    @dataclass(frozen=True)
    class Options:
        """No options."""

    @classmethod
    def needs_teacher(cls, options: "ConsistencyObjective.Options") -> bool:
        """Whether the run must keep an EMA teacher for this objective."""
        return False

    def __init__(self, options: "ConsistencyObjective.Options", tasks: Sequence["TaskSpec"],
                 losses: dict[str, nn.Module], priors: dict[str, torch.Tensor], weight: float = 1.0,
                 warmup_epochs: float = 0.0, lr: float = 0.0, start_epoch: float = 0.0,
                 own_optimizer: bool = False) -> None:
        super().__init__(f"consistency/{type(self).name}", weight=1.0, lr=lr, group="consistency",
                         optimizer="" if own_optimizer else "supervised")
        self.options, self.tasks = options, list(tasks)
        self.losses = nn.ModuleDict(losses)
        self.unlabeled_weight, self.warmup_epochs, self.start_epoch = weight, warmup_epochs, start_epoch
        for name, prior in priors.items():
            self.register_buffer(f"prior_{name}", torch.as_tensor(prior, dtype=torch.float32))

    def active(self, context: StepContext) -> bool:
        return context.epoch >= self.start_epoch

    def weight_now(self, context: StepContext) -> float:
        """The unlabeled loss weight at this step: ``weight`` times the warm-up ramp."""
        return self.unlabeled_weight * context.ramp(self.warmup_epochs, self.start_epoch)

    def trained_parameters(self, model: "TrailerModel") -> list[nn.Parameter]:
        """The task heads and aggregators and the trainable encoder: what the supervised loss trains."""
        return model.supervised_parameters()


def activation(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Probabilities: sigmoid per label (multi-label) or softmax over classes (multi-class)."""
    logits = logits.float()
    return torch.sigmoid(logits) if kind == "multilabel" else torch.softmax(logits, 1)


CONSISTENCY: Registry = Registry("consistency method", ConsistencyObjective, "semisup.consistency",
                                 "semisup consistency list")
"""Consistency objectives by name: built-ins, ``semisup.consistency`` entry points, ``module:Class`` paths."""

register_consistency = CONSISTENCY.register
"""Class decorator that makes a consistency objective available to recipes by name."""


def get_consistency(name: str, where: str = "consistency") -> type[ConsistencyObjective]:
    """Look up a consistency objective by built-in name, entry point or ``module:Class`` path.

    Raises:
        SemisupError: unknown (with a did-you-mean) or broken plug-in.
    """
    return CONSISTENCY.get(name, where)


def consistency_catalogue() -> list[CatalogueEntry]:
    """Every consistency objective found: built-ins, then installed plug-ins."""
    return CONSISTENCY.catalogue()
