"""MovieNet layout: metadata JSON + shot keyframes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from media import photo
from semisup.data.labels import TaskColumn
from semisup.data.movienet import read_movienet
from semisup.errors import SemisupError

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "brick")


def make_movienet(root: Path) -> Path:
    """Six trailers with real photos as keyframes, and the problems real copies have."""
    genres = {"tt0000001": ["Drama", "Romance"], "tt0000002": ["Action"], "tt0000003": ["Comedy", "Drama"],
              "tt0000004": ["Sci-Fi", "Action"], "tt0000005": ["Film-Noir"], "tt0000006": None}
    (root / "meta").mkdir(parents=True)
    for i, (imdb, labels) in enumerate(genres.items()):
        meta = {"imdb_id": imdb, "title": f"Movie {i}"}
        if labels is not None:
            meta["genres"] = labels
        (root / "meta" / f"{imdb}.json").write_text(json.dumps(meta))
        folder = root / "keyframes" / imdb
        folder.mkdir(parents=True)
        for shot in range(3 + i):
            for k in range(3):
                image = np.roll(photo(PHOTOS[(i + shot) % len(PHOTOS)]), 7 * k, axis=1)
                Image.fromarray(image).save(folder / f"shot_{shot:04d}_img_{k}.jpg")
    (root / "meta" / "tt0000099.json").write_text(json.dumps({"genres": ["Drama"]}))  # no trailer: ignored
    (root / "keyframes" / "tt0000007").mkdir()                                         # keyframes but no meta
    Image.fromarray(photo("grass")).save(root / "keyframes" / "tt0000007" / "shot_0000_img_0.jpg")
    (root / "keyframes" / "tt0000001" / "thumbs.db").write_text("junk")                # not a keyframe
    (root / "keyframes" / "tt0000002" / "shot_0001_img_1.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    (root / "meta" / "tt0000003.json").write_text("{not json")                         # unreadable metadata
    return root


def test_reads_trailers_in_shot_order_with_genres(tmp_path):
    root = make_movienet(tmp_path / "movienet")
    data = read_movienet(root, [TaskColumn("genres", "genres")])
    by_id = {s.id: s for s in data.samples}
    assert sorted(by_id) == [f"tt000000{i}" for i in range(1, 8)]
    names = [p.name for p in by_id["tt0000001"].frames]
    assert names[:4] == ["shot_0000_img_0.jpg", "shot_0000_img_1.jpg", "shot_0000_img_2.jpg", "shot_0001_img_0.jpg"]
    assert len(names) == 9 and "thumbs.db" not in names
    assert by_id["tt0000001"].labels["genres"] == ("Drama", "Romance")
    assert by_id["tt0000006"].labels["genres"] is None   # no genres key: unlabeled
    assert by_id["tt0000007"].labels["genres"] is None   # no metadata: unlabeled
    assert by_id["tt0000003"].labels["genres"] is None   # unreadable metadata: unlabeled
    assert data.tasks[0].labels == ("Action", "Drama", "Film-Noir", "Romance", "Sci-Fi")  # tt0000003 unreadable
    kinds = {p.kind for p in data.problems}
    assert {"no metadata", "bad metadata", "no split"} <= kinds and not data.fatal()


def test_genre_vocabulary_restriction_and_mapping(tmp_path):
    root = make_movienet(tmp_path / "movienet")
    fixed = read_movienet(root, [TaskColumn("genres", "genres", labels=("Action", "Drama", "Romance", "Sci-Fi"))])
    assert [p.message for p in fixed.fatal()] == [
        f"{root / 'meta'}: sample 'tt0000005': label 'Film-Noir' of task 'genres' is not in its labels"]
    dropped = read_movienet(root, [TaskColumn("genres", "genres", labels=("Action", "Drama"), unknown="drop",
                                              rename={"Sci-Fi": "Science Fiction"})])
    by_id = {s.id: s.labels["genres"] for s in dropped.samples}
    assert by_id["tt0000001"] == ("Drama",) and by_id["tt0000005"] is None
    top = read_movienet(root, [TaskColumn("genres", "genres", top=2)])
    assert top.tasks[0].labels == ("Action", "Drama")


def test_split_file_assigns_splits(tmp_path):
    root = make_movienet(tmp_path / "movienet")
    (root / "split.csv").write_text("id,split\ntt0000001,train\ntt0000002,val\ntt0000003,test\ntt0000009,train\n"
                                    "tt0000004,holdout\n")
    data = read_movienet(root, [TaskColumn("genres", "genres")])
    splits = {s.id: s.split for s in data.samples}
    assert splits["tt0000001"] == "train" and splits["tt0000002"] == "val" and splits["tt0000005"] == "unlabeled"
    messages = [p.message for p in data.problems]
    assert any("tt0000009' has no frames" in m for m in messages)
    assert any("split 'holdout' is not one of" in m for m in messages)


def test_missing_layout_is_a_clear_error(tmp_path):
    with pytest.raises(SemisupError, match="keyframes folder does not exist"):
        read_movienet(tmp_path, [TaskColumn("genres", "genres")])
