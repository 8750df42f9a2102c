"""Synthetic camera moves: static labeled clips filmed again as pushes, pulls and pans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from semisup.config import load_recipe
from semisup.data.loaders import TrailerFrames, collate_packed, ordered_picker
from semisup.data.samples import Sample, TaskSpec
from semisup.data.synthetic import SyntheticMoves
from semisup.errors import SemisupError

MOVEMENT = TaskSpec("movement", ("Static", "Motion", "Push", "Pull"), "multiclass")
SCALE = TaskSpec("scale", ("LS", "CS"), "multiclass")
GENRE = TaskSpec("genre", ("Drama", "Comedy"), "multilabel")
MOVES = {"Push": "push", "Pull": "pull", "Motion": "motion"}


def static_shot(folder: Path, frames: int = 8) -> tuple[Path, ...]:
    """A static shot: the same frame (a white disc left of centre on black) ``frames`` times."""
    folder.mkdir(parents=True)
    image = Image.new("RGB", (160, 120))
    ImageDraw.Draw(image).ellipse((60, 45, 90, 75), fill="white")
    paths = []
    for i in range(frames):
        path = folder / f"{i:03d}.png"
        image.save(path)
        paths.append(path)
    return tuple(paths)


def subject(frame: np.ndarray) -> tuple[float, float]:
    """Share of the frame the white disc covers, and the x of its centre (a fraction of the width)."""
    mask = frame.mean(axis=2) > 128
    return float(mask.mean()), float(np.nonzero(mask)[1].mean() / frame.shape[1])


def dataset(tmp_path: Path, moves: SyntheticMoves | None, label: str = "Static") -> TrailerFrames:
    sample = Sample("shot", static_shot(tmp_path / "shot"),
                    labels={"movement": (label,), "scale": ("CS",), "genre": ("Drama",)})
    return TrailerFrames([sample], [MOVEMENT, SCALE, GENRE], 48, ordered_picker(8), moves)


def test_a_synthetic_push_makes_the_subject_grow_frame_over_frame_and_is_labelled_push(tmp_path):
    frames = dataset(tmp_path, SyntheticMoves("movement", ("Static",), {"Push": "push"}, rate=1.0,
                                              keep_labels=("genre",)))
    for seed in range(5):
        item = frames[(0, seed)]
        shares = [subject(f)[0] for f in item.frames]
        assert item.synthetic == "Push" and item.frames.shape == (8, 48, 48, 3)
        assert all(b > a for a, b in zip(shares, shares[1:])), shares
        assert shares[-1] / shares[0] > 1.4 ** 2 * 0.8  # at least the smallest zoom, squared for an area
        assert MOVEMENT.labels[int(item.targets["movement"].argmax())] == "Push"
        assert item.has_label == {"movement": True, "scale": False, "genre": True}  # a zoom changes the scale
        assert item.targets["genre"].tolist() == [1.0, 0.0]


def test_a_pull_shrinks_the_subject_and_a_pan_moves_it_sideways(tmp_path):
    pull = dataset(tmp_path / "pull", SyntheticMoves("movement", ("Static",), {"Pull": "pull"}, rate=1.0))[(0, 3)]
    shares = [subject(f)[0] for f in pull.frames]
    assert pull.synthetic == "Pull" and all(b < a for a, b in zip(shares, shares[1:])), shares
    pan = dataset(tmp_path / "pan", SyntheticMoves("movement", ("Static",), {"Motion": "motion"}, rate=1.0))[(0, 3)]
    areas, xs = zip(*(subject(f) for f in pan.frames))
    steps = np.diff(xs)
    assert pan.synthetic == "Motion" and max(areas) / min(areas) < 1.2  # a pan does not zoom
    assert abs(xs[-1] - xs[0]) > 0.1 and (np.all(steps <= 0.01) or np.all(steps >= -0.01)), xs  # one way


def test_only_source_clips_convert_at_the_rate_and_the_rest_are_untouched(tmp_path):
    moves = SyntheticMoves("movement", ("Static",), MOVES, rate=0.3)
    rng = np.random.default_rng(0)
    drawn = [moves.draw({"movement": ("Static",)}, rng) for _ in range(3000)]
    converted = [d for d in drawn if d is not None]
    assert 0.27 < len(converted) / len(drawn) < 0.33
    assert {c: converted.count(c) / len(converted) > 0.28 for c in MOVES} == {c: True for c in MOVES}
    assert all(moves.draw({"movement": (c,)}, rng) is None for c in ("Push", "Pull", "Motion") for _ in range(50))
    assert moves.draw({"movement": None}, rng) is None  # unlabeled for the task

    plain, mixed = dataset(tmp_path / "a", None), dataset(tmp_path / "b", moves)
    kept = [seed for seed in range(40) if mixed[(0, seed)].synthetic is None]
    assert 15 < len(kept) < 40
    for seed in kept[:5]:  # an unconverted clip shows exactly the frames it shows without synthesis
        assert np.array_equal(plain[(0, seed)].frames, mixed[(0, seed)].frames)
        assert mixed[(0, seed)].has_label == {"movement": True, "scale": True, "genre": True}
    again = dataset(tmp_path / "c", moves)
    assert all(np.array_equal(mixed[(0, s)].frames, again[(0, s)].frames) for s in range(10))  # resumable
    batch = collate_packed([mixed[(0, s)] for s in range(10)])
    assert batch.synthetic == sum(mixed[(0, s)].synthetic is not None for s in range(10)) > 0


def test_a_clip_with_one_readable_frame_is_not_converted(tmp_path):
    paths = static_shot(tmp_path / "shot", frames=3)
    for path in paths[1:]:
        path.write_bytes(b"not an image")
    sample = Sample("shot", paths, labels={"movement": ("Static",)})
    item = TrailerFrames([sample], [MOVEMENT], 48, ordered_picker(3),
                         SyntheticMoves("movement", ("Static",), {"Push": "push"}, rate=1.0))[(0, 0)]
    assert item.synthetic is None and item.frames.shape == (1, 48, 48, 3) and len(item.bad_frames) == 2
    assert item.targets["movement"].argmax() == 0


SHOTS = Path(__file__).parents[1] / "recipes" / "shots.toml"


@pytest.mark.parametrize("table, message", [
    ('{task = "genre", moves = {Push = "push"}}', "synthetic_moves.task: no task 'genre' (tasks: scale, movement)"),
    ('{task = "movement", moves = {Push = "dolly"}}', "synthetic_moves.moves.Push: expected one of push, pull, "
                                                     "motion, got 'dolly'"),
    ('{task = "movement", moves = {Zoom = "push"}}', "'Zoom' is not a label of task 'movement'"),
    ('{task = "movement", moves = {Static = "push"}}', "class 'Static' is both a source and a move"),
    ('{task = "movement", moves = {Push = "push"}, zoom = [2.0, 1.5]}', "synthetic_moves.zoom: expected [low, high]"),
    ('{task = "movement", moves = {Push = "push"}, keep_labels = ["movement"]}', "keep_labels: 'movement' is not "
                                                                               "another task"),
    ('{task = "movement", moves = {Push = "push"}, rate = 1.5}', "synthetic_moves.rate: expected 0 <= x <= 1"),
    ('{task = "movement"}', "synthetic_moves.moves: missing required key"),
])
def test_bad_synthetic_moves_sections_name_the_key(table, message):
    with pytest.raises(SemisupError) as error:
        load_recipe(SHOTS, [f"synthetic_moves={table}"])
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.slow
def test_a_run_with_synthetic_moves_trains_and_logs_how_many_clips_it_made(tmp_path, monkeypatch):
    from semisup.data import demo_shots
    from semisup.train.run import start_run

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(demo_shots, "SPLIT_SIZES", {"train": 16, "unlabeled": 16, "val": 8, "test": 8})
    small = ["model.encoder=test_resnet", "data.image_size=32", "data.num_workers=0", "train.epochs=2",
             "tasks.1.aggregator_options={hidden = 8}",
             'synthetic_moves={task = "movement", moves = {Push = "push", Pull = "pull"}, rate = 0.5}']
    result = start_run(SHOTS, small, tmp_path / "run")
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert sum(r["synthetic_clips"] for r in records) > 0
    assert "synthetic_moves" in (result.run_dir / "config.toml").read_text()
