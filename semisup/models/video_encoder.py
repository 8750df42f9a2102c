"""A video-native encoder: torchvision's 3D ResNets read a clip's frames together.

``model.encoder = "torchvision:r2plus1d_18"`` (or ``torchvision:mc3_18``,
``torchvision:r3d_18``) replaces the frame encoder by one of torchvision's
video ResNets (Tran et al., "A Closer Look at Spatiotemporal Convolutions for
Action Recognition", CVPR 2018), whose convolutions span time. timm has no
video models; torchvision's are the established ones with Kinetics-400
weights.

The rest of semisup sees the same interface as :class:`~semisup.models.Encoder`:
packed frames and their clips in, one feature per frame out. Each clip runs
through the network alone (clips of equal length together, in one batch), so
no clip's padding or neighbour reaches another; the features before the
network's temporal pooling (one per time step, 8x fewer steps than frames in
the last stage) are pooled over space and spread back over the frames each
step covers. A frame given without a clip (SESEMI's, SimCLR's) is a clip of
one frame.

Weights: ``pretrained = true`` downloads torchvision's Kinetics-400 weights
(or takes them from torch's hub cache), a path loads a local state dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from semisup.errors import SemisupError
from semisup.models.encoder import Encoder, _reachable, load_exact, read_state_dict, strip_wrappers

PREFIX = "torchvision:"
VIDEO_MODELS: tuple[str, ...] = ("r2plus1d_18", "mc3_18", "r3d_18")
"""torchvision's video ResNets (stem, layer1..layer4), the ones semisup takes as encoders."""
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def is_video_encoder(name: str) -> bool:
    """Whether ``model.encoder`` names a torchvision video network (``torchvision:NAME``)."""
    return name.startswith(PREFIX)


class ClipEncoder(Encoder):
    """Embed the frames of clips with a torchvision video ResNet; one feature per frame.

    Args:
        name: ``"torchvision:"`` and one of :data:`VIDEO_MODELS`.
        pretrained: ``False``, ``True`` (torchvision's Kinetics-400 weights) or a local state dict.
        trainable_stages: how many of ``layer1..layer4`` (and the stem, as a fifth) train; ``"all"``.
        channels_last: unused (3D convolutions keep their layout).

    Raises:
        SemisupError: an unknown network, weights unreachable or not fitting.

    Example:
        >>> enc = ClipEncoder("torchvision:r3d_18", trainable_stages="all")
        >>> enc(torch.zeros(5, 3, 32, 32), torch.tensor([0, 0, 0, 1, 1])).shape
        torch.Size([5, 512])
    """

    def __init__(self, name: str, pretrained: bool | Path = False, trainable_stages: int | Literal["all"] = 1,
                 channels_last: bool = False) -> None:
        super().__init__(name, pretrained, trainable_stages, channels_last=False)

    @staticmethod
    def create_model(name: str, pretrained: bool | Path) -> nn.Module:
        from torchvision.models import get_model, get_model_weights

        arch = name[len(PREFIX):]
        if arch not in VIDEO_MODELS:
            raise SemisupError(f"model.encoder: {name!r}: semisup takes torchvision's video ResNets "
                               f"{', '.join(PREFIX + m for m in VIDEO_MODELS)}")
        if pretrained is True:
            weights = get_model_weights(arch).DEFAULT
            _check_downloadable(name, weights.url)
            model = get_model(arch, weights=weights)
        else:
            model = get_model(arch, weights=None)
        if isinstance(pretrained, (str, Path)):
            state = strip_wrappers(read_state_dict(Path(pretrained)))
            model.fc = nn.Identity()
            load_exact(model, {k: v for k, v in state.items() if not k.startswith("fc.")}, str(pretrained))
        # the network's own forward (what run.compile compiles) returns one feature per time step:
        # pooled over space only, flattened (D x T')
        model.avgpool, model.fc = SpatialMean(), nn.Identity()
        return model

    def describe_model(self) -> tuple[int, tuple[float, ...], tuple[float, ...], list[str]]:
        return 512, KINETICS_MEAN, KINETICS_STD, ["stem", "layer1", "layer2", "layer3", "layer4"]

    @property
    def sees_motion(self) -> bool:
        return True

    def forward(self, frames: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        """Embed ``(N, C, H, W)`` normalised frames into ``(N, 512)`` features, clip by clip.

        Args:
            frames: the frames; with ``owner``, each clip's contiguous and in time order.
            owner: ``(N,)`` the clip of each frame (non-decreasing); ``None``: one-frame clips.
        """
        n = len(frames)
        if owner is None:
            owner = torch.arange(n, device=frames.device)
        owner = owner.to(frames.device)
        counts = torch.bincount(owner)
        starts = torch.cumsum(counts, 0) - counts
        out = frames.new_empty(n, self.num_features, dtype=torch.float32)
        for length in counts.unique().tolist():
            if length == 0:
                continue
            clips = torch.nonzero(counts == length).flatten()
            index = (starts[clips].view(-1, 1) + torch.arange(length, device=frames.device)).flatten()
            x = frames[index].view(len(clips), length, *frames.shape[1:]).transpose(1, 2)   # (B, C, T, H, W)
            out[index] = self._per_frame(x).float().flatten(0, 1)
        return out.to(frames.dtype) if frames.dtype != torch.float32 else out

    def forward_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, H, W)`` clips of equal length -> ``(B, T, D)``: no grouping by length to do."""
        return self._per_frame(clips.transpose(1, 2)).float()

    def _per_frame(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` clips -> ``(B, T, D)``: the last stage's steps pooled over space,
        each spread over the frames it covers."""
        steps = self.model(x).unflatten(1, (self.num_features, -1))                        # (B, D, T')
        return F.interpolate(steps, size=x.shape[2], mode="nearest").transpose(1, 2)


class SpatialMean(nn.Module):
    """``(B, D, T', H', W')`` -> ``(B, D, T', 1, 1)``: the mean over space, as
    ``nn.AdaptiveAvgPool3d((None, 1, 1))`` computes it, without fixing ``T'`` in an exported graph."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(3, 4), keepdim=True)


def _check_downloadable(name: str, url: str) -> None:
    """Fail in seconds, in one line, when torchvision's weights are neither cached nor reachable."""
    import os
    from urllib.parse import urlparse

    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if cached.is_file():
        return
    host = urlparse(url).hostname or "download.pytorch.org"
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or not _reachable(host):
        raise SemisupError(f"model.pretrained = true: torchvision's weights for {name!r} are not cached "
                           f"({cached}) and {host} is unreachable; download them where there is internet, "
                           "or set model.pretrained to a local weights file")


def create_encoder(name: str, pretrained: bool | Path = False, trainable_stages: int | Literal["all"] = 1,
                   channels_last: bool = False, frame_differences: bool = False,
                   temporal_shift: float = 0.0) -> Encoder:
    """The encoder ``model.encoder`` names: a :class:`ClipEncoder` for ``torchvision:NAME``, else a
    timm :class:`~semisup.models.Encoder` (arguments as there).

    Raises:
        SemisupError: a motion input asked of a video network (it reads motion itself), or
            see the encoders.
    """
    if not is_video_encoder(name):
        return Encoder(name, pretrained, trainable_stages, channels_last=channels_last,
                       frame_differences=frame_differences, temporal_shift=temporal_shift)
    for key, value in (("frame_differences", frame_differences), ("temporal_shift", temporal_shift)):
        if value:
            raise SemisupError(f"model.{key}: {name!r} is a video network, it reads motion itself; drop "
                               f"model.{key}")
    return ClipEncoder(name, pretrained, trainable_stages, channels_last)
