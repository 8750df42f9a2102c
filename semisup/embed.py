"""Frozen trailer embeddings of a run's encoder, for inspection or reuse.

``semisup embed RUN_DIR INPUT... | --split SPLIT`` writes one vector per
trailer (the encoder's frame features averaged over evenly spaced frames;
with ``--task NAME``, what that task's trained aggregator makes of them),
for example to feed a small temporal model of your own, to cluster, or to
look at with UMAP. The encoder comes from the fine-tuned model (``best``,
``last``), the pretraining stage (``pretrained``) or any encoder checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from semisup.errors import SemisupError
from semisup.evaluate.runs import RunDir
from semisup.io import atomic_write, refuse_existing, write_text


def embed_run(run_dir: Path, inputs: Sequence[Path] = (), splits: Sequence[str] = (), checkpoint: str = "best",
              out: Path | None = None, force: bool = False, task: str | None = None) -> tuple[Path, int, int]:
    """Embed inputs (videos, frame folders, images) and/or dataset splits with a run's encoder.

    Args:
        run_dir: the run directory.
        inputs: files or folders, as for ``semisup predict``.
        splits: splits of the run's dataset to embed (``train``, ``val``, ...).
        checkpoint: ``best``, ``last``, ``pretrained`` (the run's pretraining
            stage) or a checkpoint path.
        out: ``.npz`` (ids + embeddings) or ``.npy`` (embeddings, with the ids
            in ``<name>.ids.txt``); default ``RUN_DIR/embeddings.npz``.
        force: overwrite ``out`` if it exists (else that is an error).
        task: embed as this task's trained aggregator sees a trailer (the input
            of its head) instead of the mean of the encoder's frame features.

    Returns:
        The output path, the number of trailers and the embedding size.

    Raises:
        SemisupError: bad run, checkpoint, split, task or input; ``out`` exists and not ``force``.
    """
    from semisup.augment import FrameNormalize
    from semisup.data.samples import SPLITS, split_samples
    from semisup.device import resolve_device, resolve_precision
    from semisup.evaluate.inference import embed, mean_frame_features, task_features
    from semisup.evaluate.runs import load_model, recipe_tasks
    from semisup.models import create_encoder
    from semisup.predict import input_sample
    from semisup.checkpoints import load_encoder_state
    from semisup.build import build_eval_loader, read_recipe_data
    from semisup.train.simclr import encoder_path

    run = RunDir.open(run_dir)
    recipe = run.recipe()
    if not inputs and not splits:
        raise SemisupError("embed: give INPUT files/folders or --split SPLIT")
    tasks = [t.name for t in recipe.tasks]
    if task is not None and task not in tasks:
        raise SemisupError(f"--task: the run has no task {task!r} (its tasks: {', '.join(tasks)})")
    if task is not None and checkpoint == "pretrained":
        raise SemisupError("--task needs a trained model (--checkpoint best, last or a run checkpoint), "
                           "not the pretrained encoder")
    out = Path(out) if out else run.path / "embeddings.npz"
    if out.suffix not in (".npz", ".npy"):
        raise SemisupError(f"{out}: --out must end in .npz (ids + embeddings) or .npy (embeddings only)")
    for target in (out, out.with_suffix(".ids.txt")) if out.suffix == ".npy" else (out,):
        refuse_existing(target, force, "embeddings")
    samples = [input_sample(Path(p)) for p in inputs]
    if splits:
        for split in splits:
            if split not in SPLITS:
                raise SemisupError(f"--split: {split!r} is not one of {', '.join(SPLITS)}")
        dataset = read_recipe_data(recipe.data, recipe.tasks)
        samples += [s for split in splits for s in split_samples(dataset.samples, split)]
    source = encoder_path(run.path) if checkpoint == "pretrained" else run.checkpoint(checkpoint)
    if checkpoint == "pretrained" and not source.is_file():
        raise SemisupError(f"{run.path}: no pretrained encoder (pretrain/encoder.pt); the recipe has no [pretrain]")
    device = resolve_device(recipe.run.device)
    if task is not None:
        loaded = load_model(recipe, recipe_tasks(recipe), source)
        featurize, normalize = task_features(loaded.model, task), loaded.normalize
    else:
        m = recipe.model
        # the pretraining stage's encoder (SimCLR) saw frames one at a time: no temporal shift there
        shift = 0.0 if checkpoint == "pretrained" else m.temporal_shift
        encoder = create_encoder(m.encoder, pretrained=False, trainable_stages=m.trainable_stages,
                                 channels_last=m.channels_last, frame_differences=m.frame_differences,
                                 temporal_shift=shift)
        encoder.load_backbone_state(load_encoder_state(source, recipe.model.encoder), str(source))
        encoder.to(device)
        featurize, normalize = mean_frame_features(encoder), FrameNormalize(encoder.mean, encoder.std).to(device)
    loader = build_eval_loader(samples, (), recipe.data.image_size, recipe.data.eval_frames,
                               recipe.train.eval_batch_size, recipe.data.num_workers, decoder=recipe.data.decoder)
    ids, vectors = embed(featurize, loader, normalize, device, resolve_precision(device, recipe.run.precision))
    if out.suffix == ".npy":
        with atomic_write(out, "wb") as handle:
            np.save(handle, vectors)
        write_text(out.with_suffix(".ids.txt"), "".join(f"{i}\n" for i in ids))
    else:
        with atomic_write(out, "wb") as handle:
            np.savez_compressed(handle, ids=np.array(ids, dtype=str), embeddings=vectors,
                                encoder=np.array(recipe.model.encoder), checkpoint=np.array(str(source)),
                                task=np.array(task or ""))
    return out, len(ids), vectors.shape[1]
