"""Labels for new videos, frame folders and images with a trained run.

Each input becomes one sample: a video file (evenly spaced frames decoded
with PyAV), a folder of frames, or a single image. Outputs are the run's
per-task probabilities and the labels its stored decision rule gives
(``semisup threshold-sweep --apply``; rounding or argmax otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from semisup.data.folder import IMAGE_SUFFIXES, frame_files
from semisup.data.images import DECODE_ERRORS, load_frame
from semisup.data.samples import Sample
from semisup.data.video import VIDEO_SUFFIXES, VideoError, probe, read_frames
from semisup.errors import SemisupError
from semisup.evaluate.runs import RunDir, load_model, recipe_tasks, stored_rules


@dataclass
class InputPrediction:
    """One input's result: per task, each label's probability and the decided labels."""

    input: str
    scores: dict[str, dict[str, float]]
    labels: dict[str, list[str]]
    skipped_frames: int = 0
    """Unreadable frames left out of this input (its scores come from the frames that read)."""


def input_sample(path: Path) -> Sample:
    """A sample for a video file, a frames folder or an image, checked to decode.

    Raises:
        SemisupError: missing, of an unknown type, or not decodable.
    """
    if path.is_dir():
        return Sample(str(path), frame_files(path))
    if not path.is_file():
        raise SemisupError(f"{path}: input not found")
    suffix = path.suffix.lower()
    try:
        if suffix in VIDEO_SUFFIXES:
            probe(path)
            read_frames(path, [0], 16)
            return Sample(str(path), video=path)
        if suffix in IMAGE_SUFFIXES:
            load_frame(path, 16)
            return Sample(str(path), (path,))
    except (VideoError, *DECODE_ERRORS) as exc:
        raise SemisupError(f"{path}: cannot be decoded ({str(exc).split(': ')[-1] or type(exc).__name__})") from None
    raise SemisupError(f"{path}: not a video ({', '.join(VIDEO_SUFFIXES)}), an image or a folder of frames")


def predict_inputs(run_dir: Path, inputs: Sequence[Path], checkpoint: str = "best",
                   on_batch: Callable[[int], None] | None = None, batch_size: int = 8) -> list[InputPrediction]:
    """Run a trained model on each input.

    Args:
        run_dir: the run directory.
        inputs: video files, frame folders or image files.
        checkpoint: ``best``, ``last`` or a checkpoint path.
        on_batch: called with the number of inputs done after each batch (progress).
        batch_size: inputs per batch.

    Raises:
        SemisupError: bad run directory, checkpoint or input.
    """
    from semisup.build import build_eval_loader
    from semisup.device import autocast
    from semisup.evaluate.inference import probabilities

    import torch

    run = RunDir.open(run_dir)
    recipe = run.recipe()
    tasks = recipe_tasks(recipe)
    samples = [input_sample(Path(p)) for p in inputs]
    if not samples:
        raise SemisupError("predict: give at least one INPUT (video, frames folder or image)")
    rules = stored_rules(run, {t.name: t.kind for t in tasks})
    loaded = load_model(recipe, tasks, run.checkpoint(checkpoint))
    loader = build_eval_loader(samples, tasks, recipe.data.image_size, recipe.data.eval_frames, batch_size,
                               num_workers=min(recipe.data.num_workers, 2), decoder=recipe.data.decoder)
    results: dict[int, InputPrediction] = {}  # by input position: the same input may be given twice
    bad: set[str] = set()  # unreadable frame files (or "video#frame" entries) met so far
    with torch.no_grad():
        for batch in loader:
            bad.update(batch.bad_frames)
            frames = loaded.normalize(batch.frames.to(loaded.device))
            with autocast(loaded.device, loaded.amp_dtype):
                logits = loaded.model(frames, batch.owner.to(loaded.device), batch.num_trailers)
            probs = {t.name: probabilities(logits[t.name], t.kind).cpu().numpy() for t in tasks}
            for row, index in enumerate(batch.indices.tolist()):
                scores = {t.name: {label: float(p) for label, p in zip(t.labels, probs[t.name][row])} for t in tasks}
                decided = {t.name: [label for label, keep in zip(t.labels, rules[t.name](probs[t.name][row:row + 1])[0])
                                    if keep] for t in tasks}
                results[index] = InputPrediction(samples[index].id, scores, decided)
            if on_batch:
                on_batch(len(results))
    missing = [s.id for index, s in enumerate(samples) if index not in results]
    if missing:
        raise SemisupError(f"{missing[0]}: no frame could be decoded")
    for index, result in results.items():
        result.skipped_frames = _skipped(samples[index], bad)
    return [results[index] for index in range(len(samples))]


def _skipped(sample: Sample, bad: set[str]) -> int:
    """How many of ``bad`` (unreadable frames met) are ``sample``'s: its frame files, or entries of
    its video. Counted by file, not by batch, so every copy of an input given twice gets its count."""
    if sample.video is not None:
        return sum(1 for entry in bad if entry.startswith(str(sample.video)))
    return sum(1 for path in sample.frames if str(path) in bad)


def top_scores(scores: dict[str, float], n: int = 3) -> list[tuple[str, float]]:
    """The ``n`` highest-scoring labels."""
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    return ranked[:n] if n else ranked

