"""Selection strategies: which unlabeled trailers a person should label next.

A strategy ranks the unlabeled pool from what a trained run knows about it
(:class:`Pool`: each task's scores, the decision thresholds tuned on
validation, the labeled class priors, and trailer embeddings) and returns the
``budget`` trailers to label next, best first. Built in:

* ``random``: the baseline every other strategy must beat.
* ``uncertainty``: the trailers the model is least sure of. Multi-label: per
  label, how close the score is to that label's decision threshold (1 at the
  threshold, 0 at a score of 0 or 1), summed (``reduce = "sum"``) or maxed over
  labels; multi-class: ``margin`` (1 minus the gap between the two best
  classes) or ``entropy`` (normalised to [0, 1]). Summed over tasks.
* ``diversity``: k-center greedy (Sener & Savarese, "Active Learning for
  Convolutional Neural Networks: A Core-Set Approach", ICLR 2018) on trailer
  embeddings: each pick is the trailer farthest from every labeled and
  already picked one, so the batch covers what the labels do not.
* ``mix``: the ``candidates x budget`` most uncertain trailers, then k-center
  greedy among them (uncertain and unlike each other, as in Zhdanov, "Diverse
  mini-batch active learning", 2019): no batch of near-duplicates that one
  label would have settled.
* ``rare``: trailers likely to hold rare labels: the expected number of
  positives, each class weighted by the inverse of its labeled prior.

``uncertainty`` and ``mix`` take ``rare = w``: each class's uncertainty is
weighted by ``prior ** -w`` (normalised to mean 1), so doubt about a rare
class counts more. A plug-in subclasses :class:`Strategy`, sets ``Options``,
implements :meth:`Strategy.rank` and registers itself with
:func:`register_strategy` or the ``semisup.selection`` entry-point group.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from semisup.errors import check_option
from semisup.registry import CatalogueEntry, Registry


@dataclass
class Pool:
    """What a strategy knows about the unlabeled trailers.

    Attributes:
        ids: the pool's trailer ids, ``N``.
        scores: per task, the model's probabilities ``(N, C)``.
        kinds: per task, ``multilabel`` or ``multiclass``.
        thresholds: per multi-label task, ``(C,)`` the score at which each label
            is decided positive (the run's tuned decision rule; 0.5 without one).
        priors: per task, ``(C,)`` each class's share among the labeled trailers.
        embeddings: ``(N, D)`` trailer embeddings (strategies that need them).
        labeled_embeddings: ``(L, D)`` embeddings of the labeled trailers (may be empty).
    """

    ids: list[str]
    scores: dict[str, np.ndarray]
    kinds: dict[str, str]
    thresholds: dict[str, np.ndarray] = field(default_factory=dict)
    priors: dict[str, np.ndarray] = field(default_factory=dict)
    embeddings: np.ndarray | None = None
    labeled_embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Ranking:
    """A strategy's answer: pool indices best first, and each one's score (higher: more wanted)."""

    indices: np.ndarray
    scores: np.ndarray


class Strategy(abc.ABC):
    """Base class of selection strategies.

    Args:
        options: an instance of the subclass's ``Options``.
    """

    name: ClassVar[str] = ""
    needs_embeddings: ClassVar[bool] = False
    """Whether :meth:`rank` reads ``pool.embeddings`` (they cost a pass over the frames)."""

    @dataclass(frozen=True)
    class Options:
        """No options."""

    def __init__(self, options: "Strategy.Options | None" = None) -> None:
        self.options = options if options is not None else type(self).Options()

    @abc.abstractmethod
    def rank(self, pool: Pool, budget: int, rng: np.random.Generator) -> Ranking:
        """The ``min(budget, len(pool))`` trailers to label next, best first."""


SELECTION: Registry = Registry("selection strategy", Strategy, "semisup.selection", "semisup strategy list")
"""Selection strategies by name: built-ins, ``semisup.selection`` entry points, ``module:Class`` paths."""

register_strategy = SELECTION.register
"""Class decorator that makes a selection strategy available by name."""


def get_strategy(name: str, where: str = "--strategy") -> type[Strategy]:
    """Look up a strategy by name (built-in, entry point or ``module:Class``).

    Raises:
        SemisupError: unknown (with a did-you-mean) or broken plug-in.
    """
    return SELECTION.get(name, where)


def strategy_catalogue() -> list[CatalogueEntry]:
    """Every selection strategy found: built-ins, then installed plug-ins."""
    return SELECTION.catalogue()


# --- what the strategies are made of ---------------------------------------------------------------------------


def label_uncertainty(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``(N, C)`` per label, how undecided a multi-label score is: 1 at the label's
    threshold, falling linearly to 0 at a score of 0 or 1.

    Example:
        >>> label_uncertainty(np.array([[0.5, 0.9, 0.3]]), np.array([0.5, 0.5, 0.3])).round(2).tolist()
        [[1.0, 0.2, 1.0]]
    """
    t = np.clip(np.asarray(thresholds, dtype=np.float64)[None, :], 1e-6, 1 - 1e-6)
    p = np.asarray(scores, dtype=np.float64)
    room = np.where(p < t, t, 1 - t)  # how far the score could be from the threshold on its side
    return 1 - np.abs(p - t) / room


def class_uncertainty(scores: np.ndarray, measure: Literal["margin", "entropy"] = "margin") -> np.ndarray:
    """``(N,)`` how undecided multi-class probabilities are: ``1 - (p_first - p_second)``
    (margin) or the entropy divided by ``log C`` (entropy); both in [0, 1].

    Example:
        >>> class_uncertainty(np.array([[0.5, 0.4, 0.1], [1.0, 0.0, 0.0]])).round(2).tolist()
        [0.9, 0.0]
    """
    p = np.asarray(scores, dtype=np.float64)
    if measure == "margin":
        top = -np.sort(-p, axis=1)
        return 1 - (top[:, 0] - top[:, 1]) if p.shape[1] > 1 else np.zeros(len(p))
    entropy = -(p * np.log(np.clip(p, 1e-12, 1))).sum(1)
    return entropy / math.log(p.shape[1]) if p.shape[1] > 1 else np.zeros(len(p))


def rarity_weights(prior: np.ndarray, power: float) -> np.ndarray:
    """``(C,)`` ``prior ** -power`` normalised to mean 1 (0: every class alike). A class
    without labeled examples counts as rare as the rarest seen one.

    Example:
        >>> rarity_weights(np.array([0.5, 0.125]), 1.0).round(2).tolist()
        [0.4, 1.6]
    """
    prior = np.asarray(prior, dtype=np.float64)
    seen = prior[prior > 0]
    floor = seen.min() if len(seen) else 1.0
    weights = np.maximum(prior, floor) ** -power
    return weights / weights.mean()


def uncertainty_scores(pool: Pool, reduce: Literal["sum", "max"] = "sum",
                       measure: Literal["margin", "entropy"] = "margin", rare: float = 0.0) -> np.ndarray:
    """``(N,)`` each trailer's uncertainty, summed over tasks (see the module docstring)."""
    total = np.zeros(len(pool))
    for task, scores in pool.scores.items():
        weights = rarity_weights(pool.priors[task], rare) if rare and task in pool.priors else None
        if pool.kinds[task] == "multilabel":
            per_label = label_uncertainty(scores, pool.thresholds.get(task, np.full(scores.shape[1], 0.5)))
            if weights is not None:
                per_label = per_label * weights[None, :]
            total += per_label.sum(1) if reduce == "sum" else per_label.max(1)
        else:
            doubt = class_uncertainty(scores, measure)
            if weights is not None:  # weighted by the rarity of the two classes it hesitates between
                top2 = np.argsort(-scores, axis=1)[:, :2]
                doubt = doubt * weights[top2].mean(1)
            total += doubt
    return total


def k_center_greedy(embeddings: np.ndarray, budget: int, centers: np.ndarray | None = None,
                    rng: np.random.Generator | None = None) -> Ranking:
    """Pick ``budget`` rows of ``embeddings (N, D)``, each the farthest (Euclidean) from
    ``centers (L, D)`` and every row picked before it; scores are those distances.

    Without centers the first pick is random (``rng``) or row 0.

    Example:
        >>> points = np.array([[0.0, 0], [0.1, 0], [5, 5], [0, 3]])
        >>> k_center_greedy(points, 2, centers=np.array([[0.0, 0]])).indices.tolist()
        [2, 3]
    """
    x = np.asarray(embeddings, dtype=np.float64)
    budget = min(budget, len(x))
    nearest = np.full(len(x), np.inf)
    if centers is not None and len(centers):
        for start in range(0, len(centers), 1024):  # in chunks: (N, 1024) distances at a time
            chunk = np.asarray(centers[start:start + 1024], dtype=np.float64)
            nearest = np.minimum(nearest, _distances(x, chunk).min(1))
    picked, scores = [], []
    for _ in range(budget):
        if np.isinf(nearest).all():
            choice = int(rng.integers(len(x))) if rng is not None else 0
        else:
            choice = int(np.argmax(nearest))
        picked.append(choice)
        scores.append(float(nearest[choice]) if np.isfinite(nearest[choice]) else 0.0)
        nearest = np.minimum(nearest, _distances(x, x[choice:choice + 1])[:, 0])
        nearest[picked] = -np.inf  # never twice
    return Ranking(np.array(picked, dtype=np.int64), np.array(scores))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` Euclidean distances."""
    squared = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
    return np.sqrt(np.clip(squared, 0, None))


def normalized(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine geometry for k-center)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def top(scores: np.ndarray, budget: int) -> Ranking:
    """The ``budget`` highest scores, best first (ties: the earlier index first)."""
    order = np.argsort(-np.asarray(scores), kind="stable")[:budget]
    return Ranking(order, np.asarray(scores)[order])


def _require_embeddings(pool: Pool, name: str) -> np.ndarray:
    if pool.embeddings is None:
        raise ValueError(f"strategy {name!r} needs trailer embeddings")
    return pool.embeddings


# --- the built-in strategies -----------------------------------------------------------------------------------


@register_strategy("random")
class RandomStrategy(Strategy):
    """Trailers in a random order: the baseline."""

    def rank(self, pool: Pool, budget: int, rng: np.random.Generator) -> Ranking:
        order = rng.permutation(len(pool))[:budget]
        return Ranking(order, np.zeros(len(order)))


@register_strategy("uncertainty")
class UncertaintyStrategy(Strategy):
    """The trailers the model is least sure of (closest to its decision thresholds)."""

    @dataclass(frozen=True)
    class Options:
        """Attributes:
            reduce: multi-label: ``sum`` or ``max`` of the per-label uncertainties.
            measure: multi-class: ``margin`` or ``entropy``.
            rare: weight each class's uncertainty by ``prior ** -rare`` (0: all alike).
        """

        reduce: Literal["sum", "max"] = "sum"
        measure: Literal["margin", "entropy"] = "margin"
        rare: float = 0.0

        def __post_init__(self) -> None:
            check_option(self.reduce in ("sum", "max"), "reduce", '"sum" or "max"', self.reduce)
            check_option(self.measure in ("margin", "entropy"), "measure", '"margin" or "entropy"', self.measure)
            check_option(self.rare >= 0, "rare", "rare >= 0", self.rare)

    def rank(self, pool: Pool, budget: int, rng: np.random.Generator) -> Ranking:
        o = self.options
        return top(uncertainty_scores(pool, o.reduce, o.measure, o.rare), budget)


@register_strategy("diversity")
class DiversityStrategy(Strategy):
    """k-center greedy on trailer embeddings: cover what the labeled trailers do not."""

    needs_embeddings = True

    def rank(self, pool: Pool, budget: int, rng: np.random.Generator) -> Ranking:
        centers = pool.labeled_embeddings
        return k_center_greedy(normalized(_require_embeddings(pool, self.name)), budget,
                               normalized(centers) if centers is not None and len(centers) else None, rng)


@register_strategy("mix")
class MixStrategy(Strategy):
    """The most uncertain ``candidates x budget`` trailers, then k-center greedy among them."""

    needs_embeddings = True

    @dataclass(frozen=True)
    class Options(UncertaintyStrategy.Options):
        """Attributes:
            candidates: how many uncertain trailers per pick k-center chooses from (>= 1;
                1 is plain uncertainty, the pool size plain diversity).
        """

        candidates: float = 4.0

        def __post_init__(self) -> None:
            super().__post_init__()
            check_option(self.candidates >= 1, "candidates", "candidates >= 1", self.candidates)

    def rank(self, pool: Pool, budget: int, rng: np.random.Generator) -> Ranking:
        o = self.options
        doubt = uncertainty_scores(pool, o.reduce, o.measure, o.rare)
        shortlist = top(doubt, max(budget, math.ceil(o.candidates * budget))).indices
        centers = pool.labeled_embeddings
        spread = k_center_greedy(normalized(_require_embeddings(pool, self.name)[shortlist]), budget,
                                 normalized(centers) if centers is not None and len(centers) else None, rng)
        chosen = shortlist[spread.indices]
        return Ranking(chosen, doubt[chosen])


@register_strategy("rare")
class RareStrategy(Strategy):
    """Trailers likely to hold rare labels: expected positives weighted by inverse prior."""

    @dataclass(frozen=True)
    class Options:
        """Attributes:
            power: class weight ``prior ** -power`` (1: inverse prior).
        """

        power: float = 1.0

    def rank(self, pool: Pool, budget: int, rng: np.random.Generator) -> Ranking:
        total = np.zeros(len(pool))
        for task, scores in pool.scores.items():
            prior = pool.priors.get(task, np.full(scores.shape[1], 1.0 / scores.shape[1]))
            total += (np.asarray(scores, dtype=np.float64) * rarity_weights(prior, self.options.power)[None, :]).sum(1)
        return top(total, budget)
