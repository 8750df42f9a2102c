"""The teacher: an exponential moving average of the model's weights (timm's ``ModelEmaV3``).

Mean Teacher (Tarvainen & Valpola, 2017) trains the student towards an EMA
of its own weights, whose predictions are steadier than the student's;
FixMatch may take its pseudo-labels from the same teacher. The decay ramps
up as in Mean Teacher, ``min(decay, 1 - 1 / (step + 1))``, so that early on
the teacher follows the student instead of its random start.
"""

from __future__ import annotations

import torch
from timm.utils import ModelEmaV3
from torch import nn


class EmaTeacher(nn.Module):
    """An EMA copy of ``model``, always in eval mode.

    Args:
        model: the student (copied, weights and buffers).
        decay: the EMA decay once ramped up (Mean Teacher: 0.99 - 0.999).

    Example:
        >>> student = nn.Linear(1, 1, bias=False)
        >>> teacher = EmaTeacher(student, decay=0.5)
        >>> with torch.no_grad():
        ...     _ = student.weight.fill_(1.0)
        ...     _ = teacher.module.weight.fill_(0.0)
        ...     teacher.update(student, step=10)          # ramped up: decay 0.5
        >>> teacher.module.weight.item()
        0.5
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.ema = ModelEmaV3(model, decay=decay, use_warmup=True, warmup_gamma=1.0, warmup_power=1.0)

    @property
    def module(self) -> nn.Module:
        """The teacher network."""
        return self.ema.module

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the teacher towards ``model`` after optimiser step ``step`` (0-based)."""
        self.ema.update(model, step=step + 1)
