"""Shared fixtures: a tiny demo dataset and tiny recipes that train in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach for the network

# epoch-record fields that measure the machine, not the computation: left out where runs are compared
MACHINE_FIELDS = ("images_per_s", "elapsed_s", "peak_memory_mb")

TINY_RECIPE = """
[run]
name = "tiny"
seed = 0

[data]
format = "folder"
root = "{root}"
labels_file = "{labels_file}"
image_size = 32
max_frames = 4
eval_frames = 4
num_workers = 0

[[tasks]]
name = "genres"

[model]
encoder = "test_resnet"
trainable_stages = "all"
head_hidden = 32

[[pretext]]
name = "sesemi"
frames_per_trailer = 2
head_hidden = 32

[train]
epochs = 2
labeled_batch_size = 4
unlabeled_batch_size = 8
eval_batch_size = 8
"""


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo dataset at a tenth of its size (~70 trailers), built once per session."""
    from semisup.data.demo import write_demo

    root = tmp_path_factory.mktemp("data") / "demo"
    write_demo(root, seed=0, scale=0.1)
    return root


@pytest.fixture
def tiny_recipe(tmp_path: Path, demo_root: Path):
    """Write a tiny recipe for ``demo_root`` (or another root) and return its path.

    Extra TOML text is appended verbatim; use it for more sections.
    """

    def write(root: Path | None = None, extra: str = "", labels_file: str = "labels.csv",
              name: str = "recipe.toml", pretext: bool = True) -> Path:
        text = TINY_RECIPE.format(root=root or demo_root, labels_file=labels_file)
        if not pretext:
            text = text.replace('[[pretext]]\nname = "sesemi"\nframes_per_trailer = 2\nhead_hidden = 32\n', "")
        path = tmp_path / name
        path.write_text(text + extra)
        return path

    return write


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``semisup ARGS`` in a fresh interpreter, as a user would."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "semisup.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, demo_root: Path) -> Path:
    """A finished tiny SESEMI run on the tiny demo (trained once per session)."""
    from semisup.train.run import start_run

    folder = tmp_path_factory.mktemp("trained")
    recipe = folder / "recipe.toml"
    recipe.write_text(TINY_RECIPE.format(root=demo_root, labels_file="labels.csv"))
    return start_run(recipe, ["train.epochs=2"], folder / "run").run_dir
