"""FixMatch for multi-label and multi-class tasks, with fixed, class-distribution-aware
(CAP) or self-adaptive (FreeMatch) thresholds.

For every unlabeled clip the teacher (the model itself without gradient, or
its EMA, ``teacher = "ema"``) scores a weak view (crop, flip); the confident
part of its probabilities becomes per-class targets
(:mod:`semisup.objectives.pseudo`), and the student's predictions on a
strong view (colour, posterize, solarize, ... and random erasing) learn them
with the task's own loss: Asymmetric Loss over the confident labels of
multi-label tasks, cross-entropy over the confident clips of multi-class
ones. Sohn et al., "FixMatch", NeurIPS 2020; Xie et al., "Class-Distribution-
Aware Pseudo-Labeling for Semi-Supervised Multi-Label Learning", NeurIPS 2023;
Wang et al., "FreeMatch", ICLR 2023.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semisup import distributed
from semisup.errors import check_option
from semisup.objectives.base import ObjectiveOutput, StepBatch, StepContext
from semisup.objectives.consistency import ConsistencyObjective, activation, register_consistency
from semisup.objectives.pseudo import Thresholds, build_thresholds

if TYPE_CHECKING:
    from semisup.data.samples import TaskSpec
    from semisup.models import TrailerModel


@register_consistency("fixmatch")
class FixMatch(ConsistencyObjective):
    """Pseudo-labels from a weak view, learned on a strong view, per task."""

    @dataclass(frozen=True)
    class Options:
        """FixMatch's options.

        Attributes:
            threshold: ``fixed``, ``cap`` (class-distribution-aware) or ``freematch`` (self-adaptive).
            positive: fixed: the probability of a confident positive (multi-class: of the top class).
            negative: fixed, multi-label: the score at or below which a label is a confident negative.
            keep: cap: the share of the expected positives and negatives kept (1 = every label, as CAP).
            memory: cap: how many recent clips the per-class quantiles come from.
            momentum: freematch: the EMA momentum of the confidences.
            teacher: ``self`` (the model's own weak-view predictions) or ``ema`` (the EMA teacher, ``[ema]``).
            targets: multi-label: ``hard`` (a confident entry's target is 0 or 1, as FixMatch,
                learned with the task's loss) or ``soft`` (its target is the teacher's probability,
                sharpened by ``temperature``, learned with binary cross-entropy: a wrong but unsure
                teacher pulls the student less). Multi-class tasks always take the arg-max class.
            temperature: soft targets: ``sigmoid(logit / temperature)``; below 1 sharpens.
            positives: multi-label: ``false`` keeps only the confident negatives ("this trailer
                is not a Western"), which a weak teacher gets right far more often than its
                positives (negative learning, Rizve et al., "In Defense of Pseudo-Labeling", ICLR 2021).
            min_precision: > 0: a guard on top of the threshold rule, measured where labels are
                known. At every validation, per class, the lowest score at which the teacher's
                positives on the validation trailers are right at least this often (and, multi-
                label, the highest score at which its negatives are), counted pessimistically
                (right / (kept + 1)); pseudo-labels must also clear those scores. A class whose
                validation positives never reach it gets no pseudo-positives, and before the first
                validation nothing is confident.
        """

        threshold: Literal["fixed", "cap", "freematch"] = "cap"
        positive: float = 0.95
        negative: float = 0.05
        keep: float = 1.0
        memory: int = 256
        momentum: float = 0.999
        teacher: Literal["self", "ema"] = "self"
        targets: Literal["hard", "soft"] = "hard"
        temperature: float = 1.0
        positives: bool = True
        min_precision: float = 0.0

        def __post_init__(self) -> None:
            if not 0 < self.negative < self.positive < 1:
                raise ValueError(f"expected 0 < negative < positive < 1, got {self.negative}, {self.positive}")
            check_option(0 < self.keep <= 1, "keep", "0 < keep <= 1", self.keep)
            check_option(self.memory >= 1, "memory", "memory >= 1", self.memory)
            check_option(0 <= self.momentum < 1, "momentum", "0 <= momentum < 1", self.momentum)
            if not 0 <= self.min_precision < 1:
                raise ValueError(f"expected 0 <= min_precision < 1, got {self.min_precision}")
            check_option(self.targets in ("hard", "soft"), "targets", '"hard" or "soft"', self.targets)
            check_option(self.temperature > 0, "temperature", "temperature > 0", self.temperature)

    @classmethod
    def needs_teacher(cls, options: "FixMatch.Options") -> bool:
        return options.teacher == "ema"

    def __init__(self, options: "FixMatch.Options", tasks: Sequence["TaskSpec"], losses: dict[str, nn.Module],
                 priors: dict[str, torch.Tensor], weight: float = 1.0, warmup_epochs: float = 0.0,
                 lr: float = 0.0, start_epoch: float = 0.0, own_optimizer: bool = False) -> None:
        super().__init__(options, tasks, losses, priors, weight, warmup_epochs, lr, start_epoch, own_optimizer)
        o = options
        self.thresholds = nn.ModuleDict({t.name: build_thresholds(o.threshold, t.kind, priors[t.name], o.positive,
                                                                  o.negative, o.memory, o.keep, o.momentum)
                                         for t in self.tasks})
        self.guards = nn.ModuleDict({t.name: PrecisionGuard(t.kind, len(t.labels), o.min_precision)
                                     for t in self.tasks if o.min_precision > 0})

    def forward(self, batch: StepBatch, model: "TrailerModel", context: StepContext) -> ObjectiveOutput:
        weak, strong = batch.view("weak"), batch.view("strong")
        teacher = context.teacher if self.options.teacher == "ema" else model
        if teacher is None:
            raise RuntimeError("fixmatch with teacher = \"ema\" needs the run's EMA teacher")
        with torch.no_grad(), context.autocast():
            teacher_logits = teacher(weak, batch.owner, batch.num_trailers)
        with context.autocast():
            student_logits = model(strong, batch.owner, batch.num_trailers)
        loss, logs = torch.zeros((), device=weak.device), {}
        for task in self.tasks:
            probs = activation(teacher_logits[task.name], task.kind)
            rule: Thresholds = self.thresholds[task.name]
            rule.observe(distributed.gather_rows(probs))  # every process's clips: one estimate for all
            targets, mask = self.pseudo_targets(task.name, task.kind, probs)
            loss = loss + self.student_loss(task.name, task.kind, student_logits[task.name], targets, mask)
            logs[f"{task.name}_mask_rate"] = mask.mean().item()
        return ObjectiveOutput(self.weight_now(context) * loss, logs, 2 * len(weak))

    @torch.no_grad()
    def pseudo_targets(self, task: str, kind: str, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(targets, mask)`` for one task's teacher probabilities ``(B, C)``: the task's
        threshold rule, then the ``positives`` and ``targets`` options (multi-label)."""
        targets, mask = self.thresholds[task].decide(probs)
        if task in self.guards:
            mask = mask * self.guards[task].admits(probs, targets)
        if kind != "multilabel":
            return targets, mask
        if not self.options.positives:
            mask = mask * (1 - targets)
        if self.options.targets == "soft":
            targets = sharpen(probs.float(), self.options.temperature)
        return targets, mask

    def student_loss(self, task: str, kind: str, logits: torch.Tensor, targets: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
        """The student's loss on the strong view: the task's own loss on hard targets. Soft
        multi-label targets take binary cross-entropy instead, summed over the masked labels and
        averaged over clips like the task loss: its minimum is at the target, where Asymmetric
        Loss's focusing (negatives weighted by ``p ** gamma_neg``) would push every score above
        its soft target, and the teacher's next targets with it."""
        if kind == "multilabel" and self.options.targets == "soft":
            per_label = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")
            return (per_label * mask).sum() / logits.shape[0]
        return self.losses[task].masked(logits, targets, mask)

    @torch.no_grad()
    def calibrate(self, scores: dict[str, np.ndarray], targets: dict[str, np.ndarray],
                  labeled: dict[str, np.ndarray]) -> None:
        """Re-measure the ``min_precision`` guards on validation (the arguments as
        :meth:`pseudo_label_quality`'s); nothing without them."""
        for task in self.tasks:
            if task.name in self.guards:
                keep = labeled[task.name]
                self.guards[task.name].calibrate(torch.as_tensor(scores[task.name][keep], dtype=torch.float32),
                                                 torch.as_tensor(targets[task.name][keep], dtype=torch.float32))

    @torch.no_grad()
    def pseudo_label_quality(self, scores: dict[str, np.ndarray], targets: dict[str, np.ndarray],
                             labeled: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
        """How the current thresholds would pseudo-label the validation clips, per task:
        ``mask_rate`` (share of confident entries), ``precision`` (share of them that are right)
        and, for multi-label tasks, ``positive_precision`` (share of confident positives that are
        true labels: negatives are easy and dominate ``precision``).

        Args:
            scores, targets, labeled: per task, validation probabilities ``(N, C)``, targets ``(N, C)``
                and which samples are labeled ``(N,)``.
        """
        out = {}
        for task in self.tasks:
            rule: Thresholds = self.thresholds[task.name]
            keep = labeled[task.name]
            probs = torch.as_tensor(scores[task.name][keep], dtype=torch.float32, device=rule_device(rule))
            truth = torch.as_tensor(targets[task.name][keep], dtype=torch.float32, device=probs.device)
            if not len(probs):
                continue
            pseudo, mask = self.pseudo_targets(task.name, task.kind, probs)
            pseudo = (pseudo >= 0.5).float() if task.kind == "multilabel" else pseudo
            right = (pseudo == truth).float() if task.kind == "multilabel" else (pseudo.argmax(1) == truth.argmax(1)).float()
            out[task.name] = {"mask_rate": float(mask.mean()), "precision": _share(right, mask)}
            if task.kind == "multilabel":
                out[task.name]["positive_precision"] = _share(truth, pseudo * mask)
        return out


class PrecisionGuard(nn.Module):
    """Per class, the scores a pseudo-label must clear so that, on labeled validation
    trailers, the teacher's labels at or beyond them were right at least ``bar`` of the time.

    Precision is counted pessimistically, ``right / (kept + 1)``: one lucky trailer is not
    evidence. Until :meth:`calibrate` runs, nothing is admitted.

    Example:
        >>> guard = PrecisionGuard("multilabel", 1, bar=0.7)
        >>> scores = torch.tensor([[0.9], [0.8], [0.7], [0.6], [0.2], [0.1]])
        >>> guard.calibrate(scores, torch.tensor([[1.0], [1], [1], [0], [0], [0]]))
        >>> round(guard.positive.item(), 2), round(guard.negative.item(), 2)  # 3 right of 3, counted 3/4
        (0.7, 0.6)
    """

    def __init__(self, kind: str, classes: int, bar: float) -> None:
        super().__init__()
        self.kind, self.bar = kind, bar
        self.register_buffer("positive", torch.full((classes,), 2.0))   # above any probability: none yet
        self.register_buffer("negative", torch.full((classes,), -1.0))  # below any: none yet

    @torch.no_grad()
    def calibrate(self, scores: torch.Tensor, targets: torch.Tensor) -> None:
        """Set the guards from validation probabilities ``(N, C)`` and their 0/1 targets."""
        scores, targets = scores.to(self.positive.device), targets.to(self.positive.device)
        for c in range(len(self.positive)):
            if self.kind == "multilabel":
                self.positive[c] = _lowest_precise_cut(scores[:, c], targets[:, c], self.bar)
                self.negative[c] = -_lowest_precise_cut(-scores[:, c], 1 - targets[:, c], self.bar)
            else:  # among the trailers the teacher puts in class c, how sure it must be
                mine = scores.argmax(1) == c
                self.positive[c] = _lowest_precise_cut(scores[mine, c], targets[mine, c], self.bar)

    def admits(self, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """A 0/1 mask like the rule's: ``(B, C)`` multi-label (positives at or above
        ``positive``, negatives at or below ``negative``), ``(B,)`` multi-class."""
        probs = probs.float()
        if self.kind == "multilabel":
            return torch.where(targets > 0, probs >= self.positive, probs <= self.negative).float()
        confidence, best = probs.max(1)
        return (confidence >= self.positive[best]).float()


def _lowest_precise_cut(scores: torch.Tensor, hits: torch.Tensor, bar: float) -> torch.Tensor:
    """The lowest cut ``t`` (one of ``scores``) with ``hits[scores >= t].sum() / (count + 1) >= bar``;
    2.0 (above any probability) when there is none."""
    if not len(scores):
        return torch.tensor(2.0, device=scores.device)
    order = scores.argsort(descending=True)
    right = hits[order].cumsum(0)
    kept = torch.arange(1, len(scores) + 1, device=scores.device, dtype=right.dtype)
    precise = torch.nonzero(right / (kept + 1) >= bar).flatten()
    if not len(precise):
        return torch.tensor(2.0, device=scores.device)
    return scores[order][precise[-1]]


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sigmoid probabilities at a temperature: ``sigmoid(logit(p) / temperature)``.

    Example:
        >>> [round(p, 3) for p in sharpen(torch.tensor([0.5, 0.73106]), 0.5).tolist()]
        [0.5, 0.881]
    """
    if temperature == 1.0:
        return probs
    p = probs.clamp(1e-6, 1 - 1e-6)
    return torch.sigmoid(torch.logit(p) / temperature)


def _share(hits: torch.Tensor, where: torch.Tensor) -> float:
    """The mean of ``hits`` over the entries ``where`` marks (nan when none)."""
    total = float(where.sum())
    return float((hits * where).sum() / total) if total else float("nan")


def rule_device(rule: Thresholds) -> torch.device:
    """Where a rule's buffers live."""
    return next(iter(rule.buffers())).device
