"""Pseudo-labels: which of a teacher's predictions on unlabeled clips count as targets.

A :class:`Thresholds` object per task turns the teacher's probabilities
``(B, C)`` into ``targets`` and a ``mask`` of the entries confident enough
to train on. Multi-label tasks (sigmoid scores) get per-label decisions: a
confident positive, a confident negative, or ignored. Multi-class tasks
(softmax) get one decision per sample: its arg-max class, or ignored.

Three rules, chosen by ``threshold`` in the recipe:

* ``fixed`` (FixMatch, Sohn et al. 2020): positive at ``p >= positive``;
  multi-label negative at ``p <= negative``.
* ``cap`` (class-distribution-aware, Xie et al., NeurIPS 2023): per-class
  thresholds chosen so that each class's share of pseudo-positives on recent
  unlabeled clips matches its share among the labeled ones (``keep`` < 1
  keeps only the most confident part of it), re-estimated every step from a
  memory of the teacher's recent scores.
* ``freematch`` (self-adaptive, Wang et al., ICLR 2023): a global threshold
  that follows the teacher's mean confidence (an EMA), scaled per class by
  that class's own EMA confidence relative to the most confident class.

The state of each rule (memory, EMAs) is in buffers: saved in checkpoints,
so a resumed run continues with the same thresholds.
"""

from __future__ import annotations

import abc
from typing import Literal

import torch
from torch import nn

Kind = Literal["multilabel", "multiclass"]
RULES: tuple[str, ...] = ("fixed", "cap", "freematch")


class Thresholds(nn.Module, abc.ABC):
    """Turns one task's teacher probabilities into pseudo-targets and a confidence mask.

    Args:
        kind: ``multilabel`` (per-label decisions, ``mask (B, C)``) or
            ``multiclass`` (per-sample decisions, ``mask (B,)``).
        classes: C.
    """

    def __init__(self, kind: Kind, classes: int) -> None:
        super().__init__()
        self.kind, self.classes = kind, classes

    def observe(self, probs: torch.Tensor) -> None:
        """Learn from a batch of teacher probabilities (before :meth:`decide` on the same batch)."""

    @abc.abstractmethod
    def positive_thresholds(self) -> torch.Tensor:
        """``(C,)``: the score at or above which a class is a confident (pseudo-)positive."""

    def negative_thresholds(self) -> torch.Tensor:
        """``(C,)`` multi-label: the score at or below which a label is a confident negative."""
        raise NotImplementedError

    @torch.no_grad()
    def decide(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(targets, mask)`` for ``probs (B, C)``: multi-hot / one-hot float targets ``(B, C)``,
        and a float mask, ``(B, C)`` for multi-label, ``(B,)`` for multi-class."""
        probs = probs.float()
        if self.kind == "multilabel":
            positive = probs >= self.positive_thresholds()
            negative = probs <= self.negative_thresholds()
            return positive.float(), (positive | negative).float()
        confidence, best = probs.max(1)
        targets = torch.nn.functional.one_hot(best, self.classes).float()
        return targets, (confidence >= self.positive_thresholds()[best]).float()


class FixedThresholds(Thresholds):
    """The same thresholds for every class and step.

    Example:
        >>> rule = FixedThresholds("multilabel", 3, positive=0.9, negative=0.1)
        >>> targets, mask = rule.decide(torch.tensor([[0.95, 0.5, 0.05]]))
        >>> targets.tolist(), mask.tolist()
        ([[1.0, 0.0, 0.0]], [[1.0, 0.0, 1.0]])
    """

    def __init__(self, kind: Kind, classes: int, positive: float = 0.95, negative: float = 0.05) -> None:
        super().__init__(kind, classes)
        self.register_buffer("positive", torch.full((classes,), positive))
        self.register_buffer("negative", torch.full((classes,), negative))

    def positive_thresholds(self) -> torch.Tensor:
        return self.positive

    def negative_thresholds(self) -> torch.Tensor:
        return self.negative


class CapThresholds(Thresholds):
    """Class-distribution-aware thresholds from a memory of recent teacher scores.

    Multi-label: class ``c``'s positive threshold is the ``1 - keep * prior_c``
    quantile of its recent scores (so a share ``keep * prior_c`` of clips is
    pseudo-positive), its negative threshold the ``(1 - prior_c) * keep``
    quantile (a share ``keep * (1 - prior_c)`` pseudo-negative); ``keep = 1``
    labels every entry, as CAP does. Multi-class: among recent clips predicted
    ``c``, the most confident ones up to a share ``keep * prior_c`` of all
    clips are kept.

    Args:
        prior: ``(C,)`` each class's share among the labeled samples (multi-label:
            positive rate per class; multi-class: class frequencies).
        memory: how many recent clips the quantiles come from.
        keep: the share of the expected labels kept as confident.

    Example:
        >>> rule = CapThresholds("multilabel", torch.tensor([0.25, 0.5]), memory=8)
        >>> rule.observe(torch.tensor([[0.9, 0.8], [0.1, 0.7], [0.2, 0.3], [0.3, 0.2]]))
        >>> rule.decide(torch.tensor([[0.9, 0.8], [0.1, 0.7], [0.2, 0.3], [0.3, 0.2]]))[0].sum(0).tolist()
        [1.0, 2.0]
    """

    def __init__(self, kind: Kind, prior: torch.Tensor, memory: int = 256, keep: float = 1.0) -> None:
        super().__init__(kind, len(prior))
        self.keep = keep
        self.register_buffer("prior", torch.as_tensor(prior, dtype=torch.float32).clamp(1e-4, 1 - 1e-4))
        self.register_buffer("memory", torch.zeros(memory, len(prior)))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("cursor", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def observe(self, probs: torch.Tensor) -> None:
        size = len(self.memory)
        for row in probs.detach().float()[-size:]:  # a ring buffer of the latest clips
            self.memory[self.cursor] = row
            self.cursor.copy_((self.cursor + 1) % size)
        self.filled.copy_(torch.clamp(self.filled + len(probs), max=size))

    def _recent(self) -> torch.Tensor:
        return self.memory[: int(self.filled)]

    def positive_thresholds(self) -> torch.Tensor:
        recent = self._recent()
        if not len(recent):
            return torch.ones(self.classes, device=self.memory.device)
        if self.kind == "multilabel":
            return _column_quantiles(recent, 1 - self.keep * self.prior)
        confidence, best = recent.max(1)
        out = torch.ones(self.classes, device=recent.device)
        for c in range(self.classes):
            mine = confidence[best == c]
            if len(mine):
                quota = self.keep * self.prior[c] * len(recent)  # how many clips class c may take
                out[c] = 0.0 if quota >= len(mine) else torch.quantile(mine, 1 - float(quota) / len(mine))
        return out

    def negative_thresholds(self) -> torch.Tensor:
        recent = self._recent()
        if not len(recent):
            return torch.zeros(self.classes, device=self.memory.device)
        return _column_quantiles(recent, (1 - self.prior) * self.keep)


class FreeMatchThresholds(Thresholds):
    """Self-adaptive thresholds (FreeMatch): a global threshold that follows the teacher's
    mean confidence (an EMA), scaled per class by the class's EMA share of predictions
    relative to the largest one, so rarely predicted classes get lower thresholds.

    Multi-class: as in the paper, the top probability must reach the threshold of
    its class (global confidence starts at ``1 / C``). Multi-label: each label is
    its own binary problem (positive or negative), with its own global confidence
    (the EMA of ``max(p, 1 - p)``) scaled by the EMA share of positive (or negative)
    probability mass, and, as in any two-class FreeMatch, a decision needs the
    winning side: ``p >= max(1/2, t_pos)`` is a positive, ``1 - p >= max(1/2, t_neg)``
    a negative.

    Args:
        momentum: EMA momentum (FreeMatch: 0.999).

    Example:
        >>> rule = FreeMatchThresholds("multiclass", 2, momentum=0.0)   # no memory: this batch only
        >>> rule.observe(torch.tensor([[0.9, 0.1], [0.7, 0.3]]))
        >>> [round(t, 2) for t in rule.positive_thresholds().tolist()]
        [0.8, 0.2]
    """

    def __init__(self, kind: Kind, classes: int, momentum: float = 0.999) -> None:
        super().__init__(kind, classes)
        self.momentum = momentum
        if kind == "multilabel":
            self.register_buffer("confidence", torch.full((classes,), 0.5))     # per label
            self.register_buffer("share", torch.full((classes,), 0.5))          # positive mass per label
        else:
            self.register_buffer("confidence", torch.tensor(1.0 / classes))     # global
            self.register_buffer("share", torch.full((classes,), 1.0 / classes))

    @torch.no_grad()
    def observe(self, probs: torch.Tensor) -> None:
        probs, m = probs.detach().float(), self.momentum
        if self.kind == "multilabel":
            self.confidence.mul_(m).add_((1 - m) * torch.maximum(probs, 1 - probs).mean(0))
        else:
            self.confidence.mul_(m).add_((1 - m) * probs.max(1).values.mean())
        self.share.mul_(m).add_((1 - m) * probs.mean(0))

    def positive_thresholds(self) -> torch.Tensor:
        if self.kind == "multilabel":
            return (self.confidence * self.share / torch.maximum(self.share, 1 - self.share)).clamp_min(0.5)
        return self.confidence * self.share / self.share.max()

    def negative_thresholds(self) -> torch.Tensor:
        negative = 1 - self.share
        return 1 - (self.confidence * negative / torch.maximum(self.share, negative)).clamp_min(0.5)


def _column_quantiles(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per column ``c`` of ``values (N, C)``, its ``q[c]`` quantile (linear interpolation)."""
    ordered = values.sort(0).values
    position = q.clamp(0, 1) * (len(values) - 1)
    low, high = position.floor().long(), position.ceil().long()
    columns = torch.arange(values.shape[1], device=values.device)
    frac = position - low
    return ordered[low, columns] * (1 - frac) + ordered[high, columns] * frac


def build_thresholds(rule: str, kind: Kind, prior: torch.Tensor, positive: float, negative: float,
                     memory: int, keep: float, momentum: float) -> Thresholds:
    """The thresholds of rule ``fixed``, ``cap`` or ``freematch`` for one task."""
    if rule == "fixed":
        return FixedThresholds(kind, len(prior), positive, negative)
    if rule == "cap":
        return CapThresholds(kind, prior, memory, keep)
    if rule == "freematch":
        return FreeMatchThresholds(kind, len(prior), momentum)
    raise ValueError(f"threshold rule must be one of {', '.join(RULES)}, got {rule!r}")
