"""How many labels does a strategy save? A simulated labeling loop on a dataset whose hidden labels are known.

``semisup select-simulate RECIPE --truth labels_all.csv --rounds R --budget N
--strategy random --strategy mix`` starts from the recipe's dataset as it is
(its labeled train trailers; the rest of the pool unlabeled) and, for each
seed and strategy, repeats R times: train the recipe, select N trailers with
the strategy, reveal their labels from the truth file (through the same
merge as ``semisup data label``), and train again. Every trained run's test
mAP is recorded against the number of labeled trailers::

    OUT/seed0/round0/data/labels.csv       the starting labels (shared by the strategies)
    OUT/seed0/round0/run/                  a full run directory
    OUT/seed0/<strategy>/round1/data/      labels after the first selection, ...
    OUT/simulation.csv                     strategy, seed, round, labels, test mAP
    OUT/simulation.md, simulation.png      mean over seeds per strategy and round

A killed simulation continues where it stopped: finished rounds are read
back, an interrupted run resumes from its last checkpoint.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from semisup.data.annotate import merge_labels
from semisup.data.folder import read_csv
from semisup.data.formats import DEMO_VARIANTS, FOLDER_FORMATS
from semisup.errors import SemisupError
from semisup.io import atomic_write, refuse_existing, write_json


@dataclass(frozen=True)
class SimulationRow:
    """One trained round: how many labeled train trailers it had and its test mAP."""

    strategy: str
    seed: int
    round: int
    labels: int
    test_map: float


def simulate(recipe_path: Path, truth: Path, strategies: Sequence[str], rounds: int, budget: int,
             seeds: Sequence[int], out: Path, overrides: Sequence[str] = (), force: bool = False,
             task: str | None = None, log: Callable[[str], None] = print, progress: Any = None
             ) -> list[SimulationRow]:
    """Run the simulated labeling loop (see the module docstring) and write its table and plot.

    Args:
        recipe_path: the recipe trained at every round (its data must be in the folder format, or the demo).
        truth: a labels file of the same dataset with every trailer's labels (the demo's ``labels_all.csv``).
        strategies: selection strategy names (``random``, ``uncertainty``, ``diversity``, ``mix``, ``rare``).
        rounds: selections per seed and strategy; ``budget``: trailers revealed per selection.
        seeds: one loop per seed (the seed of training and of the random choices).
        out: the simulation folder; a finished or interrupted simulation there is continued
            (it must have been started with the same settings), anything else refused unless ``force``.
        overrides: ``--set`` overrides of the recipe.
        task: the task whose test mAP is recorded (default: the recipe's first).
        log: prints a line per finished round; ``progress``: the training progress display.

    Raises:
        SemisupError: bad arguments, data that is not a folder dataset, a truth file without the
            pool's labels, or ``out`` holding something else.
    """
    from semisup.config import load_recipe
    from semisup.selection.strategies import get_strategy

    for option, value in (("--rounds", rounds), ("--budget", budget)):
        if value < 1:
            raise SemisupError(f"{option}: expected a number >= 1, got {value}")
    if not seeds or not strategies:
        raise SemisupError("select-simulate: give at least one --seed and one --strategy")
    classes = {name: get_strategy(name) for name in strategies}  # unknown names fail before any training
    recipe = load_recipe(recipe_path, overrides)
    if recipe.data.format not in FOLDER_FORMATS:
        raise SemisupError(f"{recipe_path}: data.format = {recipe.data.format!r}; the simulation needs the folder "
                           "format (or the demo), whose labels.csv it rewrites each round")
    root = _data_root(recipe)
    task = task or recipe.tasks[0].name
    tasks = [t.csv_column for t in recipe.tasks]
    settings = {"recipe": str(Path(recipe_path).resolve()), "overrides": list(overrides), "truth": str(truth),
                "strategies": list(strategies), "rounds": rounds, "budget": budget, "seeds": list(seeds),
                "task": task}
    truth_rows = _truth(truth, root / recipe.data.labels_file, tasks)  # before anything is written or trained
    _prepare(out, settings, force)
    rows: list[SimulationRow] = []
    for seed in seeds:
        start = out / f"seed{seed}" / "round0"
        _dataset(start / "data", root, root / recipe.data.labels_file)
        first = _train(recipe_path, overrides, start / "data", start / "run", seed, log, progress)
        rows += [SimulationRow(s, seed, 0, _labeled(start / "data", tasks), _test_map(first, task)) for s in strategies]
        for name, cls in classes.items():
            previous = first
            for r in range(1, rounds + 1):
                here = out / f"seed{seed}" / name / f"round{r}"
                if not (here / "data" / "labels.csv").is_file():
                    _reveal(previous, here, root, cls(), budget, seed, truth_rows)
                previous = _train(recipe_path, overrides, here / "data", here / "run", seed, log, progress)
                rows.append(SimulationRow(name, seed, r, _labeled(here / "data", tasks), _test_map(previous, task)))
                log(f"seed {seed} {name} round {r}: {rows[-1].labels} labels, test mAP {rows[-1].test_map:.3f}")
    write_results(out, rows, task)
    return rows


def _truth(truth: Path, labels: Path, columns: Sequence[str]) -> dict[str, dict[str, str]]:
    """The truth file's rows by id, checked to hold the hidden labels of every unlabeled trailer
    of the dataset's ``labels`` (what a round may select).

    Raises:
        SemisupError: the file does not read, lacks the task columns, or misses a trailer's labels.
    """
    rows, header = read_csv(truth)
    missing_columns = [c for c in columns if c not in header]
    if missing_columns:
        raise SemisupError(f"{truth}: no column {missing_columns[0]!r} (columns: {', '.join(header)}); the truth "
                           "file holds every trailer's labels in the dataset's columns (the demo's labels_all.csv)")
    by_id = {(row.get("id") or "").strip(): row for _, row in rows}
    def selectable(row: dict[str, str]) -> bool:  # as `semisup select` draws: unlabeled, or train without labels
        split = (row.get("split") or "").strip() or "train"
        return split == "unlabeled" or (split == "train" and not any((row.get(c) or "").strip() for c in columns))

    pool = [(row.get("id") or "").strip() for _, row in read_csv(labels)[0] if selectable(row)]
    unknown = [i for i in pool if not any((by_id.get(i, {}).get(c) or "").strip() for c in columns)]
    if unknown:
        more = f" and {len(unknown) - 1} more of the {len(pool)} unlabeled trailers" if len(unknown) > 1 else ""
        raise SemisupError(f"{truth}: no labels for {unknown[0]!r}{more} of {labels}; the truth file holds "
                           "every trailer's hidden labels (the demo's labels_all.csv)")
    return by_id


def _prepare(out: Path, settings: dict, force: bool) -> None:
    marker = out / "simulation.json"
    if marker.is_file():
        if json.loads(marker.read_text()) != settings:
            raise SemisupError(f"{out}: holds a simulation with other settings ({marker}); choose another --out")
        return
    refuse_existing(out, force, "simulation", "--out", kind="folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(marker, settings)


def _data_root(recipe: Any) -> Path:
    """The recipe's dataset folder (a demo is built there on first use)."""
    from semisup.data.demo import ensure_demo

    root = Path(recipe.data.root).expanduser()
    if recipe.data.format in DEMO_VARIANTS:
        ensure_demo(root, variant=DEMO_VARIANTS[recipe.data.format])
    return root


def _dataset(folder: Path, root: Path, labels: Path) -> None:
    """A folder dataset at ``folder`` with ``labels`` as its labels.csv and links to ``root``'s media."""
    if (folder / "labels.csv").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    for media in ("frames", "videos"):
        if (root / media).exists() and not (folder / media).exists():
            os.symlink((root / media).resolve(), folder / media, target_is_directory=True)
    with atomic_write(folder / "labels.csv", "w", encoding="utf-8") as handle:
        handle.write(labels.read_text(encoding="utf-8-sig"))


def _train(recipe_path: Path, overrides: Sequence[str], data: Path, run_dir: Path, seed: int,
           log: Callable[[str], None], progress: Any = None) -> Path:
    """Train (or finish, or reuse) the run of one round on ``data``."""
    from semisup.train.run import resume_run, start_run

    if (run_dir / "report.json").is_file():
        return run_dir
    if (run_dir / "checkpoints" / "last.pt").is_file():
        log(f"{run_dir}: resuming")
        return resume_run(run_dir, progress).run_dir
    sets = [*overrides, 'data.format="folder"', f'data.root="{data.resolve()}"', 'data.labels_file="labels.csv"',
            f"run.seed={seed}"]
    return start_run(Path(recipe_path), sets, out=run_dir, progress=progress).run_dir


def _reveal(run_dir: Path, here: Path, root: Path, strategy: Any, budget: int, seed: int,
            truth: dict[str, dict[str, str]]) -> None:
    """Select ``budget`` trailers with ``run_dir``'s model, fill in their true labels and merge
    them into a copy of that run's labels: the next round's dataset at ``here/data``."""
    from semisup.evaluate.runs import RunDir
    from semisup.selection.select import select_run

    recipe = RunDir.open(run_dir).recipe()
    here.mkdir(parents=True, exist_ok=True)
    selection = select_run(run_dir, budget, strategy, out=here / "select.csv", seed=seed, force=True)
    rows, columns = read_csv(selection.out)
    tasks = [t.name for t in recipe.tasks]
    for i, (_, row) in enumerate(rows):
        answer = truth.get(row["id"])
        if answer is None or not any((answer.get(t) or "").strip() for t in tasks):
            raise SemisupError(f"truth file: no labels for {row['id']!r}, selected in round {here.name}")
        rows[i] = (rows[i][0], {**row, **{t: answer.get(t) or "" for t in tasks}})
    filled = here / "select-filled.csv"
    with atomic_write(filled, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(row for _, row in rows)
    staging = here / "data.partial"
    if staging.exists():  # an earlier attempt stopped half-way: start it again
        shutil.rmtree(staging)  # its media are links: removed, never followed
    _dataset(staging, root, Path(recipe.data.root) / "labels.csv")
    merge_labels(staging, filled)
    for backup in staging.glob("labels.backup-*.csv"):
        backup.unlink()
    staging.rename(here / "data")


def _labeled(data: Path, tasks: Sequence[str]) -> int:
    """Labeled train trailers of a round's dataset (labels in any of the recipe's task columns)."""
    rows, _ = read_csv(data / "labels.csv")
    return sum(1 for _, row in rows if (row.get("split") or "train").strip() == "train"
               and any((row.get(t) or "").strip() for t in tasks))


def _test_map(run_dir: Path, task: str) -> float:
    report = json.loads((run_dir / "report.json").read_text())
    return float(report["splits"]["test"][task]["mAP"])


def summary_table(rows: Sequence[SimulationRow]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of "labels -> mean test mAP (± std over seeds)" per strategy and round."""
    strategies = list(dict.fromkeys(r.strategy for r in rows))
    rounds = sorted({r.round for r in rows})
    header = ["round", "labels", *strategies]
    body = []
    for k in rounds:
        here = [r for r in rows if r.round == k]
        labels = statistics.mean(r.labels for r in here)
        cells = []
        for s in strategies:
            values = [r.test_map for r in here if r.strategy == s]
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.3f}{spread}" if values else "")
        body.append([str(k), f"{labels:.0f}", *cells])
    return header, body


def write_results(out: Path, rows: Sequence[SimulationRow], task: str) -> None:
    """``simulation.csv`` (every round), ``simulation.md`` (the summary table) and ``simulation.png``."""
    from semisup.evaluate.plots import plot_selection_curves

    with atomic_write(out / "simulation.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["strategy", "seed", "round", "labels", "test_map"])
        writer.writerows([r.strategy, r.seed, r.round, r.labels, f"{r.test_map:.4f}"] for r in rows)
    header, body = summary_table(rows)
    seeds = len({r.seed for r in rows})
    lines = [f"Test {task} mAP by labeled train trailers, mean ± std over {seeds} seed(s)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    with atomic_write(out / "simulation.md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    plot_selection_curves([(r.strategy, r.labels, r.test_map) for r in rows], out / "simulation.png",
                          ylabel=f"test {task} mAP")
