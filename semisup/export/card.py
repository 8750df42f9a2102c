"""What an exported model says about itself: ``config.json`` and the model card.

Every export carries the same description, made here once: the tasks and their labels, the
input (frame size, how frames are resized and picked, the pixel normalisation), the network
(encoder, aggregators), the decision rule of each task, where the model came from (semisup
version, the run, the checkpoint, the recipe's hash) and the run's results. The model folder
writes it as ``config.json`` (with timm's ``pretrained_cfg`` keys, so timm-minded tools find
the input configuration where they look for it) and as a README model card; ONNX and
TorchScript files carry it in their metadata.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import semisup
from semisup.config import Recipe
from semisup.data.samples import TaskSpec
from semisup.evaluate.decisions import DecisionRule
from semisup.evaluate.runs import MODEL_FOLDER_FORMAT, RunDir
from semisup.models import TrailerModel

FORMAT_VERSION = 1

INPUT_LAYOUT = "frames: uint8 RGB, shape (B, T, H, W, 3), H = W = image_size, each trailer's frames in time order"
RESIZE = ("short side resized to image_size (bilinear), centre square cropped; a video's frames are decoded, "
          "then resized the same way")


def frame_sampling(eval_frames: int) -> str:
    """How prediction picks a trailer's frames, in words (:func:`semisup.data.frames.even_frames`)."""
    return (f"{eval_frames} evenly spaced frames (frame floor((i + 0.5) * n / {eval_frames}) of n, "
            f"i = 0..{eval_frames - 1}); every frame when a trailer has {eval_frames} or fewer")


def model_config(run: RunDir, recipe: Recipe, tasks: Sequence[TaskSpec], rules: dict[str, DecisionRule],
                 model: TrailerModel, checkpoint: str) -> dict[str, Any]:
    """The JSON description of a trained model (``config.json``; the metadata of ONNX and
    TorchScript exports).

    Args:
        run: the run directory (or model folder) exported.
        recipe: its recipe.
        tasks: its tasks, in output order.
        rules: each task's decision rule.
        model: the network, with its weights.
        checkpoint: which checkpoint (``best``, ``last`` or a path).
    """
    encoder = model.encoder
    size, mean, std = recipe.data.image_size, [float(v) for v in encoder.mean], [float(v) for v in encoder.std]
    configs = {t.name: t for t in recipe.tasks}
    source = run.source() if run.model_folder else {"run": str(run.path.resolve()), "checkpoint": checkpoint}
    return {
        "format": MODEL_FOLDER_FORMAT,
        "format_version": FORMAT_VERSION,
        "semisup_version": semisup.__version__,
        "architecture": "semisup-trailer-classifier",
        "encoder": {"name": recipe.model.encoder, "num_features": int(encoder.num_features),
                    "frame_differences": recipe.model.frame_differences,
                    "temporal_shift": recipe.model.temporal_shift},
        "aggregators": {t.name: {"name": type(model.aggregators[t.name]).__name__,
                                 "recipe_name": configs[t.name].aggregator or recipe.model.pooling,
                                 "options": dataclasses.asdict(model.aggregators[t.name].options)} for t in tasks},
        "tasks": [{"name": t.name, "kind": t.kind, "labels": list(t.labels)} for t in tasks],
        "input": {"layout": INPUT_LAYOUT, "image_size": size, "resize": RESIZE, "frames": recipe.data.eval_frames,
                  "frame_sampling": frame_sampling(recipe.data.eval_frames), "mean": mean, "std": std,
                  "normalisation": "inside the exported graph: (pixel / 255 - mean) / std per channel"},
        "pretrained_cfg": {"input_size": [3, size, size], "mean": mean, "std": std, "interpolation": "bilinear",
                           "crop_pct": 1.0, "crop_mode": "center"},
        "outputs": {t.name: ("softmax over the labels (one label per trailer)" if t.kind == "multiclass"
                             else "sigmoid per label (any number of labels per trailer)") for t in tasks},
        "decision": {t.name: {**rules[t.name].to_dict(), "describe": rules[t.name].describe()} for t in tasks},
        "recipe_sha256": run.recipe_sha256(),
        "source": {**source, "exported": source.get("exported") or datetime.now(timezone.utc).isoformat(
            timespec="seconds")},
        "results": run_results(run),
    }


def run_results(run: RunDir) -> dict[str, dict[str, dict[str, float]]]:
    """The run's final scores per split and task (``report.json``): mAP, accuracy, macro-F1; empty
    when the run wrote no report (a model folder keeps what its ``config.json`` says)."""
    if run.model_folder:
        return run.folder_config().get("results", {})
    path = run.path / "report.json"
    try:
        splits = json.loads(path.read_text())["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    keep = ("mAP", "accuracy", "macro_f1", "samples")
    return {split: {task: {k: m[k] for k in keep if isinstance(m.get(k), (int, float))} for task, m in tasks.items()}
            for split, tasks in splits.items() if isinstance(tasks, dict)}


def model_card(config: dict[str, Any], recipe_text: str) -> str:
    """The README of a model folder: YAML front matter for the Hugging Face Hub, what the model
    predicts, its input, results, decision rules, how to use it, and the recipe it was trained with."""
    tasks = config["tasks"]
    lines = ["---", "library_name: semisup", "pipeline_tag: video-classification",
             "tags: [semisup, video-classification, semi-supervised]", "---", "",
             f"# {config['encoder']['name']} trailer classifier ({', '.join(t['name'] for t in tasks)})", "",
             f"Trained with semisup {config['semisup_version']} from `{config['source'].get('run', '?')}` "
             f"(checkpoint `{config['source'].get('checkpoint', '?')}`), exported "
             f"{config['source']['exported']}. Recipe SHA-256 `{config['recipe_sha256'][:16]}...`.", "",
             "## What it predicts", "", "| task | kind | labels | decision rule |", "|---|---|---|---|"]
    for t in tasks:
        kind = "one label" if t["kind"] == "multiclass" else "any number of labels"
        lines.append(f"| {t['name']} | {kind} | {', '.join(t['labels'])} | {config['decision'][t['name']]['describe']} |")
    inp = config["input"]
    lines += ["", "## Input", "",
              f"- {inp['frame_sampling']};",
              f"- each frame: {inp['resize']} ({inp['image_size']} px);",
              f"- pixels: mean {inp['mean']}, std {inp['std']} ({inp['normalisation']});",
              f"- encoder `{config['encoder']['name']}`; aggregators: "
              + ", ".join(f"{name} `{a['recipe_name']}`" for name, a in config["aggregators"].items()) + "."]
    results = config.get("results") or {}
    lines += ["", "## Results", ""]
    if results:
        lines += ["Scored by the run after training (`report.json`), on its own splits.", "",
                  "| split | task | trailers | mAP | accuracy | macro-F1 |", "|---|---|---|---|---|---|"]
        for split, by_task in results.items():
            for task, m in by_task.items():
                cells = [f"{m[k]:.3f}" if k in m else "-" for k in ("mAP", "accuracy", "macro_f1")]
                lines.append(f"| {split} | {task} | {m.get('samples', '-')} | " + " | ".join(cells) + " |")
    else:
        lines.append("The run wrote no report.json: no scores to show.")
    lines += ["", "## Use", "", "With semisup installed:", "", "```bash",
              "semisup predict THIS_FOLDER videos/ --out predictions.csv     # labels and scores per video",
              "semisup evaluate THIS_FOLDER --split test                   # scores on the recipe's dataset",
              "```", ""]
    if config.get("timm_encoder"):
        lines += ["The encoder alone, in timm:", "", "```python", "import timm",
                  f"encoder = timm.create_model({config['encoder']['name']!r}, pretrained=True, num_classes=0,",
                  "                            pretrained_cfg_overlay=dict(file=\"THIS_FOLDER/encoder.safetensors\"))",
                  "```", ""]
    lines += ["## Recipe", "", "```toml", recipe_text.rstrip(), "```", ""]
    return "\n".join(lines)
