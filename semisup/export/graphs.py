"""Graph files of the whole trailer model: ONNX (run by ONNX Runtime, TensorRT, OpenVINO...) and
TorchScript (run by libtorch without Python).

Both trace :class:`~semisup.export.classifier.TrailerClassifier` once, with the number of
trailers ``B`` and of frames ``T`` free: one file takes any clip length. Each file carries the
model's description (:func:`~semisup.export.card.model_config`): in ONNX as ``metadata_props``
(the whole description as JSON under ``semisup``, and the keys a deployment reads first as
their own entries), in TorchScript as the extra file ``semisup.json``. Each file is checked
before it is put in place: run on frames of another shape than the traced ones, its
probabilities are compared with PyTorch's, and the largest difference is returned.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from semisup.errors import SemisupError
from semisup.export.classifier import TrailerClassifier
from semisup.io import PARTIAL_SUFFIX

TOLERANCE = 1e-4
"""The largest difference of a probability between the exported file and PyTorch (fp32, CPU)."""

METADATA_FILE = "semisup.json"
"""A TorchScript file's extra file with the model's description."""


@dataclass
class Exported:
    """A written graph file and how closely it reproduces PyTorch."""

    path: Path
    max_difference: float
    """Largest absolute difference of a probability, on frames of two shapes not traced."""


def metadata_props(config: dict[str, Any]) -> dict[str, str]:
    """ONNX ``metadata_props`` (string to string) of a model description.

    Example:
        >>> props = metadata_props({"semisup_version": "0.1.0", "tasks": [{"name": "genres", "labels": ["a"]}],
        ...     "input": {"image_size": 224, "frames": 8, "frame_sampling": "even", "mean": [0.5], "std": [0.2],
        ...               "layout": "(B, T, H, W, 3)"}, "decision": {}, "recipe_sha256": "ab"})
        >>> props["labels"], props["image_size"]
        ('{"genres": ["a"]}', '224')
    """
    inp = config["input"]
    return {
        "semisup": json.dumps(config),
        "semisup_version": config["semisup_version"],
        "labels": json.dumps({t["name"]: t["labels"] for t in config["tasks"]}),
        "input_layout": inp["layout"],
        "image_size": str(inp["image_size"]),
        "frames": str(inp["frames"]),
        "frame_sampling": inp["frame_sampling"],
        "mean": json.dumps(inp["mean"]),
        "std": json.dumps(inp["std"]),
        "decision": json.dumps(config["decision"]),
        "recipe_sha256": config["recipe_sha256"],
    }


def _examples(classifier: TrailerClassifier, size: int, frames: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Frames to trace with (2 trailers x 9 frames: more than a video network's temporal strides
    reduce to one step, which the tracer would take as a fixed size), and two other shapes to
    check the file on."""
    rng = torch.Generator().manual_seed(0)
    longest = min([getattr(a.options, "max_frames", 9) for a in classifier.model.aggregators.values()] + [9])
    trace = torch.randint(0, 256, (2, max(2, longest), size, size, 3), dtype=torch.uint8, generator=rng)
    checks = [torch.randint(0, 256, shape, dtype=torch.uint8, generator=rng)
              for shape in ((1, max(1, min(frames, longest)), size, size, 3), (3, 2, size, size, 3))]
    return trace, checks


def _largest_difference(classifier: TrailerClassifier, checks: list[torch.Tensor],
                        run: Callable[[torch.Tensor], list[np.ndarray]], tmp: Path, path: Path) -> float:
    """The largest difference of the file's probabilities (``run``) to PyTorch's on ``checks``; the
    file (``tmp``) is removed when it cannot run them (e.g. the exporter fixed the frame count)."""
    worst = 0.0
    with torch.no_grad():
        for frames in checks:
            expected = [p.numpy() for p in classifier(frames)]
            try:
                got = run(frames)
            except Exception as exc:  # noqa: BLE001 - the runtime's errors: one line of it
                tmp.unlink(missing_ok=True)
                raise SemisupError(f"{path}: the exported graph fails on {frames.shape[0]} trailers of "
                                   f"{frames.shape[1]} frames ({str(exc).strip().splitlines()[0][:200]}); nothing "
                                   "was written. Please report this with the recipe") from exc
            worst = max(worst, *(float(np.abs(e - g).max()) for e, g in zip(expected, got)))
    return worst


def _checked(tmp: Path, path: Path, difference: float, what: str) -> Exported:
    if not difference <= TOLERANCE:
        tmp.unlink(missing_ok=True)
        raise SemisupError(f"{path}: the {what} file's probabilities differ from PyTorch's by up to {difference:.2g} "
                           f"(more than {TOLERANCE:g}); nothing was written. Please report this with the recipe")
    os.replace(tmp, path)
    return Exported(path, difference)


def export_onnx(classifier: TrailerClassifier, config: dict[str, Any], path: Path) -> Exported:
    """Write the classifier as one ONNX file (opset of torch's exporter, weights inside the file).

    Input ``frames`` ``(B, T, H, W, 3)`` uint8; one output per task, named after it.

    Raises:
        SemisupError: the exporter fails on this network, or the file does not reproduce PyTorch.
    """
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's exporter writes the graph with it)
    except ImportError as exc:
        raise SemisupError(f"{path}: ONNX export needs {exc.name} (pip install 'semisup[export]')") from None
    classifier = classifier.cpu().eval()
    trace, checks = _examples(classifier, config["input"]["image_size"], config["input"]["frames"])
    names = [t["name"] for t in config["tasks"]]
    tmp = path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    _forget_recurrent_kernels()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                classifier, (trace,), input_names=["frames"], output_names=names, dynamo=True,
                dynamic_shapes={"frames": {0: torch.export.Dim("trailers"), 1: torch.export.Dim("frames")}},
                verbose=False)
        program.model.metadata_props.update(metadata_props(config))
        program.save(str(tmp), external_data=False)  # one file: protobuf caps it at 2 GiB
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - the exporter's errors are many and long: one line of it
        tmp.unlink(missing_ok=True)
        raise SemisupError(f"{path}: the network could not be exported to ONNX ({_first_line(exc)})") from exc
    difference = _largest_difference(classifier, checks, lambda f: session.run(names, {"frames": f.numpy()}),
                                     tmp, path)
    return _checked(tmp, path, difference, "ONNX")


def _first_line(exc: Exception) -> str:
    """An exporter's error in one line: its type and the start of its first line."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def _forget_recurrent_kernels() -> None:
    """Make every ONNX export in a process keep the frame count free, as the first one does.

    torch's ONNX exporter swaps in shape-generic decompositions of ``aten::gru`` / ``aten::lstm``
    while it captures the graph (pytorch PR 193192). After one export, these operators' dispatch
    caches hold the Python loop over time instead, and the next export in the same process freezes
    ``T`` at the traced length (seen with torch 2.14: export a GRU twice, the second graph takes 3
    frames only). Emptying the caches (private state, so only where it exists) restores the first
    export's behaviour; the check on other shapes below still refuses a frozen graph.
    """
    for packet in (torch.ops.aten.gru, torch.ops.aten.lstm, torch.ops.aten.rnn_tanh, torch.ops.aten.rnn_relu):
        for name in packet.overloads():
            cache = getattr(getattr(packet, name), "_dispatch_cache", None)
            if isinstance(cache, dict):
                cache.clear()


def export_torchscript(classifier: TrailerClassifier, config: dict[str, Any], path: Path) -> Exported:
    """Write the classifier as a TorchScript file (``torch.jit.load`` in Python, libtorch in C++).

    Raises:
        SemisupError: tracing fails, or the file does not reproduce PyTorch.
    """
    classifier = classifier.cpu().eval()
    trace, checks = _examples(classifier, config["input"]["image_size"], config["input"]["frames"])
    tmp = path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(classifier, (trace,), check_trace=False)
            torch.jit.save(traced, str(tmp), _extra_files={METADATA_FILE: json.dumps(config)})
        loaded = load_torchscript(tmp)
    except Exception as exc:  # noqa: BLE001
        tmp.unlink(missing_ok=True)
        raise SemisupError(f"{path}: the network could not be traced to TorchScript ({_first_line(exc)})") from exc
    difference = _largest_difference(classifier, checks, lambda f: [p.numpy() for p in loaded(f)], tmp, path)
    return _checked(tmp, path, difference, "TorchScript")


def load_torchscript(path: Path, extra: dict[str, str] | None = None) -> torch.jit.ScriptModule:
    """``torch.jit.load`` onto the CPU, without its deprecation notice (TorchScript still runs in
    libtorch, which is why it is offered; ONNX is the format with a future)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra or {})


def read_torchscript_metadata(path: Path) -> dict[str, Any]:
    """The model description stored in a TorchScript export."""
    extra = {METADATA_FILE: ""}
    load_torchscript(path, extra)
    return json.loads(extra[METADATA_FILE])
