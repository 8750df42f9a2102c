"""``semisup export``: a trained model as a model folder, an ONNX or a TorchScript file."""

from __future__ import annotations

from pathlib import Path

import typer

from semisup.cli.app import app, console, errors
from semisup.cli.evaluate import FORCE_HELP


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A run directory (or a model folder)."),
    fmt: str = typer.Option(..., "--format", help="folder (config.json + model.safetensors + model card), onnx or "
                                                  "torchscript."),
    out: Path = typer.Option(..., "--out", help="The folder (folder) or file (onnx, torchscript) to write."),
    checkpoint: str = typer.Option("best", help="best, last or a checkpoint file."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Export the trained model: frames in, each task's probabilities out, with labels, input
    configuration and decision rules inside; graph files are checked against PyTorch."""
    from semisup.export import export_run

    with errors.status(f"exporting to {fmt}..."):
        result = export_run(run_dir, fmt, out, checkpoint, force)
    if result.format == "folder":
        console.print(f"model folder written to [bold]{result.path}[/] (`semisup predict {result.path} VIDEOS...`"
                      + (", encoder.safetensors for timm" if result.timm_encoder else "") + ")")
    else:
        console.print(f"{result.format} model written to [bold]{result.path}[/]; its probabilities match PyTorch's "
                      f"within {result.max_difference:.1e} (largest difference, fp32)")
