"""Hardening, round 3: what a careless, hostile or unlucky user meets is one line, nothing lost.

Each test reproduces one case of issue 22 on the tiny demo: a plug-in that lies about its
width, a torn feature cache, a full disk, an edited or damaged run directory, a split that
became unreadable, prediction files of different runs, unreadable folders, torchrun failures,
and the weak answers (range errors, messages that named the wrong thing, litter left behind).
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semisup.errors import SemisupError
from semisup.io import read_metrics

from conftest import run_cli
from test_cli import assert_one_line_error


def copy_run(run: Path, tmp_path: Path, name: str = "run") -> Path:
    target = tmp_path / name
    shutil.copytree(run, target)
    return target


def copy_data(root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(root, target)
    return target


def ids_by_split(root: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in csv.DictReader((root / "labels.csv").open()):
        out.setdefault(row["split"], []).append(row["id"])
    return out


def garble(root: Path, sample_id: str) -> None:
    for path in sorted((root / "frames" / sample_id).iterdir()):
        path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".partial")]


def with_file_size_limit(limit_bytes: int, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``semisup ARGS`` with a file size limit (``ulimit -f``): a write past it fails with EFBIG, as a
    write to a full disk fails with ENOSPC (Python ignores SIGXFSZ). Output goes to pipes, which the
    limit does not cover."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "semisup.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600, preexec_fn=limit)


# ---------------------------------------------------------------- 1, 16: plug-ins

WIDE_AGGREGATOR = '''
import torch
from semisup.models.aggregators import Aggregator

class Wide(Aggregator):
    """Declares the feature width (the base class's out_dim) but returns twice as much."""

    def aggregate(self, x, mask):
        return torch.cat([x.mean(1), x.mean(1)], dim=-1)
'''


@pytest.mark.parametrize("aggregator, fragments", [
    ("wide:Wide", ["aggregator 'wide:Wide': declares out_dim = ", "returns (2, ", "set self.out_dim"]),
    ("wide:Nope", ["tasks.0.aggregator: aggregator plug-in 'wide:Nope': no class 'Nope' in module 'wide'"]),
])
def test_a_plug_in_aggregator_that_lies_or_is_missing_stops_before_training(tiny_recipe, tmp_path, aggregator,
                                                                             fragments):
    (tmp_path / "wide.py").write_text(WIDE_AGGREGATOR)  # importable: `python -m` runs in tmp_path
    recipe = tiny_recipe()
    text = recipe.read_text().replace('[[tasks]]\nname = "genres"\n',
                                      f'[[tasks]]\nname = "genres"\naggregator = "{aggregator}"\n')
    recipe.write_text(text)
    result = run_cli("run", str(recipe), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- 2: the feature cache

@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated features", "corrupt key"])
def test_a_damaged_feature_cache_is_not_a_readable_cache_and_force_rewrites_it(tiny_recipe, tmp_path, damage):
    recipe = tiny_recipe(pretext=False)
    cache = tmp_path / "cache"
    assert run_cli("features", str(recipe), "--out", str(cache)).returncode == 0
    if damage == "truncated features":
        os.truncate(cache / "features.npy", 1000)
        culprit = "features.npy"
    else:
        (cache / "key.json").write_text('{"encoder": "test_res')
        culprit = "key.json"
    train = ["run", str(recipe), "--set", f'data.features="{cache}"', "--set", "model.trainable_stages=0",
             "--out", str(tmp_path / "run")]
    assert_one_line_error(run_cli(*train), f"{cache / culprit}: not a readable feature cache",
                          "semisup features RECIPE --force")
    assert not (tmp_path / "run").exists()
    assert_one_line_error(run_cli("features", str(recipe), "--out", str(cache)), "not a readable feature cache")
    rewritten = run_cli("features", str(recipe), "--out", str(cache), "--force")
    assert rewritten.returncode == 0, rewritten.stderr
    assert "written:" in rewritten.stdout
    assert run_cli(*train).returncode == 0


# ---------------------------------------------------------------- 3, 17: writing

def selection_file(root: Path, tmp_path: Path, count: int = 3) -> Path:
    ids = ids_by_split(root)["unlabeled"][:count]
    path = tmp_path / "selection.csv"
    path.write_text("id,genres\n" + "".join(f"{i},Drama\n" for i in ids))
    return path


def test_data_label_on_a_full_disk_is_one_line_and_leaves_nothing_behind(demo_root, tmp_path):
    root = copy_data(demo_root, tmp_path)
    before = (root / "labels.csv").read_bytes()
    listing = sorted(p.name for p in root.iterdir())
    result = with_file_size_limit(0, "data", "label", str(root), str(selection_file(root, tmp_path)))
    assert_one_line_error(result, "could not be written (File too large)")
    assert (root / "labels.csv").read_bytes() == before
    assert sorted(p.name for p in root.iterdir()) == listing  # no backup, no temporary file


@pytest.mark.slow
def test_a_checkpoint_that_cannot_be_written_stops_the_run_in_one_line(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    result = with_file_size_limit(3_000_000, "run", str(tiny_recipe()), "--out", str(out), "--set", "train.epochs=1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0])  # after the epoch's progress line
    assert f"{out / 'checkpoints' / 'last.pt'}: could not be written (File too large)" in errors[0]
    assert not partials(out) and not (out / "checkpoints" / "last.pt").exists()


def test_data_label_writes_through_a_symbolic_link_and_keeps_it(demo_root, tmp_path):
    root = copy_data(demo_root, tmp_path)
    real = tmp_path / "kept-elsewhere.csv"
    shutil.move(root / "labels.csv", real)
    (root / "labels.csv").symlink_to(real)
    selection = selection_file(root, tmp_path)
    result = run_cli("data", "label", str(root), str(selection))
    assert result.returncode == 0, result.stderr
    assert (root / "labels.csv").is_symlink() and (root / "labels.csv").resolve() == real
    moved = {r["id"]: r for r in csv.DictReader(real.open())}
    for sample_id in [line.split(",")[0] for line in selection.read_text().splitlines()[1:]]:
        assert moved[sample_id]["split"] == "train" and moved[sample_id]["genres"] == "Drama"


# ---------------------------------------------------------------- 4, 5: resuming

@pytest.mark.slow
def test_resuming_a_finished_run_without_last_pt_is_refused_and_changes_nothing(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    (run / "checkpoints" / "last.pt").unlink()
    kept = {name: (run / name).read_bytes() for name in ("metrics.jsonl", "report.json", "checkpoints/best.pt")}
    assert_one_line_error(run_cli("run", "--resume", str(run)), "checkpoints/last.pt: missing, but the run has "
                          "finished (report.json)", "--out NEW_DIR")
    assert {name: (run / name).read_bytes() for name in kept} == kept


@pytest.mark.slow
@pytest.mark.parametrize("edit, fragment", [
    (("image_size = 32", "image_size = 48"), "data.image_size: now 48, trained with 32"),
    (('encoder = "test_resnet"', 'encoder = "resnet18"'), "model.encoder: now 'resnet18', trained with 'test_resnet'"),
])
def test_resuming_after_config_toml_was_edited_is_refused(trained_run, tmp_path, edit, fragment):
    run = copy_run(trained_run, tmp_path)
    config = run / "config.toml"
    config.write_text(config.read_text().replace(*edit))
    report = (run / "report.json").read_bytes()
    assert_one_line_error(run_cli("run", "--resume", str(run)), f"{config}: differs from the recipe the run was "
                          "trained with", fragment, "safe to change")
    assert (run / "report.json").read_bytes() == report


def test_an_option_a_newer_semisup_added_is_not_a_change(trained_run, tmp_path):
    """A run started by a semisup without ``model.head_dropout``: neither its stored recipe nor its
    config.toml names it, and both read as today's default."""
    from semisup.config import load_recipe
    from semisup.train.run import check_recipe_unchanged

    run = copy_run(trained_run, tmp_path)
    stage = json.loads((run / "stage.json").read_text())
    del stage["recipe"]["model"]["head_dropout"]
    (run / "stage.json").write_text(json.dumps(stage))
    config = run / "config.toml"
    config.write_text("\n".join(line for line in config.read_text().splitlines() if not line.startswith("head_dropout")))
    check_recipe_unchanged(run, load_recipe(config))
    config.write_text(config.read_text().replace("head_hidden = 32", "head_hidden = 64"))
    with pytest.raises(SemisupError, match="model.head_hidden: now 64, trained with 32"):
        check_recipe_unchanged(run, load_recipe(config))


@pytest.mark.slow
def test_keys_that_are_safe_to_change_resume(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    config = run / "config.toml"
    config.write_text(config.read_text().replace("num_workers = 0", "num_workers = 1")
                      .replace("eval_batch_size = 8", "eval_batch_size = 5"))
    result = run_cli("run", "--resume", str(run))
    assert result.returncode == 0, result.stderr
    assert len(read_metrics(run / "metrics.jsonl")) == 2  # finished: nothing trained again


def test_a_stage_killed_before_its_first_checkpoint_starts_again_without_its_stale_record(trained_run, tmp_path):
    from semisup.config import load_recipe
    from semisup.train.run import check_resumable

    run = copy_run(trained_run, tmp_path)
    recipe = load_recipe(run / "config.toml")
    (run / "checkpoints" / "last.pt").unlink()
    (run / "report.json").unlink()
    records = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(records[0] + "\n")  # killed after epoch 1's record, before last.pt
    check_resumable(run, recipe)
    (run / "metrics.jsonl").write_text("\n".join(records) + "\n")  # two epochs recorded: last.pt was lost
    with pytest.raises(SemisupError, match="has trained 2 epochs"):
        check_resumable(run, recipe)


# ---------------------------------------------------------------- 6, 7, 14, 16: evaluation commands

@pytest.fixture(scope="module")
def mood_run(tmp_path_factory, demo_root) -> Path:
    """A finished tiny run on the demo's genres copied into another task, "mood"."""
    from conftest import TINY_RECIPE
    from semisup.train.run import start_run

    folder = tmp_path_factory.mktemp("mood")
    root = folder / "data"
    shutil.copytree(demo_root, root)
    rows = list(csv.DictReader((root / "labels.csv").open()))
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0], "mood"])
        writer.writeheader()
        writer.writerows({**r, "mood": r["genres"]} for r in rows)
    recipe = folder / "recipe.toml"
    recipe.write_text(TINY_RECIPE.format(root=root, labels_file="labels.csv").replace('name = "genres"',
                                                                                     'name = "mood"'))
    return start_run(recipe, ["train.epochs=1", 'run.name="mood"'], folder / "run").run_dir


def test_evaluate_refuses_a_split_without_labels(trained_run):
    assert_one_line_error(run_cli("evaluate", str(trained_run), "--split", "unlabeled"),
                          "--split unlabeled: none of its", "has a label of genres", "semisup predict")
    assert not (trained_run / "evaluations" / "best-unlabeled").exists()


@pytest.mark.slow
def test_prediction_files_and_runs_of_other_tasks_are_refused_saying_what_differs(trained_run, mood_run, demo_root,
                                                                                   tmp_path):
    sweep = run_cli("threshold-sweep", "--val", str(trained_run / "predictions" / "val.npz"),
                    "--test", str(mood_run / "predictions" / "test.npz"), "--out", str(tmp_path / "sweep"))
    assert_one_line_error(sweep, "test predictions have no task 'genres' (they hold mood)")
    compare = run_cli("compare", str(trained_run), str(mood_run))
    assert_one_line_error(compare, f"{mood_run}: no task 'genres' in report.json (its tasks: mood)", "--task")
    evaluate = run_cli("evaluate", str(trained_run), "--checkpoint", str(mood_run / "checkpoints" / "best.pt"))
    assert_one_line_error(evaluate, "a checkpoint of a different model than this run's: its tasks are mood (9 "
                          "labels), this run has genres (9 labels)")
    frames = demo_root / "frames" / ids_by_split(demo_root)["test"][0]
    predict = run_cli("predict", str(trained_run), str(frames), "--checkpoint",
                      str(mood_run / "checkpoints" / "best.pt"))
    assert_one_line_error(predict, "its tasks are mood (9 labels)")


def test_compare_refuses_a_run_given_twice_and_a_corrupt_report(trained_run, tmp_path):
    assert_one_line_error(run_cli("compare", str(trained_run), str(trained_run)), "given twice")
    run = copy_run(trained_run, tmp_path)
    (run / "report.json").write_text('{"splits": {"test": ')
    assert_one_line_error(run_cli("compare", str(run)), f"{run / 'report.json'}: not a readable run report",
                          "semisup run --resume")


def test_a_garbage_npz_is_refused_without_numpy_s_advice_to_unpickle_it(tmp_path):
    garbage = tmp_path / "val.npz"
    garbage.write_bytes(np.random.default_rng(0).bytes(3000))
    result = run_cli("threshold-sweep", "--val", str(garbage))
    assert_one_line_error(result, f"{garbage}: not a semisup predictions file")
    assert "pickle" not in result.stderr


# ---------------------------------------------------------------- 8: unreadable data

def test_a_frames_folder_that_links_to_itself_is_one_line(demo_root, tiny_recipe, tmp_path):
    root = copy_data(demo_root, tmp_path)
    victim = root / "frames" / ids_by_split(root)["train"][0]
    shutil.rmtree(victim)
    victim.symlink_to(victim.name)
    assert_one_line_error(run_cli("run", str(tiny_recipe(root=root)), "--out", str(tmp_path / "run")),
                          f"frames folder {victim} is not readable (Too many levels of symbolic links)")
    assert not (tmp_path / "run").exists()
    inspect = run_cli("data", "inspect", str(root), "--check")
    assert inspect.returncode == 1 and "Traceback" not in inspect.stderr
    assert "is not readable (Too many levels of symbolic links)" in " ".join(inspect.stdout.replace("│", " ").split())


def unprivileged(*args: str) -> subprocess.CompletedProcess:
    """``semisup ARGS`` without the power to read what its mode forbids (root drops it with capsh)."""
    command = [sys.executable, "-m", "semisup.cli", *args]
    if os.geteuid() == 0:
        if not shutil.which("capsh"):
            pytest.skip("running as root without capsh: a permission cannot be denied")
        command = ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c",
                   " ".join(f"'{a}'" for a in command)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"})


@pytest.mark.parametrize("what", ["labels.csv", "frames folder"])
def test_an_unreadable_labels_file_or_frames_folder_is_one_line(demo_root, tiny_recipe, tmp_path, what):
    root = copy_data(demo_root, tmp_path)
    victim = root / "labels.csv" if what == "labels.csv" else root / "frames" / ids_by_split(root)["train"][0]
    victim.chmod(0)
    try:
        run = unprivileged("run", str(tiny_recipe(root=root)), "--out", str(tmp_path / "run"))
        inspect = unprivileged("data", "inspect", str(root))
    finally:
        victim.chmod(0o755)
    assert_one_line_error(run, str(victim), "not readable (Permission denied)")
    assert "Traceback" not in inspect.stderr and inspect.returncode in (1, 2)
    assert "not readable (Permission denied)" in " ".join((inspect.stdout + inspect.stderr).replace("│", " ").split())


# ---------------------------------------------------------------- 9: torchrun

@pytest.mark.slow
def test_under_torchrun_a_data_error_on_rank_0_is_one_line_and_no_traceback(demo_root, tiny_recipe, tmp_path):
    root = copy_data(demo_root, tmp_path)
    text = (root / "labels.csv").read_text()
    (root / "labels.csv").write_text(text.replace("id,", "ident,", 1))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "semisup", "run", str(tiny_recipe(root=root)), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {root / 'labels.csv'}: no column 'id' (columns: ident, split, genres)"]
    worker_lines = [line for line in done.stderr.splitlines() if "semisup/" in line and "File " in line]
    assert not worker_lines  # no traceback through semisup's code, from either process


# ---------------------------------------------------------------- 10: unreadable evaluation splits

def test_a_val_split_found_unreadable_before_training_stops_the_run_before_it_trains(demo_root, tiny_recipe,
                                                                                   tmp_path):
    root = copy_data(demo_root, tmp_path)
    val = ids_by_split(root)["val"]
    for sample_id in val[:len(val) // 3]:
        garble(root, sample_id)
    result = run_cli("run", str(tiny_recipe(root=root)), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, f"val: {len(val) // 3} of {len(val)} trailers", "have no readable frame",
                          "found before training")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_small_test_split_partly_unreadable_is_told_before_training_and_flagged_in_the_report(
        demo_root, tiny_recipe, tmp_path):
    """The MovieShots case: a test split of a few clips, one broken, over data.max_unreadable. Test does
    not touch training: a warning before it, the training, a report.json that scores what reads and
    flags the rest, exit code 3."""
    root = copy_data(demo_root, tmp_path)
    test = ids_by_split(root)["test"]
    dead = test[:len(test) // 3]
    for sample_id in dead:
        garble(root, sample_id)
    out = tmp_path / "run"
    result = run_cli("run", str(tiny_recipe(root=root)), "--out", str(out), "--set", "train.epochs=1")
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    before = [n for n, line in enumerate(lines) if "(found before training); the run trains" in line]
    after = [n for n, line in enumerate(lines) if "report.json is written and flags it" in line]
    assert len(before) == 1 and len(after) == 1 and before[0] < after[0]
    assert f"test: {len(dead)} of {len(test)} trailers" in lines[before[0]] and lines[after[0]].startswith("warning:")
    report = json.loads((out / "report.json").read_text())
    assert report["unreadable"]["test"]["sample_ids"] == sorted(dead)
    assert report["problems"] == [f"test: {report['unreadable']['test']['over_limit']}"]
    assert report["splits"]["test"]["genres"]["samples"] == len(test) - len(dead)
    assert "test: " in result.stdout and "mAP" in result.stdout  # the results table is printed too


@pytest.mark.slow
def test_a_test_split_that_becomes_unreadable_during_training_still_gets_its_flagged_report(demo_root, tiny_recipe,
                                                                                          tmp_path):
    """Frames that break while the run trains (a disk failing): the finished training is scored on
    what reads and reported, flagged, not thrown away; `semisup run` says so and exits with 3."""
    from semisup.train.progress import NullProgress
    from semisup.train.run import start_run

    root = copy_data(demo_root, tmp_path)
    test = ids_by_split(root)["test"]
    dead = test[:len(test) // 3]

    class DiskFailsDuringTraining(NullProgress):
        def end_epoch(self, record):
            for sample_id in dead:
                garble(root, sample_id)

    result = start_run(tiny_recipe(root=root), ["train.epochs=1"], tmp_path / "run", DiskFailsDuringTraining())
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert result.problems and result.problems == report["problems"]
    assert report["unreadable"]["test"]["sample_ids"] == sorted(dead)
    assert f"{len(dead)} of {len(test)} trailers" in report["unreadable"]["test"]["over_limit"]
    assert report["splits"]["test"]["genres"]["samples"] == len(test) - len(dead)
    assert "over_limit" not in report["unreadable"]["val"]

    (tmp_path / "run" / "report.json").unlink()  # scored again by the CLI: the same flag, exit code 3
    again = run_cli("run", "--resume", str(tmp_path / "run"))
    assert again.returncode == 3, again.stderr
    warning = [line for line in again.stderr.splitlines() if line.startswith("warning: test:")]
    assert len(warning) == 1 and "report.json is written and flags it" in warning[0]
    assert json.loads((tmp_path / "run" / "report.json").read_text())["problems"] == report["problems"]


@pytest.mark.slow
def test_a_final_evaluation_that_fails_keeps_the_training_and_says_how_to_finish(tiny_recipe, tmp_path):
    from semisup.train.progress import NullProgress
    from semisup.train.run import resume_run, start_run

    out = tmp_path / "run"

    class PredictionsBlocked(NullProgress):  # a file where the run will write its predictions folder
        def end_epoch(self, record):
            (out / "predictions").write_text("in the way")

    with pytest.raises(SemisupError) as failed:
        start_run(tiny_recipe(), ["train.epochs=1"], out, PredictionsBlocked())
    message = str(failed.value)
    assert message.startswith(f"{out}: training finished and is kept in checkpoints/, but the final evaluation "
                              "failed: ") and f"semisup run --resume {out}" in message
    assert (out / "checkpoints" / "best.pt").is_file() and len(read_metrics(out / "metrics.jsonl")) == 1
    (out / "predictions").unlink()
    report = resume_run(out).report
    assert report["splits"]["test"]["genres"]["samples"] > 0 and (out / "report.json").is_file()
    assert len(read_metrics(out / "metrics.jsonl")) == 1  # scored, not trained again


# ---------------------------------------------------------------- 11, 12, 13: weak answers

@pytest.mark.parametrize("args, fragment", [
    (["select-simulate", "RECIPE", "--truth", "TRUTH", "--rounds", "0", "--out", "OUT"],
     "--rounds: expected a number >= 1, got 0"),
    (["select-simulate", "RECIPE", "--truth", "TRUTH", "--budget", "0", "--out", "OUT"],
     "--budget: expected a number >= 1, got 0"),
    (["data", "extract", "VIDEOS", "OUT", "--count", "0"], "--count: expected >= 1, got 0"),
])
def test_a_range_error_names_the_option_and_the_value_given(demo_root, tiny_recipe, tmp_path, args, fragment):
    (tmp_path / "videos").mkdir()
    names = {"RECIPE": str(tiny_recipe()), "TRUTH": str(demo_root / "labels_all.csv"), "OUT": str(tmp_path / "out"),
             "VIDEOS": str(tmp_path / "videos")}
    result = run_cli(*[names.get(a, a) for a in args])
    assert_one_line_error(result, fragment)  # one line: no progress bar printed before it
    assert not (tmp_path / "out").exists()


def test_a_consistency_option_out_of_range_is_named_with_its_value(tiny_recipe):
    recipe = tiny_recipe(extra='\n[[consistency]]\nname = "fixmatch"\nkeep = 1.5\n')
    assert_one_line_error(run_cli("run", str(recipe)), "consistency.0.keep: expected 0 < keep <= 1, got 1.5")


def test_a_consistency_recipe_without_unlabeled_trailers_is_told_about_its_method(demo_root, tiny_recipe, tmp_path):
    root = copy_data(demo_root, tmp_path)
    kept = [line for line in (root / "labels.csv").read_text().splitlines() if ",unlabeled," not in line]
    (root / "labels.csv").write_text("\n".join(kept) + "\n")
    recipe = tiny_recipe(root=root, pretext=False, extra='\n[[consistency]]\nname = "fixmatch"\n')
    result = run_cli("run", str(recipe), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "consistency method 'fixmatch' needs unlabeled samples but there are none")
    assert "pretext" not in result.stderr.split("train.pretext_on_labeled")[0]


@pytest.mark.parametrize("truth", ["missing", "without hidden labels"])
def test_select_simulate_checks_its_truth_file_before_round_0(demo_root, tiny_recipe, tmp_path, truth):
    path = tmp_path / "nope.csv" if truth == "missing" else demo_root / "labels.csv"
    result = run_cli("select-simulate", str(tiny_recipe()), "--truth", str(path), "--rounds", "1",
                     "--out", str(tmp_path / "sim"))
    assert_one_line_error(result, str(path), "labels file not found" if truth == "missing" else "no labels for")
    assert not (tmp_path / "sim").exists()


def test_a_labels_file_with_a_column_named_twice_is_refused_naming_both(demo_root, tiny_recipe, tmp_path):
    root = copy_data(demo_root, tmp_path)
    rows = list(csv.reader((root / "labels.csv").open(newline="")))
    with (root / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([[*rows[0], "genres"], *([*r, "Drama"] for r in rows[1:])])
    assert_one_line_error(run_cli("run", str(tiny_recipe(root=root))),
                          "column 'genres' appears twice in the header (columns 3 and 4)")


# ---------------------------------------------------------------- 15: predict

def test_predict_counts_skipped_frames_in_every_output_and_refuses_a_negative_top(trained_run, demo_root, tmp_path):
    folder = tmp_path / "trailer"
    shutil.copytree(demo_root / "frames" / ids_by_split(demo_root)["test"][0], folder)
    for broken in sorted(folder.iterdir())[:-1]:  # every frame but the last: some picked ones are broken
        broken.write_bytes(b"not a jpeg")
    as_json = json.loads(run_cli("predict", str(trained_run), str(folder), "--json").stdout)
    skipped = as_json[0]["skipped_frames"]
    assert skipped >= 1
    rows = list(csv.DictReader(run_cli("predict", str(trained_run), str(folder), "--csv").stdout.splitlines()))
    assert rows[0]["skipped_frames"] == str(skipped)
    table = run_cli("predict", str(trained_run), str(folder))
    assert table.returncode == 0, table.stderr
    assert "skipped frames" in table.stdout
    assert f"warning: {skipped} unreadable frames skipped in 1 of 1 inputs" in table.stderr
    assert_one_line_error(run_cli("predict", str(trained_run), str(folder), "--top", "-1"),
                          "--top: expected 0 (every label) or more scores per task, got -1")


def test_an_image_beyond_pil_s_bomb_limit_is_decoded_small_if_a_jpeg_else_refused_in_semisup_s_words(
        tmp_path, monkeypatch):
    from semisup.data.images import ImageTooLarge, load_frame
    from semisup.predict import input_sample

    picture = Image.new("RGB", (1600, 1200), (200, 30, 40))
    picture.save(tmp_path / "big.jpg")
    picture.save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200_000)  # 1600 x 1200 is now past twice the limit
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "big.jpg")  # what PIL alone does
    frame = load_frame(tmp_path / "big.jpg", 32)
    assert frame.shape == (32, 32, 3) and abs(int(frame[16, 16, 0]) - 200) < 8
    with pytest.raises(ImageTooLarge, match="not a JPEG"):
        load_frame(tmp_path / "big.png", 32)
    with pytest.raises(SemisupError) as refused:
        input_sample(tmp_path / "big.png")
    assert "decompression bomb" not in str(refused.value) and "scale it down first" in str(refused.value)
