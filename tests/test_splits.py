"""Stratified, grouped, seeded splits."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from semisup.data.samples import Sample, TaskSpec
from semisup.data.splits import SplitPlan, split_dataset, split_shares, write_split_column, write_split_file

LABELS = tuple(f"g{i}" for i in range(12))


def synthetic(n=3000, seed=0, groups=False):
    """Multi-label samples with a long-tailed, correlated label distribution."""
    rng = np.random.default_rng(seed)
    rates = np.linspace(0.45, 0.02, len(LABELS))
    samples = []
    for i in range(n):
        hits = rng.random(len(LABELS)) < rates
        if hits[0] and rng.random() < 0.5:
            hits[5] = True  # correlation
        labels = tuple(label for label, h in zip(LABELS, hits) if h) or None
        group = f"trailer{i // 7}" if groups else None
        samples.append(Sample(f"s{i}", labels={"genres": labels}, group=group))
    return samples, [TaskSpec("genres", LABELS)]


def test_every_label_keeps_its_share_in_every_split():
    samples, tasks = synthetic()
    splits = split_dataset(samples, tasks, SplitPlan(val=0.1, test=0.2, seed=0))
    shares = split_shares(samples, tasks, splits)["genres"]
    for label, by_split in shares.items():
        for split in ("train", "val", "test"):
            assert abs(by_split[split] - by_split["all"]) < 0.03, (label, split, by_split)
    labeled = [s for s in samples if s.is_labeled()]
    fractions = {k: sum(splits[s.id] == k for s in labeled) / len(labeled) for k in ("train", "val", "test")}
    assert fractions == pytest.approx({"train": 0.7, "val": 0.1, "test": 0.2}, abs=0.01)
    assert all(splits[s.id] == "unlabeled" for s in samples if not s.is_labeled())


def test_labeled_count_makes_the_rest_unlabeled_and_stays_stratified():
    samples, tasks = synthetic()
    splits = split_dataset(samples, tasks, SplitPlan(val=0.1, test=0.2, labeled_count=300, seed=1))
    train = [s for s in samples if splits[s.id] == "train"]
    assert 280 <= len(train) <= 320
    shares = split_shares(samples, tasks, splits)["genres"]
    assert all(abs(v["train"] - v["all"]) < 0.05 for v in shares.values())
    fraction = split_dataset(samples, tasks, SplitPlan(labeled_fraction=0.25, seed=1))
    n_train = sum(v == "train" for v in fraction.values())
    n_pool = sum(v in ("train", "unlabeled") for k, v in fraction.items() if k in {s.id for s in samples if s.is_labeled()})
    assert n_train / n_pool == pytest.approx(0.25, abs=0.02)


def test_groups_never_straddle_splits():
    samples, tasks = synthetic(n=2100, groups=True)
    splits = split_dataset(samples, tasks, SplitPlan(val=0.15, test=0.15, labeled_fraction=0.5, seed=3))
    by_group = {}
    for s in samples:
        by_group.setdefault(s.group, set()).add(splits[s.id])
    assert all(len(v) == 1 for v in by_group.values())
    assert {v.pop() for v in by_group.values()} == {"train", "val", "test", "unlabeled"}


def test_same_seed_same_split_other_seed_other_split():
    samples, tasks = synthetic(n=500)
    a = split_dataset(samples, tasks, SplitPlan(seed=7))
    assert a == split_dataset(samples, tasks, SplitPlan(seed=7))
    assert a != split_dataset(samples, tasks, SplitPlan(seed=8))


def test_bad_plans_are_refused():
    with pytest.raises(ValueError):
        SplitPlan(val=0.6, test=0.5)
    with pytest.raises(ValueError):
        SplitPlan(labeled_fraction=0)


def test_writing_keeps_other_columns_and_a_backup(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("id,genres,note\na,Drama,x\nb,,y\n")
    backup = write_split_column(path, {"a": "train", "b": "unlabeled"})
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["id", "split", "genres", "note"]
    assert [(r["id"], r["split"], r["note"]) for r in rows] == [("a", "train", "x"), ("b", "unlabeled", "y")]
    assert backup.read_text() == "id,genres,note\na,Drama,x\nb,,y\n"
    write_split_file(tmp_path / "split.csv", {"b": "val", "a": "test"})
    assert (tmp_path / "split.csv").read_text().splitlines() == ["id,split", "a,test", "b,val"]
