"""Model outputs on a split: per-task probabilities and targets, saved as ``.npz``."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from semisup.errors import SemisupError
from semisup.io import atomic_write


@dataclass
class Predictions:
    """Probabilities and ground truth of every trailer of a split.

    Attributes:
        ids: ``N`` sample ids.
        labels: per task, its label vocabulary (``C`` names).
        scores: per task, ``(N, C)`` probabilities.
        targets: per task, ``(N, C)`` 0/1 ground truth (zeros where unlabeled).
        labeled: per task, ``(N,)`` bool, the sample has labels for the task.
        kinds: per task, ``multilabel`` (sigmoid scores) or ``multiclass``
            (softmax scores, one-hot targets).
        unreadable: ids of the split's samples that could not be scored: none
            of their frames decoded (not among ``ids``).
        skipped_frames: frame files (or videos) that did not decode and were skipped.
    """

    ids: list[str]
    labels: dict[str, tuple[str, ...]]
    scores: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    labeled: dict[str, np.ndarray]
    kinds: dict[str, str]
    unreadable: list[str] = field(default_factory=list)
    skipped_frames: list[str] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: Sequence["Predictions"]) -> "Predictions":
        """One split's predictions from the shares several processes scored, in order."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        return cls([i for p in parts for i in p.ids], first.labels,
                   {t: np.concatenate([p.scores[t] for p in parts]) for t in first.labels},
                   {t: np.concatenate([p.targets[t] for p in parts]) for t in first.labels},
                   {t: np.concatenate([p.labeled[t] for p in parts]) for t in first.labels}, first.kinds,
                   [i for p in parts for i in p.unreadable], [f for p in parts for f in p.skipped_frames])

    def unreadable_summary(self, examples: int = 10) -> dict[str, Any]:
        """What could not be read, for report.json: the unreadable samples and skipped frames."""
        return {"samples": len(self.unreadable), "sample_ids": list(self.unreadable),
                "skipped_frames": len(self.skipped_frames), "frame_examples": self.skipped_frames[:examples]}

    def save(self, path: Path) -> None:
        """Write an ``.npz`` atomically (temporary file, then rename)."""
        arrays: dict[str, np.ndarray] = {"ids": np.array(self.ids, dtype=str), "tasks": np.array(list(self.labels)),
                                         "unreadable": np.array(self.unreadable, dtype=str),
                                         "skipped_frames": np.array(self.skipped_frames, dtype=str)}
        for task in self.labels:
            arrays[f"{task}.labels"] = np.array(self.labels[task], dtype=str)
            arrays[f"{task}.scores"] = self.scores[task].astype(np.float32)
            arrays[f"{task}.targets"] = self.targets[task].astype(np.uint8)
            arrays[f"{task}.labeled"] = self.labeled[task].astype(bool)
            arrays[f"{task}.kind"] = np.array(self.kinds[task])
        with atomic_write(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> "Predictions":
        """Read a file written by :meth:`save`.

        Raises:
            SemisupError: missing or not a predictions file.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                tasks = [str(t) for t in data["tasks"]]
                return cls(
                    ids=[str(i) for i in data["ids"]],
                    labels={t: tuple(str(x) for x in data[f"{t}.labels"]) for t in tasks},
                    scores={t: data[f"{t}.scores"] for t in tasks},
                    targets={t: data[f"{t}.targets"] for t in tasks},
                    labeled={t: data[f"{t}.labeled"] for t in tasks},
                    kinds={t: str(data[f"{t}.kind"]) for t in tasks},
                    unreadable=[str(i) for i in data["unreadable"]] if "unreadable" in data else [],
                    skipped_frames=[str(p) for p in data["skipped_frames"]] if "skipped_frames" in data else [],
                )
        except FileNotFoundError:
            raise SemisupError(f"{path}: predictions file not found") from None
        except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise SemisupError(f"{path}: not a semisup predictions file ({_why(exc)}); expected "
                               "predictions/<split>.npz of a run, or the predictions.npz of `semisup evaluate`") from None


def _why(exc: BaseException) -> str:
    """Why numpy could not read a file, in semisup's words (numpy's own advice to unpickle an
    untrusted file is not advice semisup gives).

    Example:
        >>> _why(KeyError("tasks is not a file in the archive"))
        "no 'tasks' array"
    """
    text = str(exc)
    if "pickled" in text:
        return "not a numpy archive of plain arrays"
    if isinstance(exc, KeyError):
        return f"no {text.strip(chr(39)).split(' is not a file')[0]!r} array"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
