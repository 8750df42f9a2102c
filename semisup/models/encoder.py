"""The shared frame encoder: a timm backbone of which only the last stages train.

Frozen stages keep ``requires_grad=False`` and stay in eval mode (batch-norm
statistics do not drift), so autograd records nothing until the first
trainable stage: the frozen trunk runs without building a graph.

A 2D encoder sees one frame at a time; given the frames of a clip (``owner``:
the clip of each frame) it can also see motion, through frame differences
or a temporal shift (:mod:`semisup.models.motion`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import timm
import torch
from torch import nn

from semisup.errors import SemisupError
from semisup.io import torch_load
from semisup.models.motion import ClipContext, add_difference_stem, add_temporal_shift

HUB_TIMEOUT_S = 3.0


class Encoder(nn.Module):
    """Embed frames with a timm backbone; pooled features, no classifier.

    Args:
        name: timm model name, e.g. ``"resnet50"``.
        pretrained: ``False`` (random init), ``True`` (timm's weights through
            its hub) or a path to a local state dict (timm or torchvision keys,
            ``.pth``/``.pt``/``.bin``/``.safetensors``).
        trainable_stages: how many of the backbone's last feature stages train
            (``0`` freezes everything); ``"all"`` trains every parameter.
        channels_last: keep weights and inputs in channels-last memory format
            (faster convolutions on CPUs and tensor cores).
        frame_differences: also feed each frame's difference to the previous frame of its
            clip, through a new stem convolution (zero at the start with pretrained weights,
            so the encoder starts as the pretrained one; it always trains, so autograd then
            records the frozen stages too: more memory than a frozen trunk alone).
        temporal_shift: share of channels shifted in from the previous frame (and as many from
            the next) in the residual blocks that train; ``0`` shifts nothing. ResNet-family
            encoders (blocks with a ``conv1``).

    Raises:
        SemisupError: weights unreachable or not matching the architecture.

    Example:
        >>> enc = Encoder("resnet18", pretrained=False, trainable_stages=1)
        >>> enc(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 512])
    """

    def __init__(self, name: str, pretrained: bool | Path = False,
                 trainable_stages: int | Literal["all"] = 1, channels_last: bool = False,
                 frame_differences: bool = False, temporal_shift: float = 0.0) -> None:
        super().__init__()
        self.name = name
        self.model = self.create_model(name, pretrained)
        self.clips = ClipContext()
        self.frame_differences = frame_differences
        self.temporal_shift = temporal_shift
        if frame_differences:
            add_difference_stem(self.model, self.clips, zero=pretrained is not False)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.num_features, self.mean, self.std, self.stage_names = self.describe_model()
        if trainable_stages != "all" and not 0 <= trainable_stages <= len(self.stage_names):
            raise ValueError(f"trainable_stages must be 0..{len(self.stage_names)} or 'all' for {name}, "
                             f"got {trainable_stages}")
        self._freeze(trainable_stages)
        if frame_differences:  # a new layer: it trains whatever else is frozen
            self.model.difference_stem.requires_grad_(True)
        if temporal_shift:
            stages = self.stage_names if trainable_stages == "all" else self.stage_names[len(self.stage_names)
                                                                                         - trainable_stages:]
            add_temporal_shift(self.model, self.clips, temporal_shift, stages)

    @staticmethod
    def create_model(name: str, pretrained: bool | Path) -> nn.Module:
        """The backbone (:func:`create_backbone`); a subclass builds another kind."""
        return create_backbone(name, pretrained)

    def describe_model(self) -> tuple[int, tuple[float, ...], tuple[float, ...], list[str]]:
        """The backbone's output width, pixel mean and std, and its stages' module names, in order."""
        # what forward returns: after a head convolution (MobileNetV3) that is not num_features
        width = getattr(self.model, "head_hidden_size", None) or self.model.num_features
        cfg = self.model.pretrained_cfg
        return (width, tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225))),
                [info["module"] for info in self.model.feature_info])

    def _freeze(self, trainable_stages: int | Literal["all"]) -> None:
        if trainable_stages == "all":
            return
        names = [n for n, _ in self.model.named_parameters()]
        frozen_stages = len(self.stage_names) - trainable_stages
        if frozen_stages == 0:  # every stage, the stem included
            first_trainable = 0
        else:  # the first parameter of the first trainable stage (that has parameters)
            prefixes = tuple(f"{stage}." for stage in self.stage_names[frozen_stages:])
            first_trainable = next((i for i, n in enumerate(names) if n.startswith(prefixes)), len(names))
        for i, (_, param) in enumerate(self.model.named_parameters()):
            param.requires_grad_(i >= first_trainable)
        self._frozen = [m for m in self.model.modules()
                        if any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())]

    def load_backbone_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Load the backbone's weights from an encoder checkpoint (``pretrain/encoder.pt``, a run's
        checkpoint); one saved without a difference stem (before ``frame_differences`` was set)
        loads with the stem at zero, so the encoder starts as the one saved.

        Raises:
            SemisupError: the weights do not fit the backbone.
        """
        if self.frame_differences and "difference_stem.weight" not in state:
            state = {**state, "difference_stem.weight": torch.zeros_like(self.model.difference_stem.weight)}
        load_exact(self.model, state, source)

    def check_image_size(self, size: int) -> None:
        """Raise a one-line error if the backbone only takes another frame size (ViTs do).

        Raises:
            SemisupError: naming the size the backbone needs.
        """
        patch_embed = getattr(self.model, "patch_embed", None)
        fixed = getattr(patch_embed, "img_size", None) if getattr(patch_embed, "strict_img_size", False) else None
        if fixed is not None and tuple(fixed) != (size, size):
            raise SemisupError(f"data.image_size = {size}, but the encoder {self.name!r} takes {fixed[0]} x "
                               f"{fixed[1]} frames; set data.image_size = {fixed[0]}")

    def train(self, mode: bool = True) -> "Encoder":
        """Switch train/eval mode; fully frozen modules always stay in eval mode."""
        super().train(mode)
        for module in getattr(self, "_frozen", ()):
            module.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that the optimisers update."""
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def sees_motion(self) -> bool:
        """True when a frame's features depend on its neighbours in the clip."""
        return self.frame_differences or self.temporal_shift > 0

    def forward(self, frames: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        """Embed ``(N, C, H, W)`` normalised frames into ``(N, D)`` features.

        Args:
            frames: the frames; with ``owner``, each clip's contiguous and in time order.
            owner: ``(N,)`` the clip of each frame (non-decreasing), for frame differences and
                the temporal shift; ``None``: every frame is a clip of its own.
        """
        frames = frames.contiguous(memory_format=self.memory_format)
        if not self.sees_motion:
            return self.model(frames)
        owner = owner.to(frames.device) if owner is not None else torch.arange(len(frames), device=frames.device)
        self.clips.set(owner, frames if self.frame_differences else None)
        try:
            return self.model(frames)
        finally:
            self.clips.set(None, None)

    def forward_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """Features ``(B, T, D)`` of ``B`` clips of ``T`` normalised frames each, ``(B, T, C, H, W)``:
        what :meth:`forward` gives for the packed frames, written without steps that depend on the
        data, for exporters (``semisup export``) that trace one graph for any ``B`` and ``T``."""
        b, t = clips.shape[0], clips.shape[1]
        owner = torch.arange(b * t, device=clips.device) // t  # repeat_interleave would fix B in an exported graph
        return self(clips.flatten(0, 1), owner).reshape(b, t, -1)


def create_backbone(name: str, pretrained: bool | Path = False) -> nn.Module:
    """Create a timm backbone without classifier, with the requested weights.

    Raises:
        SemisupError: see :class:`Encoder`.
    """
    if pretrained is True:
        return _from_hub(name)
    model = timm.create_model(name, pretrained=False, num_classes=0)
    if isinstance(pretrained, (str, Path)):
        load_backbone_weights(model, Path(pretrained))
    return model


def _from_hub(name: str) -> nn.Module:
    """Create with timm's weights; fail in seconds, not a minute, when offline."""
    import huggingface_hub
    from huggingface_hub import constants

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise SemisupError(f"model.pretrained: timm has no pretrained weights for {name!r}")
    cached = cfg.hf_hub_id and any(
        isinstance(huggingface_hub.try_to_load_from_cache(cfg.hf_hub_id, f), str)
        for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"))
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    if not cached:
        host = urlparse(constants.ENDPOINT).hostname if cfg.hf_hub_id else urlparse(cfg.url).hostname
        if offline or not _reachable(host or "huggingface.co"):
            raise SemisupError(
                f"model.pretrained = true: timm's weights for {name!r} are not cached and "
                f"{host} is unreachable{' (HF_HUB_OFFLINE is set)' if offline else ''}; "
                "download them where there is internet, or set model.pretrained to a local weights file")
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = previous or bool(cached)  # a cached file needs no network round trip
    try:
        return timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as exc:  # network errors of every library involved
        raise SemisupError(f"model.pretrained = true: could not fetch weights for {name!r}: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    finally:
        constants.HF_HUB_OFFLINE = previous


def _reachable(host: str, port: int = 443) -> bool:
    try:
        with socket.create_connection((host, port), timeout=HUB_TIMEOUT_S):
            return True
    except OSError:
        return False


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read tensors from a local weights file without running pickled code.

    Accepts a plain state dict or one wrapped under ``state_dict`` / ``model``,
    as ``.safetensors`` or a ``torch.save`` file.

    Raises:
        SemisupError: unreadable, or not a mapping of tensors.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch_load(path)
    except Exception as exc:
        raise SemisupError(f"{path}: not a readable weights file ({type(exc).__name__})") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SemisupError(f"{path}: expected a state dict (a mapping of parameter names to tensors)")
    return state


def strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict without the prefix a wrapper put on every key (``module.``: DDP; ``model.``,
    ``backbone.``, ``encoder.model.``: training frameworks, semisup's own checkpoints).

    Example:
        >>> list(strip_wrappers({"module.fc.weight": torch.zeros(1)}))
        ['fc.weight']
    """
    for prefix in ("module.", "model.", "backbone.", "encoder.model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_backbone_weights(model: nn.Module, path: Path) -> None:
    """Load a local timm or torchvision state dict into a timm backbone.

    Common wrappers (``module.``, ``model.``, ``backbone.``) are stripped and
    classifier weights dropped.

    Raises:
        SemisupError: the file does not fit the architecture.
    """
    state = strip_wrappers(read_state_dict(path))
    classifier = model.pretrained_cfg.get("classifier") or "fc"
    classifiers = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    state = {k: v for k, v in state.items() if not k.startswith(tuple(c + "." for c in classifiers))}
    load_exact(model, state, str(path))


def load_exact(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict that must match ``model`` key for key and shape for shape.

    Raises:
        SemisupError: naming ``source`` and how the weights do not fit.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        example = (missing or unexpected or wrong)[0]
        raise SemisupError(
            f"{source}: weights do not fit {getattr(model, 'default_cfg', {}).get('architecture', type(model).__name__)}: "
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong-shape keys "
            f"(e.g. {example!r})")
    model.load_state_dict(state)


class CachedEncoder(nn.Module):
    """The encoder of a run that trains from a feature cache (``data.features``): its
    "frames" are already the frozen encoder's features, ``(N, width)``, passed through as
    float32. Nothing in it trains; :class:`Encoder`'s interface otherwise.

    Args:
        name: the timm name of the encoder that computed the cache.
        width: the feature width stored in the cache.
    """

    def __init__(self, name: str, width: int) -> None:
        super().__init__()
        self.name, self.num_features = name, width
        self.mean, self.std = (0.0,), (1.0,)  # unused: cached features need no normalisation

    def check_image_size(self, size: int) -> None:
        """Nothing to check: the cache's key holds the image size it was computed at."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        return []

    def forward(self, frames: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        return frames.float()
