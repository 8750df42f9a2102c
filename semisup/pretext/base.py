"""The pretext-task API and its registry.

A pretext task turns a batch of unlabeled frames into a self-supervised loss.
It receives the frames grouped by trailer and a function that embeds frames
with the shared encoder, and returns its loss and accuracy::

    @register_pretext("mirror")
    class Mirror(PretextTask):
        '''Predict whether a frame was mirrored left to right.'''

        num_classes = 2

        def forward(self, frames, encode):
            x = frames.flatten(0, 1)                                   # (N, C, H, W)
            target = torch.randint(0, 2, (x.shape[0],), device=x.device)
            x = torch.where(target.view(-1, 1, 1, 1) == 1, x.flip(3), x)
            return self.classify(encode(x), target)

A recipe then names it in a ``[[pretext]]`` table; keys other than the
common ones (weight, lr, head_hidden, head_dropout, frames_per_trailer) are
the task's ``Options``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from semisup.models.heads import MLPHead
from semisup.registry import CatalogueEntry, Registry

Encode = Callable[[torch.Tensor], torch.Tensor]
"""Embeds frames ``(N, C, H, W)`` into features ``(N, D)`` with the shared encoder."""


class PretextOutput(NamedTuple):
    """What a pretext task returns for one batch."""

    loss: torch.Tensor
    """Scalar loss (fp32) to minimise."""
    accuracy: torch.Tensor
    """Scalar fraction of correct predictions (no gradient)."""


class PretextTask(nn.Module, abc.ABC):
    """Base class of self-supervised tasks on unlabeled trailer frames.

    A subclass sets ``num_classes`` (its head's output size; or overrides
    :meth:`output_size` when options decide it), optionally ``min_frames``
    (temporal tasks need several frames per trailer), defines a frozen
    ``Options`` dataclass of its recipe options, and implements
    :meth:`forward`. The head, an :class:`~semisup.models.heads.MLPHead` from
    :meth:`head_input_dim` to :meth:`output_size`, is built here; the loss is
    the task's own (:meth:`classify` gives cross-entropy and accuracy).

    Args:
        options: an instance of the subclass's ``Options``.
        feature_dim: size ``D`` of one frame's encoder features.
        head_hidden: hidden width of the head.
        head_dropout: dropout inside the head.
        frames: ``T``, the frames per trailer the task receives.
    """

    name: ClassVar[str] = ""
    num_classes: ClassVar[int] = 0
    min_frames: ClassVar[int] = 1
    reads_time: ClassVar[bool] = False
    """True for tasks whose answer lies in the order of a clip's frames: their
    clips are augmented consistently (one crop, rotation and flip per clip), and
    what they pass to ``encode`` in multiples of ``T`` frames is read as clips of
    ``T`` frames in time order by an encoder that sees motion (frame differences,
    temporal shift); other tasks' frames are each a clip of their own."""

    @dataclass(frozen=True)
    class Options:
        """No options."""

    def __init__(self, options: "PretextTask.Options", feature_dim: int, head_hidden: int = 256,
                 head_dropout: float = 0.0, frames: int = 1) -> None:
        super().__init__()
        if frames < self.min_frames:
            raise ValueError(f"pretext task {self.name!r} needs at least {self.min_frames} frames per trailer, "
                             f"got {frames}")
        self.options = options
        self.frames = frames
        self.head = MLPHead(self.head_input_dim(feature_dim), head_hidden, self.output_size(), head_dropout)

    def head_input_dim(self, feature_dim: int) -> int:
        """Input size of the head; override for tasks that concatenate frame features."""
        return feature_dim

    def output_size(self) -> int:
        """Output size of the head (``num_classes`` unless options decide it)."""
        return self.num_classes

    @abc.abstractmethod
    def forward(self, frames: torch.Tensor, encode: Encode) -> PretextOutput:
        """Compute the task's loss on a batch of unlabeled frames.

        Args:
            frames: ``(B, T, C, H, W)`` normalised frames, T frames from each of
                B trailers in time order, augmented without flips or
                right-angle rotations.
            encode: embeds ``(N, C, H, W)`` frames into ``(N, D)`` features.
        """

    def classify(self, features: torch.Tensor, target: torch.Tensor) -> PretextOutput:
        """Run the head on ``features (N, D_in)`` and score it against ``target (N,)``."""
        logits = self.head(features).float()
        loss = F.cross_entropy(logits, target)
        accuracy = (logits.detach().argmax(1) == target).float().mean()
        return PretextOutput(loss, accuracy)


PRETEXT_TASKS: Registry = Registry("pretext task", PretextTask, "semisup.pretext", "semisup pretext list")
"""Pretext tasks by name: built-ins, ``semisup.pretext`` entry points, ``module:Class`` paths."""

register_pretext = PRETEXT_TASKS.register
"""Class decorator that makes a pretext task available to recipes by name."""


def pretext_key(name: str) -> str:
    """The name a recipe's pretext task goes by inside the model and its logs
    (``"pkg.mod:Task"`` paths become ``"pkg_mod:Task"``: module names cannot hold dots)."""
    return name.replace(".", "_")


def pretext_tasks() -> dict[str, type[PretextTask]]:
    """The built-in (and in-process registered) pretext tasks by name."""
    return PRETEXT_TASKS.builtins()


def get_pretext_task(name: str, where: str = "pretext") -> type[PretextTask]:
    """Look up a pretext task: a built-in name, an installed plug-in's entry-point
    name, or a ``"package.module:Class"`` path.

    Raises:
        SemisupError: unknown name (with a did-you-mean), or a plug-in that
            does not import or is not a :class:`PretextTask` subclass.
    """
    return PRETEXT_TASKS.get(name, where)


def pretext_catalogue() -> list[CatalogueEntry]:
    """Every pretext task found: built-ins, then installed plug-ins (a broken one says why)."""
    return PRETEXT_TASKS.catalogue()
