"""Time reversal: labeled clips played backwards, with the label the reversed move has.

A push played backwards is a pull, a pull a push; a pan stays a pan and a
still shot still. A movement model trained on few labeled shots learns what
its pushes and pulls *look like* (the footage, the subjects) instead of which
way things move; it then fails on footage it never saw. Playing half of each
labeled clip of a reversible class backwards, relabelled, shows it every
pushed scene also as a pull: what the clips show no longer tells the classes
apart, only the direction of time does. It costs nothing (the same frames,
in the other order) and holds for any footage.

The map is the task's ``reversed_labels``: the class a clip of each class
becomes when played backwards. Clips of unlisted classes are never reversed
(an action whose reverse is no class). Other tasks keep their labels: a
shot's scale or a trailer's genres do not depend on the direction of time.
The decision is drawn from the clip's own seed, apart from its frame picks,
so the labeled stream stays a pure function of (seed, step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class TimeReversal:
    """Plays labeled clips backwards with probability ``rate``, relabelled by ``maps``.

    Args:
        maps: per task, class -> the class its clips become played backwards.
        rate: chance that a clip whose every mapped task can be reversed is played backwards.

    Example:
        >>> flip = TimeReversal({"movement": {"Push": "Pull", "Pull": "Push", "Static": "Static"}})
        >>> flip.relabel({"movement": ("Push",), "scale": ("CS",)})
        {'movement': ('Pull',), 'scale': ('CS',)}
        >>> flip.reversible({"movement": ("Motion",)})         # not in the map: never reversed
        False
    """

    maps: Mapping[str, Mapping[str, str]]
    rate: float = 0.5

    def reversible(self, labels: Mapping[str, tuple[str, ...] | None]) -> bool:
        """Whether a clip with ``labels`` may be played backwards: every mapped task has a label,
        and the map names it."""
        for task, mapping in self.maps.items():
            label = labels.get(task)
            if not label or any(value not in mapping for value in label):
                return False
        return True

    def draw(self, labels: Mapping[str, tuple[str, ...] | None], rng: np.random.Generator) -> bool:
        """Whether to play this clip backwards."""
        return self.reversible(labels) and bool(rng.random() < self.rate)

    def relabel(self, labels: Mapping[str, tuple[str, ...] | None]) -> dict[str, tuple[str, ...] | None]:
        """A reversed clip's labels: mapped tasks take the reversed class, the others stay."""
        return {task: (tuple(self.maps[task][v] for v in value) if task in self.maps and value else value)
                for task, value in labels.items()}
