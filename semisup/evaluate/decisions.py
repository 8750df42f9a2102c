"""Decision rules: turn a score matrix ``(N, C)`` into 0/1 labels ``(N, C)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class DecisionRule(Protocol):
    """Anything with a ``name`` that maps scores ``(N, C)`` to bool labels ``(N, C)``."""

    name: str

    def __call__(self, scores: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class TopK:
    """The ``k`` highest-scoring labels of every sample (all of them if ``k >= C``).

    Example:
        >>> TopK(1)(np.array([[0.1, 0.7, 0.2]]))
        array([[False,  True, False]])
    """

    k: int

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"top-k needs k >= 1, got {self.k}")

    @property
    def name(self) -> str:
        return f"top-{self.k}"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores)
        out = np.zeros(scores.shape, dtype=bool)
        k = min(self.k, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        np.put_along_axis(out, top, True, axis=1)
        return out


@dataclass(frozen=True)
class Threshold:
    """Every label whose probability is at least ``t``; ``t = 0.5`` is "rounding".

    Example:
        >>> Threshold(0.5)(np.array([[0.5, 0.49]]))
        array([[ True, False]])
    """

    t: float = 0.5

    @property
    def name(self) -> str:
        return "round" if self.t == 0.5 else f"threshold-{self.t:g}"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) >= self.t


def default_rules(top_k: tuple[int, ...] = (1, 2, 3, 4, 5), threshold: float = 0.5) -> list[DecisionRule]:
    """The rules reported at the end of every run: top-k for each k, then the threshold."""
    return [*(TopK(k) for k in top_k), Threshold(threshold)]
