"""The feature cache: a frozen encoder run once, training and evaluation from its features."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from semisup.checkpoints import load_checkpoint
from semisup.config import load_recipe
from semisup.errors import SemisupError
from semisup.features import write_features
from semisup.io import read_metrics

FROZEN = ['model.trainable_stages=0']


def cached(recipe_path, cache, *sets):
    return [*FROZEN, f'data.features="{cache}"', *sets]


def test_the_cache_holds_the_frozen_encoders_features_of_every_trailer(tiny_recipe, tmp_path):
    from semisup.augment import FrameNormalize
    from semisup.build import build_eval_loader, read_recipe_data
    from semisup.models import Encoder

    recipe = load_recipe(tiny_recipe(pretext=False), FROZEN)
    summary = write_features(recipe, tmp_path / "cache")
    assert summary["status"] == "written"
    key = json.loads((tmp_path / "cache" / "key.json").read_text())
    assert key["complete"] and key["encoder"] == "test_resnet" and key["image_size"] == 32
    features = np.load(tmp_path / "cache" / "features.npy")
    counts = np.load(tmp_path / "cache" / "counts.npy")
    samples = read_recipe_data(recipe.data, recipe.tasks).samples
    assert features.shape[:2] == (len(samples), recipe.data.eval_frames) and features.dtype == np.float16
    assert (counts == recipe.data.eval_frames).all()  # every demo trailer has enough readable frames

    # the same features as the encoder computes on the evaluation frames
    torch.manual_seed(recipe.run.seed)
    encoder = Encoder("test_resnet", False, 0).eval()
    batch = next(iter(build_eval_loader(samples[:2], (), 32, recipe.data.eval_frames, 2, 0)))
    with torch.no_grad():
        expected = encoder(FrameNormalize(encoder.mean, encoder.std)(batch.frames)).numpy()
    # the cache's encoder was built with the recipe's seed too: random weights are the same
    np.testing.assert_allclose(features[:2].reshape(-1, features.shape[2]), expected, rtol=2e-2, atol=2e-3)

    # a second call finds it up to date and writes nothing
    mtime = os.stat(tmp_path / "cache" / "features.npy").st_mtime_ns
    assert write_features(recipe, tmp_path / "cache")["status"] == "up to date"
    assert os.stat(tmp_path / "cache" / "features.npy").st_mtime_ns == mtime


def test_an_interrupted_cache_continues_where_it_stopped(tiny_recipe, tmp_path):
    recipe = load_recipe(tiny_recipe(pretext=False), FROZEN)
    write_features(recipe, tmp_path / "cache")
    whole = np.load(tmp_path / "cache" / "features.npy").copy()
    # as a killed writer leaves it: the key not complete, the last trailers not counted, garbage in their rows
    key = json.loads((tmp_path / "cache" / "key.json").read_text())
    (tmp_path / "cache" / "key.json").write_text(json.dumps({**key, "complete": False}))
    counts = np.load(tmp_path / "cache" / "counts.npy", mmap_mode="r+")
    features = np.load(tmp_path / "cache" / "features.npy", mmap_mode="r+")
    half = len(counts) // 2
    counts[half:] = -1
    counts[half + 1] = -2 - 3  # written but not flushed: done again
    features[half:] = 7.0
    counts.flush(), features.flush()
    del counts, features
    with pytest.raises(SemisupError, match="the cache is incomplete"):
        from semisup.train.run import start_run
        start_run(tiny_recipe(pretext=False), cached(None, tmp_path / "cache"), tmp_path / "run")
    assert write_features(recipe, tmp_path / "cache")["status"] == "resumed"
    np.testing.assert_array_equal(np.load(tmp_path / "cache" / "features.npy"), whole)


@pytest.mark.slow
def test_training_and_evaluation_from_the_cache_with_fixmatch(tiny_recipe, tmp_path):
    from semisup.train.run import start_run

    fixmatch = '\n[[consistency]]\nname = "fixmatch"\nframes_per_trailer = 2\n'
    path = tiny_recipe(pretext=False, extra=fixmatch)
    write_features(load_recipe(path, FROZEN), tmp_path / "cache")
    result = start_run(path, cached(path, tmp_path / "cache", "train.epochs=3"), tmp_path / "run")
    records = read_metrics(result.run_dir / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["consistency"]["fixmatch"]["genres_mask_rate"] > 0
    assert records[-1]["loss"] < records[0]["loss"]  # the heads learn from the features
    test = result.report["splits"]["test"]["genres"]
    assert 0.0 < test["mAP"] <= 1.0
    # nothing of the encoder is in the checkpoint: only aggregators and heads trained
    state = load_checkpoint(result.run_dir / "checkpoints" / "best.pt")["model"]
    assert not any(k.startswith("encoder.") for k in state)

    # the run's own dataset is scored again from the cache; new videos cannot be
    from semisup.evaluate.runs import load_model, recipe_tasks
    run_recipe = load_recipe(result.run_dir / "config.toml")
    with pytest.raises(SemisupError, match="trained on cached features"):
        load_model(run_recipe, recipe_tasks(run_recipe), result.run_dir / "checkpoints" / "best.pt")

    # label-next selection works from the cache too, embeddings included
    from semisup.selection.select import select_run
    from semisup.selection.strategies import get_strategy
    chosen = select_run(result.run_dir, 3, get_strategy("mix")(), tmp_path / "select.csv")
    assert len(chosen.ids) == 3 and len((tmp_path / "select.csv").read_text().splitlines()) == 4


def test_a_stale_cache_is_never_used(tiny_recipe, tmp_path, demo_root):
    import shutil

    from semisup.train.run import start_run

    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    path = tiny_recipe(root=root, pretext=False)
    write_features(load_recipe(path, FROZEN), tmp_path / "cache")
    with pytest.raises(SemisupError, match="stale cache: data.image_size is 48 but the cache holds 32"):
        start_run(path, cached(path, tmp_path / "cache", "data.image_size=48"), tmp_path / "r1")
    with pytest.raises(SemisupError, match="stale cache: model.encoder is 'test_convnext'"):
        start_run(path, cached(path, tmp_path / "cache", 'model.encoder="test_convnext"'), tmp_path / "r2")
    frame = next((root / "frames").rglob("*.jpg"))
    frame.write_bytes(frame.read_bytes() + b"\0")  # one frame file changes
    with pytest.raises(SemisupError, match="stale cache: the trailers' frame files changed"):
        start_run(path, cached(path, tmp_path / "cache"), tmp_path / "r3")
    assert not any((tmp_path / name).exists() for name in ("r1", "r2", "r3"))
    # writing it again is refused without --force, then replaces it
    with pytest.raises(SemisupError, match="holds a feature cache of other inputs"):
        write_features(load_recipe(path, FROZEN), tmp_path / "cache")
    assert write_features(load_recipe(path, FROZEN), tmp_path / "cache", force=True)["status"] == "written"


def test_recipes_that_need_pixels_are_refused_with_the_cache(tiny_recipe, tmp_path):
    with pytest.raises(SemisupError, match="pretext task 'sesemi' cannot train from cached features"):
        load_recipe(tiny_recipe(), cached(None, tmp_path))
    with pytest.raises(SemisupError, match="needs a frozen encoder, trainable_stages = 0, got 'all'"):
        load_recipe(tiny_recipe(pretext=False), [f'data.features="{tmp_path}"'])
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(SemisupError, match="exists and is not a feature cache"):
        write_features(load_recipe(tiny_recipe(pretext=False), FROZEN), tmp_path / "stuff", force=True)
    assert (tmp_path / "stuff" / "notes.txt").read_text() == "mine"


def test_the_clip_recipe_asks_for_its_cache_before_anything_else(demo_root, tmp_path):
    from pathlib import Path

    from semisup.train.run import start_run

    clip = Path(__file__).parents[1] / "recipes" / "clip-features.toml"
    recipe = load_recipe(clip, [f"data.root={demo_root}"])
    assert recipe.model.trainable_stages == 0 and recipe.consistency[0].name == "fixmatch"
    with pytest.raises(SemisupError, match="not a feature cache .no key.json.; write one with `semisup features"):
        start_run(clip, [f"data.root={demo_root}", f'data.features="{tmp_path / "none"}"'], tmp_path / "run")
    assert not (tmp_path / "run").exists()


# `semisup features ARGS` as torchrun starts it; with SEMISUP_TEST_FAIL=RANK the process of that
# rank fails as it starts writing its share (after the cache's key and parts exist).
FEATURES_LAUNCHER = '''
import os
import sys
import semisup.features as features
from semisup.errors import SemisupError

if os.environ.get("SEMISUP_TEST_FAIL") == os.environ.get("RANK"):
    def failing(*args, **kwargs):
        raise SemisupError(f"injected failure on process {os.environ['RANK']}")
    features._write_rows = failing

sys.argv = ["semisup", *sys.argv[1:]]
from semisup.cli import main
main()
'''


def launch_features(tmp_path, args: list[str], processes: int, fail: int | None = None):
    import subprocess
    import sys

    launcher = tmp_path / "features_launch.py"
    launcher.write_text(FEATURES_LAUNCHER)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    if fail is not None:
        env["SEMISUP_TEST_FAIL"] = str(fail)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", str(launcher), "features", *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_processes_under_torchrun_each_write_a_part_and_the_cache_reads_as_one(tiny_recipe, tmp_path):
    """Five processes over a dataset they do not divide evenly: five parts of consecutive
    trailers, the same features as one process writes; a failure on one process stops all
    within seconds with its line, and the cache continues with another number of processes."""
    import time

    from semisup.build import open_feature_cache, read_recipe_data

    recipe_path = tiny_recipe(pretext=False)
    recipe = load_recipe(recipe_path, FROZEN)
    write_features(recipe, tmp_path / "one")
    one = np.load(tmp_path / "one" / "features.npy")
    trailers = len(one)
    assert trailers % 5, "the test wants a trailer count five processes do not divide"
    sets = [a for s in [*FROZEN, "run.precision=fp32"] for a in ("--set", s)]

    tic = time.monotonic()
    failed = launch_features(tmp_path, [str(recipe_path), "--out", str(tmp_path / "five"), *sets], 5, fail=1)
    assert time.monotonic() - tic < 90
    assert failed.returncode != 0
    assert "error: injected failure on process 1" in failed.stderr.splitlines()
    assert "exitcode  : 2" in failed.stderr  # as torchrun reports its failed worker, with no worker traceback
    assert not any(line.startswith("[rank") and "Traceback" in line for line in failed.stderr.splitlines())
    key = json.loads((tmp_path / "five" / "key.json").read_text())
    assert not key["complete"] and len(key["parts"]) == 5
    sizes = [b - a for a, b in key["parts"]]
    assert sum(sizes) == trailers and max(sizes) - min(sizes) == 1 and key["parts"][0][0] == 0

    done = launch_features(tmp_path, [str(recipe_path), "--out", str(tmp_path / "five"), *sets], 2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{trailers} trailers" in done.stdout and "5 parts" in done.stdout
    assert done.stdout.count("trailers x") == 1  # rank 0 reports, once
    key = json.loads((tmp_path / "five" / "key.json").read_text())
    assert key["complete"]
    assert sorted(p.name for p in (tmp_path / "five").glob("features*.npy")) == [
        f"features-{i}-of-5.npy" for i in range(5)]

    # read as one, row for row what one process wrote (same seeded weights, fp32)
    samples = read_recipe_data(recipe.data, recipe.tasks).samples
    cache = open_feature_cache(load_recipe(recipe_path, cached(None, tmp_path / "five")), samples)
    assert cache.features.shape == one.shape and (cache.counts == recipe.data.eval_frames).all()
    for row in (0, sizes[0] - 1, sizes[0], trailers - 1):  # first and last rows of parts
        np.testing.assert_allclose(cache.features[row].astype(np.float32), one[row].astype(np.float32),
                                   rtol=2e-2, atol=2e-3)
    picked = np.array([0, 2])
    np.testing.assert_array_equal(cache.features[sizes[0], picked], cache.features[sizes[0]][picked])

    # and a run trains and evaluates from it
    from semisup.train.run import start_run
    result = start_run(recipe_path, [*cached(None, tmp_path / "five"), "train.epochs=1"], tmp_path / "run")
    assert result.report["splits"]["test"]["genres"]["samples"] > 0


def test_a_run_from_the_cache_computes_its_key_once(tiny_recipe, tmp_path, monkeypatch):
    """The key stats every frame file: a run (checks, training, final evaluation) does it once."""
    import semisup.data.cached as cached_module
    from semisup.train.run import start_run

    recipe_path = tiny_recipe(pretext=False)
    write_features(load_recipe(recipe_path, FROZEN), tmp_path / "cache")
    calls = []
    digest = cached_module.frames_digest
    monkeypatch.setattr(cached_module, "frames_digest", lambda samples: calls.append(1) or digest(samples))
    result = start_run(recipe_path, [*cached(None, tmp_path / "cache"), "train.epochs=1"], tmp_path / "run")
    assert (result.run_dir / "report.json").is_file()
    assert len(calls) == 1
