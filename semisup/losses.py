"""Losses of the labeled tasks.

Multi-class tasks (shot scale, shot movement) use cross-entropy. Multi-label tasks use Asymmetric Loss (Ben-Baruch et al., "Asymmetric Loss
For Multi-Label Classification", ICCV 2021, arXiv:2009.14119), taken from
timm: per label, with ``p = sigmoid(logit)`` and ``p_m = max(p - clip, 0)``::

    L = -[ y (1 - p)^gamma_pos log(p) + (1 - y) p_m^gamma_neg log(1 - p_m) ]

computed in fp32 even under autocast. The reduction is a deliberate choice:
``"batchmean"`` (our default) sums over labels and averages over samples,
so the loss does not change with the batch size (the paper's reference sums
over both, which ties the effective learning rate to the batch size and
upsets the balance with pretext losses in joint mode); ``"mean"`` also
averages over labels.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from timm.loss import AsymmetricLossMultiLabel
from torch import nn


class AsymmetricLoss(nn.Module):
    """Asymmetric Loss over the labeled rows of a batch.

    Args:
        gamma_neg: focusing parameter of negatives (paper: 4).
        gamma_pos: focusing parameter of positives (paper: 1).
        clip: probability margin shifted onto negatives (paper: 0.05).
        eps: clamp inside the logs (paper: 1e-8).
        reduction: ``"batchmean"`` or ``"mean"`` (see the module docstring).

    Example:
        >>> loss = AsymmetricLoss()
        >>> loss(torch.zeros(2, 3), torch.tensor([[1., 0, 0], [0, 1, 1]])).shape
        torch.Size([])
    """

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 1.0, clip: float = 0.05, eps: float = 1e-8,
                 reduction: Literal["batchmean", "mean"] = "batchmean") -> None:
        super().__init__()
        if reduction not in ("batchmean", "mean"):
            raise ValueError(f'reduction must be "batchmean" or "mean", got {reduction!r}')
        self.asl = AsymmetricLossMultiLabel(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, eps=eps,
                                            reduction=reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                labeled: torch.Tensor | None = None) -> torch.Tensor:
        """Loss of ``logits (B, C)`` against multi-hot ``targets (B, C)``.

        Args:
            labeled: optional ``(B,)`` bool; rows without labels are left out.
                With no labeled row the loss is a zero that keeps the graph.
        """
        if labeled is not None:
            if not bool(labeled.any()):
                return logits.float().sum() * 0.0
            logits, targets = logits[labeled], targets[labeled]
        return self.asl(logits.float(), targets.float())


class CrossEntropy(nn.Module):
    """Cross-entropy for multi-class tasks, over the labeled rows, in fp32.

    Targets come one-hot ``(B, C)`` like the multi-label ones.

    Example:
        >>> round(CrossEntropy()(torch.zeros(2, 4), torch.eye(4)[:2]).item(), 4)  # log(4)
        1.3863
    """

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                labeled: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy of ``logits (B, C)`` against one-hot ``targets (B, C)``; see :class:`AsymmetricLoss`."""
        if labeled is not None:
            if not bool(labeled.any()):
                return logits.float().sum() * 0.0
            logits, targets = logits[labeled], targets[labeled]
        return F.cross_entropy(logits.float(), targets.argmax(1))


def task_losses(kinds: dict[str, str], multilabel: AsymmetricLoss) -> dict[str, nn.Module]:
    """The loss of each task by its kind: Asymmetric Loss for multi-label, cross-entropy for multi-class."""
    return {name: multilabel if kind == "multilabel" else CrossEntropy() for name, kind in kinds.items()}
