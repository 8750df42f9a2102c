"""Recipe to components shared by training and evaluation: the dataset, the model, evaluation loaders.

Like :mod:`semisup.train.setup` (the training side), this module reads recipe
objects so the components it builds need not: each takes explicit arguments.
"""

from __future__ import annotations

from typing import Sequence

from pathlib import Path

from torch import nn
from torch.utils.data import DataLoader

from semisup.augment import FeatureAugment, FrameNormalize
from semisup.config import DataConfig, Recipe, TaskConfig, reads_order
from semisup.data.cached import CachedTrailers, FeatureCache, cache_key
from semisup.data.formats import read_dataset
from semisup.data.index import Listing, open_listing
from semisup.data.labels import TaskColumn
from semisup.data.loaders import EpochBatchSampler, TrailerFrames, collate_packed, eval_picker, make_loader
from semisup.data.samples import Dataset, Sample, TaskSpec, labeled_pool, split_samples, unlabeled_pool
from semisup.data.video import Decoder
from semisup.errors import SemisupError
from semisup.models import TrailerModel, create_encoder
from semisup.models.encoder import CachedEncoder
from semisup.models.aggregators import build_aggregator
from semisup.pretext import get_pretext_task, pretext_key


def task_columns(tasks: Sequence[TaskConfig]) -> list[TaskColumn]:
    """The data layer's view of the recipe's tasks."""
    return [TaskColumn(t.name, t.csv_column, t.kind, t.labels, t.separator, t.unknown_labels, t.top_labels,
                       t.rename) for t in tasks]


def read_recipe_data(data: DataConfig, tasks: Sequence[TaskConfig], ignore_split: bool = False,
                     listing: Listing | None = None) -> Dataset:
    """Read the dataset a recipe's ``[data]`` section points at, problems and all, listing its
    folders from its index when it has one (``data.index``), or through ``listing``."""
    return read_dataset(data.format, data.root, task_columns(tasks), labels_file=data.labels_file,
                        split_file=data.split_file, meta_dir=data.meta_dir, keyframes_dir=data.keyframes_dir,
                        annotations=data.annotations, clips_dir=data.clips_dir, ignore_split=ignore_split,
                        listing=listing or (None if data.format == "shards" else open_listing(data.root, data.index)),
                        shard_cache=data.shard_cache, image_size=data.image_size)


def load_data(data: DataConfig, tasks: Sequence[TaskConfig], needs_unlabeled: bool | str) -> Dataset:
    """Read the recipe's dataset (building the demo on first use) and check it can be trained on.

    Non-fatal problems (a trailer without metadata, ...) stay in
    ``Dataset.problems`` for the caller to show.

    Args:
        data, tasks: the recipe's ``[data]`` and ``[[tasks]]``.
        needs_unlabeled: what needs unlabeled samples, for the message when there are none
            (:func:`semisup.train.setup.unlabeled_needed`); True for a generic message; empty: nothing.

    Raises:
        SemisupError: the first fatal problem, or a split the run needs is empty.
    """
    dataset = read_recipe_data(data, tasks)
    fatal = dataset.fatal()
    if fatal:
        more = (f" (and {len(fatal) - 1} more problems: `semisup data inspect {data.root} "
                f"--format {data.format}` lists them)") if len(fatal) > 1 else ""
        raise SemisupError(fatal[0].message + more)
    samples, where = dataset.samples, dataset.source
    if not labeled_pool(samples):
        raise SemisupError(f"{where}: no labeled train samples (split 'train' with labels)")
    for split in ("val", "test"):
        if not any(s.is_labeled() for s in split_samples(samples, split)):
            raise SemisupError(f"{where}: no labeled samples in split {split!r} "
                               "(the data needs train, val and test samples; `semisup data split` writes them)")
    if needs_unlabeled and not unlabeled_pool(samples):
        who = (needs_unlabeled if isinstance(needs_unlabeled, str)
               else "pretext tasks, consistency methods or [pretrain] stage")
        hint = ("" if who == "[pretrain] stage" else "; train.pretext_on_labeled = true lets pretext tasks and "
                "consistency methods use the labeled train frames")
        verb = "need" if ", " in who else "needs"  # several things, or the general wording
        raise SemisupError(f"{where}: the recipe's {who} {verb} unlabeled samples but there are none (split "
                           f"'unlabeled', or train samples without labels){hint}")
    return dataset


def labeled_reads_time(recipe: Recipe) -> bool:
    """Whether a task hears the order of its frames (:func:`~semisup.config.load.reads_order`: its
    aggregator, its motion features, the encoder's motion inputs): then the labeled stream takes
    ordered clips, augmented once per clip."""
    return any(reads_order(recipe, t) for t in recipe.tasks)


def feature_cache_key(recipe: Recipe, samples: Sequence[Sample]) -> dict:
    """What a feature cache for this recipe and these samples must have been computed from."""
    return cache_key(recipe.model.encoder, recipe.model.pretrained, recipe.data.image_size, recipe.data.eval_frames,
                     samples)


def open_feature_cache(recipe: Recipe, samples: Sequence[Sample], key: dict | None = None) -> FeatureCache | None:
    """The recipe's feature cache (``data.features``), checked against the recipe and the data
    (``key``: :func:`feature_cache_key`, when the caller computed it already); None when the recipe
    trains from frames. Open it once per run and pass it on: the key stats every frame file.

    Raises:
        SemisupError: no cache there, an incomplete one, or a stale one (another encoder,
            weights, image size, frame count, or changed frame files).
    """
    if not recipe.data.features:
        return None
    return FeatureCache(Path(recipe.data.features).expanduser(), samples,
                        key if key is not None else feature_cache_key(recipe, samples))


def build_model(recipe: Recipe, specs: Sequence[TaskSpec], cache: FeatureCache | None = None) -> TrailerModel:
    """The encoder, each task's aggregator and head, and the pretext tasks of a recipe
    (with a feature ``cache``, a :class:`CachedEncoder` that passes its features through)."""
    m = recipe.model
    if cache is not None:
        encoder = CachedEncoder(m.encoder, cache.width)
    else:
        encoder = create_encoder(m.encoder, m.pretrained, m.trainable_stages, channels_last=m.channels_last,
                                 frame_differences=m.frame_differences, temporal_shift=m.temporal_shift)
        encoder.check_image_size(recipe.data.image_size)
    configs = {t.name: t for t in recipe.tasks}
    aggregators = {s.name: build_aggregator(configs[s.name].aggregator or m.pooling,
                                            configs[s.name].aggregator_options, encoder.num_features)
                   for s in specs}
    pretext = {}
    for p in recipe.pretext:
        task_cls = get_pretext_task(p.name)
        pretext[pretext_key(p.name)] = task_cls(p.options, encoder.num_features, p.head_hidden, p.head_dropout,
                                                p.frames_per_trailer)
    return TrailerModel(encoder, aggregators, {s.name: len(s.labels) for s in specs}, m.head_hidden,
                        m.head_dropout, pretext)


def build_eval_loader(samples: Sequence[Sample], specs: Sequence[TaskSpec], image_size: int, eval_frames: int,
                      batch_size: int, num_workers: int, pin_memory: bool = False,
                      cache: FeatureCache | None = None, decoder: Decoder = "pyav") -> DataLoader:
    """Loader of evenly spaced frames of ``samples``, in order (their cached features with a ``cache``;
    videos read with ``decoder``)."""
    if cache is not None:
        dataset = CachedTrailers(cache, samples, specs, eval_picker(eval_frames))
    else:
        dataset = TrailerFrames(samples, specs, image_size, eval_picker(eval_frames), decoder=decoder)
    # a process of a data-parallel run may have no trailer of a small split to score: no batches
    sampler = EpochBatchSampler(len(samples), batch_size, seed=0, stream=0, shuffle=False) if samples else []
    return make_loader(dataset, sampler, collate_packed, num_workers, pin_memory)


def input_transform(model: TrailerModel) -> nn.Module:
    """What evaluation does to a batch's frames before the model: normalise pixels, or (a run
    from cached features) read the features as float32."""
    if isinstance(model.encoder, CachedEncoder):
        return FeatureAugment()
    return FrameNormalize(model.encoder.mean, model.encoder.std)
