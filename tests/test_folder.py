"""The generic folder format: labels.csv + frames/<id>/ (or videos/<id>.mp4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semisup.data.folder import read_folder
from semisup.data.labels import TaskColumn
from semisup.data.samples import labeled_pool, unlabeled_pool
from semisup.errors import SemisupError

GENRES = [TaskColumn("genres", "genres")]


def make_folder(root: Path, rows: list[str], frames: dict[str, int] | None = None, header: str = "id,split,genres"):
    """Write a labels.csv and, per id, the given number of small frames."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    for row in rows:
        sample_id = row.split(",")[0]
        count = (frames or {}).get(sample_id, 3)
        folder = root / "frames" / sample_id
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(count):
            Image.fromarray(np.full((8, 12, 3), 20 * j % 256, np.uint8)).save(folder / f"{j:02d}.png")
    return root


def messages(dataset, fatal=True):
    return [p.message for p in dataset.problems if p.fatal == fatal]


def test_reads_samples_labels_splits_and_frame_order(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,Drama|Action", "b,unlabeled,Comedy", "c,val,", "d,test,Action"],
                       frames={"a": 12})
    data = read_folder(root, GENRES)
    by_id = {s.id: s for s in data.samples}
    assert [s.id for s in data.samples] == ["a", "b", "c", "d"] and not data.problems
    assert by_id["a"].labels["genres"] == ("Drama", "Action")
    assert by_id["b"].labels["genres"] is None      # the unlabeled split hides labels
    assert by_id["c"].labels["genres"] is None      # an empty cell means unlabeled
    assert [p.name for p in by_id["a"].frames] == [f"{j:02d}.png" for j in range(12)]  # sorted, time order
    assert data.tasks[0].labels == ("Action", "Drama")   # vocabulary read from the labeled rows, sorted
    assert [s.id for s in labeled_pool(data.samples)] == ["a"]
    assert [s.id for s in unlabeled_pool(data.samples)] == ["b"]
    assert [s.id for s in unlabeled_pool(data.samples, include_labeled=True)] == ["a", "b"]


def test_missing_split_column_means_train_and_group_column_is_read(tmp_path):
    root = make_folder(tmp_path / "d", ["a,g1,Drama", "b,,"], header="id,group,genres")
    data = read_folder(root, GENRES)
    assert {s.split for s in data.samples} == {"train"}
    assert [s.group for s in data.samples] == ["g1", None]


def test_given_vocabulary_rename_top_and_unknown_labels(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,Drama|Science Fiction", "b,val,Action|Drama", "c,test,Drama|Noir"])
    fixed = read_folder(root, [TaskColumn("genres", "genres", labels=("Drama", "Action", "Western"))])
    assert fixed.tasks[0].labels == ("Drama", "Action", "Western")
    assert messages(fixed) == [
        f"{root / 'labels.csv'}: sample 'a': label 'Science Fiction' of task 'genres' is not in its labels",
        f"{root / 'labels.csv'}: sample 'c': label 'Noir' of task 'genres' is not in its labels"]
    dropped = read_folder(root, [TaskColumn("genres", "genres", labels=("Drama", "Action"), unknown="drop")])
    assert not dropped.problems and dropped.samples[0].labels["genres"] == ("Drama",)
    renamed = read_folder(root, [TaskColumn("genres", "genres", rename={"Science Fiction": "Sci-Fi", "Noir": ""})])
    assert renamed.tasks[0].labels == ("Action", "Drama", "Sci-Fi")
    top = read_folder(root, [TaskColumn("genres", "genres", top=1)])
    assert top.tasks[0].labels == ("Drama",) and not top.problems
    assert [s.labels["genres"] for s in top.samples] == [("Drama",)] * 3


def test_multiclass_task_refuses_several_labels(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,CS", "b,val,LS|CS"], header="id,split,scale")
    data = read_folder(root, [TaskColumn("scale", "scale", kind="multiclass")])
    assert data.tasks[0].kind == "multiclass"
    assert "sample 'b': task 'scale' is multi-class but has 2 labels" in messages(data)[0]
    assert data.samples[1].labels["scale"] is None


@pytest.mark.parametrize("rows, frames, message", [
    (["a,train,Drama", "a,val,Drama"], None, r"labels.csv:3: id 'a' appears twice"),
    (["a,training,Drama"], None, r"labels.csv:2: split 'training' is not one of train, val, test, unlabeled"),
    (["a,train,Drama", "b,train,Drama"], {"b": 0}, r"labels.csv:3: frames folder .*frames/b holds no images"),
    ([",train,Drama"], None, r"labels.csv:2: empty id"),
    (["a,train,Drama,Comedy"], None, r"labels.csv:2: 4 fields, the header has 3"),   # Comedy would be lost
    (["a,train,Drama", "b,train,Drama,,Comedy"], None, r"labels.csv:3: 5 fields, the header has 3"),
])
def test_bad_rows_are_fatal_problems_naming_file_and_line(tmp_path, rows, frames, message):
    import re

    data = read_folder(make_folder(tmp_path / "d", rows, frames), GENRES)
    assert any(re.search(message, m) for m in messages(data)), messages(data)


def test_missing_frames_folder_and_file_instead_of_folder(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,Drama", "b,train,Drama"])
    shutil.rmtree(root / "frames" / "b")
    data = read_folder(root, GENRES)
    assert [s.id for s in data.samples] == ["a"]
    assert "labels.csv:3: frames folder" in messages(data)[0] and "frames/b does not exist" in messages(data)[0]
    (root / "frames" / "b").write_text("not a folder")
    assert "frames/b is a file, expected a frames folder" in messages(read_folder(root, GENRES))[0]


def test_videos_folder_is_used_when_no_frames_folder(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,Drama"])
    (root / "labels.csv").write_text("id,split,genres\na,train,Drama\nclip,val,Action\n")
    (root / "videos").mkdir()
    (root / "videos" / "clip.mp4").write_bytes(b"whatever")
    data = read_folder(root, GENRES)
    assert data.samples[1].video == root / "videos" / "clip.mp4" and data.samples[1].frames == ()


def test_unknown_column_and_missing_files(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,Drama"])
    with pytest.raises(SemisupError, match=r"no column 'genre' \(did you mean \"genres\"\?\)"):
        read_folder(root, [TaskColumn("genres", "genre")])
    with pytest.raises(SemisupError, match="labels file not found"):
        read_folder(root, GENRES, labels_file="other.csv")
    with pytest.raises(SemisupError, match="dataset root does not exist"):
        read_folder(tmp_path / "nowhere", GENRES)
    assert "holds no labels" in messages(read_folder(make_folder(tmp_path / "e", ["a,train,"]), GENRES))[0]


def test_short_rows_and_trailing_empty_cells_lose_nothing_and_are_accepted(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,Drama,", "b,unlabeled", "c"])
    data = read_folder(root, GENRES)
    assert messages(data) == []
    assert [(s.id, s.split, s.labels["genres"]) for s in data.samples] == [
        ("a", "train", ("Drama",)), ("b", "unlabeled", None), ("c", "train", None)]


def test_hidden_files_in_a_frames_folder_are_not_frames(tmp_path):
    """macOS leaves AppleDouble files ("._000.png") beside copied frames: they are not images."""
    root = make_folder(tmp_path / "d", ["a,train,Drama"], {"a": 2})
    (root / "frames" / "a" / "._00.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / "frames" / "a" / ".DS_Store").write_bytes(b"\x00")
    (root / "videos").mkdir()
    (root / "videos" / "._clip.mp4").write_bytes(b"\x00\x05\x16\x07")
    data = read_folder(root, GENRES)
    assert [p.name for p in data.samples[0].frames] == ["00.png", "01.png"]
    only_hidden = make_folder(tmp_path / "e", ["b,train,Drama"], {"b": 0})
    (only_hidden / "frames" / "b" / "._00.png").write_bytes(b"\x00")
    assert "holds no images" in messages(read_folder(only_hidden, GENRES))[0]
