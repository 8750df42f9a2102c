"""Batch-wise augmentation on tensors with kornia.

Frames arrive from the loaders as uint8 ``(N, 3, S, S)``; these pipelines turn
them into normalised float tensors on the training device.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from kornia.augmentation.container.params import ParamItem
from torch import nn


class FrameAugment(nn.Module):
    """Training augmentation: random resized crop, rotation within +/-``degrees``,
    left-right flip, then normalisation; each part can be off.

    Frames bound for orientation-predicting pretext tasks (SESEMI) must not be
    flipped: build that pipeline with ``hflip=0``. With ``per_clip`` the
    parameters are drawn once per clip and shared by all its frames: a random
    crop drawn per frame would manufacture camera motion that is not in the
    footage, and a flip of some frames would break the direction of a pan.

    Args:
        image_size: output side ``S``.
        mean, std: per-channel normalisation (the encoder's).
        hflip: probability of a left-right flip (0: never).
        degrees: maximum absolute rotation (0: none).
        scale: area range of the random resized crop (``(1, 1)``: no crop).
        per_clip: draw parameters per clip (see :meth:`forward`), not per frame.
        strong: add FixMatch's strong photometric operations after the geometric
            ones (RandAugment-style: colour jitter, posterize, solarize, sharpness,
            equalize, grayscale, each with its own probability) and random erasing
            (Cutout) after normalisation; geometric operations stay the weak ones,
            so a clip's motion is not distorted.
        strong_colour: with ``strong``, the photometric operations; ``False`` keeps only
            random erasing (for labels carried by colour).
        scene_motion: with ``per_clip``, the chance that a clip gets an object moving through
            it (:func:`paste_moving_patch`: motion in the scene, not of the camera) before the
            geometric steps; 0: never.
    """

    def __init__(self, image_size: int, mean: tuple[float, ...], std: tuple[float, ...], hflip: float = 0.5,
                 degrees: float = 15.0, scale: tuple[float, float] = (0.8, 1.0), per_clip: bool = False,
                 strong: bool = False, strong_colour: bool = True, scene_motion: float = 0.0) -> None:
        super().__init__()
        steps: list[nn.Module] = []
        if scale[0] < 1:
            steps.append(K.RandomResizedCrop((image_size, image_size), scale=scale))
        if degrees > 0:
            steps.append(K.RandomRotation(degrees, p=1.0))
        if hflip > 0:
            steps.append(K.RandomHorizontalFlip(p=hflip))
        if strong and strong_colour:
            steps += [K.ColorJiggle(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomPosterize(bits=(4, 8), p=0.3),
                      K.RandomSolarize(0.1, 0.1, p=0.2), K.RandomSharpness(0.5, p=0.3), K.RandomEqualize(p=0.2),
                      K.RandomGrayscale(p=0.2)]
        steps.append(K.Normalize(mean=torch.tensor(mean), std=torch.tensor(std)))
        if strong:
            steps.append(K.RandomErasing(scale=(0.02, 0.25), p=0.7))
        self.pipeline = K.AugmentationSequential(*steps)
        self.per_clip = per_clip
        self.scene_motion = scene_motion

    @torch.no_grad()
    def forward(self, frames: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 ``(N, 3, S, S)`` -> augmented, normalised float ``(N, 3, S, S)``.

        Args:
            frames: the frames of a batch.
            owner: ``(N,)`` clip index of each frame; with ``per_clip`` every
                frame of a clip gets the clip's crop, rotation and flip.
        """
        x = frames.float().div_(255)
        if not self.per_clip or owner is None:
            return self.pipeline(x)
        clips = int(owner.max()) + 1 if len(owner) else 0
        if self.scene_motion > 0 and clips:
            first = torch.cumsum(torch.bincount(owner, minlength=clips), 0) - torch.bincount(owner, minlength=clips)
            x = paste_moving_patch(x, owner, x[first.roll(-1)], self.scene_motion)  # the next clip's first frame
        params = self.pipeline.forward_parameters(torch.Size([clips, *x.shape[1:]]))
        return self.pipeline(x, params=[_per_frame(p, owner, clips) for p in params])


def _per_frame(params: ParamItem, owner: torch.Tensor, clips: int) -> ParamItem:
    """A step's parameters drawn for ``clips`` clips, repeated for every frame of each."""
    data = {}
    for key, value in params.data.items():
        if key == "forward_input_shape":
            value = value.clone()
            value[0] = len(owner)
        elif torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == clips:
            value = value[owner.to(value.device)]
        data[key] = value
    return ParamItem(params.name, data)


def paste_moving_patch(frames: torch.Tensor, owner: torch.Tensor, sources: torch.Tensor, probability: float,
                       size: tuple[float, float] = (0.2, 0.45), travel: tuple[float, float] = (0.1, 0.6),
                       growth: tuple[float, float] = (0.8, 1.25)) -> torch.Tensor:
    """Motion in the scene while the camera holds: with ``probability`` per clip, a soft-edged
    round patch cut from the clip's source image crosses the clip in a straight line (any
    direction), growing or shrinking a little, as a passer-by or a car does.

    Camera movement is the motion of the whole frame; footage is full of things that move
    while the camera does not (or move against it). A movement model trained on shots whose
    only motion is the camera's calls every moving scene a move. This label-preserving
    augmentation (of the copy-paste family; kornia has no moving version) shows it motion
    that is not the camera's. Everything is drawn per clip and applied with one
    ``grid_sample`` call.

    Args:
        frames: float ``(N, C, H, W)``, the frames of several clips, each clip's in time order.
        owner: ``(N,)`` clip index of each frame (a clip's frames contiguous, clips numbered
            from 0).
        sources: ``(clips, C, H, W)`` images the patches are cut from, one per clip, in the
            value range of ``frames``.
        probability: chance that a clip gets a patch.
        size: range of the patch's side, a share of the frame's.
        travel: range of the distance its centre travels over the clip, a share of the frame.
        growth: range of its size at the clip's end over its size at the start.

    Returns:
        The frames with the patches pasted (a new tensor; clips without one unchanged).

    Example:
        >>> x = torch.zeros(6, 1, 16, 16); owner = torch.tensor([0, 0, 0, 1, 1, 1])
        >>> y = paste_moving_patch(x, owner, torch.ones(2, 1, 16, 16), 1.0)
        >>> [round(float(f.mean()), 2) > 0 for f in y]                 # a patch in every frame
        [True, True, True, True, True, True]
        >>> bool((y[0] != y[2]).any())                                  # and it moved
        True
    """
    clips, device = len(sources), frames.device
    count = torch.bincount(owner, minlength=clips)
    first = torch.cumsum(count, 0) - count
    when = ((torch.arange(len(owner), device=device) - first[owner]) / (count[owner] - 1).clamp(min=1)).view(-1, 1, 1)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(clips, *shape, device=device)

    side = uniform(*size, 1)                                          # patch side / frame side
    cut = (2 * torch.rand(clips, 2, device=device) - 1) * (1 - side)   # where it is cut, in [-1, 1]
    middle = torch.rand(clips, 2, device=device) - 0.5                # where it is half-way, in [-0.5, 0.5]
    angle = uniform(0.0, 2 * torch.pi, 1)
    heading = torch.cat([angle.cos(), angle.sin()], 1) * 2 * uniform(*travel, 1)
    grow = uniform(*growth, 1)
    centre = (middle - heading / 2)[owner].view(-1, 1, 1, 2) + when.unsqueeze(-1) * heading[owner].view(-1, 1, 1, 2)
    half = side[owner] * grow[owner] ** when.view(-1, 1)                       # (N, 1), patch side now
    h, w = frames.shape[-2:]
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=device), torch.linspace(-1, 1, w, device=device),
                            indexing="ij")
    local = (torch.stack([xs, ys], -1) - centre) / half.view(-1, 1, 1, 1)     # patch coordinates, [-1, 1] inside
    alpha = ((1 - local.norm(dim=-1)) / 0.3).clamp(0, 1).unsqueeze(1)        # round, feathered edge
    alpha = alpha * (torch.rand(clips, device=device) < probability)[owner].view(-1, 1, 1, 1)
    grid = cut[owner].view(-1, 1, 1, 2) + local * side[owner].view(-1, 1, 1, 1)
    patch = F.grid_sample(sources[owner].to(frames.dtype), grid.to(frames.dtype), mode="bilinear",
                          padding_mode="reflection", align_corners=True)
    return frames * (1 - alpha) + patch * alpha


class FrameNormalize(nn.Module):
    """Evaluation: only scale to [0, 1] and normalise."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255, persistent=False)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 3, S, S)`` -> normalised float ``(N, 3, S, S)``."""
        return (frames.float() - self.mean) / self.std


class FeatureAugment(nn.Module):
    """Views of cached frame features (``data.features``: there are no pixels to crop or
    colour): Gaussian noise relative to each frame's feature scale, then dropout of
    feature channels (rescaled, as in training). With both 0 it only casts to float32,
    which is how evaluation reads a cache.

    Args:
        dropout: the share of feature channels zeroed per frame.
        noise: the noise's standard deviation, as a fraction of each frame's feature std.
    """

    def __init__(self, dropout: float = 0.0, noise: float = 0.0) -> None:
        super().__init__()
        self.dropout, self.noise = dropout, noise

    @torch.no_grad()
    def forward(self, frames: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        """float16 ``(N, D)`` features -> float32 ``(N, D)`` views (``owner`` is not needed)."""
        x = frames.float()
        if self.noise > 0:
            x = x + self.noise * x.std(dim=1, keepdim=True) * torch.randn_like(x)
        if self.dropout > 0:
            x = torch.nn.functional.dropout(x, self.dropout, training=True)
        return x


class ContrastiveViews(nn.Module):
    """SimCLR's view augmentation, batch-wise: random resized crop, horizontal
    flip, colour jitter (p=0.8), grayscale, Gaussian blur, normalisation.

    Each call draws fresh parameters per image, so two calls on the same batch
    give two different views of every frame.

    Args:
        image_size: output side ``S``.
        mean, std: per-channel normalisation (the encoder's).
        crop_scale_min: smallest crop area (SimCLR: 0.08; 0.2 suits small frames).
        jitter: colour jitter strength ``s``: brightness, contrast and
            saturation 0.8 s, hue 0.2 s; 0 disables it.
        grayscale: probability of a grayscale view.
        blur: probability of a Gaussian blur (kernel about a tenth of ``S``).
    """

    def __init__(self, image_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                 crop_scale_min: float = 0.2, jitter: float = 0.5, grayscale: float = 0.2, blur: float = 0.5) -> None:
        super().__init__()
        kernel = max(3, (image_size // 10) | 1)  # odd
        steps: list[nn.Module] = [K.RandomResizedCrop((image_size, image_size), scale=(crop_scale_min, 1.0)),
                                  K.RandomHorizontalFlip(p=0.5)]
        if jitter > 0:
            steps.append(K.ColorJitter(0.8 * jitter, 0.8 * jitter, 0.8 * jitter, min(0.5, 0.2 * jitter), p=0.8))
        if grayscale > 0:
            steps.append(K.RandomGrayscale(p=grayscale))
        if blur > 0:
            steps.append(K.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=blur))
        steps.append(K.Normalize(mean=torch.tensor(mean), std=torch.tensor(std)))
        self.pipeline = K.AugmentationSequential(*steps)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 ``(N, 3, S, S)`` -> one augmented, normalised float view ``(N, 3, S, S)``
        (every frame its own draw; ``owner`` is accepted like :class:`FrameAugment`'s and unused)."""
        return self.pipeline(frames.float().div_(255))
