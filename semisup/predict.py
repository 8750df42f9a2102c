"""Labels for new videos, frame folders and images with a trained run or a model folder.

Each input becomes one sample: a video file (evenly spaced frames decoded with PyAV), a
folder of frames, or a single image. A folder that holds no images is a collection: each
video and each sub-folder in it is an input (searched down, so a catalogue's tree of
folders works as it is). Outputs are the run's per-task probabilities and the labels its
stored decision rule gives (``semisup threshold-sweep --apply``; rounding or argmax
otherwise).

Frames are decoded in the loader's worker processes, batches run on the run's device in
its precision, and an input that cannot be read is reported with why, not fatal
(:class:`InputPrediction` ``error``). Writing many predictions to a file, resumably, is
:mod:`semisup.catalogue`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from semisup.data.folder import IMAGE_SUFFIXES, frame_files
from semisup.data.images import DECODE_ERRORS, load_frame
from semisup.data.samples import Sample, TaskSpec
from semisup.data.video import VIDEO_SUFFIXES, VideoError, probe, read_frames
from semisup.errors import SemisupError
from semisup.evaluate.decisions import DecisionRule
from semisup.evaluate.runs import RunDir, load_model, recipe_tasks, stored_rules


@dataclass
class InputPrediction:
    """One input's result: per task, each label's probability and the decided labels."""

    input: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)
    skipped_frames: int = 0
    """Unreadable frames left out of this input (its scores come from the frames that read)."""
    frames: int = 0
    """Frames the model saw."""
    error: str | None = None
    """Why the input could not be read (then there are no scores); None when it was."""


def input_sample(path: Path) -> Sample:
    """A sample for a video file, a frames folder or an image, checked to decode.

    Raises:
        SemisupError: missing, of an unknown type, or not decodable.
    """
    planned = _plan(path)
    if isinstance(planned, str):
        raise SemisupError(planned)
    try:
        if planned.video is not None:
            probe(path)
            read_frames(path, [0], 16)
        elif path.is_file():
            load_frame(path, 16)
    except (VideoError, *DECODE_ERRORS) as exc:
        raise SemisupError(f"{path}: cannot be decoded ({str(exc).split(': ')[-1] or type(exc).__name__})") from None
    return planned


@dataclass
class Inputs:
    """The inputs a command was given, expanded: what to predict, in order, each once."""

    paths: list[Path]
    ignored: int = 0
    """Files inside collection folders that are neither videos nor images (not inputs)."""


def expand_inputs(paths: Sequence[Path], from_list: Path | None = None, keep_repeats: bool = False) -> Inputs:
    """Expand the given paths (and the paths of a list file) into inputs.

    A video or image file is one input; a folder that holds images is one input (a trailer's
    frames); any other folder is a collection: each video in it is an input, and each of its
    sub-folders is expanded the same way. Hidden files and folders are skipped.

    Args:
        paths: files and folders.
        from_list: a text file with one path per line (relative paths are read from the list's
            folder; blank lines and lines starting with ``#`` are skipped).
        keep_repeats: keep an input given twice twice (else the first one counts).

    Raises:
        SemisupError: the list file cannot be read.
    """
    given = [Path(p) for p in paths]
    if from_list is not None:
        try:
            lines = Path(from_list).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SemisupError(f"{from_list}: cannot read the list of inputs ({type(exc).__name__}: {exc})") from None
        base = Path(from_list).parent
        given += [base / line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    found: list[Path] = []
    ignored = 0
    visited: set[str] = set()  # folders searched, by real path: a link back up is not searched again
    for path in given:
        if path.is_dir() and not _holds_images(path):
            more, skipped = _collection(path, visited)
            found += more
            ignored += skipped
        else:
            found.append(path)
    if not keep_repeats:  # "a/../b.mp4" and "b.mp4" are one input: the first spelling is kept
        first: dict[str, Path] = {}
        for path in found:
            first.setdefault(os.path.normpath(os.path.abspath(path)), path)
        found = list(first.values())
    return Inputs(found, ignored)


def _holds_images(folder: Path) -> bool:
    try:
        return any(e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES) and not e.name.startswith(".")
                   for e in os.scandir(folder))
    except OSError:
        return True  # unreadable: one input, reported as such


def _collection(folder: Path, visited: set[str]) -> tuple[list[Path], int]:
    """Videos and frame folders under ``folder`` (sorted by name), and how many other files were met;
    a folder already in ``visited`` (real paths) is not searched again."""
    real = os.path.realpath(folder)
    if real in visited:
        return [], 0
    visited.add(real)
    found, ignored = [], 0
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return [folder], 0
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir():
            if _holds_images(path):
                found.append(path)
            else:
                more, skipped = _collection(path, visited)
                found += more
                ignored += skipped
        elif entry.name.lower().endswith(VIDEO_SUFFIXES):
            found.append(path)
        else:
            ignored += 1
    return found, ignored


def _plan(path: Path) -> Sample | str:
    """A sample for ``path`` without decoding anything (the loader does), or why there is none."""
    if path.is_dir():
        try:
            return Sample(str(path), frame_files(path))
        except SemisupError as exc:
            return str(exc)
    if not path.is_file():
        return f"{path}: input not found"
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return Sample(str(path), video=path)
    if suffix in IMAGE_SUFFIXES:
        return Sample(str(path), (path,))
    return f"{path}: not a video ({', '.join(VIDEO_SUFFIXES)}), an image or a folder of frames"


class Predictor:
    """A trained model ready to label inputs: a run directory's checkpoint or a model folder.

    Args:
        source: a run directory or a model folder.
        checkpoint: ``best``, ``last`` or a checkpoint file (a model folder has one).
        batch_size: inputs per batch (default: the run's ``train.eval_batch_size``).
        workers: loader processes decoding frames (default: the run's ``data.num_workers``,
            at most the CPUs there are; 0 decodes in this process).

    Raises:
        SemisupError: bad run directory or checkpoint; a run that trained from cached features.
    """

    def __init__(self, source: Path, checkpoint: str = "best", batch_size: int | None = None,
                 workers: int | None = None) -> None:
        self.run = RunDir.open(source)
        self.recipe = self.run.recipe()
        self.tasks: list[TaskSpec] = recipe_tasks(self.recipe)
        self.rules: dict[str, DecisionRule] = stored_rules(self.run, {t.name: t.kind for t in self.tasks})
        self.checkpoint = self.run.checkpoint(checkpoint)
        self.loaded = load_model(self.recipe, self.tasks, self.checkpoint)
        self.batch_size = batch_size or self.recipe.train.eval_batch_size
        self.workers = min(self.recipe.data.num_workers, os.cpu_count() or 1) if workers is None else workers

    def identity(self) -> dict[str, Any]:
        """What makes two predictions comparable: the model's weights file (path, size, time), its
        recipe (frames per input, image size, decoder) and the decision rules."""
        stat = self.checkpoint.stat()
        return {"model": str(self.checkpoint.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "recipe_sha256": self.run.recipe_sha256(), "rules": {t: r.to_dict() for t, r in self.rules.items()}}

    def predict(self, inputs: Sequence[Path]) -> Iterator[list[InputPrediction]]:
        """Predictions of ``inputs``, a batch at a time (inputs that cannot even be planned, e.g.
        missing, come first, in one list); every input appears exactly once."""
        import torch

        from semisup.build import build_eval_loader
        from semisup.device import autocast
        from semisup.evaluate.inference import probabilities

        planned = [_plan(Path(p)) for p in inputs]
        rejected = [InputPrediction(str(p), error=why) for p, why in zip(inputs, planned) if isinstance(why, str)]
        if rejected:
            yield rejected
        samples = [s for s in planned if isinstance(s, Sample)]
        if not samples:
            return
        recipe, loaded = self.recipe, self.loaded
        loader = build_eval_loader(samples, self.tasks, recipe.data.image_size, recipe.data.eval_frames,
                                   self.batch_size, self.workers, pin_memory=loaded.device.type == "cuda",
                                   decoder=recipe.data.decoder)
        with torch.no_grad():
            for batch in loader:
                results = [InputPrediction(samples[i].id, error=_why_unreadable(samples[i]))
                           for i in batch.unreadable]
                if batch.num_trailers:
                    frames = loaded.normalize(batch.frames.to(loaded.device, non_blocking=True))
                    with autocast(loaded.device, loaded.amp_dtype):
                        logits = loaded.model(frames, batch.owner.to(loaded.device), batch.num_trailers)
                    probs = {t.name: probabilities(logits[t.name], t.kind).cpu().numpy() for t in self.tasks}
                    counts = torch.bincount(batch.owner, minlength=batch.num_trailers).tolist()
                    bad = set(batch.bad_frames)
                    for row, index in enumerate(batch.indices.tolist()):
                        results.append(self._result(samples[index], {t: p[row:row + 1] for t, p in probs.items()},
                                                    counts[row], _skipped(samples[index], bad)))
                yield results

    def _result(self, sample: Sample, probs: dict[str, Any], frames: int, skipped: int) -> InputPrediction:
        scores = {t.name: {label: float(p) for label, p in zip(t.labels, probs[t.name][0])} for t in self.tasks}
        decided = {t.name: [label for label, keep in zip(t.labels, self.rules[t.name](probs[t.name])[0]) if keep]
                   for t in self.tasks}
        return InputPrediction(sample.id, scores, decided, skipped, frames)


def _why_unreadable(sample: Sample) -> str:
    """The reason an input gave no frame, in a user's words (decoding it again, once, to say why)."""
    try:
        input_sample(Path(sample.id))
    except SemisupError as exc:
        return str(exc)
    return f"{sample.id}: no frame could be decoded"


def predict_inputs(source: Path, inputs: Sequence[Path], checkpoint: str = "best",
                   on_batch: Callable[[int], None] | None = None, batch_size: int | None = None,
                   workers: int | None = None) -> list[InputPrediction]:
    """Run a trained model on each input, in the order given (an input given twice appears twice).

    Args:
        source: the run directory or model folder.
        inputs: video files, frame folders or image files.
        checkpoint: ``best``, ``last`` or a checkpoint path.
        on_batch: called with the number of inputs done after each batch (progress).
        batch_size: inputs per batch (default: the run's ``train.eval_batch_size``).
        workers: loader processes (default: the run's ``data.num_workers``, at most 2: a handful
            of inputs gains nothing from more processes' start-up).

    Returns:
        One :class:`InputPrediction` per input; unreadable ones carry ``error``.

    Raises:
        SemisupError: bad run directory or checkpoint; no input given.
    """
    if not inputs:
        raise SemisupError("predict: give at least one INPUT (video, frames folder or image)")
    predictor = Predictor(source, checkpoint, batch_size, workers)
    if workers is None:
        predictor.workers = min(predictor.workers, 2)
    unique = list(dict.fromkeys(Path(p) for p in inputs))
    found: dict[str, InputPrediction] = {}
    for results in predictor.predict(unique):
        found.update((r.input, r) for r in results)
        if on_batch:
            on_batch(len(found))
    return [found[str(Path(p))] for p in inputs]


def _skipped(sample: Sample, bad: set[str]) -> int:
    """How many of ``bad`` (unreadable frames met) are ``sample``'s: its frame files, or entries of
    its video."""
    if sample.video is not None:
        return sum(1 for entry in bad if entry.startswith(str(sample.video)))
    return sum(1 for path in sample.frames if str(path) in bad)


def top_scores(scores: dict[str, float], n: int = 3) -> list[tuple[str, float]]:
    """The ``n`` highest-scoring labels."""
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    return ranked[:n] if n else ranked
