"""Which frames of a trailer to look at.

Training takes a random subset (fresh each epoch), or, for tasks that read
time order, an evenly spaced clip with a random start; evaluation an evenly
spaced, deterministic pick. All pickers return frame indices in time order.
"""

from __future__ import annotations

import numpy as np


def random_frames(num_frames: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``k`` distinct random frame indices of ``num_frames``, sorted.

    Example:
        >>> random_frames(10, 3, np.random.default_rng(0))
        array([5, 6, 9])
    """
    if num_frames <= k:
        return np.arange(num_frames)
    return np.sort(rng.choice(num_frames, size=k, replace=False))


def even_frames(num_frames: int, k: int) -> np.ndarray:
    """Up to ``k`` evenly spaced frame indices (centres of ``k`` equal segments).

    Example:
        >>> even_frames(10, 3)
        array([1, 5, 8])
    """
    if num_frames <= k:
        return np.arange(num_frames)
    return ((np.arange(k) + 0.5) * num_frames / k).astype(np.int64)


def fixed_frames(num_frames: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``k`` random frame indices, sorted; frames repeat when there are fewer than ``k``.

    Pretext batches need the same number of frames per trailer.

    Example:
        >>> fixed_frames(2, 4, np.random.default_rng(0))
        array([0, 1, 1, 1])
    """
    if num_frames >= k:
        return random_frames(num_frames, k, rng)
    extra = rng.choice(num_frames, size=k - num_frames, replace=True)
    return np.sort(np.concatenate([np.arange(num_frames), extra]))


def strided_frames(num_frames: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``k`` evenly spaced frame indices from a random start: an ordered clip.

    The spacing is ``num_frames / k`` (the whole trailer is covered, as in
    evaluation), the offset inside the first segment is random, so each epoch
    sees other frames at the same regular rhythm, which a temporal model
    needs (a random subset has irregular gaps that look like changes of speed).

    Example:
        >>> strided_frames(10, 3, np.random.default_rng(0))
        array([2, 5, 8])
    """
    if num_frames <= k:
        return np.arange(num_frames)
    stride = num_frames / k
    return np.floor(rng.uniform(0, stride) + np.arange(k) * stride).astype(np.int64)
