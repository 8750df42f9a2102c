"""Jigsaw: which permutation shuffled the tiles of a frame?

After Noroozi and Favaro, "Unsupervised Learning of Visual Representations by
Solving Jigsaw Puzzles" (ECCV 2016). The frame is cut into ``grid x grid``
tiles, reassembled in one of a fixed set of permutations (chosen to be far
apart in Hamming distance), and the head classifies which. Unlike the paper's
siamese network on separate tiles, the shuffled frame goes through the shared
encoder whole, so the task costs one forward pass per frame.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from semisup.errors import check_option
from semisup.pretext.base import Encode, PretextOutput, PretextTask, register_pretext


def permutation_set(tiles: int, size: int, seed: int = 0, candidates: int = 5000) -> np.ndarray:
    """``size`` permutations of ``range(tiles)``, greedily spread out in Hamming distance.

    The identity is always the first; each next one is the candidate farthest
    (by its smallest Hamming distance) from those chosen. Deterministic for a seed.

    Raises:
        ValueError: more permutations asked than exist.
    """
    if not 2 <= size <= math.factorial(tiles):
        raise ValueError(f"a permutation set of {tiles} tiles holds 2..{math.factorial(tiles)}, got {size}")
    if math.factorial(tiles) <= candidates:
        pool = np.array(list(itertools.permutations(range(tiles))))
    else:
        rng = np.random.default_rng(seed)
        pool = np.array([rng.permutation(tiles) for _ in range(candidates)])
    chosen = [np.arange(tiles)]
    nearest = (pool != chosen[0]).sum(1)
    for _ in range(size - 1):
        best = int(np.argmax(nearest))
        chosen.append(pool[best])
        nearest = np.minimum(nearest, (pool != pool[best]).sum(1))
    return np.stack(chosen)


def shuffle_tiles(frames: torch.Tensor, grid: int, order: torch.Tensor) -> torch.Tensor:
    """Reassemble each frame from its ``grid x grid`` tiles in the given order.

    Args:
        frames: ``(N, C, H, W)``; H and W are cropped to multiples of ``grid``.
        grid: tiles per side.
        order: ``(N, grid*grid)`` tile index placed at each position.
    """
    n, c, h, w = frames.shape
    th, tw = h // grid, w // grid
    x = frames[:, :, :th * grid, :tw * grid]
    tiles = x.reshape(n, c, grid, th, grid, tw).permute(0, 2, 4, 1, 3, 5).reshape(n, grid * grid, c, th, tw)
    tiles = torch.gather(tiles, 1, order.view(n, -1, 1, 1, 1).expand_as(tiles))
    return tiles.reshape(n, grid, grid, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, th * grid, tw * grid)


@register_pretext("jigsaw")
class Jigsaw(PretextTask):
    """Tile-permutation classification on single frames (Noroozi and Favaro 2016)."""

    @dataclass(frozen=True)
    class Options:
        """``grid``: tiles per side; ``permutations``: size of the permutation set."""

        grid: int = 2
        permutations: int = 24

        def __post_init__(self) -> None:
            check_option(self.grid >= 2, "grid", "grid >= 2", self.grid)
            most = math.factorial(self.grid ** 2)
            check_option(2 <= self.permutations <= most, "permutations", f"2 <= permutations <= {most}",
                         self.permutations)

    def __init__(self, options: "Jigsaw.Options", feature_dim: int, head_hidden: int = 256,
                 head_dropout: float = 0.0, frames: int = 1) -> None:
        self._order = torch.from_numpy(permutation_set(options.grid ** 2, options.permutations))
        super().__init__(options, feature_dim, head_hidden, head_dropout, frames)

    def output_size(self) -> int:
        return len(self._order)

    def forward(self, frames: torch.Tensor, encode: Encode) -> PretextOutput:
        x = frames.flatten(0, 1)
        target = torch.randint(0, len(self._order), (x.shape[0],), device=x.device)
        shuffled = shuffle_tiles(x, self.options.grid, self._order.to(x.device)[target])
        return self.classify(encode(shuffled), target)
