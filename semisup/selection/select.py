"""``semisup select RUN_DIR --budget N``: which unlabeled trailers to label next, as a CSV to fill in.

The run's checkpoint scores every unlabeled trailer of its dataset (the
``unlabeled`` split and train trailers without labels; a run from cached
features reads them from its cache), a strategy
(:mod:`semisup.selection.strategies`) ranks them, and the ``budget`` best are
written to ``select.csv``::

    id,rank,strategy,score,media,genres_guess,genres
    demo-0412,1,mix,3.1702,/data/frames/demo-0412,Comedy|Romance,
    ...

``<task>_guess`` is the model's current answer (the run's decision rule), for
the annotator to correct; the empty ``<task>`` column is where the labels go,
with the separator of ``labels.csv`` (``|``). ``semisup data label ROOT
select.csv`` then merges them into the dataset.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from semisup.data.annotate import GUESS_SUFFIX
from semisup.data.samples import Sample, TaskSpec, labeled_pool, unlabeled_pool
from semisup.errors import SemisupError
from semisup.evaluate.decisions import DecisionRule, PerClassThreshold, Threshold
from semisup.io import atomic_write, refuse_existing
from semisup.selection.strategies import Pool, Ranking, Strategy



@dataclass
class Selection:
    """What :func:`select_run` wrote.

    Attributes:
        out: the CSV.
        pool: unlabeled trailers scored; ``unreadable``: those without a readable frame.
        ids: the selected trailers, best first.
    """

    out: Path
    pool: int
    unreadable: int
    ids: list[str]


def rule_thresholds(rule: DecisionRule, classes: int) -> np.ndarray:
    """``(C,)`` the score at which a multi-label rule calls a label positive: its
    (per-class) threshold; 0.5 for rules without one (top-k, MCut).

    Example:
        >>> rule_thresholds(PerClassThreshold((0.3, 0.7)), 2).tolist(), rule_thresholds(Threshold(0.4), 2).tolist()
        ([0.3, 0.7], [0.4, 0.4])
    """
    if isinstance(rule, PerClassThreshold):
        return np.asarray(rule.thresholds, dtype=np.float64)
    if isinstance(rule, Threshold):
        return np.full(classes, rule.t)
    return np.full(classes, 0.5)


def select_run(run_dir: Path, budget: int, strategy: Strategy, out: Path | None = None, checkpoint: str = "best",
               seed: int = 0, force: bool = False, task: str | None = None) -> Selection:
    """Rank a run's unlabeled trailers with ``strategy`` and write the ``budget`` best to ``out``.

    Args:
        run_dir: a trained run.
        budget: how many trailers to select (fewer when the pool is smaller).
        strategy: a :class:`~semisup.selection.strategies.Strategy` instance.
        out: the CSV (default ``RUN_DIR/select.csv``); refused if it exists, unless ``force``.
        checkpoint: ``best``, ``last`` or a checkpoint path.
        seed: seeds random choices (``random``, and k-center's first pick without labeled trailers).
        task: strategies that need embeddings use this task's aggregated trailer features
            (the input of its head); default: every task's, each scaled to unit length, side by side.

    Raises:
        SemisupError: a bad run, budget or task; no unlabeled trailers; ``out`` exists.
    """
    from semisup.build import read_recipe_data
    from semisup.evaluate.runs import RunDir, load_model, score_samples, stored_rules
    from semisup.train.setup import class_priors

    if budget < 1:
        raise SemisupError(f"--budget: expected a positive number of trailers, got {budget}")
    run = RunDir.open(run_dir)
    out = Path(out) if out else run.path / "select.csv"
    if out.suffix.lower() != ".csv":
        raise SemisupError(f"{out}: --out must be a .csv file")
    refuse_existing(out, force, "selection", "--out")
    recipe = run.recipe()
    if task is not None and task not in [t.name for t in recipe.tasks]:
        names = ", ".join(t.name for t in recipe.tasks)
        raise SemisupError(f"--task: the run has no task {task!r} (its tasks: {names})")
    dataset = read_recipe_data(recipe.data, recipe.tasks)
    if dataset.fatal():
        raise SemisupError(dataset.fatal()[0].message)
    candidates = unlabeled_pool(dataset.samples)
    if not candidates:
        raise SemisupError(f"{dataset.source}: no unlabeled trailers to select from")
    source = run.checkpoint(checkpoint)
    loaded = load_model(recipe, dataset.tasks, source, dataset.samples)
    predictions = score_samples(recipe, dataset.tasks, source, candidates, loaded=loaded)
    rules = stored_rules(run, {t.name: t.kind for t in dataset.tasks})
    priors = class_priors(dataset.samples, dataset.tasks)
    pool = Pool(ids=list(predictions.ids), scores=dict(predictions.scores),
                kinds={t.name: t.kind for t in dataset.tasks},
                thresholds={t.name: rule_thresholds(rules[t.name], len(t.labels))
                            for t in dataset.tasks if t.kind == "multilabel"},
                priors={name: prior.numpy() for name, prior in priors.items()})
    if strategy.needs_embeddings:
        by_id = {s.id: s for s in candidates}
        vectors = _embeddings(recipe, loaded, [by_id[i] for i in pool.ids], task)
        if set(vectors) != set(pool.ids):  # the scoring pass read them all: the same frames again
            raise SemisupError(f"{run.path}: some unlabeled trailers became unreadable between two passes")
        pool.embeddings = np.stack([vectors[i] for i in pool.ids])
        labeled = _embeddings(recipe, loaded, labeled_pool(dataset.samples), task)  # unreadable ones left out
        pool.labeled_embeddings = np.stack(list(labeled.values())) if labeled else None
    ranking = strategy.rank(pool, budget, np.random.default_rng(seed))
    guesses = {t.name: rules[t.name](pool.scores[t.name][ranking.indices]) for t in dataset.tasks}
    samples = {s.id: s for s in candidates}
    write_selection(out, [samples[pool.ids[i]] for i in ranking.indices], ranking, strategy.name, dataset.tasks,
                    guesses)
    return Selection(out, len(candidates), len(predictions.unreadable), [pool.ids[i] for i in ranking.indices])


def _embeddings(recipe: Any, loaded: Any, samples: Sequence[Sample], task: str | None) -> dict[str, np.ndarray]:
    """Trailer features by id, as the run's task aggregators make them (trailers without a
    readable frame are left out)."""
    from semisup.build import build_eval_loader
    from semisup.evaluate.inference import embed

    if not samples:
        return {}
    names = [task] if task else list(loaded.model.aggregators)

    def featurize(frames: Any, owner: Any, b: int) -> Any:
        import torch

        features = loaded.model.trailer_features(frames, owner, b)
        return torch.cat([torch.nn.functional.normalize(features[n].float(), dim=1) for n in names], 1)

    loaded.model.eval()
    loader = build_eval_loader(samples, (), recipe.data.image_size, recipe.data.eval_frames,
                               recipe.train.eval_batch_size, recipe.data.num_workers, cache=loaded.cache,
                               decoder=recipe.data.decoder)
    ids, vectors = embed(featurize, loader, loaded.normalize, loaded.device, loaded.amp_dtype)
    return dict(zip(ids, vectors))


def write_selection(out: Path, samples: Sequence[Sample], ranking: Ranking, strategy: str,
                    tasks: Sequence[TaskSpec], guesses: dict[str, np.ndarray]) -> None:
    """Write ``select.csv`` (atomically): one row per selected trailer, best first."""
    columns = ["id", "rank", "strategy", "score", "media",
               *(c for t in tasks for c in (f"{t.name}{GUESS_SUFFIX}", t.name))]
    with atomic_write(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for rank, (sample, score) in enumerate(zip(samples, ranking.scores), start=1):
            first = sample.frames[0] if len(sample.frames) else ""
            media = sample.video or getattr(first, "parent", first)  # a frames folder, or a trailer in shards
            row = {"id": sample.id, "rank": rank, "strategy": strategy, "score": f"{float(score):.4f}",
                   "media": str(media)}
            for t in tasks:
                picked = guesses[t.name][rank - 1]
                row[f"{t.name}{GUESS_SUFFIX}"] = "|".join(t.labels[c] for c in np.flatnonzero(picked))
                row[t.name] = ""
            writer.writerow(row)
