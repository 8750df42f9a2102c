"""Camera moves and the demo's shot variant: a push makes the subject grow, labels are long-tailed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from semisup.data.camera import MOVES, camera_path, render_path
from semisup.data.demo import ensure_demo, write_demo
from semisup.errors import SemisupError


def subject_share(frame: Image.Image) -> float:
    """Share of the frame the white subject covers."""
    return float((np.asarray(frame.convert("L")) > 128).mean())


def scene() -> Image.Image:
    image = Image.new("RGB", (512, 384))
    ImageDraw.Draw(image).ellipse((226, 162, 286, 222), fill="white")  # a subject at the centre
    return image


@pytest.mark.parametrize("seed", range(5))
def test_a_push_makes_the_subject_grow_frame_over_frame_and_a_pull_shrink(seed):
    rng = np.random.default_rng(seed)
    for move, sign in (("push", 1), ("pull", -1)):
        shares = [subject_share(f) for f in render_path(scene(), camera_path(move, 10, 0.42, rng), (128, 96))]
        assert all(sign * (b - a) > 0 for a, b in zip(shares, shares[1:])), (move, shares)
        assert sign * (shares[-1] / shares[0] - 1) > 0.5  # a clear zoom, not a tremor


def test_static_holds_and_motion_pans():
    rng = np.random.default_rng(0)
    static = camera_path("static", 10, 0.42, rng)
    assert np.ptp(static[:, 2]) == 0 and np.ptp(static[:, :2], axis=0).max() < 0.01
    pan = camera_path("motion", 10, 0.42, rng)
    assert np.ptp(pan[:, 2]) == 0 and np.ptp(pan[:, 0]) > 0.1
    with pytest.raises(ValueError, match="move must be one of"):
        camera_path("dolly", 10, 0.42, rng)
    assert set(MOVES) == {"static", "motion", "push", "pull"}


def test_windows_stay_inside_the_image():
    frames = render_path(scene(), np.array([[0.0, 0.0, 0.5], [1.0, 1.0, 0.5], [0.5, 0.5, 3.0]]), (128, 96))
    assert [f.size for f in frames] == [(128, 96)] * 3  # clamped corners, an oversized window shrunk


def test_the_shot_variant_writes_scale_and_movement_long_tailed(tmp_path):
    summary = write_demo(tmp_path / "shots", seed=0, scale=0.2, variant="shots")
    rows = list(csv.DictReader((summary.root / "labels.csv").open()))
    assert list(rows[0]) == ["id", "split", "scale", "movement"]
    assert all(r["scale"] == r["movement"] == "" for r in rows if r["split"] == "unlabeled")
    every = list(csv.DictReader((summary.root / "labels_all.csv").open()))
    moves = [r["movement"] for r in every]
    assert moves.count("Static") + moves.count("Motion") > 2 * (moves.count("Push") + moves.count("Pull")) > 0
    frames = [len(list((summary.root / "frames" / r["id"]).iterdir())) for r in every]
    assert min(frames) >= 8 and max(frames) <= 12
    info = json.loads((summary.root / "demo.json").read_text())
    assert info["variant"] == "shots" and info["label_counts"]["movement"] == summary.label_counts["movement"]
    again = write_demo(tmp_path / "again", seed=0, scale=0.2, variant="shots")
    assert (again.root / "labels_all.csv").read_bytes() == (summary.root / "labels_all.csv").read_bytes()
    first = sorted((summary.root / "frames" / every[0]["id"]).iterdir())[0]
    assert first.read_bytes() == (again.root / "frames" / every[0]["id"] / first.name).read_bytes()


def test_a_cached_demo_of_the_other_variant_is_refused(tmp_path, monkeypatch):
    from semisup.data import demo, demo_shots

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(demo_shots, "SPLIT_SIZES", {"train": 2, "unlabeled": 2, "val": 2, "test": 2})
    root = ensure_demo(tmp_path / ".cache" / "semisup" / "shots", variant="shots")
    assert ensure_demo(root, variant="shots") == root
    with pytest.raises(SemisupError, match="holds the demo's 'shots' variant, the recipe asks for 'genres'"):
        ensure_demo(root)
    assert demo.VARIANTS == ("genres", "shots", "moves")


@pytest.mark.slow
def test_the_shots_recipe_trains_scale_and_movement(tmp_path, monkeypatch):
    from semisup.config import load_recipe
    from semisup.data import demo_shots
    from semisup.train.run import start_run

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(demo_shots, "SPLIT_SIZES", {"train": 12, "unlabeled": 16, "val": 8, "test": 8})
    recipe = Path(__file__).parents[1] / "recipes" / "shots.toml"
    loaded = load_recipe(recipe)
    assert [(t.name, t.aggregator) for t in loaded.tasks] == [("scale", "mean"), ("movement", "gru")]
    small = ["model.encoder=test_resnet", "data.image_size=32", "data.num_workers=0", "train.epochs=1",
             "tasks.1.aggregator_options={hidden = 8, motion = true}"]
    result = start_run(recipe, small, tmp_path / "run")
    test = result.report["splits"]["test"]
    assert set(test) == {"scale", "movement"} and test["movement"]["samples"] == 8
    assert (tmp_path / ".cache" / "semisup" / "demo-shots-v1" / "demo.json").is_file()
