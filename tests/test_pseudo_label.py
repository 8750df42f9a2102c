"""Self-training: pseudo-label a run's unlabeled trailers into a folder-format dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semisup.data.folder import read_folder
from semisup.data.labels import TaskColumn
from semisup.errors import SemisupError
from semisup.pseudo_label import pseudo_label, trailer_confidence

from conftest import run_cli

pytestmark = pytest.mark.slow
GENRES = [TaskColumn("genres", "genres", "multilabel")]


def test_the_pseudo_labeled_dataset_reads_back_with_the_folder_reader(trained_run, demo_root, tmp_path):
    result = pseudo_label(trained_run, tmp_path / "pseudo")
    original = {s.id: s for s in read_folder(demo_root, GENRES).samples}
    dataset = read_folder(tmp_path / "pseudo", GENRES)
    assert not dataset.fatal()
    samples = {s.id: s for s in dataset.samples}
    assert samples.keys() == original.keys()
    unlabeled = [i for i, s in original.items() if s.split == "unlabeled" or not s.is_labeled()]
    assert result.scored == len(unlabeled) and result.labeled == len(unlabeled)  # min_confidence 0: all of them
    for sample_id, sample in original.items():
        new = samples[sample_id]
        if sample_id in unlabeled:  # moved to train with the teacher's labels
            assert new.split == "train" and new.labels["genres"] is not None
        else:  # labeled train, val and test: exactly as they were
            assert (new.split, new.labels) == (sample.split, sample.labels)
        assert [f.read_bytes() for f in new.frames] == [f.read_bytes() for f in sample.frames]
    info = json.loads((tmp_path / "pseudo" / "pseudo_labels.json").read_text())
    assert info["pseudo_labeled"] == len(unlabeled) and info["rules"]["genres"]["rule"] == "threshold"
    per_class = sum(info["counts"]["genres"].values())
    assert per_class == sum(len(samples[i].labels["genres"]) for i in unlabeled)


def test_min_confidence_leaves_unsure_trailers_unlabeled_and_nothing_is_overwritten(trained_run, tmp_path):
    out = tmp_path / "pseudo"
    everything = pseudo_label(trained_run, out)
    with pytest.raises(SemisupError, match="already exists"):
        pseudo_label(trained_run, out)
    sure = pseudo_label(trained_run, out, min_confidence=0.99, force=True)
    assert sure.labeled < everything.labeled
    rows = (out / "labels.csv").read_text().splitlines()
    assert sum(",1," in row for row in rows[1:]) == sure.labeled
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(SemisupError, match="not a pseudo-label folder"):
        pseudo_label(trained_run, mine, force=True)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_the_cli_writes_the_dataset_and_a_student_trains_on_it(trained_run, tiny_recipe, tmp_path):
    done = run_cli("pseudo-label", str(trained_run), "--out", str(tmp_path / "pseudo"))
    assert done.returncode == 0, done.stderr
    assert "pseudo-labels:" in done.stdout and "train a student" in done.stdout
    again = run_cli("pseudo-label", str(trained_run), "--out", str(tmp_path / "pseudo"))
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    student = run_cli("run", str(tiny_recipe(root=tmp_path / "pseudo", pretext=False)), "--out", str(tmp_path / "s"),
                      "--set", "train.epochs=1")
    assert student.returncode == 0, student.stderr
    report = json.loads((tmp_path / "s" / "report.json").read_text())
    assert report["splits"]["test"]["genres"]["samples"] > 0


def test_trailer_confidence_is_the_least_certain_label():
    scores = np.array([[0.99, 0.01, 0.7], [0.5, 0.99, 0.01]])
    assert trailer_confidence(scores, "multilabel").tolist() == [0.7, 0.5]
