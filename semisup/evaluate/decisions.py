"""Decision rules: turn a score matrix ``(N, C)`` into 0/1 labels ``(N, C)``.

Each rule is a small frozen object; rules compose (``AtLeastOne(Threshold(0.4))``)
and serialise to a dict (``to_dict`` / :func:`rule_from_dict`) so a run can
store the one it chose. Multi-label tasks pick among top-k, rounding, a global
threshold, per-class thresholds and MCut; multi-class tasks take the argmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class DecisionRule(Protocol):
    """Maps scores ``(N, C)`` to bool labels ``(N, C)``; ``name`` is the rule's family."""

    name: str

    def __call__(self, scores: np.ndarray) -> np.ndarray: ...

    def describe(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TopK:
    """The ``k`` highest-scoring labels of every sample (all of them if ``k >= C``).

    Example:
        >>> TopK(1)(np.array([[0.1, 0.7, 0.2]]))
        array([[False,  True, False]])
    """

    k: int
    name = "top-k"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"top-k needs k >= 1, got {self.k}")

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores)
        if self.k >= scores.shape[1]:
            return np.ones(scores.shape, dtype=bool)
        out = np.zeros(scores.shape, dtype=bool)
        top = np.argpartition(-scores, self.k - 1, axis=1)[:, :self.k]  # O(C) per row, ties broken arbitrarily
        np.put_along_axis(out, top, True, axis=1)
        return out

    def describe(self) -> str:
        return f"top-{self.k}"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.name, "k": self.k}


@dataclass(frozen=True)
class Threshold:
    """Every label whose probability is at least ``t``; ``t = 0.5`` is "rounding".

    Example:
        >>> Threshold(0.5)(np.array([[0.5, 0.49]]))
        array([[ True, False]])
    """

    t: float = 0.5
    name = "threshold"

    def __post_init__(self) -> None:
        if not 0.0 <= self.t <= 1.0:
            raise ValueError(f"a threshold must be in [0, 1], got {self.t}")

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) >= self.t

    def describe(self) -> str:
        return "round" if self.t == 0.5 else f"p >= {self.t:.3g}"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.name, "t": self.t}


@dataclass(frozen=True)
class PerClassThreshold:
    """Label ``c`` when its probability is at least ``thresholds[c]``.

    Build it with :func:`tune_per_class_thresholds` on validation scores.

    Example:
        >>> PerClassThreshold((0.3, 0.8))(np.array([[0.5, 0.5]]))
        array([[ True, False]])
    """

    thresholds: tuple[float, ...]
    name = "per-class"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores)
        if scores.shape[1] != len(self.thresholds):
            raise ValueError(f"{len(self.thresholds)} thresholds for {scores.shape[1]} classes")
        return scores >= np.asarray(self.thresholds)[None, :]

    def describe(self) -> str:
        t = np.asarray(self.thresholds)
        return f"per-class p >= {t.min():.2f}..{t.max():.2f} (median {np.median(t):.2f})"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.name, "thresholds": [float(t) for t in self.thresholds]}


@dataclass(frozen=True)
class MCut:
    """Cut each sample's sorted scores at their largest gap (Largeron et al., 2012).

    Labels above the midpoint of the widest gap between consecutive sorted
    scores are positive: no parameter to tune.

    Example:
        >>> MCut()(np.array([[0.9, 0.8, 0.2, 0.1]]))
        array([[ True,  True, False, False]])
    """

    name = "mcut"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape[1] < 2:
            return np.ones(scores.shape, dtype=bool)
        ranked = -np.sort(-scores, axis=1)
        gap = np.argmax(ranked[:, :-1] - ranked[:, 1:], axis=1)
        rows = np.arange(len(scores))
        cut = (ranked[rows, gap] + ranked[rows, gap + 1]) / 2
        return scores > cut[:, None]

    def describe(self) -> str:
        return "mcut"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.name}


@dataclass(frozen=True)
class AtLeastOne:
    """Apply ``rule``; a sample left with no label gets its top-scoring one.

    Example:
        >>> AtLeastOne(Threshold(0.9))(np.array([[0.2, 0.6], [0.95, 0.1]]))
        array([[False,  True],
               [ True, False]])
    """

    rule: Any
    name = "at-least-one"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        decided = self.rule(scores)
        empty = ~decided.any(axis=1)
        if empty.any():
            decided[empty] = TopK(1)(np.asarray(scores)[empty])
        return decided

    def describe(self) -> str:
        return f"{self.rule.describe()}, else top-1"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.name, "inner": self.rule.to_dict()}


@dataclass(frozen=True)
class Argmax:
    """The single highest-scoring class (multi-class tasks)."""

    name = "argmax"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return TopK(1)(scores)

    def describe(self) -> str:
        return "argmax"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.name}


def rule_from_dict(data: dict[str, Any]) -> DecisionRule:
    """Rebuild a rule from ``rule.to_dict()``.

    Raises:
        ValueError: unknown rule or bad parameters.
    """
    kind = data.get("rule")
    if kind == "top-k":
        return TopK(int(data["k"]))
    if kind == "threshold":
        return Threshold(float(data["t"]))
    if kind == "per-class":
        return PerClassThreshold(tuple(float(t) for t in data["thresholds"]))
    if kind == "mcut":
        return MCut()
    if kind == "argmax":
        return Argmax()
    if kind == "at-least-one":
        return AtLeastOne(rule_from_dict(data["inner"]))
    raise ValueError(f"unknown decision rule {kind!r}")


def default_rules(top_k: tuple[int, ...] = (1, 2, 3, 4, 5), threshold: float = 0.5) -> list[DecisionRule]:
    """The rules reported at the end of every run: top-k for each k, then the threshold."""
    return [*(TopK(k) for k in top_k), Threshold(threshold)]


def tune_per_class_thresholds(targets: np.ndarray, scores: np.ndarray, fallback: float = 0.5,
                              min_positives: int = 3, floor: float = 0.05) -> PerClassThreshold:
    """Per-class thresholds that maximise each class's F1 on (validation) data.

    For every class all distinct scores are candidate thresholds (vectorised:
    one sort per class). A threshold sits halfway between the chosen score and
    the next lower one, and never below ``floor``, so no class collapses to
    "always positive". Classes with fewer than ``min_positives`` positives
    keep ``fallback`` (e.g. the best global threshold): a single positive is
    no basis for a threshold.

    Args:
        targets: ``(N, C)`` 0/1 ground truth.
        scores: ``(N, C)`` probabilities.
        fallback: threshold for classes with too few positives.
        min_positives: fewer positives than this means "use the fallback".
        floor: lowest threshold allowed.

    Returns:
        The tuned :class:`PerClassThreshold`.
    """
    targets = np.ascontiguousarray(np.asarray(targets).astype(bool).T)   # (C, N): sort along rows, fast
    scores = np.ascontiguousarray(np.asarray(scores, dtype=np.float64).T)
    c, n = scores.shape
    order = np.argsort(-scores, axis=1)
    ranked = np.take_along_axis(scores, order, axis=1)
    hits = np.take_along_axis(targets, order, axis=1)
    true_pos = np.cumsum(hits, axis=1)
    predicted = np.arange(1, n + 1)[None, :]
    positives = targets.sum(axis=1)
    f1 = 2 * true_pos / (predicted + positives[:, None])
    last_of_tie = np.ones_like(hits)
    last_of_tie[:, :-1] = ranked[:, :-1] != ranked[:, 1:]
    f1 = np.where(last_of_tie, f1, -1.0)            # only cut between distinct scores
    best = np.argmax(f1, axis=1)
    rows = np.arange(c)
    below = np.where(best + 1 < n, ranked[rows, np.minimum(best + 1, n - 1)], 0.0)
    chosen = (ranked[rows, best] + below) / 2
    chosen = np.maximum(chosen, floor)
    chosen = np.where(positives >= min_positives, chosen, fallback)
    return PerClassThreshold(tuple(float(t) for t in chosen))
