"""Label next: selection strategies on hand-made scores and embeddings, the select -> label
round trip on a trained run, and the labeling simulation."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from semisup.data.annotate import merge_labels
from semisup.data.folder import read_folder
from semisup.data.labels import TaskColumn
from semisup.errors import SemisupError
from semisup.selection.strategies import (Pool, get_strategy, k_center_greedy, label_uncertainty, rarity_weights,
                                          uncertainty_scores)

from conftest import run_cli

GENRES = [TaskColumn("genres", "genres", "multilabel")]
RNG = np.random.default_rng(0)


def pool(scores, kind="multilabel", thresholds=None, priors=None, embeddings=None, labeled=None) -> Pool:
    scores = np.asarray(scores, dtype=float)
    return Pool([f"t{i}" for i in range(len(scores))], {"task": scores}, {"task": kind},
                {"task": np.asarray(thresholds, dtype=float)} if thresholds is not None else {},
                {"task": np.asarray(priors, dtype=float)} if priors is not None else {},
                None if embeddings is None else np.asarray(embeddings, dtype=float),
                None if labeled is None else np.asarray(labeled, dtype=float))


def strategy(name: str, **options):
    cls = get_strategy(name)
    return cls(cls.Options(**options))


def test_uncertainty_picks_the_scores_nearest_each_labels_threshold():
    scores = [[0.9, 0.1], [0.31, 0.95], [0.6, 0.5], [0.05, 0.75]]
    thresholds = [0.3, 0.7]  # tuned per class: 0.31 and 0.75 are the undecided ones
    per_label = label_uncertainty(np.array(scores), np.array(thresholds))
    assert per_label[1, 0] == pytest.approx(1 - 0.01 / 0.7) and per_label[0, 1] == pytest.approx(1 - 0.6 / 0.7)
    ranked = strategy("uncertainty").rank(pool(scores, thresholds=thresholds), 2, RNG)
    assert ranked.indices.tolist() == [2, 1]  # sums: t2 0.57 + 0.71, t1 0.99 + 0.17, t3 0.17 + 0.83, t0 0.29
    assert ranked.scores[0] >= ranked.scores[1]
    by_max = strategy("uncertainty", reduce="max").rank(pool(scores, thresholds=thresholds), 1, RNG)
    assert by_max.indices.tolist() == [1]  # 0.31 is the single closest score to its threshold


def test_multiclass_uncertainty_by_margin_and_entropy():
    scores = [[0.9, 0.05, 0.05], [0.45, 0.45, 0.1], [0.34, 0.33, 0.33], [0.6, 0.3, 0.1]]
    margin = strategy("uncertainty").rank(pool(scores, "multiclass"), 4, RNG).indices.tolist()
    entropy = strategy("uncertainty", measure="entropy").rank(pool(scores, "multiclass"), 4, RNG).indices.tolist()
    assert margin == [1, 2, 3, 0] and entropy == [2, 1, 3, 0]  # margins 1.0, 0.99, 0.7, 0.15


def test_rare_weighting_favours_doubt_about_rare_classes():
    scores = [[0.5, 0.05], [0.05, 0.5]]  # equally unsure, about a common and a rare class
    priors = [0.5, 0.05]
    assert rarity_weights(np.array(priors), 1.0)[1] > 1
    plain = uncertainty_scores(pool(scores, priors=priors))
    assert plain[0] == pytest.approx(plain[1])
    assert strategy("uncertainty", rare=1.0).rank(pool(scores, priors=priors), 1, RNG).indices.tolist() == [1]
    likely_rare = strategy("rare").rank(pool([[0.9, 0.1], [0.2, 0.6]], priors=priors), 2, RNG)
    assert likely_rare.indices.tolist() == [1, 0]


def test_k_center_greedy_picks_far_apart_points_away_from_the_labeled_ones():
    cluster_a = RNG.normal(0, 0.01, (10, 2)) + [1, 0]
    cluster_b = RNG.normal(0, 0.01, (10, 2)) + [0, 1]
    cluster_c = RNG.normal(0, 0.01, (10, 2)) + [-1, 0]
    points = np.concatenate([cluster_a, cluster_b, cluster_c])
    picked = k_center_greedy(points, 3, rng=np.random.default_rng(0)).indices
    assert sorted(i // 10 for i in picked) == [0, 1, 2]  # one per cluster
    labeled = np.array([[1.0, 0], [0, 1]])  # clusters a and b are covered already
    first = strategy("diversity").rank(pool(np.zeros((30, 1)), embeddings=points, labeled=labeled), 1, RNG)
    assert first.indices[0] // 10 == 2
    ranked = k_center_greedy(points, 30, centers=labeled)
    assert sorted(ranked.indices.tolist()) == list(range(30))  # every point once
    assert np.all(np.diff(ranked.scores) <= 1e-9)  # each pick is no farther than the one before


def test_mix_spreads_its_picks_where_uncertainty_would_take_near_duplicates():
    scores = [[0.5], [0.51], [0.49], [0.4], [0.95]]
    embeddings = [[1, 0], [1, 0.001], [1, -0.001], [0, 1], [-1, 0]]  # 0-2 are the same trailer three times
    uncertain = strategy("uncertainty").rank(pool(scores, embeddings=embeddings), 2, RNG).indices
    mixed = strategy("mix", candidates=2).rank(pool(scores, embeddings=embeddings), 2, RNG).indices
    assert set(uncertain.tolist()) <= {0, 1, 2}
    assert 3 in mixed.tolist() and len({0, 1, 2} & set(mixed.tolist())) == 1
    assert 4 not in mixed.tolist()  # confident: never shortlisted


def test_random_is_reproducible_and_never_repeats():
    a = strategy("random").rank(pool(np.zeros((50, 1))), 20, np.random.default_rng(3)).indices
    b = strategy("random").rank(pool(np.zeros((50, 1))), 20, np.random.default_rng(3)).indices
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 20


# --- the merge ---------------------------------------------------------------------------------------------------


LABELS = """id,split,group,genres
a,train,,Drama|Comedy
b,train,,Horror
c,unlabeled,,
d,unlabeled,,
e,val,,Drama
f,test,,Comedy
"""


def write_selection(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "rank", "strategy", "score", "media", "genres_guess",
                                                    "genres"])
        writer.writeheader()
        for i, row in enumerate(rows, start=1):
            writer.writerow({"rank": i, "strategy": "mix", "score": "1.0", "media": "", "genres_guess": "Drama",
                             **row})
    return path


def test_merge_moves_the_labeled_trailers_to_train_and_backs_up_the_old_file(tmp_path):
    (tmp_path / "labels.csv").write_text(LABELS)
    selection = write_selection(tmp_path / "select.csv", [{"id": "c", "genres": "Horror | Drama"},
                                                         {"id": "d", "genres": ""}])
    with pytest.raises(SemisupError, match=r"select.csv:3: no labels filled in for 'd'"):
        merge_labels(tmp_path, selection)
    assert (tmp_path / "labels.csv").read_text() == LABELS and not list(tmp_path.glob("labels.backup-*"))
    merged = merge_labels(tmp_path, selection, partial=True)
    assert merged.labeled == ["c"] and merged.skipped == ["d"] and merged.tasks == ["genres"]
    assert merged.backup.read_text() == LABELS
    rows = {row["id"]: row for row in csv.DictReader((tmp_path / "labels.csv").open())}
    assert rows["c"]["split"] == "train" and rows["c"]["genres"] == "Horror|Drama"
    assert rows["d"]["split"] == "unlabeled" and rows["a"]["genres"] == "Drama|Comedy"
    os.makedirs(tmp_path / "frames")
    for sample_id in "abcdef":
        (tmp_path / "frames" / sample_id).mkdir()
        (tmp_path / "frames" / sample_id / "000.jpg").write_bytes(b"")
    samples = {s.id: s for s in read_folder(tmp_path, GENRES).samples}
    assert samples["c"].labels["genres"] == ("Horror", "Drama") and samples["c"].split == "train"
    again = merge_labels(tmp_path, write_selection(tmp_path / "second.csv", [{"id": "d", "genres": "Comedy"}]))
    assert again.backup != merged.backup and merged.backup.read_text() == LABELS  # no backup is overwritten


def test_merge_refuses_malformed_rows_with_one_line_each_and_writes_nothing(tmp_path):
    (tmp_path / "labels.csv").write_text(LABELS)
    selection = write_selection(tmp_path / "select.csv", [
        {"id": "c", "genres": "Horor"},          # line 2: not in the vocabulary
        {"id": "zz", "genres": "Drama"},         # line 3: not in the dataset
        {"id": "a", "genres": "Drama"},          # line 4: already labeled
        {"id": "d", "genres": "Drama"},
        {"id": "d", "genres": "Comedy"},         # line 6: twice
    ])
    with pytest.raises(SemisupError) as error:
        merge_labels(tmp_path, selection)
    lines = str(error.value).splitlines()
    assert lines[0].endswith("4 problem(s), nothing merged:")
    assert (f"{selection}:2: genres label 'Horor' is not in the dataset's vocabulary "
            "(did you mean \"Horror\"? --allow-new-labels admits new labels)") in lines
    assert any(line.startswith(f"{selection}:3: id 'zz' is not in") for line in lines)
    assert any(line.startswith(f"{selection}:4: 'a' is already labeled") for line in lines)
    assert f"{selection}:6: id 'd' appears twice" in lines
    assert (tmp_path / "labels.csv").read_text() == LABELS and not list(tmp_path.glob("labels.backup-*"))
    one_label = tmp_path / "shots"
    one_label.mkdir()
    (one_label / "labels.csv").write_text("id,split,scale\nx,train,CS\ny,unlabeled,\n")
    shots = one_label / "select.csv"
    shots.write_text("id,scale_guess,scale\ny,CS,CS|LS\n")
    with pytest.raises(SemisupError, match=r"select.csv:2: column 'scale' holds one label per trailer"):
        merge_labels(one_label, shots)
    (one_label / "new.csv").write_text("id,scale_guess,scale\ny,CS,ECS\n")
    with pytest.raises(SemisupError, match="--allow-new-labels"):
        merge_labels(one_label, one_label / "new.csv")
    assert merge_labels(one_label, one_label / "new.csv", allow_new_labels=True).labeled == ["y"]


# --- select on a trained run, the CLI round trip, the simulation -------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["uncertainty", "mix"])
def test_select_writes_the_budget_from_the_unlabeled_pool_and_refuses_to_overwrite(trained_run, demo_root, tmp_path,
                                                                                  name):
    out = tmp_path / "select.csv"
    done = run_cli("select", str(trained_run), "--budget", "3", "--strategy", name, "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    unlabeled = {s.id for s in read_folder(demo_root, GENRES).samples if s.split == "unlabeled"}
    assert [r["rank"] for r in rows] == ["1", "2", "3"] and {r["id"] for r in rows} <= unlabeled
    assert all(r["strategy"] == name and r["genres"] == "" and Path(r["media"]).is_dir() for r in rows)
    assert [float(r["score"]) for r in rows] == sorted((float(r["score"]) for r in rows), reverse=True) or name == "mix"
    again = run_cli("select", str(trained_run), "--budget", "3", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    bad = run_cli("select", str(trained_run), "--budget", "3", "--option", "candidates=0", "--out",
                  str(tmp_path / "x.csv"))
    assert bad.returncode == 2 and "candidates" in bad.stderr and not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_a_filled_in_selection_merges_into_a_copy_of_the_dataset(trained_run, demo_root, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "labels.csv").write_text((demo_root / "labels.csv").read_text())
    os.symlink(demo_root / "frames", data / "frames", target_is_directory=True)
    out = tmp_path / "select.csv"
    assert run_cli("select", str(trained_run), "--budget", "4", "--strategy", "diversity", "--out",
                   str(out)).returncode == 0
    truth = {r["id"]: r["genres"] for r in csv.DictReader((demo_root / "labels_all.csv").open())}
    rows = list(csv.DictReader(out.open()))
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "genres": truth[r["id"]]} for r in rows)
    done = run_cli("data", "label", str(data), str(out))
    assert done.returncode == 0, done.stderr
    before = {s.id: s for s in read_folder(demo_root, GENRES).samples}
    after = {s.id: s for s in read_folder(data, GENRES).samples}
    chosen = {r["id"] for r in rows}
    for sample_id, sample in after.items():
        if sample_id in chosen:
            assert sample.split == "train" and "|".join(sample.labels["genres"]) == truth[sample_id]
        else:
            assert (sample.split, sample.labels) == (before[sample_id].split, before[sample_id].labels)


@pytest.mark.slow
def test_the_simulation_records_map_against_labels_and_continues_where_it_stopped(tiny_recipe, demo_root, tmp_path):
    from semisup.selection.simulate import simulate

    recipe = tiny_recipe(pretext=False)
    out = tmp_path / "sim"
    args = (recipe, demo_root / "labels_all.csv", ["random", "uncertainty"], 1, 3, [0], out, ["train.epochs=1"])
    rows = simulate(*args, log=lambda line: None)
    start = [r for r in rows if r.round == 0]
    assert len(rows) == 4 and len(start) == 2 and start[0].test_map == start[1].test_map
    for r in rows:
        if r.round == 1:
            assert r.labels == start[0].labels + 3 and 0 <= r.test_map <= 1
    table = (out / "simulation.md").read_text()
    assert "| round | labels | random | uncertainty |" in table and (out / "simulation.png").stat().st_size > 0
    assert len((out / "simulation.csv").read_text().splitlines()) == 5
    report = out / "seed0" / "random" / "round1" / "run" / "report.json"
    stamp = report.stat().st_mtime_ns
    assert simulate(*args, log=lambda line: None) == rows  # finished rounds are read back, not retrained
    assert report.stat().st_mtime_ns == stamp
    with pytest.raises(SemisupError, match="other settings"):
        simulate(recipe, demo_root / "labels_all.csv", ["random"], 2, 3, [0], out, ["train.epochs=1"])
