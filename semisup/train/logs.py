"""Run logs: one JSON object per epoch in ``metrics.jsonl``, and TensorBoard events."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from semisup.io import json_safe, read_metrics, write_failed, write_text


class RunLogger:
    """Append epoch records to ``metrics.jsonl`` and scalars to TensorBoard.

    Only the main process of a data-parallel run logs (``enabled``). When a
    run resumes after ``resume_epoch`` completed epochs, records of later epochs (written before
    the crash, after the checkpoint) are dropped and TensorBoard purges the
    events after ``resume_step``, so nothing is logged twice.

    Args:
        run_dir: the run directory.
        enabled: False on non-main processes: every call is a no-op.
        resume_epoch: epochs completed at the checkpoint when resuming, else None
            (records carry 1-based epoch numbers).
        resume_step: global step reached at the checkpoint when resuming.
    """

    def __init__(self, run_dir: Path, enabled: bool = True, resume_epoch: int | None = None,
                 resume_step: int | None = None) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.enabled = enabled
        self._writer = None
        if not enabled:
            return
        if resume_epoch is not None and self.path.exists():
            kept = [line for line in read_metrics(self.path) if line.get("epoch", 0) <= resume_epoch]
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=resume_step)

    def log_epoch(self, record: Mapping[str, Any], step: int) -> None:
        """Append ``record`` to metrics.jsonl and its numbers to TensorBoard.

        Raises:
            SemisupError: metrics.jsonl could not be written (it is left as it was).
        """
        if not self.enabled:
            return
        size = self.path.stat().st_size if self.path.exists() else 0
        try:
            with self.path.open("a") as handle:
                handle.write(json.dumps(json_safe(record)) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:  # a full disk: no torn record left for the next one to be glued to
            with contextlib.suppress(OSError):
                os.truncate(self.path, size)
            raise write_failed(self.path, exc.strerror or str(exc)) from exc
        for key, value in _flatten(record).items():
            if isinstance(value, (int, float)) and key != "epoch" and math.isfinite(value):
                self._writer.add_scalar(f"epoch/{key}", value, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out
