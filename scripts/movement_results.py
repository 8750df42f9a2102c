"""Camera movement across sources: every variant of recipes/moves.toml, seeds, and one table.

    python scripts/movement_results.py --out runs/moves                 # every variant, seeds 0 1 2
    python scripts/movement_results.py --out runs/moves --variants mean,gru --seeds 0

Each variant is `semisup run recipes/moves.toml` with a few `--set` overrides
(listed below, and printed before each run). A run directory that already holds
a report.json is kept and an unfinished one resumed, so an interrupted sweep
continues where it stopped. The
table at the end is `semisup compare ... --task movement --class Push --class Pull
--markdown` over every finished run, as the README shows it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from results import Row, Table, run_rows  # scripts/results.py: the run-or-resume loop of every results table

NO_REVERSAL = "tasks.0.reversed_labels={}"
NO_DIFFERENCES = "model.frame_differences=false"
SESEMI = '{name="sesemi", frames_per_trailer=2, head_hidden=128}'


def pretext(*tasks: str) -> str:
    """A ``pretext`` override: SESEMI's table or a temporal task's (8 frames per clip), in order."""
    tables = [SESEMI if t == "sesemi" else f'{{name="{t}", frames_per_trailer=8, head_hidden=128}}' for t in tasks]
    return f"pretext=[{', '.join(tables)}]"


OFF = ["augment.scene_motion=0", "synthetic_moves.rate=0"]
"""Scene motion and synthetic moves off: the recipe as it was before they were measured."""

CAMERA = pretext("sesemi", "camera-move")
"""SESEMI and camera-move without scene motion."""

GRU = [*OFF, NO_REVERSAL, NO_DIFFERENCES, pretext("sesemi")]
"""The GRU with motion features and SESEMI alone: the shot recipe's movement task (recipes/shots.toml)."""

VARIANTS: dict[str, list[str]] = {
    "mean": [*GRU, 'tasks.0.aggregator="mean"', "tasks.0.aggregator_options={motion = false}"],
    "gru": GRU,
    "diff": [*GRU, "model.frame_differences=true"],
    "shift": [*GRU, "model.temporal_shift=0.125"],
    "reverse": [*OFF, NO_DIFFERENCES, pretext("sesemi")],
    "camera": [*OFF, NO_REVERSAL, NO_DIFFERENCES, CAMERA],
    "all": [*OFF, CAMERA],                                             # differences, reversal, camera-move
    "arrow": [*GRU, pretext("sesemi", "arrow-of-time")],
    "order": [*GRU, pretext("sesemi", "frame-order")],
    "camera-alone": [*OFF, NO_REVERSAL, NO_DIFFERENCES, pretext("camera-move")],
    "arrow-alone": [*GRU, pretext("arrow-of-time")],
    "order-alone": [*GRU, pretext("frame-order")],
    "r2plus1d": [*GRU, 'model.encoder="torchvision:r2plus1d_18"', "model.frame_differences=false"],
    "scene": ["synthetic_moves.rate=0"],                               # "all" with scene motion
    "synthetic": ["augment.scene_motion=0", CAMERA],                   # "all" with synthetic moves
    "scene-synthetic": [],                                             # the recipe as shipped: both
}
"""Variant name -> its overrides of recipes/moves.toml (which ships "scene-synthetic")."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the run directories")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names: " + ", ".join(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}")
    rows = tuple(Row("moves" if name == "gru" else f"moves-{name}",          # run.name as in the docs' table
                     "recipes/moves.toml", tuple(VARIANTS[name])) for name in names)
    finished = run_rows(Table(rows), args.out, tuple(args.seeds))
    table = subprocess.run(["semisup", "compare", *finished, "--task", "movement", "--class", "Push", "--class",
                            "Pull", "--markdown"], check=True, capture_output=True, text=True)
    print(table.stdout, end="")


if __name__ == "__main__":
    sys.exit(main())
