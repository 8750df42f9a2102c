"""The generic folder format: labels.csv + frames/<id>/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semisup.data.folder import TaskColumn, read_folder
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


def test_reads_samples_labels_splits_and_frame_order(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,Drama|Action", "b,unlabeled,Comedy", "c,val,", "d,test,Action"],
                       frames={"a": 12})
    samples, specs = read_folder(root, GENRES)
    by_id = {s.id: s for s in samples}
    assert [s.id for s in samples] == ["a", "b", "c", "d"]
    assert by_id["a"].labels["genres"] == ("Drama", "Action")
    assert by_id["b"].labels["genres"] is None      # the unlabeled split hides labels
    assert by_id["c"].labels["genres"] is None      # an empty cell means unlabeled
    assert [p.name for p in by_id["a"].frames] == [f"{j:02d}.png" for j in range(12)]  # sorted, time order
    assert specs[0].labels == ("Action", "Drama")   # vocabulary read from the labeled rows, sorted
    assert [s.id for s in labeled_pool(samples)] == ["a"]
    assert [s.id for s in unlabeled_pool(samples)] == ["b"]
    assert [s.id for s in unlabeled_pool(samples, include_labeled=True)] == ["a", "b"]


def test_missing_split_column_means_train(tmp_path):
    root = make_folder(tmp_path / "d", ["a,Drama", "b,"], header="id,genres")
    samples, _ = read_folder(root, GENRES)
    assert {s.split for s in samples} == {"train"}


def test_given_vocabulary_is_kept_and_checked(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,Drama", "b,val,Action"])
    _, specs = read_folder(root, [TaskColumn("genres", "genres", ("Drama", "Action", "Western"))])
    assert specs[0].labels == ("Drama", "Action", "Western")
    with pytest.raises(SemisupError, match="sample 'b': label 'Action' of task 'genres' is not in the recipe's labels"):
        read_folder(root, [TaskColumn("genres", "genres", ("Drama",))])


@pytest.mark.parametrize("rows, frames, message", [
    (["a,train,Drama", "a,val,Drama"], None, r"labels.csv:3: id 'a' appears twice"),
    (["a,training,Drama"], None, r"labels.csv:2: split 'training' is not one of train, val, test, unlabeled"),
    (["a,train,Drama", "b,train,Drama"], {"b": 0}, r"labels.csv:3: frames folder .*frames/b holds no images"),
    ([",train,Drama"], None, r"labels.csv:2: empty id"),
])
def test_bad_rows_name_file_and_line(tmp_path, rows, frames, message):
    root = make_folder(tmp_path / "d", rows, frames)
    with pytest.raises(SemisupError, match=message):
        read_folder(root, GENRES)


def test_missing_frames_folder_and_file_instead_of_folder(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,Drama", "b,train,Drama"])
    import shutil

    shutil.rmtree(root / "frames" / "b")
    with pytest.raises(SemisupError, match=r"labels.csv:3: frames folder .*frames/b does not exist"):
        read_folder(root, GENRES)
    (root / "frames" / "b").write_text("not a folder")
    with pytest.raises(SemisupError, match=r"frames/b is a file, expected a frames folder"):
        read_folder(root, GENRES)


def test_unknown_column_and_missing_files(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,Drama"])
    with pytest.raises(SemisupError, match=r"no column 'genre' \(did you mean \"genres\"\?\)"):
        read_folder(root, [TaskColumn("genres", "genre")])
    with pytest.raises(SemisupError, match="labels file not found"):
        read_folder(root, GENRES, labels_file="other.csv")
    with pytest.raises(SemisupError, match="dataset root does not exist"):
        read_folder(tmp_path / "nowhere", GENRES)
    with pytest.raises(SemisupError, match="holds no labels"):
        read_folder(make_folder(tmp_path / "e", ["a,train,"]), GENRES)
