"""Unreadable data: frames skipped and counted, trailers named, and a run on unreadable data stopped.

The rule (semisup.data.health): a stream (labeled train, unlabeled, val, test)
whose first trailers are all unreadable stops the run at once; one where more
than data.max_unreadable (0.2) of its trailers are unreadable stops it at the
end of the epoch or the evaluation. Below that, everything is counted and named.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from semisup.errors import SemisupError
from semisup.evaluate.predictions import Predictions
from semisup.io import read_metrics
from semisup.train.run import start_run

from conftest import run_cli
from test_cli import assert_one_line_error

pytestmark = pytest.mark.slow


def ids_by_split(root):
    out: dict[str, list[str]] = {}
    for row in csv.DictReader((root / "labels.csv").open()):
        out.setdefault(row["split"], []).append(row["id"])
    return out


def garble(root, sample_id, keep_last=False):
    """Overwrite a trailer's frames with random bytes (all of them, or all but the last)."""
    frames = sorted((root / "frames" / sample_id).iterdir())
    for path in frames[:-1] if keep_last else frames:
        path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
    return frames


@pytest.fixture
def data(demo_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    return root


def test_a_run_whose_labeled_frames_are_all_unreadable_stops_and_inspect_fails(data, tiny_recipe, tmp_path):
    train = ids_by_split(data)["train"]
    for sample_id in train:
        garble(data, sample_id)
    out = tmp_path / "run"
    result = run_cli("run", str(tiny_recipe(root=data)), "--out", str(out))
    assert_one_line_error(result, "labeled train: none of the ", " trailers read so far has a readable "
                                  "frame, e.g. demo-0000", "data.max_unreadable = 0.2",
                          "semisup data inspect --check")
    assert not out.exists()  # it never trained: nothing left behind
    inspect = run_cli("data", "inspect", str(data), "--check")
    assert inspect.returncode == 1, inspect.stdout
    assert "too many unreadable samples" in inspect.stdout and f"none of the {len(train)}" in inspect.stdout
    assert "sample without a readable frame" in inspect.stdout


def test_a_share_above_the_limit_stops_the_run_at_the_end_of_the_epoch(data, tiny_recipe, tmp_path):
    victim = ids_by_split(data)["train"][2]
    garble(data, victim)
    with pytest.raises(SemisupError, match=rf"labeled train: 1 of \d+ trailers \(\d+%\) have no readable frame, "
                                           rf"e.g. {victim}.*data.max_unreadable = 0.1"):
        start_run(tiny_recipe(root=data), ["data.max_unreadable=0.1", "train.epochs=1"], tmp_path / "run")


def test_below_the_limit_everything_is_counted_named_and_reported(data, tiny_recipe, tmp_path):
    splits = ids_by_split(data)
    garble(data, splits["train"][2])                 # 1 of 6 labeled train trailers: under 20 %
    dead, damaged = splits["test"][3], splits["test"][5]
    garble(data, dead)                               # no readable frame: cannot be scored
    bad = garble(data, damaged, keep_last=True)      # still readable from its last frame
    run = start_run(tiny_recipe(root=data), ["train.epochs=1"], tmp_path / "run").run_dir

    record = read_metrics(run / "metrics.jsonl")[-1]
    assert record["unreadable_trailers"] == {"labeled": 1, "unlabeled": 0, "val": 0}
    assert record["corrupt_frames"] >= 1
    test = Predictions.load(run / "predictions" / "test.npz")
    assert test.unreadable == [dead] and dead not in test.ids and damaged in test.ids
    assert len(test.ids) == len(splits["test"]) - 1
    report = json.loads((run / "report.json").read_text())
    assert report["unreadable"]["test"]["samples"] == 1 and report["unreadable"]["test"]["sample_ids"] == [dead]
    assert report["unreadable"]["test"]["skipped_frames"] >= 1
    assert set(report["unreadable"]["test"]["frame_examples"]) <= {str(p) for p in bad + sorted(
        (data / "frames" / dead).iterdir())}
    assert report["unreadable"]["val"] == {"samples": 0, "sample_ids": [], "skipped_frames": 0,
                                           "frame_examples": []}

    again = run_cli("evaluate", str(run))
    assert again.returncode == 0, again.stderr
    assert "warning: test: 1 samples not scored (no readable frame)" in again.stderr
    evaluation = json.loads((run / "evaluations" / "best-test" / "report.json").read_text())
    assert evaluation["unreadable"]["sample_ids"] == [dead]
