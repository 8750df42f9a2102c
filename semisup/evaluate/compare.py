"""Compare finished runs side by side: mean and spread over seeds, per recipe name."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from semisup.errors import SemisupError


@dataclass(frozen=True)
class RunSummary:
    """The headline numbers of one finished run (one task).

    Attributes:
        rule: the decision rule the threshold sweep chose on validation, in
            full; ``rule_family`` its kind (``top-k``, ``per-class`` ...).
            ``test_f1`` is its test micro-F1 (accuracy for multi-class tasks).
        train_seconds: wall time of training, pretraining stage included.
    """

    run_dir: Path
    name: str
    seed: int
    task: str
    test_map: float
    rule: str
    rule_family: str
    test_f1: float
    train_seconds: float


def summarise_run(run_dir: Path, task: str | None = None) -> RunSummary:
    """Read a finished run's report and predictions; tune its decision rule on val.

    Raises:
        SemisupError: the run has no report (unfinished or not a run directory).
    """
    from semisup.evaluate.runs import RunDir
    from semisup.evaluate.sweep import sweep

    path = run_dir / "report.json"
    if not path.is_file():
        raise SemisupError(f"{run_dir}: no report.json (not a finished run)")
    report = json.loads(path.read_text())
    test = report["splits"]["test"]
    task = task or next(iter(test))
    if task not in test:
        raise SemisupError(f"{run_dir}: no task {task!r} in report.json (tasks: {', '.join(test)})")
    run = RunDir.open(run_dir)
    tuned = sweep(run.predictions("val"), run.predictions("test"), tasks=[task])[task]
    recipe = run.recipe()
    seconds = report["training"]["train_seconds"] + ((report.get("pretrain") or {}).get("seconds") or 0.0)
    return RunSummary(run_dir, recipe.run.name, recipe.run.seed, task, test[task]["mAP"],
                      tuned.chosen.rule.describe(), tuned.chosen.rule.name, tuned.chosen.test["micro"][2], seconds)


@dataclass(frozen=True)
class GroupSummary:
    """Runs of one recipe name: means and standard deviations over seeds."""

    name: str
    runs: tuple[RunSummary, ...]

    def mean(self, field: str) -> float:
        return statistics.fmean(getattr(r, field) for r in self.runs)

    def std(self, field: str) -> float:
        values = [getattr(r, field) for r in self.runs]
        return statistics.stdev(values) if len(values) > 1 else 0.0

    def spread(self, field: str) -> str:
        """``"mean ± std"`` over seeds, or the single value of a single run."""
        if len(self.runs) == 1:
            return f"{self.mean(field):.3f}"
        return f"{self.mean(field):.3f} ± {self.std(field):.3f}"

    def rules(self) -> str:
        """The rules chosen on val, e.g. ``"top-2 x2, p >= 0.6"``; per-class rules by family only."""
        short = [r.rule if r.rule_family in ("top-k", "threshold", "mcut", "argmax") else r.rule_family
                 for r in self.runs]
        counts = Counter(short)
        return ", ".join(f"{rule} x{n}" if n > 1 else rule for rule, n in counts.items())


def compare_runs(run_dirs: Sequence[Path], task: str | None = None) -> list[GroupSummary]:
    """Group finished runs by recipe name, in the order names first appear."""
    groups: dict[str, list[RunSummary]] = {}
    for run_dir in run_dirs:
        summary = summarise_run(Path(run_dir), task)
        groups.setdefault(summary.name, []).append(summary)
    return [GroupSummary(name, tuple(runs)) for name, runs in groups.items()]


def markdown_table(groups: Sequence[GroupSummary]) -> str:
    """A Markdown table: recipe, seeds, test mAP, test micro-F1 (val-chosen rule), train time."""
    lines = ["| recipe | seeds | test mAP | test micro-F1 (rule tuned on val) | train time |",
             "|---|---|---|---|---|"]
    for g in groups:
        seeds = ", ".join(str(r.seed) for r in g.runs)
        lines.append(f"| {g.name} | {seeds} | {g.spread('test_map')} | {g.spread('test_f1')} ({g.rules()}) | "
                     f"{g.mean('train_seconds') / 60:.1f} min |")
    return "\n".join(lines)
