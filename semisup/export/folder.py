"""The model folder: a trained model others can load, in the shape timm and the Hugging Face Hub use.

::

    FOLDER/
      config.json          what the model is (tasks and labels, input, decision rules, source, results)
      model.safetensors    every weight of the trailer model (encoder, aggregators, heads)
      encoder.safetensors  the encoder alone, with timm's keys (timm encoders that timm can rebuild)
      recipe.toml          the run's resolved recipe
      decision.json        each task's decision rule, as `semisup threshold-sweep --apply` stores it
      README.md            the model card

``semisup predict``, ``evaluate`` and ``export`` read the folder in place of a run directory
(:class:`~semisup.evaluate.runs.RunDir`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from semisup.errors import SemisupError
from semisup.evaluate.decisions import DecisionRule
from semisup.evaluate.runs import RunDir
from semisup.export.card import model_card
from semisup.io import atomic_folder, new_file_mode, write_json, write_text
from semisup.models import TrailerModel
from semisup.models.encoder import Encoder


FOLDER_FILES = ("config.json", "model.safetensors", "encoder.safetensors", "recipe.toml", "decision.json",
                "README.md")
"""What an export writes into a model folder; ``--force`` replaces these and keeps anything else."""


def write_model_folder(out: Path, model: TrailerModel, config: dict[str, Any], run: RunDir,
                       rules: dict[str, DecisionRule], force: bool = False) -> Path:
    """Write the model folder at ``out``, whole or not at all (built beside it, then renamed).

    Args:
        out: the folder to write (absent, empty, or with ``force`` an earlier model folder).
        model: the trained network.
        config: :func:`~semisup.export.card.model_config`; ``timm_encoder`` is added here.
        run: the run (or model folder) exported: its recipe file is copied.
        rules: each task's decision rule.
        force: replace an earlier model folder at ``out`` (its :data:`FOLDER_FILES`; anything else
            there, such as ``evaluations/`` or a Hub clone's ``.git``, is kept).

    Raises:
        SemisupError: ``out`` is a file, or a non-empty folder that is not a model folder
            (never replaced, even with ``force``), or a model folder without ``force``.
    """
    out = Path(out)
    replace = _check_target(out, force)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    encoder = timm_state(model.encoder)
    config = {**config, "timm_encoder": "encoder.safetensors" if encoder is not None else None}
    from safetensors.torch import save_file

    target = out.with_name(f".{out.name}.new") if replace else out
    with atomic_folder(target) as tmp:
        for name, state in (("model.safetensors", weights), ("encoder.safetensors", encoder)):
            if state is not None:
                save_file(state, str(tmp / name), metadata={"format": "pt"})
                os.chmod(tmp / name, new_file_mode())  # safetensors writes owner-only files
        recipe_text = run.config.read_text()
        write_text(tmp / "recipe.toml", recipe_text)
        write_json(tmp / "decision.json", {"source": "semisup export",
                                           "tasks": {t: r.to_dict() for t, r in rules.items()}})
        write_json(tmp / "config.json", config)
        write_text(tmp / "README.md", model_card(config, recipe_text))
    if replace:  # the old folder goes only once the new one is whole
        for entry in out.iterdir():  # what others put there (evaluations/, a Hub clone's .git) moves over
            if entry.name not in FOLDER_FILES:
                os.replace(entry, target / entry.name)
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(target, out)
        shutil.rmtree(old, ignore_errors=True)
    return out


def _check_target(out: Path, force: bool) -> bool:
    """Whether ``out`` is an earlier model folder to replace (``False``: absent or empty)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return False
    if not out.is_dir():
        raise SemisupError(f"{out}: is a file, expected a folder for the model (--out)")
    try:
        is_model = RunDir.open(out).model_folder
    except SemisupError:
        is_model = False
    if not is_model:
        raise SemisupError(f"{out}: a folder that is not a semisup model folder; it is never replaced, not even "
                           "with --force: choose another --out")
    if not force:
        raise SemisupError(f"{out}: already holds a model folder (use --force to replace it, or choose another --out)")
    return True


def timm_state(encoder: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The encoder's weights with the keys of ``timm.create_model(name, num_classes=0)``, or None
    when timm cannot rebuild it as it is (another kind of network, or one semisup changed: a
    frame-difference stem; a temporal shift, which timm's network would not apply)."""
    import timm

    if type(encoder) is not Encoder or encoder.sees_motion:
        return None
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.model.state_dict().items()}
    try:
        reference = timm.create_model(encoder.name, pretrained=False, num_classes=0).state_dict()
    except Exception:  # noqa: BLE001 - a name timm does not know: no timm file
        return None
    if {k: tuple(v.shape) for k, v in reference.items()} != {k: tuple(v.shape) for k, v in state.items()}:
        return None
    return state
