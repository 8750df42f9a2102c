"""The built-in demo dataset: deterministic, and a fair miniature of the real problem."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from semisup.data.demo import GENRES, ensure_demo, write_demo
from semisup.data.folder import TaskColumn, read_folder
from semisup.errors import SemisupError


def digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, demo_root):
    again = write_demo(tmp_path / "again", seed=0, scale=0.1)
    assert digest(again.root) == digest(demo_root)
    other = write_demo(tmp_path / "other", seed=1, scale=0.1)
    assert (other.root / "labels.csv").read_text() != (demo_root / "labels.csv").read_text()


def test_shape_of_the_full_demo_labels(tmp_path):
    """Splits, genres per trailer and the long tail, checked on the full-size label draw."""
    from semisup.data import demo

    rng_rows = []
    for index in range(sum(demo.SPLIT_SIZES.values())):
        rng_rows.append(demo._draw_genres(np.random.default_rng([0, index])))
    counts = Counter(g for genres in rng_rows for g in genres)
    assert len(GENRES) >= 8 and set(counts) == {g for g, _, _ in GENRES}
    assert all(1 <= len(genres) <= 4 for genres in rng_rows)
    frequent, rare = counts.most_common()[0][1], counts.most_common()[-1][1]
    assert frequent >= 5 * rare  # a long tail
    assert demo.SPLIT_SIZES["unlabeled"] >= 4 * demo.SPLIT_SIZES["train"]
    assert 20 <= demo.SPLIT_SIZES["train"] <= 100  # "a few dozen" labeled trailers


def test_written_demo_reads_back_in_the_folder_format(demo_root):
    samples = read_folder(demo_root, [TaskColumn("genres", "genres")]).samples
    info = json.loads((demo_root / "demo.json").read_text())
    assert len(samples) == sum(info["splits"].values())
    assert {s.split for s in samples} == {"train", "unlabeled", "val", "test"}
    assert all(3 <= len(s.frames) <= 20 for s in samples)
    assert all(s.labels["genres"] is None for s in samples if s.split == "unlabeled")
    assert all(s.labels["genres"] for s in samples if s.split != "unlabeled")
    # labels_all.csv reveals the pool's hidden labels for "all labels" reference runs
    full = read_folder(demo_root, [TaskColumn("genres", "genres")], labels_file="labels_all.csv").samples
    assert all(s.labels["genres"] for s in full) and not any(s.split == "unlabeled" for s in full)


def test_frames_are_real_photo_content_that_varies(demo_root):
    rows = list(csv.DictReader((demo_root / "labels_all.csv").open()))
    stds, uniques = [], []
    for row in rows[:10]:
        folder = demo_root / "frames" / row["id"]
        frames = [np.asarray(Image.open(p)) for p in sorted(folder.iterdir())]
        assert frames[0].shape == (96, 128, 3)
        assert len({f.tobytes() for f in frames}) == len(frames)  # no two frames alike
        stds += [f.std() for f in frames]
        uniques += [len(np.unique(f.reshape(-1, 3), axis=0)) for f in frames]
    assert min(stds) > 10        # textured, not flat squares
    assert min(uniques) > 1000   # photo-like colour variety


def test_ensure_demo_builds_once_and_refuses_foreign_folders(tmp_path, monkeypatch):
    from semisup.data import demo

    monkeypatch.setattr(demo, "SPLIT_SIZES", {"train": 2, "unlabeled": 2, "val": 2, "test": 2})
    monkeypatch.setenv("HOME", str(tmp_path))
    root = ensure_demo(tmp_path / ".cache" / "semisup" / "demo")
    stamp = (root / "labels.csv").stat().st_mtime_ns
    assert ensure_demo(root) == root and (root / "labels.csv").stat().st_mtime_ns == stamp
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "labels.csv").write_text("id\n")
    with pytest.raises(SemisupError, match="not a semisup demo folder"):
        ensure_demo(foreign)
    with pytest.raises(SemisupError, match="already exists and is not an empty folder"):
        write_demo(foreign)


def test_the_demo_is_built_on_first_use_only_in_the_cache(tmp_path, monkeypatch):
    """A recipe switched to a mistyped data.root but still format = "demo" must not
    render the demo there and train on it (issue 9, case 13)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    mistyped = tmp_path / "data" / "mine"
    with pytest.raises(SemisupError, match=r'mine: does not exist; data.format = "demo" builds the demo on first use '
                                           r"only under .*home/.cache/semisup"):
        ensure_demo(mistyped)
    assert not mistyped.exists() and not mistyped.parent.exists()
    mistyped.mkdir(parents=True)
    with pytest.raises(SemisupError, match="mine: is an empty folder"):
        ensure_demo(mistyped)
    assert list(mistyped.iterdir()) == []
