"""The progress display of a run: a rich bar with losses, images/s and ETA.

The training loop reports to any object with these methods; ``NullProgress``
keeps quiet (tests, non-main processes), ``RichProgress`` draws the bars.
"""

from __future__ import annotations

from typing import Any, Mapping

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


class NullProgress:
    """Reports nothing."""

    def start(self, total_steps: int, done_steps: int) -> None: ...

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None: ...

    def advance(self, stats: Mapping[str, float]) -> None: ...

    def end_epoch(self, record: Mapping[str, Any]) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self, failed: bool = False) -> None:
        """End the display; ``failed``: the run stopped with an error (erase the bars)."""


class RichProgress(NullProgress):
    """Two bars: the whole run (with its ETA) and the current epoch (with live stats).

    Args:
        console: where to draw; a new stderr console by default.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._bars = self._new_bars()
        self._run: TaskID | None = None
        self._epoch: TaskID | None = None

    def _new_bars(self) -> Progress:
        return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"),
                        TimeRemainingColumn(), console=self.console, transient=False)

    def start(self, total_steps: int, done_steps: int) -> None:
        self._bars = self._new_bars()  # a fresh display per stage
        self._bars.start()
        self._run = self._bars.add_task("run", total=total_steps, completed=done_steps, stats="")

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        if self._epoch is not None and self._epoch in self._bars.task_ids:
            self._bars.remove_task(self._epoch)
        self._epoch = self._bars.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, completed=done, stats="")

    def advance(self, stats: Mapping[str, float]) -> None:
        text = "  ".join(f"{k} {v:.3g}" if k != "img/s" else f"{v:.0f} img/s" for k, v in stats.items())
        self._bars.update(self._epoch, advance=1, stats=text)
        self._bars.update(self._run, advance=1)

    def end_epoch(self, record: Mapping[str, Any]) -> None:
        scores = "  ".join(f"{kind} {task} " + " ".join(f"{k} {v:.3f}" for k, v in m.items() if v is not None)
                           for kind in ("val", "knn") for task, m in record.get(kind, {}).items())
        best = " (best)" if record.get("best") else ""
        stage = "pretrain " if record.get("stage") == "pretrain" else ""
        self._bars.console.print(f"{stage}epoch {record['epoch']}: loss {record['loss']:.3f}  {scores}  "
                                 f"{record['images_per_s']:.0f} img/s{best}")

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)  # one line per message, for logs

    def close(self, failed: bool = False) -> None:
        if failed:  # the error's one line is what the user needs to see, not a half-drawn bar
            self._bars.live.transient = True
        self._bars.stop()
