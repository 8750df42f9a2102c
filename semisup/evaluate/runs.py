"""Working with a finished (or running) run directory: its recipe, checkpoints,
predictions, stored decision rule, and scoring a checkpoint on any split."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from semisup.config import Recipe, load_recipe
from semisup.data.health import check_split
from semisup.data.samples import SPLITS, Dataset, TaskSpec, split_samples
from semisup.errors import SemisupError
from semisup.evaluate.decisions import Argmax, DecisionRule, Threshold, rule_from_dict
from semisup.evaluate.predictions import Predictions
from semisup.io import write_json


MODEL_FOLDER_FORMAT = "semisup-model"
"""The ``format`` in a model folder's ``config.json`` (``semisup export --format folder``)."""


@dataclass(frozen=True)
class RunDir:
    """Paths inside a run directory (see :mod:`semisup.train.run`), or inside a model folder
    (``semisup export --format folder``: ``config.json``, ``recipe.toml``, ``decision.json`` and
    one set of weights, ``model.safetensors``), which predict and evaluate read the same way."""

    path: Path
    model_folder: bool = False

    @classmethod
    def open(cls, path: Path) -> "RunDir":
        """Raises: SemisupError: neither a run directory nor a model folder."""
        path = Path(path)
        if not path.is_dir():
            raise SemisupError(f"{path}: run directory {'is a file' if path.exists() else 'does not exist'}")
        if (path / "config.json").is_file() and not (path / "config.toml").is_file():
            folder = cls(path, model_folder=True)
            folder.folder_config()  # checks it is one
            return folder
        if not (path / "config.toml").is_file():
            raise SemisupError(f"{path}: not a run directory (no config.toml) or a model folder (no config.json)")
        return cls(path)

    def folder_config(self) -> dict[str, Any]:
        """A model folder's ``config.json``.

        Raises:
            SemisupError: unreadable, or not a semisup model folder's.
        """
        path = self.path / "config.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SemisupError(f"{path}: not readable JSON ({type(exc).__name__})") from None
        if not isinstance(data, dict) or data.get("format") != MODEL_FOLDER_FORMAT:
            raise SemisupError(f"{path}: not a semisup model folder's config.json (expected \"format\": "
                               f"\"{MODEL_FOLDER_FORMAT}\"; `semisup export RUN --format folder` writes one)")
        return data

    def source(self) -> dict[str, Any]:
        """Where a model folder's weights came from (run, checkpoint, export time)."""
        return dict(self.folder_config().get("source") or {})

    @property
    def config(self) -> Path:
        """The resolved recipe: ``config.toml`` (``recipe.toml`` in a model folder)."""
        return self.path / ("recipe.toml" if self.model_folder else "config.toml")

    def recipe_sha256(self) -> str:
        """SHA-256 of the resolved recipe file: what an export records, and what a resumed
        ``predict --out`` job checks it continues with."""
        return hashlib.sha256(self.config.read_bytes()).hexdigest()

    @property
    def decision(self) -> Path:
        return self.path / "decision.json"

    @property
    def sweep_dir(self) -> Path:
        return self.path / "sweep"

    def recipe(self) -> Recipe:
        return load_recipe(self.config)

    def predictions(self, split: str) -> Predictions:
        """``predictions/<split>.npz``.

        Raises:
            SemisupError: the run has not written them (yet).
        """
        path = self.path / "predictions" / f"{split}.npz"
        if self.model_folder:
            raise SemisupError(f"{self.path}: a model folder keeps no predictions; `semisup evaluate {self.path} "
                               f"--split {split}` scores it on its recipe's dataset")
        if not path.is_file():
            raise SemisupError(f"{self.path}: no {split} predictions (predictions/{split}.npz); the run has not "
                               f"finished, or run `semisup evaluate {self.path} --split {split}`")
        return Predictions.load(path)

    def checkpoint(self, which: str) -> Path:
        """``best``, ``last`` or a path to a checkpoint file.

        Raises:
            SemisupError: the checkpoint does not exist.
        """
        if self.model_folder:
            if which != "best":
                raise SemisupError(f"--checkpoint {which}: {self.path} is a model folder with one set of weights "
                                   "(model.safetensors); leave --checkpoint out")
            path = self.path / "model.safetensors"
            if not path.is_file():
                raise SemisupError(f"{path}: missing; the model folder is incomplete (export it again)")
            return path
        path = self.path / "checkpoints" / f"{which}.pt" if which in ("best", "last") else Path(which)
        if not path.is_file():
            raise SemisupError(f"{path}: checkpoint not found (expected best, last or a .pt file)")
        return path


def stored_rules(run: RunDir, kinds: dict[str, str]) -> dict[str, DecisionRule]:
    """The decision rule of each task: the one ``threshold-sweep --apply`` stored,
    else rounding (multi-label) or argmax (multi-class).

    Raises:
        SemisupError: an unreadable ``decision.json``.
    """
    rules: dict[str, DecisionRule] = {t: Argmax() if k == "multiclass" else Threshold(0.5) for t, k in kinds.items()}
    if run.decision.is_file():
        try:
            data = json.loads(run.decision.read_text())
            rules.update({t: rule_from_dict(d) for t, d in data["tasks"].items() if t in rules})
        except (json.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            raise SemisupError(f"{run.decision}: not a readable decision file ({exc})") from None
    return rules


def store_rules(run: RunDir, rules: dict[str, DecisionRule], objective: str) -> Path:
    """Write ``decision.json`` (atomically) so that ``predict`` and ``evaluate`` use these rules."""
    write_json(run.decision, {"source": "threshold-sweep", "objective": objective,
                              "tasks": {t: r.to_dict() for t, r in rules.items()}})
    return run.decision


@dataclass
class LoadedModel:
    """A run's network with a checkpoint's weights, ready for inference."""

    model: Any
    device: Any
    amp_dtype: Any
    normalize: Any
    cache: Any = None
    """The run's feature cache (``data.features``), else None."""


def load_model(recipe: Recipe, tasks: Sequence[TaskSpec], checkpoint: Path,
               samples: Sequence[Any] | None = None, cache: Any = None) -> LoadedModel:
    """Build the recipe's network (no weight download) and load ``checkpoint`` into it.

    A run that trained from cached features (``data.features``) reads them again:
    ``samples`` (every sample of its dataset) checks the cache is still the one it trained on,
    unless the caller opened it already (``cache``, a :class:`~semisup.data.cached.FeatureCache`).

    Raises:
        SemisupError: an unreadable checkpoint, or one of another model; a run from
            cached features without ``samples`` (its heads need the cache's features, not frames),
            or with a stale cache.
    """
    from semisup.device import resolve_device, resolve_precision
    from semisup.checkpoints import load_checkpoint
    from semisup.build import build_model, input_transform, open_feature_cache
    from semisup.models.trailer import describe_misfit

    if recipe.data.features and cache is None:
        if samples is None:
            raise SemisupError(f"{checkpoint}: this run trained on cached features (data.features = "
                               f"{recipe.data.features!r}); it scores only its own dataset's trailers "
                               "(`semisup evaluate`, `threshold-sweep`, `pseudo-label`), not new videos or images")
        cache = open_feature_cache(recipe, samples)
    device = resolve_device(recipe.run.device)
    state = read_safetensors(checkpoint) if checkpoint.suffix == ".safetensors" else load_checkpoint(checkpoint)
    model = build_model(dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, pretrained=False)), tasks,
                        cache)
    weights = state.get("model")
    if "sharded" in state:
        raise SemisupError(f"{checkpoint}: an FSDP last.pt (its weights are shards in {state['sharded']}); score "
                           "best.pt, which is whole")
    if not isinstance(weights, dict):
        raise SemisupError(f"{checkpoint}: holds no model weights (an encoder checkpoint? `semisup embed "
                           "--checkpoint pretrained` reads those)")
    misfit = describe_misfit(weights, model.state_dict())
    if misfit:
        raise SemisupError(f"{checkpoint}: a checkpoint of a different model than this run's: {misfit}; give a "
                           "checkpoint of this run (best, last or one of its checkpoints/*.pt)")
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise SemisupError(f"{checkpoint}: does not fit this run's model ({str(exc).splitlines()[0]})") from None
    model.to(device).eval()
    return LoadedModel(model, device, resolve_precision(device, recipe.run.precision),
                       input_transform(model).to(device), cache)


def score_checkpoint(recipe: Recipe, dataset: Dataset, checkpoint: Path, splits: Sequence[str],
                     enforce_limit: bool = True, cache: Any = None) -> dict[str, Predictions]:
    """Predictions of a checkpoint on each of ``splits``.

    Args:
        enforce_limit: stop on a split with more than ``data.max_unreadable`` of its samples
            unreadable; off, score what reads (the caller applies the rule itself).
        cache: the run's feature cache, opened already (else opened here when the recipe has one).

    Raises:
        SemisupError: an unknown or empty split, an unreadable checkpoint, or (``enforce_limit``) a
            split with more than ``data.max_unreadable`` of its samples unreadable.
    """
    for split in splits:
        if split not in SPLITS:
            raise SemisupError(f"--split: {split!r} is not one of {', '.join(SPLITS)}")
        if not split_samples(dataset.samples, split):
            raise SemisupError(f"{dataset.source}: split {split!r} has no samples")
    loaded = load_model(recipe, dataset.tasks, checkpoint, dataset.samples, cache)
    return {split: score_samples(recipe, dataset.tasks, checkpoint, split_samples(dataset.samples, split), split,
                                 loaded, enforce_limit=enforce_limit) for split in splits}


def score_samples(recipe: Recipe, tasks: Sequence[TaskSpec], checkpoint: Path, samples: Sequence[Any],
                  name: str = "unlabeled", loaded: LoadedModel | None = None,
                  all_samples: Sequence[Any] | None = None, enforce_limit: bool = True) -> Predictions:
    """Predictions of a checkpoint on ``samples`` (evenly spaced ``data.eval_frames`` frames each;
    ``all_samples``, the whole dataset, is what a run from cached features checks its cache against).

    Raises:
        SemisupError: an unreadable checkpoint, or more than ``data.max_unreadable``
            of the samples unreadable (``name`` says which in the message).
    """
    from semisup.build import build_eval_loader
    from semisup.evaluate.inference import predict

    loaded = loaded or load_model(recipe, tasks, checkpoint, all_samples)
    loader = build_eval_loader(samples, tasks, recipe.data.image_size, recipe.data.eval_frames,
                               recipe.train.eval_batch_size, recipe.data.num_workers, cache=loaded.cache,
                               decoder=recipe.data.decoder)
    predictions = predict(loaded.model, loader, loaded.normalize, tasks, loaded.device, loaded.amp_dtype)
    if enforce_limit:
        check_split(name, samples, predictions.unreadable, recipe.data.max_unreadable)
    return predictions


def check_scorable(dataset: Dataset, split: str) -> None:
    """Refuse to evaluate on a split none of whose samples carries a label of any task: there would
    be nothing to score against (the unlabeled split, as a rule).

    Raises:
        SemisupError: an unknown split, or one without a labeled sample.
    """
    if split not in SPLITS:
        raise SemisupError(f"--split: {split!r} is not one of {', '.join(SPLITS)}")
    members = split_samples(dataset.samples, split)
    if members and not any(s.labels.get(t.name) is not None for s in members for t in dataset.tasks):
        raise SemisupError(f"--split {split}: none of its {len(members)} trailers has a label of "
                           f"{', '.join(t.name for t in dataset.tasks)} to score against; to see what the model "
                           f"says about them use `semisup predict` or `semisup pseudo-label`")


def recipe_tasks(recipe: Recipe) -> list[TaskSpec]:
    """The tasks of a resolved run recipe (vocabularies are written in its config.toml)."""
    return [TaskSpec(t.name, t.labels, t.kind) for t in recipe.tasks]


def per_class_table(targets: Any, scores: Any, labels: Sequence[str], threshold: float = 0.5) -> list[dict[str, Any]]:
    """The per-class table MovieNet papers publish: precision@t, recall@t, AP and support per label."""
    from semisup.evaluate.metrics import average_precision, precision_recall_f1

    prf = precision_recall_f1(targets, scores >= threshold)
    ap = average_precision(targets, scores)
    return [{"label": label, "precision": float(prf.precision[c]), "recall": float(prf.recall[c]),
             "ap": None if ap[c] != ap[c] else float(ap[c]), "support": int(prf.support[c])}
            for c, label in enumerate(labels)]


def read_safetensors(path: Path) -> dict[str, Any]:
    """A model folder's weights (``model.safetensors``), shaped like a checkpoint: ``{"model": ...}``.

    Raises:
        SemisupError: missing or not a safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return {"model": load_file(path)}
    except (OSError, SafetensorError) as exc:
        raise SemisupError(f"{path}: not readable weights ({str(exc).splitlines()[0] or type(exc).__name__})") from None
