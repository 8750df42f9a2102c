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
import difflib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple

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


_REGISTRY: dict[str, type[PretextTask]] = {}
ENTRY_POINT_GROUP = "semisup.pretext"


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
    """The built-in (and in-process registered) pretext tasks by name."""
    return dict(_REGISTRY)


def _entry_points() -> dict[str, Any]:
    """Installed plug-ins: entry points of the ``semisup.pretext`` group, by name."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _dist_name(ep: Any) -> str:
    """The name of the package that installed an entry point ("?" if unknown)."""
    return getattr(getattr(ep, "dist", None), "name", None) or "?"


def _load_entry_point(ep: Any, where: str) -> type[PretextTask]:
    dist = _dist_name(ep)
    try:
        cls = ep.load()
    except Exception as exc:  # any error inside the plug-in is the plug-in's
        raise SemisupError(f"{where}: pretext plug-in {ep.name!r} ({ep.value}, package {dist}) failed to "
                           f"import: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, PretextTask)):
        raise SemisupError(f"{where}: pretext plug-in {ep.name!r} ({ep.value}) is not a PretextTask subclass")
    cls.name = ep.name
    return cls


def get_pretext_task(name: str, where: str = "pretext") -> type[PretextTask]:
    """Look up a pretext task: a built-in name, an installed plug-in's entry-point
    name, or a ``"package.module:Class"`` path.

    Raises:
        SemisupError: unknown name (with a did-you-mean), or a plug-in that
            does not import or is not a :class:`PretextTask` subclass.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    plugins = _entry_points()
    if name in plugins:
        return _load_entry_point(plugins[name], where)
    if ":" in name:
        return _load_path(name, where)
    known = sorted({*_REGISTRY, *plugins})
    guess = difflib.get_close_matches(name, known, n=1)
    hint = f'did you mean "{guess[0]}"?' if guess else "known: " + ", ".join(known)
    raise SemisupError(
        f"{where}: unknown pretext task {name!r} ({hint}); "
        "give a registered name (see `semisup pretext list`) or a package.module:Class path"
    )


@dataclass(frozen=True)
class CatalogueEntry:
    """A pretext task ``semisup pretext list`` shows."""

    name: str
    source: str
    description: str


def pretext_catalogue() -> list[CatalogueEntry]:
    """Every task found: built-ins, then installed plug-ins (a broken one says why)."""
    def summary(cls: type) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    out = [CatalogueEntry(n, "built-in" if c.__module__.startswith("semisup.") else c.__module__, summary(c))
           for n, c in sorted(_REGISTRY.items())]
    for name, ep in sorted(_entry_points().items()):
        try:
            description = summary(_load_entry_point(ep, "plug-in"))
        except SemisupError as exc:
            description = f"BROKEN: {str(exc).split(': ', 1)[-1]}"
        out.append(CatalogueEntry(name, f"plug-in {_dist_name(ep)} ({ep.value})", description))
    return out


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
