"""Where a training stage is, and how it is saved: the loop's position and running sums
(:class:`TrainState`), and ``last.pt`` with every process's random state (:class:`Checkpointer`)."""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from semisup import distributed
from semisup.checkpoints import rng_state, save_checkpoint


@dataclass
class TrainState:
    """Everything besides weights and optimisers that a resumed run needs.

    Attributes:
        epoch, batch: the next step to run (``epoch`` = epochs completed).
        best_score, best_epoch: best validation score so far and the 1-based epoch that reached it.
        sums: running sums of the current epoch's statistics.
        bad_frames: unreadable frame files met so far.
        elapsed: training seconds of earlier sessions.
    """

    epoch: int = 0
    batch: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    bad_frames: set[str] = field(default_factory=set)
    elapsed: float = 0.0

    def add(self, **values: float) -> None:
        """Add to the epoch's running sums."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def mean(self, key: str) -> float:
        """Mean of a summed statistic over the epoch's steps so far."""
        return self.sums.get(key, 0.0) / max(1.0, self.sums.get("steps", 0.0))

    def images_per_s(self) -> float:
        return self.sums.get("images", 0.0) / max(self.sums.get("seconds", 0.0), 1e-9)

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "best_score": self.best_score,
                "best_epoch": self.best_epoch, "sums": dict(self.sums), "bad_frames": sorted(self.bad_frames),
                "elapsed": self.elapsed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainState":
        return cls(data["epoch"], data["batch"], data["best_score"], data["best_epoch"], dict(data["sums"]),
                   set(data["bad_frames"]), data["elapsed"])

    def next_epoch(self) -> None:
        """Move to the first step of the next epoch, with fresh running sums."""
        self.epoch, self.batch, self.sums = self.epoch + 1, 0, {}


class Checkpointer:
    """Saves a loop's ``last.pt`` and keeps its wall time across resumed sessions.

    ``payload`` returns what to save besides the random state and the
    :class:`TrainState` (weights, optimisers, scalers); :meth:`save` adds both.
    In a data-parallel run every process calls :meth:`save` at the same steps
    (the step's agreement says when one is :meth:`due`); rank 0 writes, with
    every process's random state (``rng_ranks``) and the number of processes,
    and when its write fails every process stops with its message. With
    ``sharded`` (FSDP) every process first writes its own shards of the weights
    and optimiser states (``sharded(folder)``, a collective) and ``last.pt``
    names the folder.
    """

    def __init__(self, path: Path, payload: Callable[[], dict[str, Any]], state: TrainState, minutes: float,
                 sharded: Callable[[Path], None] | None = None) -> None:
        self.path, self.payload, self.state, self.interval = path, payload, state, minutes * 60
        self.sharded = sharded
        self.session_start = self.last_save = time.monotonic()
        self.elapsed_before = state.elapsed

    def elapsed(self) -> float:
        """Training seconds so far, earlier sessions included."""
        return self.elapsed_before + time.monotonic() - self.session_start

    def due(self) -> bool:
        """Whether ``minutes`` have passed since the last save (a save inside an epoch)."""
        return time.monotonic() - self.last_save > self.interval

    def save(self) -> None:
        """Write ``last.pt`` (rank 0), and with ``sharded`` first every process's shards into a
        folder beside it that ``last.pt`` names; older such folders are removed once it is written."""
        self.state.elapsed = self.elapsed()
        rngs, sums = zip(*distributed.gather_objects((rng_state(), dict(self.state.sums))))
        extra = {}
        if self.sharded is not None:  # a new folder each time: last.pt always names a complete one
            folder = self.path.parent / f"{self.path.stem}-{self.state.epoch}-{self.state.batch}.dcp"
            self.sharded(folder)
            extra = {"sharded": folder.name}

        def write() -> None:
            save_checkpoint(self.path, {**self.payload(), **extra, "rng": rngs[0], "rng_ranks": list(rngs),
                                        "sums_ranks": list(sums), "world_size": len(rngs),
                                        "state": self.state.to_dict()})
            for old in self.path.parent.glob(f"{self.path.stem}-*.dcp"):
                if old.name != extra.get("sharded"):
                    shutil.rmtree(old, ignore_errors=True)

        distributed.on_main(write)
        self.last_save = time.monotonic()
