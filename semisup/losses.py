"""Losses of the labeled tasks.

Multi-class tasks (shot scale, shot movement) use cross-entropy, with the
usual tools against class imbalance, each optional (:class:`MulticlassLoss`):
label smoothing, the focal term of Lin et al. 2017, class-balanced weights
from the effective number of samples (Cui et al. 2019), and logit adjustment
by the class prior (Menon et al. 2021).

Multi-label tasks use Asymmetric Loss (Ben-Baruch et al., "Asymmetric Loss
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

from typing import Literal, Sequence

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
        self.per_label = AsymmetricLossMultiLabel(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, eps=eps,
                                                  reduction="none")
        self.reduction = reduction

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

    def masked(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Loss over the labels where ``mask (B, C)`` is 1 (pseudo-labels: confident ones only).

        Reduced like the labeled loss over all ``B`` rows (``batchmean``: sum over
        labels, mean over rows; ``mean``: also over labels), so a masked-out label
        counts as zero, as FixMatch averages over the whole unlabeled batch.

        Example:
            >>> loss = AsymmetricLoss()
            >>> x, y = torch.zeros(2, 3), torch.tensor([[1., 0, 0], [0, 1, 1]])
            >>> bool(torch.isclose(loss.masked(x, y, torch.ones(2, 3)), loss(x, y)))
            True
            >>> loss.masked(x, y, torch.zeros(2, 3)).item()
            0.0
        """
        per_label = self.per_label(logits.float(), targets.float()) * mask
        return per_label.sum() / (logits.shape[0] * (logits.shape[1] if self.reduction == "mean" else 1))


def class_balanced_weights(counts: Sequence[int], beta: float) -> torch.Tensor:
    """Per-class weights ``(1 - beta) / (1 - beta^n_c)``, scaled to average 1 (Cui et al. 2019).

    ``beta`` near 1 weighs classes by the inverse of their count, ``beta = 0``
    equally. A class without samples gets the largest weight of the others.

    Example:
        >>> class_balanced_weights([900, 90, 10], 0.999).round(decimals=3)
        tensor([0.0440, 0.3060, 2.6490])
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    n = torch.as_tensor(counts, dtype=torch.float64)
    weights = (1 - beta) / (1 - beta ** n.clamp_min(1))
    weights[n == 0] = weights[n > 0].max() if bool((n > 0).any()) else 1.0
    return (weights * len(n) / weights.sum()).float()


class MulticlassLoss(nn.Module):
    """Cross-entropy for multi-class tasks over the labeled rows, in fp32, with imbalance tools.

    With every option off this is plain cross-entropy. Targets come one-hot
    ``(B, C)`` like the multi-label ones.

    Args:
        label_smoothing: share of the target mass spread evenly over the classes.
        focal_gamma: > 0 multiplies each sample's loss by ``(1 - p_t)^gamma``
            (focal loss): confident, easy samples (the majority classes) count less.
        class_weights: ``(C,)`` per-class weights (e.g. :func:`class_balanced_weights`), or None.
        logit_adjustment: ``tau``; adds ``tau * log(prior)`` to the logits in the
            loss only, so the model learns margins that favour rare classes at
            prediction time (Menon et al. 2021). Needs ``class_counts``.
        class_counts: ``(C,)`` labeled training samples per class (the prior).

    Example:
        >>> round(MulticlassLoss()(torch.zeros(2, 4), torch.eye(4)[:2]).item(), 4)  # log(4)
        1.3863
    """

    def __init__(self, label_smoothing: float = 0.0, focal_gamma: float = 0.0,
                 class_weights: torch.Tensor | None = None, logit_adjustment: float = 0.0,
                 class_counts: Sequence[int] | None = None) -> None:
        super().__init__()
        if not 0 <= label_smoothing < 1 or focal_gamma < 0 or logit_adjustment < 0:
            raise ValueError("label_smoothing must be in [0, 1), focal_gamma and logit_adjustment >= 0; got "
                             f"{label_smoothing}, {focal_gamma}, {logit_adjustment}")
        if logit_adjustment and class_counts is None:
            raise ValueError("logit adjustment needs the class counts")
        self.label_smoothing, self.focal_gamma, self.tau = label_smoothing, focal_gamma, logit_adjustment
        self.register_buffer("class_weights", None if class_weights is None else torch.as_tensor(class_weights).float())
        prior = None
        if class_counts is not None:
            counts = torch.as_tensor(class_counts, dtype=torch.float32).clamp_min(1)  # an absent class: as if 1
            prior = torch.log(counts / counts.sum())
        self.register_buffer("log_prior", prior)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                labeled: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss of ``logits (B, C)`` against one-hot ``targets (B, C)``; see :class:`AsymmetricLoss`."""
        if labeled is not None:
            if not bool(labeled.any()):
                return logits.float().sum() * 0.0
            logits, targets = logits[labeled], targets[labeled]
        logits, classes = logits.float(), targets.argmax(1)
        if self.tau:
            logits = logits + self.tau * self.log_prior
        if not self.focal_gamma:
            return F.cross_entropy(logits, classes, weight=self.class_weights, label_smoothing=self.label_smoothing)
        per_sample = F.cross_entropy(logits, classes, weight=self.class_weights,
                                     label_smoothing=self.label_smoothing, reduction="none")
        p_true = torch.softmax(logits, 1).gather(1, classes[:, None]).squeeze(1)
        focal = (1 - p_true).pow(self.focal_gamma) * per_sample
        if self.class_weights is None:
            return focal.mean()
        return focal.sum() / self.class_weights[classes].sum()  # the weighted mean, as cross_entropy takes it

    def masked(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Loss over the rows where ``mask (B,)`` is 1, summed and divided by ``B`` (FixMatch's
        mean over the whole unlabeled batch), with the task's imbalance options.

        Example:
            >>> loss = MulticlassLoss()
            >>> x, y = torch.zeros(2, 4), torch.eye(4)[:2]
            >>> round(loss.masked(x, y, torch.tensor([1., 0])).item(), 4)  # log(4) / 2
            0.6931
        """
        logits, classes = logits.float(), targets.argmax(1)
        if self.tau:
            logits = logits + self.tau * self.log_prior
        per_sample = F.cross_entropy(logits, classes, weight=self.class_weights,
                                     label_smoothing=self.label_smoothing, reduction="none")
        if self.focal_gamma:
            p_true = torch.softmax(logits, 1).gather(1, classes[:, None]).squeeze(1)
            per_sample = (1 - p_true).pow(self.focal_gamma) * per_sample
        return (per_sample * mask).sum() / logits.shape[0]

    def extra_repr(self) -> str:
        return (f"label_smoothing={self.label_smoothing}, focal_gamma={self.focal_gamma}, "
                f"class_weights={self.class_weights is not None}, logit_adjustment={self.tau}")
