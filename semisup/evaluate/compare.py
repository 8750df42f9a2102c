"""Compare finished runs side by side: mean and spread over seeds, per recipe name."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
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
        macro_f1, worst_f1, worst_class: multi-class tasks only (else None):
            test macro-F1, and the lowest F1 of a class present in test, with
            its name, so an average cannot hide a class the model never gets.
        class_f1, class_support: multi-class tasks only (else empty): test F1 and
            number of test samples of every class present in test.
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
    macro_f1: float | None = None
    worst_f1: float | None = None
    worst_class: str | None = None
    class_f1: dict[str, float] = field(default_factory=dict)
    class_support: dict[str, int] = field(default_factory=dict)


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
    try:
        report = json.loads(path.read_text())
        test = report["splits"]["test"]
        seconds = report["training"]["train_seconds"] + ((report.get("pretrain") or {}).get("seconds") or 0.0)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SemisupError(f"{path}: not a readable run report ({type(exc).__name__}: {exc}); "
                           f"`semisup run --resume {run_dir}` writes it again") from None
    if not test:
        raise SemisupError(f"{run_dir}: no test trailer could be scored (report.json flags the split under "
                           "`problems`); nothing to compare")
    task = task or next(iter(test))
    if task not in test:
        raise SemisupError(f"{run_dir}: no task {task!r} in report.json (its tasks: {', '.join(test)}); compare "
                           "runs of the same task, or name one with --task")
    run = RunDir.open(run_dir)
    tuned = sweep(run.predictions("val"), run.predictions("test"), tasks=[task])[task]
    recipe = run.recipe()
    metrics = test[task]
    worst, present, support = None, {}, {}
    if "per_class" in metrics:  # multi-class
        support = {c: int(n) for c, n in metrics["support"].items() if n}
        present = {c: v["f1"] for c, v in metrics["per_class"].items() if c in support}
        worst = min(present, key=present.get) if present else None
    return RunSummary(run_dir, recipe.run.name, recipe.run.seed, task, metrics["mAP"],
                      tuned.chosen.rule.describe(), tuned.chosen.rule.name, tuned.chosen.test["micro"][2], seconds,
                      metrics.get("macro_f1"), present[worst] if worst else None, worst, present, support)


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

    @property
    def multiclass(self) -> bool:
        return all(r.macro_f1 is not None for r in self.runs)

    def class_spread(self, label: str) -> str:
        """Test F1 of class ``label``, ``"mean ± std"`` over the seeds whose test split holds it."""
        values = [r.class_f1[label] for r in self.runs if label in r.class_f1]
        if not values:
            return "-"
        if len(values) == 1:
            return f"{values[0]:.3f}"
        return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"

    def worst(self) -> str:
        """Mean worst-class F1 over seeds and which classes were the worst, e.g. ``"0.125 (Pull x3)"``."""
        counts = Counter(r.worst_class for r in self.runs)
        return f"{self.spread('worst_f1')} ({', '.join(f'{c} x{n}' if n > 1 else c for c, n in counts.items())})"

    def rules(self) -> str:
        """The rules chosen on val, e.g. ``"top-2 x2, p >= 0.6"``; per-class rules by family only."""
        short = [r.rule if r.rule_family in ("top-k", "threshold", "mcut", "argmax") else r.rule_family
                 for r in self.runs]
        counts = Counter(short)
        return ", ".join(f"{rule} x{n}" if n > 1 else rule for rule, n in counts.items())


def compare_runs(run_dirs: Sequence[Path], task: str | None = None) -> list[GroupSummary]:
    """Group finished runs by recipe name, in the order names first appear.

    Every run is compared on one task (``task``, else the first run's first task) with one label
    vocabulary.

    Raises:
        SemisupError: a run given twice, a run without the task, a task with other labels in
            another run, or a report that does not read.
    """
    from semisup.evaluate.runs import RunDir

    seen: dict[Path, Path] = {}
    for run_dir in map(Path, run_dirs):
        if run_dir.resolve() in seen:
            raise SemisupError(f"{run_dir}: given twice (also as {seen[run_dir.resolve()]}); each run is one seed, "
                               "name it once")
        seen[run_dir.resolve()] = run_dir
    groups: dict[str, list[RunSummary]] = {}
    vocabulary: tuple[Path, list[str]] | None = None
    for run_dir in map(Path, run_dirs):
        summary = summarise_run(run_dir, task)
        task = summary.task
        labels = next(t.labels for t in RunDir.open(run_dir).recipe().tasks if t.name == task)
        if vocabulary is None:
            vocabulary = (run_dir, list(labels))
        elif list(labels) != vocabulary[1]:
            raise SemisupError(f"{run_dir}: task {task!r} has other labels than in {vocabulary[0]} "
                               f"({_difference(vocabulary[1], list(labels))}); its numbers are not comparable")
        groups.setdefault(summary.name, []).append(summary)
    return [GroupSummary(name, tuple(runs)) for name, runs in groups.items()]


def _difference(first: list[str], second: list[str]) -> str:
    """How two label vocabularies differ, briefly.

    Example:
        >>> _difference(["a", "b"], ["b", "c"])
        'only there: a; only here: c'
    """
    there, here = [x for x in first if x not in second], [x for x in second if x not in first]
    parts = [f"only there: {', '.join(there)}"] * bool(there) + [f"only here: {', '.join(here)}"] * bool(here)
    return "; ".join(parts) or "same labels, another order"


RARE_CLASSES = 2
"""How many of the rarest test classes a multi-class comparison shows the F1 of, by default."""


def rare_classes(groups: Sequence[GroupSummary], count: int = RARE_CLASSES) -> list[str]:
    """The ``count`` classes with the fewest test samples (over every run), rarest first: where a
    multi-class model fails first, and what macro-F1 averages away.

    Example:
        >>> run = RunSummary(Path("r"), "r", 0, "movement", 0.5, "argmax", "argmax", 0.5, 1.0, 0.5, 0.1, "Pull",
        ...                  {}, {"Static": 90, "Motion": 70, "Push": 24, "Pull": 16})
        >>> rare_classes([GroupSummary("r", (run,))])
        ['Pull', 'Push']
    """
    support: Counter[str] = Counter()
    for g in groups:
        for r in g.runs:
            support.update(r.class_support)
    return sorted(support, key=lambda c: (support[c], c))[:count]


def table_rows(groups: Sequence[GroupSummary], classes: Sequence[str] | None = None
               ) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison: recipe, seeds, test mAP, test micro-F1 (or accuracy)
    under the rule chosen on val, for multi-class tasks macro-F1, the F1 of ``classes``
    (default: the two rarest in test, :func:`rare_classes`) and worst-class F1, train time.

    Raises:
        SemisupError: a class in ``classes`` that no run's test split holds.
    """
    multiclass = all(g.multiclass for g in groups)
    shown: list[str] = []
    if classes and not multiclass:
        raise SemisupError(f"--class: per-class F1 is shown for multi-class tasks; {groups[0].runs[0].task!r} is "
                           "multi-label (its per-label numbers are in `semisup evaluate`)")
    if multiclass:
        known = {c for g in groups for r in g.runs for c in r.class_support}
        shown = list(classes) if classes else rare_classes(groups)
        unknown = [c for c in shown if c not in known]
        if unknown:
            raise SemisupError(f"--class: no test sample of {', '.join(map(repr, unknown))} in these runs (their "
                               f"classes: {', '.join(sorted(known))})")
    header = ["recipe", "seeds", "test mAP", "test accuracy" if multiclass else "test micro-F1 (rule tuned on val)"]
    header += ["test macro-F1", *(f"{c} F1" for c in shown), "worst-class F1"] if multiclass else []
    rows = []
    for g in groups:
        row = [g.name, ", ".join(str(r.seed) for r in g.runs), g.spread("test_map"),
               g.spread("test_f1") if multiclass else f"{g.spread('test_f1')} ({g.rules()})"]
        row += [g.spread("macro_f1"), *(g.class_spread(c) for c in shown), g.worst()] if multiclass else []
        rows.append([*row, f"{g.mean('train_seconds') / 60:.1f} min"])
    return [*header, "train time"], rows


def markdown_table(groups: Sequence[GroupSummary], classes: Sequence[str] | None = None) -> str:
    """The comparison (:func:`table_rows`) as a Markdown table."""
    header, rows = table_rows(groups, classes)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
