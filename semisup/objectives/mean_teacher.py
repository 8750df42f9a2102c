"""Mean Teacher: the student's predictions follow an EMA teacher's under different noise.

Tarvainen & Valpola, "Mean teachers are better role models", NeurIPS 2017:
the teacher (an exponential moving average of the student's weights, see
:mod:`semisup.models.ema`) scores one weak view of each unlabeled clip, the
student another; the consistency loss is the squared difference of their
probabilities (sigmoid per label for multi-label tasks, softmax for
multi-class ones), summed over classes and tasks, averaged over clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from semisup.objectives.base import ObjectiveOutput, StepBatch, StepContext
from semisup.objectives.consistency import ConsistencyObjective, activation, register_consistency

if TYPE_CHECKING:
    from semisup.models import TrailerModel


@register_consistency("mean-teacher")
class MeanTeacher(ConsistencyObjective):
    """Squared-error consistency between the EMA teacher and the student on two views."""

    @dataclass(frozen=True)
    class Options:
        """No options besides the common ones (weight, warmup_epochs, frames_per_trailer); the
        teacher's decay is ``[ema] decay``."""

    @classmethod
    def needs_teacher(cls, options: "MeanTeacher.Options") -> bool:
        return True

    def forward(self, batch: StepBatch, model: "TrailerModel", context: StepContext) -> ObjectiveOutput:
        if context.teacher is None:
            raise RuntimeError("mean-teacher needs the run's EMA teacher")
        teacher_view, student_view = batch.view("weak"), batch.view("weak", copy=1)
        with torch.no_grad(), context.autocast():
            teacher_logits = context.teacher(teacher_view, batch.owner, batch.num_trailers)
        with context.autocast():
            student_logits = model(student_view, batch.owner, batch.num_trailers)
        loss, logs = torch.zeros((), device=teacher_view.device), {}
        for task in self.tasks:
            target = activation(teacher_logits[task.name], task.kind)
            gap = (activation(student_logits[task.name], task.kind) - target).pow(2).sum(1).mean()
            loss = loss + gap
            logs[f"{task.name}_gap"] = gap.item()
        return ObjectiveOutput(self.weight_now(context) * loss, logs, 2 * len(teacher_view))
