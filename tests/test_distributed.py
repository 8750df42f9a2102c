"""Data-parallel training: two CPU processes under torchrun (gloo) against one process.

The model is timm's tiny ConvNeXt (LayerNorm: no batch statistics) with the
augmentations off, so two processes with 4 trailers each should train the same
model as one process with 8: same samples per step, gradients averaged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semisup.checkpoints import load_checkpoint
from semisup.io import read_metrics

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")

# Runs `semisup ARGS` and saves this process's weights before and after training to
# PARAMS_DIR/rank<R>.pt: the
# test can then compare what every process trained (only rank 0 writes the run's files).
LAUNCHER = '''
import sys
import torch
import semisup.train.loop as loop

params_dir, sys.argv = sys.argv[1], ["semisup", *sys.argv[2:]]
train_stage = loop.train_stage

def weights(model):
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters()}

def train_and_keep(stage, settings, out, *args, **kwargs):
    before = weights(stage.model)
    result = train_stage(stage, settings, out, *args, **kwargs)
    torch.save({"before": before, "after": weights(stage.model)}, f"{params_dir}/rank{settings.process.rank}.pt")
    return result

loop.train_stage = train_and_keep
from semisup.cli import main
main()
'''

DETERMINISTIC = """
[augment]
crop_scale_min = 1.0
rotation = 0.0
hflip = 0.0
"""


def launch(tmp_path: Path, name: str, args: list[str], processes: int) -> tuple[Path, subprocess.CompletedProcess]:
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    params = tmp_path / f"{name}-params"
    params.mkdir()
    prefix = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*prefix, str(launcher), str(params), *args], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return params, done


def saved(path: Path) -> dict:
    """What the launcher saved: ``{"before": weights, "after": weights}`` (tensors only)."""
    return torch.load(path, weights_only=True)


def recipe_args(recipe: Path, out: Path, batch: int, epochs: int = 2) -> list[str]:
    """``semisup run`` arguments: ``batch`` labeled and ``2 * batch`` unlabeled trailers per process."""
    sets = ['model.encoder="test_convnext"', "model.head_dropout=0.0", "run.precision=fp32",
            f"train.labeled_batch_size={batch}", f"train.unlabeled_batch_size={2 * batch}", f"train.epochs={epochs}"]
    return ["run", str(recipe), "--out", str(out), *[a for s in sets for a in ("--set", s)]]


@pytest.mark.slow
def test_two_processes_train_the_model_one_process_trains_with_the_same_global_batch(tiny_recipe, tmp_path):
    recipe = tiny_recipe(extra=DETERMINISTIC)  # supervised + SESEMI, each with its own Adam
    two, launched = launch(tmp_path, "two", recipe_args(recipe, tmp_path / "two", batch=4), processes=2)
    one, _ = launch(tmp_path, "one", recipe_args(recipe, tmp_path / "one", batch=8), processes=1)

    # every process holds the same weights, bit for bit
    rank0, rank1 = saved(two / "rank0.pt")["after"], saved(two / "rank1.pt")["after"]
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)

    # ... and they are what one process with twice the batch trains: the two runs' weights differ
    # by under 1e-4 of how far training moved them (float sums in another order: ~1e-6 measured)
    single = saved(one / "rank0.pt")
    assert all(torch.equal(single["before"][k], v) for k, v in saved(two / "rank0.pt")["before"].items())
    assert gap(single["after"], rank0) < 1e-4 * gap(single["after"], single["before"])

    # only rank 0 wrote: one record per epoch, one TensorBoard file, the same files as one process
    records = read_metrics(tmp_path / "two" / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    assert len(list((tmp_path / "two" / "tensorboard").iterdir())) == 1
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")["world_size"] == 2
    assert launched.stdout.count("run directory:") == 1  # one process reports
    # validation is sharded and gathered: both runs scored every validation trailer alike
    assert records[-1]["val_score"] == pytest.approx(read_metrics(tmp_path / "one" / "metrics.jsonl")[-1]["val_score"],
                                                     abs=0.02)
    # the logged losses are the global batch's (both processes' means averaged), not rank 0's half
    single_records = read_metrics(tmp_path / "one" / "metrics.jsonl")
    for mine, reference in zip(records, single_records):
        assert mine["loss"] == pytest.approx(reference["loss"], rel=1e-3)
        assert mine["pretext"]["sesemi"]["loss"] == pytest.approx(reference["pretext"]["sesemi"]["loss"], rel=1e-3)


@pytest.mark.slow
def test_a_checkpoint_of_two_processes_resumes_in_one(tiny_recipe, tmp_path):
    recipe = tiny_recipe(extra=DETERMINISTIC, pretext=False)
    run = tmp_path / "run"
    launch(tmp_path, "two", recipe_args(recipe, run, batch=4, epochs=1), processes=2)
    # the run is asked for a second epoch, and continued by one process with the same global batch
    config = (run / "config.toml").read_text()
    config = config.replace("epochs = 1\n", "epochs = 2\n", 1).replace("labeled_batch_size = 4", "labeled_batch_size = 8")
    (run / "config.toml").write_text(config)
    (run / "report.json").unlink()
    one, _ = launch(tmp_path, "resumed", ["run", "--resume", str(run)], processes=1)
    assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2]
    assert (run / "report.json").is_file()
    # the same as two epochs in one process from the start
    reference, _ = launch(tmp_path, "reference", recipe_args(recipe, tmp_path / "reference", batch=8), processes=1)
    resumed, single = saved(one / "rank0.pt")["after"], saved(reference / "rank0.pt")
    assert gap(single["after"], resumed) < 1e-4 * gap(single["after"], single["before"])


def gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The distance between two sets of weights."""
    return float(torch.cat([(a[k] - b[k]).flatten() for k in a]).norm())


PRETRAIN_AND_FIXMATCH = """
[pretrain]
epochs = 1
batch_size = 16
frames_per_trailer = 2
projection_hidden = 32
projection_dim = 16
knn_k = 5

[[consistency]]
name = "fixmatch"
threshold = "cap"
teacher = "ema"
frames_per_trailer = 2
"""


@pytest.mark.slow
def test_simclr_and_fixmatch_with_an_ema_teacher_stay_one_model_across_processes(tiny_recipe, tmp_path):
    """SimCLR's negatives are gathered from both processes, FixMatch's CAP thresholds learn from
    both processes' clips, and the EMA teacher follows identical weights: the processes never drift."""
    recipe = tiny_recipe(extra=PRETRAIN_AND_FIXMATCH)
    params, _ = launch(tmp_path, "two", recipe_args(recipe, tmp_path / "run", batch=4, epochs=1), processes=2)
    runs = [saved(params / f"rank{r}.pt")["after"] for r in (0, 1)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    record = read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]
    assert "fixmatch" in record["consistency"] and "sesemi" in record["pretext"]
    assert [r["epoch"] for r in read_metrics(tmp_path / "run" / "pretrain" / "metrics.jsonl")] == [0, 1]
    assert (tmp_path / "run" / "pretrain" / "encoder.pt").is_file() and (tmp_path / "run" / "report.json").is_file()


def test_sync_batchnorm_on_cpu_processes_is_refused_in_one_line(tiny_recipe, tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "semisup", "run", str(tiny_recipe()), "--out", str(tmp_path / "run"),
                "--set", "run.sync_batchnorm=true", "--set", 'run.device="cpu"']
    done = subprocess.run(launcher, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0
    assert "error: run.sync_batchnorm: synchronised BatchNorm needs CUDA devices" in done.stderr
    assert "Traceback" not in done.stderr.split("error: run.sync_batchnorm")[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_checkpoint_of_two_processes_resumes_exactly_in_two(tiny_recipe, tmp_path):
    """With random augmentation on: each process gets its own random state back from last.pt."""
    recipe = tiny_recipe()  # SESEMI and random crops, rotations and flips
    constant = ["--set", 'optim.schedule="constant"']  # one epoch then another = two epochs
    run = tmp_path / "run"
    launch(tmp_path, "first", recipe_args(recipe, run, batch=4, epochs=1) + constant, processes=2)
    config = (run / "config.toml").read_text()
    (run / "config.toml").write_text(config.replace("epochs = 1\n", "epochs = 2\n", 1))
    (run / "report.json").unlink()
    resumed, _ = launch(tmp_path, "resumed", ["run", "--resume", str(run)], processes=2)
    whole, _ = launch(tmp_path, "whole", recipe_args(recipe, tmp_path / "whole", batch=4) + constant, processes=2)
    a, b = saved(resumed / "rank0.pt")["after"], saved(whole / "rank0.pt")["after"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_metrics(run / "metrics.jsonl")[-1]["loss"] == read_metrics(tmp_path / "whole" / "metrics.jsonl")[-1]["loss"]
