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

import difflib
from dataclasses import dataclass
from typing import Callable, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from semisup.errors import SemisupError
from semisup.models.heads import MLPHead

Encode = Callable[[torch.Tensor], torch.Tensor]
"""Embeds frames ``(N, C, H, W)`` into features ``(N, D)`` with the shared encoder."""


class PretextOutput(NamedTuple):
    """What a pretext task returns for one batch."""

    loss: torch.Tensor
    """Scalar loss (fp32) to minimise."""
    accuracy: torch.Tensor
    """Scalar fraction of correct predictions (no gradient)."""


class PretextTask(nn.Module):
    """Base class of self-supervised tasks on unlabeled trailer frames.

    Subclasses set ``num_classes`` (the size of their head's output), define a
    frozen ``Options`` dataclass of their recipe options and implement
    :meth:`forward`. The head, an :class:`~semisup.models.heads.MLPHead` from
    the encoder's feature size to ``num_classes``, is built here.

    Args:
        options: an instance of the subclass's ``Options``.
        feature_dim: size ``D`` of one frame's encoder features.
        head_hidden: hidden width of the head.
        head_dropout: dropout inside the head.
    """

    name: ClassVar[str] = ""
    num_classes: ClassVar[int] = 0

    @dataclass(frozen=True)
    class Options:
        """No options."""

    def __init__(self, options: "PretextTask.Options", feature_dim: int, head_hidden: int = 256,
                 head_dropout: float = 0.0) -> None:
        super().__init__()
        self.options = options
        self.head = MLPHead(self.head_input_dim(feature_dim), head_hidden, self.num_classes, head_dropout)

    def head_input_dim(self, feature_dim: int) -> int:
        """Input size of the head; override for tasks that concatenate frame features."""
        return feature_dim

    def forward(self, frames: torch.Tensor, encode: Encode) -> PretextOutput:
        """Compute the task's loss on a batch of unlabeled frames.

        Args:
            frames: ``(B, T, C, H, W)`` normalised frames, T frames from each of
                B trailers in time order, augmented without flips or
                right-angle rotations.
            encode: embeds ``(N, C, H, W)`` frames into ``(N, D)`` features.
        """
        raise NotImplementedError  # abstract: every registered task implements it

    def classify(self, features: torch.Tensor, target: torch.Tensor) -> PretextOutput:
        """Run the head on ``features (N, D_in)`` and score it against ``target (N,)``."""
        logits = self.head(features).float()
        loss = F.cross_entropy(logits, target)
        accuracy = (logits.detach().argmax(1) == target).float().mean()
        return PretextOutput(loss, accuracy)


_REGISTRY: dict[str, type[PretextTask]] = {}


def register_pretext(name: str) -> Callable[[type[PretextTask]], type[PretextTask]]:
    """Class decorator that makes a pretext task available to recipes by ``name``."""

    def add(cls: type[PretextTask]) -> type[PretextTask]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"pretext task {name!r} is already registered by {_REGISTRY[name].__module__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def pretext_key(name: str) -> str:
    """The name a recipe's pretext task goes by inside the model and its logs
    (``"pkg.mod:Task"`` paths become ``"pkg_mod:Task"``: module names cannot hold dots)."""
    return name.replace(".", "_")


def pretext_tasks() -> dict[str, type[PretextTask]]:
    """All registered pretext tasks by name."""
    return dict(_REGISTRY)


def get_pretext_task(name: str, where: str = "pretext") -> type[PretextTask]:
    """Look up a pretext task by registered name or by ``"package.module:Class"`` path.

    Raises:
        SemisupError: unknown name (with a did-you-mean), or a path that does
            not import or does not name a :class:`PretextTask` subclass.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _load_path(name, where)
    guess = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f'did you mean "{guess[0]}"?' if guess else "known: " + ", ".join(sorted(_REGISTRY))
    raise SemisupError(f"{where}: unknown pretext task {name!r} ({hint})")


def _load_path(path: str, where: str) -> type[PretextTask]:
    import importlib

    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error inside the plug-in is the plug-in's
        raise SemisupError(f"{where}: pretext plug-in {path!r} failed to import: "
                           f"{type(exc).__name__}: {exc}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, PretextTask)):
        raise SemisupError(f"{where}: {path!r} is not a PretextTask subclass")
    if not cls.name:
        cls.name = path
    return cls
