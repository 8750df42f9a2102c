"""Datasets, batch samplers and collation for the three streams of a run.

* labeled: random frames of labeled trailers, packed (trailers may have
  different frame counts), cycling forever;
* unlabeled: a fixed number of random frames per trailer, ``(B, T, ...)``,
  one pass per epoch;
* evaluation: evenly spaced frames, packed, in order.

Every random choice is drawn from a seed that the batch sampler hands out
with each index, so a stream is a pure function of (seed, epoch, position):
worker processes do not matter and a resumed run continues exactly where it
stopped.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from semisup.data.frames import even_frames, fixed_frames, random_frames, strided_frames
from semisup.data.images import DECODE_ERRORS, load_frame
from semisup.data.samples import Sample, TaskSpec
from semisup.data.reversal import TimeReversal
from semisup.data.synthetic import SyntheticMoves
from semisup.data.video import Decoder, VideoError, count_frames, read_frames

FramePicker = Callable[[int, np.random.Generator], np.ndarray]
"""Chooses frame indices (sorted) of a trailer with ``n`` frames."""


def train_picker(max_frames: int) -> FramePicker:
    """Up to ``max_frames`` random frames, fresh each time."""
    return functools.partial(_random_picker, k=max_frames)


def ordered_picker(max_frames: int) -> FramePicker:
    """Up to ``max_frames`` evenly spaced frames from a random start, fresh each time."""
    return functools.partial(_strided_picker, k=max_frames)


def clip_picker(frames: int) -> FramePicker:
    """Exactly ``frames`` random frames (repeating frames of short trailers)."""
    return functools.partial(_fixed_picker, k=frames)


def eval_picker(eval_frames: int) -> FramePicker:
    """Up to ``eval_frames`` evenly spaced frames, always the same."""
    return functools.partial(_even_picker, k=eval_frames)


def _random_picker(n: int, rng: np.random.Generator, k: int) -> np.ndarray:
    return random_frames(n, k, rng)


def _strided_picker(n: int, rng: np.random.Generator, k: int) -> np.ndarray:
    return strided_frames(n, k, rng)


def _fixed_picker(n: int, rng: np.random.Generator, k: int) -> np.ndarray:
    return fixed_frames(n, k, rng)


def _even_picker(n: int, rng: np.random.Generator, k: int) -> np.ndarray:
    return even_frames(n, k)


# ------------------------------------------------------------------ datasets


@dataclass
class TrailerItem:
    """One decoded trailer: frames ``(T, S, S, 3)`` uint8 and multi-hot targets.

    ``synthetic`` names the class of a synthetic camera move the clip was
    turned into (see :mod:`semisup.data.synthetic`), else ``None``.
    """

    index: int
    frames: np.ndarray
    targets: dict[str, np.ndarray]
    has_label: dict[str, bool]
    bad_frames: list[str]
    synthetic: str | None = None


class TrailerFrames(Dataset):
    """Decodes the picked frames of a trailer.

    Items are requested as ``(index, seed)``: the seed drives the frame
    picker. Frames come from image files or are decoded from the sample's
    video. Unreadable frames are skipped and reported in
    :attr:`TrailerItem.bad_frames`; if every picked image is unreadable the
    other frames of the trailer are tried in order, and a trailer with no
    readable frame at all comes back with zero frames (the collate drops it).

    Args:
        samples: the trailers.
        tasks: tasks whose targets to encode.
        image_size: side of the square frames.
        pick: frame picker.
        synthetic: turns some clips of a source class into synthetic camera
            moves (labeled training only); the decision and the move are drawn
            from the item's seed, apart from the frame picks.
        reversal: plays some clips backwards, relabelled (labeled training only; see
            :mod:`semisup.data.reversal`), decided from the item's seed too.
    """

    def __init__(self, samples: Sequence[Sample], tasks: Sequence[TaskSpec], image_size: int,
                 pick: FramePicker, synthetic: SyntheticMoves | None = None,
                 reversal: TimeReversal | None = None, decoder: Decoder = "pyav") -> None:
        self.samples = list(samples)
        self.decoder = decoder
        self.tasks = list(tasks)
        self.image_size = image_size
        self.pick = pick
        self.synthetic = synthetic
        self.reversal = reversal

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> TrailerItem:
        index, seed = key
        sample = self.samples[index]
        rng = np.random.default_rng(seed)
        labels, size = sample.labels, self.image_size
        move, move_rng = None, None
        if self.synthetic is not None:
            move_rng = np.random.default_rng([seed, 1])  # apart from the frame picks
            move = self.synthetic.draw(labels, move_rng)
        decode_size = round(size * self.synthetic.decode_scale) if move else size
        if sample.video is not None:
            frames, bad = self._from_video(sample.video, rng, decode_size)
        else:
            frames, bad = self._from_images(sample.frames, rng, decode_size)
        stacked = np.stack(frames) if frames else np.zeros((0, size, size, 3), np.uint8)
        if move and len(stacked) < 2:  # a move needs frames to move over: keep the clip as it is
            stacked, move = _resize(stacked, size), None
        if move:
            stacked, labels = self.synthetic.film(stacked, move, size, move_rng), self.synthetic.relabel(labels, move)
        if self.reversal is not None and len(stacked) > 1 and self.reversal.draw(labels, np.random.default_rng([seed, 2])):
            stacked, labels = stacked[::-1].copy(), self.reversal.relabel(labels)
        targets = {t.name: t.encode(labels.get(t.name)) for t in self.tasks}
        has_label = {t.name: labels.get(t.name) is not None for t in self.tasks}
        return TrailerItem(index, stacked, targets, has_label, bad, move)

    def _from_images(self, paths: Sequence, rng: np.random.Generator,
                     size: int) -> tuple[list[np.ndarray], list[str]]:
        picked = self.pick(len(paths), rng)
        frames, bad = self._decode([paths[i] for i in picked], size)
        if not frames:  # every picked frame is broken: take the first readable other one
            skip = set(picked.tolist())
            for path in (p for i, p in enumerate(paths) if i not in skip):
                more, more_bad = self._decode([path], size)
                bad += more_bad
                if more:
                    return more, bad
        return frames, bad

    def _from_video(self, path, rng: np.random.Generator, size: int) -> tuple[list[np.ndarray], list[str]]:
        try:
            picked = self.pick(max(1, count_frames(path)), rng)
            frames = read_frames(path, picked, size, self.decoder)
        except VideoError:
            return [], [str(path)]
        return frames, ([] if len(frames) == len(picked) else [f"{path} (ends early)"])

    @staticmethod
    def _decode(paths: Sequence, size: int) -> tuple[list[np.ndarray], list[str]]:
        frames, bad = [], []
        for path in paths:
            try:
                frames.append(load_frame(path, size))
            except DECODE_ERRORS:
                bad.append(str(path))
        return frames, bad


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames resized to ``(T, size, size, 3)``."""
    if frames.shape[1:3] == (size, size):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])


# ------------------------------------------------------------------ batches


@dataclass
class PackedBatch:
    """Trailers with varying frame counts, their frames packed along one axis.

    Attributes:
        frames: ``(N, 3, S, S)`` uint8, all frames of the batch (from a feature cache:
            ``(N, D)`` float16 frame features).
        owner: ``(N,)`` index (0..B-1) of the trailer each frame belongs to.
        indices: ``(B,)`` dataset index of each trailer.
        targets: per task ``(B, C)`` float multi-hot targets.
        has_label: per task ``(B,)`` bool, the trailer is labeled for the task.
        bad_frames: unreadable frame files met while building the batch.
        unreadable: dataset indices of the trailers left out: none of their frames decoded.
        synthetic: how many trailers of the batch are synthetic camera moves.
    """

    frames: torch.Tensor
    owner: torch.Tensor
    indices: torch.Tensor
    targets: dict[str, torch.Tensor]
    has_label: dict[str, torch.Tensor]
    bad_frames: list[str]
    unreadable: list[int]
    synthetic: int = 0

    @property
    def num_trailers(self) -> int:
        return int(self.indices.numel())


@dataclass
class ClipBatch:
    """Trailers with the same number of frames: ``frames (B, T, 3, S, S)`` uint8
    (from a feature cache: ``(B, T, D)`` float16).

    ``bad_frames`` and ``unreadable`` as in :class:`PackedBatch`.
    """

    frames: torch.Tensor
    indices: torch.Tensor
    bad_frames: list[str]
    unreadable: list[int]


def channels_first(frames: torch.Tensor, batch_dims: int) -> torch.Tensor:
    """``(..., H, W, 3)`` images -> ``(..., 3, H, W)``; frame features ``(..., D)`` stay as they are."""
    if frames.dim() != batch_dims + 3:
        return frames
    return frames.movedim(-1, batch_dims)


def collate_packed(items: Sequence[TrailerItem]) -> PackedBatch:
    """Pack trailers of any frame count; trailers without a readable frame are dropped."""
    bad = [p for item in items for p in item.bad_frames]
    unreadable = [item.index for item in items if not len(item.frames)]
    items = [item for item in items if len(item.frames)]
    counts = torch.tensor([len(item.frames) for item in items], dtype=torch.long)
    frames = np.concatenate([item.frames for item in items]) if items else np.zeros((0, 1, 1, 3), np.uint8)
    names = list(items[0].targets) if items else []
    return PackedBatch(
        frames=channels_first(torch.from_numpy(frames), 1),
        owner=torch.repeat_interleave(torch.arange(len(items)), counts),
        indices=torch.tensor([item.index for item in items], dtype=torch.long),
        targets={n: torch.from_numpy(np.stack([item.targets[n] for item in items])) for n in names},
        has_label={n: torch.tensor([item.has_label[n] for item in items], dtype=torch.bool) for n in names},
        bad_frames=bad,
        unreadable=unreadable,
        synthetic=sum(item.synthetic is not None for item in items),
    )


def collate_clips(items: Sequence[TrailerItem]) -> ClipBatch:
    """Stack trailers into ``(B, T, ...)``; skipped frames are filled by repeating readable ones."""
    bad = [p for item in items for p in item.bad_frames]
    unreadable = [item.index for item in items if not len(item.frames)]
    items = [item for item in items if len(item.frames)]
    if not items:
        return ClipBatch(torch.zeros(0, 0, 3, 1, 1, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), bad,
                         unreadable)
    t = max(len(item.frames) for item in items)
    frames = np.stack([item.frames[np.arange(t) * len(item.frames) // t] for item in items])
    return ClipBatch(channels_first(torch.from_numpy(frames), 2),
                     torch.tensor([item.index for item in items], dtype=torch.long), bad, unreadable)


# ----------------------------------------------------------------- samplers


def draw_seed(*parts: int) -> int:
    """A 32-bit seed derived from a tuple of integers (seed, stream, epoch, index)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def equal_share(num_samples: int, world_size: int) -> int:
    """How many samples of a pass each of ``world_size`` processes reads: the same number
    for every process, so that every process takes the same number of steps.

    Each process takes every ``world_size``-th sample of the pass's order from
    its rank on, up to ``num_samples // world_size`` of them: the last
    ``num_samples % world_size`` samples of the order are left out of this pass
    (a different few each pass, the order being shuffled each pass), as
    ``DistributedSampler(drop_last=True)`` does. A pool smaller than the number
    of processes is wrapped around instead, so that every process has one.

    Example:
        >>> [equal_share(63, 2), equal_share(639, 4), equal_share(3, 4), equal_share(8, 1)]
        [31, 159, 1, 8]
    """
    return max(1, num_samples // world_size)


class EpochPlan(Protocol):
    """The sample indices of each epoch (already shuffled), always ``length`` of them."""

    length: int

    def __call__(self, epoch: int) -> np.ndarray: ...


class EpochBatchSampler(Sampler):
    """Batches of ``(index, draw seed)`` for one epoch, resumable at any batch.

    Call :meth:`set_epoch` before iterating. With ``shuffle`` the order is a
    permutation seeded by (seed, stream, epoch); a ``plan`` (e.g. a
    re-balanced one, where an index may repeat) gives each epoch's order
    instead.

    ``rank``/``world_size`` shard the epoch for data-parallel training, and
    every process gets **the same number of samples**, so the same number of
    batches, whatever the pool's size: :func:`equal_share`. Alone, the epoch is
    the whole order.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, stream: int, shuffle: bool = True,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1, plan: EpochPlan | None = None) -> None:
        if num_samples < 1 or batch_size < 1 or (plan is not None and plan.length < 1):
            raise ValueError(f"need samples and a positive batch size, got {num_samples}, {batch_size}")
        self.num_samples, self.batch_size, self.seed, self.stream = num_samples, batch_size, seed, stream
        self.shuffle, self.drop_last, self.rank, self.world_size = shuffle, drop_last, rank, world_size
        self.plan = plan
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Choose the epoch to iterate and the batch to start from (when resuming)."""
        self.epoch, self.start_batch = epoch, start_batch

    def _order(self) -> np.ndarray:
        if self.plan is not None:
            return self.plan(self.epoch)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.stream, self.epoch])
            return rng.permutation(self.num_samples)
        return np.arange(self.num_samples)

    def __len__(self) -> int:
        n = equal_share(self.plan.length if self.plan is not None else self.num_samples, self.world_size)
        if self.drop_last and n >= self.batch_size:
            return n // self.batch_size
        return math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self._order()
        share = equal_share(len(order), self.world_size)
        positions = np.arange(share * self.world_size)[self.rank::self.world_size]  # in the epoch's order
        for b in range(self.start_batch, len(self)):
            yield [self._draw(order, int(p)) for p in positions[b * self.batch_size:(b + 1) * self.batch_size]]

    def _draw(self, order: np.ndarray, position: int) -> tuple[int, int]:
        """``(index, draw seed)`` of a position in the epoch's order. An index may repeat within
        an epoch (a plan, or a pool wrapped around for more processes): then its position tells
        the draws apart."""
        index = int(order[position % len(order)])
        if self.plan is None and position < len(order):
            return index, draw_seed(self.seed, self.stream, self.epoch, index)
        return index, draw_seed(self.seed, self.stream, self.epoch, index, position)


class CyclingBatchSampler(Sampler):
    """An endless stream of shuffled batches: pass after pass over the samples
    (or over each pass a ``plan`` draws, e.g. :class:`~semisup.data.balance.BalancedPasses`).

    Batch ``g`` of the stream depends only on (seed, stream, g), so the stream
    restarts exactly at ``start_batch``. Each pass drops its incomplete last
    batch (unless there are fewer samples than a batch).
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, stream: int, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1, plan: EpochPlan | None = None) -> None:
        self.epochs = EpochBatchSampler(num_samples, batch_size, seed, stream, shuffle=True, drop_last=True,
                                        rank=rank, world_size=world_size, plan=plan)
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per_pass = len(self.epochs)
        step = self.start_batch
        while True:
            self.epochs.set_epoch(step // per_pass, step % per_pass)
            for batch in self.epochs:
                yield batch
                step += 1


def make_loader(dataset: TrailerFrames, batch_sampler: Sampler, collate: Callable, num_workers: int,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader over ``batch_sampler`` with persistent worker processes.

    The loader draws its workers' base seed from a generator of its own, not
    from torch's global one, so creating an iterator never shifts the random
    state of training (augmentation, dropout): a resumed run stays identical.
    """
    return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate, num_workers=num_workers,
                      persistent_workers=num_workers > 0, pin_memory=pin_memory,
                      prefetch_factor=4 if num_workers > 0 else None, generator=torch.Generator().manual_seed(0))
