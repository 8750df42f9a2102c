"""Checkpoints: written atomically, read without running pickled code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from semisup.errors import SemisupError
from semisup.io import atomic_write, torch_load, write_failed

CHECKPOINT_FORMAT = "semisup-checkpoint-1"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` via a temporary file and a rename.

    A crash at any moment leaves either the old file or the new one, never a
    torn file. ``state`` must hold only tensors, numbers, strings, lists and
    dicts, so that :func:`load_checkpoint` can read it with ``weights_only``.

    Raises:
        SemisupError: the file could not be written (a full disk, a file size limit); ``path``
            is left as it was and no temporary file remains.
    """
    writer = None
    try:
        with atomic_write(path, "wb") as handle:
            writer = _Writes(handle)
            torch.save({"format": CHECKPOINT_FORMAT, **state}, writer)
    except RuntimeError as exc:  # torch's zip writer hides the OSError of the write that failed behind its own
        if writer is None or writer.error is None:
            raise
        raise write_failed(path, writer.error.strerror or str(writer.error)) from exc


class _Writes:
    """A binary file for ``torch.save`` that remembers the ``OSError`` of a write that failed: torch
    turns it into a ``RuntimeError`` that no longer says why ("unexpected pos", "file write failed")."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.error = handle, None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Raises:
        SemisupError: missing, unreadable or not a semisup checkpoint.
    """
    if not path.is_file():
        raise SemisupError(f"{path}: checkpoint not found")
    try:
        state = torch_load(path)
    except Exception as exc:
        raise SemisupError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise SemisupError(f"{path}: not a semisup checkpoint")
    return state


def rng_state() -> dict[str, Any]:
    """The torch random states (CPU and every CUDA device)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_encoder(path: Path, encoder_name: str, state: dict[str, Any]) -> None:
    """Write an encoder checkpoint: the backbone's state dict and its timm name."""
    save_checkpoint(path, {"kind": "encoder", "encoder": encoder_name, "state_dict": state})


def load_encoder_state(path: Path, encoder_name: str) -> dict[str, Any]:
    """The backbone weights in an encoder checkpoint (``pretrain/encoder.pt``) or in
    a run checkpoint (``checkpoints/best.pt`` or ``last.pt``), for ``encoder_name``.

    Raises:
        SemisupError: not such a checkpoint, or one of another architecture.
    """
    if not path.is_file():
        raise SemisupError(f"{path}: encoder checkpoint not found")
    try:
        state = load_checkpoint(path)
    except SemisupError:
        raise SemisupError(f"{path}: not an encoder checkpoint (expected a semisup pretrain/encoder.pt "
                           "or a run's checkpoints/*.pt)") from None
    if state.get("kind") == "encoder":
        if state.get("encoder") != encoder_name:
            raise SemisupError(f"{path}: an encoder checkpoint of {state.get('encoder')!r}, but the recipe's "
                               f"model.encoder is {encoder_name!r}")
        return state["state_dict"]
    model = state.get("model")
    if isinstance(model, dict):
        prefix = "encoder.model."
        weights = {k[len(prefix):]: v for k, v in model.items() if k.startswith(prefix)}
        if weights:
            return weights
    raise SemisupError(f"{path}: not an encoder checkpoint (no encoder weights inside)")
