"""Motion in a 2D encoder's input: frame differences and the temporal shift.

A 2D encoder sees one frame at a time. Two established, cheap ways let it see
motion when it is given the frames of a clip (``owner``: the clip of each
frame, frames of a clip contiguous and in time order):

* **frame differences**, the RGB-diff input of TSN (Wang et al., "Temporal
  Segment Networks", ECCV 2016): each frame's difference to the previous
  frame of its clip enters the stem through its own convolution beside the
  frame's;
* **temporal shift**, TSM (Lin et al., "TSM: Temporal Shift Module for
  Efficient Video Understanding", ICCV 2019): inside every residual block that
  trains, a share of the channels is taken from the previous frame and as
  many from the next one, before the block's first convolution. No
  parameters are added.

timm has neither (its models take images), hence this module. Both are
installed as hooks on the timm backbone, so its parameter names, its weights
and timm's loading of them stay as they are. The hooks are plain functions
that find what they need on the module they are hooked on (the clip context,
the stem), so a deep copy of the encoder (an EMA teacher) has working hooks
of its own.

A frame given without a clip (SESEMI's and SimCLR's frames) is a clip of one
frame: its difference is zero, and the shifted channels are zero, as at a
clip's ends.
"""

from __future__ import annotations

import torch
from timm.models.resnet import BasicBlock, Bottleneck
from torch import nn

from semisup.errors import SemisupError


class ClipContext:
    """Which clip each frame of the batch going through the encoder belongs to (and the frames
    themselves, for the difference stem): set by :meth:`Encoder.forward` for one call, read by
    the hooks that :func:`add_difference_stem` and :func:`add_temporal_shift` install.

    The clips are held as ``same`` (:func:`same_clip_as_previous` of the owners), computed once
    per forward, not in each of the blocks that shift."""

    def __init__(self) -> None:
        self.same: torch.Tensor | None = None
        self.frames: torch.Tensor | None = None

    def set(self, owner: torch.Tensor | None, frames: torch.Tensor | None) -> None:
        """Hold the clips of ``owner`` (and ``frames``) for one forward; ``None`` clears them."""
        self.frames = frames
        self.same = None if owner is None else same_clip_as_previous(owner, owner.shape[0], owner.device)


def same_clip_as_previous(owner: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
    """``(N,)`` bool: True where frame ``i`` and frame ``i - 1`` belong to the same clip.

    Example:
        >>> same_clip_as_previous(torch.tensor([0, 0, 1, 1, 1]), 5, torch.device("cpu")).tolist()
        [False, True, False, True, True]
    """
    if owner is None:
        return torch.zeros(n, dtype=torch.bool, device=device)
    owner = owner.to(device)
    # written without a test of n or an in-place slice, so an exported graph keeps the frame count free
    return nn.functional.pad(owner[1:] == owner[:-1], (1, 0))[:n]


def frame_differences(frames: torch.Tensor, owner: torch.Tensor | None) -> torch.Tensor:
    """Each frame minus the previous frame of its clip; zero for a clip's first frame.

    Example:
        >>> x = torch.tensor([1.0, 4.0, 6.0, 5.0]).view(4, 1, 1, 1)
        >>> frame_differences(x, torch.tensor([0, 0, 0, 1])).flatten().tolist()
        [0.0, 3.0, 2.0, 0.0]
    """
    return _differences(frames, same_clip_as_previous(owner, frames.shape[0], frames.device))


def _differences(frames: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    previous = torch.cat([frames[:1], frames[:-1]])
    return torch.where(same.view(-1, 1, 1, 1), frames - previous, torch.zeros_like(frames))


def temporal_shift(x: torch.Tensor, owner: torch.Tensor | None, fraction: float) -> torch.Tensor:
    """TSM's shift on ``(N, C, H, W)`` features of packed clips: the first ``fold = C * fraction``
    channels come from the previous frame of the clip, the next ``fold`` from the following frame
    (zeros past a clip's ends), the rest stay. Nothing crosses from one clip into another.

    Example:
        >>> x = torch.arange(1.0, 5.0).view(4, 1, 1, 1).expand(4, 4, 1, 1)     # frame i holds i + 1
        >>> temporal_shift(x, torch.tensor([0, 0, 0, 1]), 0.25)[:, :, 0, 0].tolist()
        [[0.0, 2.0, 1.0, 1.0], [1.0, 3.0, 2.0, 2.0], [2.0, 0.0, 3.0, 3.0], [0.0, 0.0, 4.0, 4.0]]
    """
    return _shifted(x, same_clip_as_previous(owner, x.shape[0], x.device), fraction)


def _shifted(x: torch.Tensor, same: torch.Tensor, fraction: float) -> torch.Tensor:
    fold = max(1, int(x.shape[1] * fraction))
    same = same.view(-1, 1, 1, 1).to(x.dtype)
    zero = x.new_zeros((1, fold, *x.shape[2:]))
    from_previous = torch.cat([zero, x[:-1, :fold]]) * same
    from_next = torch.cat([x[1:, fold:2 * fold], zero]) * torch.cat([same[1:], same[:1] * 0])
    return torch.cat([from_previous, from_next, x[:, 2 * fold:]], dim=1)


def add_difference_stem(model: nn.Module, clips: ClipContext, zero: bool) -> None:
    """Give ``model`` a second stem convolution (``model.difference_stem``, shaped as its first
    convolution) that reads frame differences; its output is added to the first convolution's.

    Args:
        model: a timm backbone whose ``pretrained_cfg["first_conv"]`` names a ``Conv2d``.
        clips: where the frames and their clips are found during a forward.
        zero: start the new convolution at zero (pretrained weights: the encoder starts as
            they are); else initialised as timm initialises convolutions.

    Raises:
        SemisupError: the backbone has no plain first convolution.
    """
    name = model.pretrained_cfg.get("first_conv") or ""
    first = model.get_submodule(name) if name else None
    if not isinstance(first, nn.Conv2d) or first.in_channels != 3:
        raise SemisupError(f"model.frame_differences: the encoder's first layer ({name or 'unknown'}) is not a "
                           "3-channel convolution; use model.temporal_shift, or another encoder")
    stem = nn.Conv2d(3, first.out_channels, first.kernel_size, first.stride, first.padding, first.dilation,
                     first.groups, bias=False)
    if zero:
        nn.init.zeros_(stem.weight)
    else:
        nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
    model.add_module("difference_stem", stem)
    object.__setattr__(first, "_semisup_clips", clips)        # plain attributes: not registered as submodules
    object.__setattr__(first, "_semisup_stem", stem)
    first.register_forward_hook(_add_differences)


def _add_differences(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    """Forward hook of the first convolution: add the difference stem's output."""
    clips: ClipContext = module._semisup_clips
    if clips.frames is None:   # a forward of the backbone alone (no clips): no difference
        return output
    return output + module._semisup_stem(_differences(clips.frames, clips.same).to(output.dtype))


def add_temporal_shift(model: nn.Module, clips: ClipContext, fraction: float, stages: list[str]) -> None:
    """Shift channels in time (:func:`temporal_shift`) before the first convolution of every
    residual block in ``stages`` (TSM's residual shift: the skip path keeps the frame's own
    features). The encoder passes the stages that train: shifting in frozen blocks would feed
    pretrained layers features they never saw.

    Raises:
        SemisupError: no stage trains, or the stages hold no timm ResNet block.
    """
    if not stages:
        raise SemisupError("model.temporal_shift: no stage of the encoder trains (model.trainable_stages = 0); "
                           "train at least one stage")
    blocks = [m for stage in stages for m in model.get_submodule(stage).modules()
              if isinstance(m, (BasicBlock, Bottleneck))]
    if not blocks:
        name = getattr(model, "default_cfg", {}).get("architecture", type(model).__name__)
        raise SemisupError(f"model.temporal_shift: {name} "
                           "has no ResNet blocks where it trains (timm's ResNet, ResNeXt, SE-ResNet and ResNet-D "
                           "families have them); use model.frame_differences instead")
    for block in blocks:
        object.__setattr__(block.conv1, "_semisup_clips", clips)
        object.__setattr__(block.conv1, "_semisup_shift", fraction)
        block.conv1.register_forward_pre_hook(_shift)


def _shift(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook of a block's first convolution: shift its input in time."""
    clips: ClipContext = module._semisup_clips
    if clips.same is None:   # a forward of the backbone alone (no clips): nothing to shift
        return args
    return (_shifted(args[0], clips.same, module._semisup_shift), *args[1:])
