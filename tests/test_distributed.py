"""Data-parallel training: two CPU processes under torchrun (gloo) against one process.

The model is timm's tiny ConvNeXt (LayerNorm: no batch statistics) with the
augmentations off, so two processes with 4 trailers each should train the same
model as one process with 8: same samples per step, gradients averaged.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from semisup.checkpoints import load_checkpoint
from semisup.io import read_metrics
from conftest import run_cli

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")

# Runs `semisup ARGS` and saves this process's weights before and after training to
# PARAMS_DIR/rank<R>.pt: the test can then compare what every process trained (only rank 0 writes
# the run's files). It also leaves its process id in PARAMS_DIR/pid<R>, and with
# SEMISUP_TEST_FAIL="WHERE:RANK:STEP" raises on process RANK at its STEP-th (1-based) call of WHERE:
# "load" (reading a step's batches, where the processes agree) or "forward" (the supervised loss,
# in the middle of a step: no agreement there).
LAUNCHER = '''
import os
import sys
import torch
import semisup.train.loop as loop
import semisup.train.engine as engine
import semisup.objectives.supervised as supervised
from semisup.errors import SemisupError

params_dir, sys.argv = sys.argv[1], ["semisup", *sys.argv[2:]]
rank = int(os.environ.get("RANK", "0"))
open(f"{params_dir}/pid{rank}", "w").write(str(os.getpid()))
train_stage = loop.train_stage

def weights(model):  # whole tensors, also of FSDP shards (every process gathers them)
    return {name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().cpu().clone()
            for name, p in model.named_parameters()}

def train_and_keep(stage, settings, out, *args, **kwargs):
    before = weights(stage.model)
    result = train_stage(stage, settings, out, *args, **kwargs)
    torch.save({"before": before, "after": weights(stage.model)}, f"{params_dir}/rank{settings.process.rank}.pt")
    return result

loop.train_stage = train_and_keep

if os.environ.get("SEMISUP_TEST_FAIL"):
    where, fail_rank, fail_step = os.environ["SEMISUP_TEST_FAIL"].split(":")
    calls = [0]

    def failing(function):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if rank == int(fail_rank) and calls[0] == int(fail_step):
                raise SemisupError(f"injected failure in {where} on process {rank}")
            return function(*args, **kwargs)
        return wrapper

    if where == "load":
        engine.load_step = failing(engine.load_step)
    else:
        supervised.Supervised.forward = failing(supervised.Supervised.forward)

from semisup.cli import main
main()
'''

DETERMINISTIC = """
[augment]
crop_scale_min = 1.0
rotation = 0.0
hflip = 0.0
"""


def launch(tmp_path: Path, name: str, args: list[str], processes: int, check: bool = True,
           env: dict[str, str] | None = None, torchrun: bool | None = None) -> tuple[Path, subprocess.CompletedProcess]:
    """Run the launcher alone (``processes=1``) or under ``torchrun --standalone`` (also one
    process with ``torchrun=True``)."""
    params = tmp_path / f"{name}-params"
    params.mkdir()
    prefix = [sys.executable] if not (torchrun or processes > 1) else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    done = subprocess.run([*prefix, str(launcher(tmp_path)), str(params), *args], capture_output=True, text=True,
                          env={**ENV, **(env or {})}, timeout=600)
    assert not check or done.returncode == 0, done.stderr[-3000:]
    return params, done


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def launcher(tmp_path: Path) -> Path:
    path = tmp_path / "launch.py"
    path.write_text(LAUNCHER)
    return path


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
def test_simclr_and_fixmatch_with_an_ema_teacher_stay_one_model_across_processes(tiny_recipe, uneven_labels,
                                                                                  tmp_path):
    """SimCLR's negatives are gathered from both processes, FixMatch's CAP thresholds learn from
    both processes' clips, and the EMA teacher follows identical weights: the processes never drift."""
    recipe = tiny_recipe(extra=PRETRAIN_AND_FIXMATCH, labels_file=uneven_labels)
    # pretraining: 15 unlabeled trailers, 7 per process, fewer than its 8 clips a step
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
def test_a_process_killed_mid_run_stops_the_others_and_the_run_resumes_exactly(tiny_recipe, tmp_path):
    """SIGKILL on rank 1 in the middle of an epoch: torchrun stops rank 0 within seconds, and
    `run --resume` in two processes ends bit for bit where an uninterrupted run ends (random
    augmentation on: each process gets its own random state back from last.pt)."""
    recipe = tiny_recipe()  # SESEMI and random crops, rotations and flips
    every_step = ["--set", "train.checkpoint_minutes=0.0001"]  # last.pt after every step
    run, params = tmp_path / "run", tmp_path / "killed-params"
    params.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(launcher(tmp_path)), str(params), *recipe_args(recipe, run, batch=4), *every_step]
    with subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as killed:
        deadline = time.monotonic() + 300
        while not (run / "checkpoints" / "last.pt").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int((params / "pid1").read_text()), signal.SIGKILL)
        tic = time.monotonic()
        _, stderr = killed.communicate(timeout=120)
    assert killed.returncode != 0 and time.monotonic() - tic < 30, stderr[-2000:]
    assert not (run / "report.json").exists()  # it did not finish
    stopped_at = load_checkpoint(run / "checkpoints" / "last.pt")["state"]
    resumed, _ = launch(tmp_path, "resumed", ["run", "--resume", str(run)], processes=2)
    whole, _ = launch(tmp_path, "whole", recipe_args(recipe, tmp_path / "whole", batch=4) + every_step, processes=2)
    a, b = saved(resumed / "rank0.pt")["after"], saved(whole / "rank0.pt")["after"]
    assert all(torch.equal(a[k], b[k]) for k in a), f"resumed from {stopped_at}"
    assert ([r["loss"] for r in read_metrics(run / "metrics.jsonl")]
            == [r["loss"] for r in read_metrics(tmp_path / "whole" / "metrics.jsonl")])


@pytest.fixture(scope="module")
def uneven_labels(demo_root: Path) -> str:
    """A labels file of the tiny demo whose splits divide unevenly between two processes: 5 labeled
    train trailers (2 per process: fewer than a batch), 7 val, 9 test and 15 unlabeled (shares of 8
    and 7 by striding, which with batches of 4 were 2 and 1 steps: the hang issue 21 found)."""
    header, *rows = (demo_root / "labels.csv").read_text().splitlines()
    wanted = {"train": 5, "val": 7, "test": 9, "unlabeled": 15}
    kept = [header]
    for row in rows:
        split = row.split(",")[1]
        if wanted.get(split, 0):
            wanted[split] -= 1
            kept.append(row)
    assert not any(wanted.values())
    (demo_root / "labels-uneven.csv").write_text("\n".join(kept) + "\n")
    return "labels-uneven.csv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_agents(tmp_path: Path, name: str, args: list[str]) -> Path:
    """The launcher as a two-node job: two torchrun agents of one process each, c10d rendezvous
    on 127.0.0.1 (what two machines run, each naming the first)."""
    params = tmp_path / f"{name}-params"
    params.mkdir()
    agent = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
             "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", f"--rdzv-id={name}",
             str(launcher(tmp_path)), str(params), *args]
    agents = [subprocess.Popen(agent, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    for process in agents:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
    return params


@pytest.mark.slow
def test_uneven_shares_train_what_one_process_trains_and_two_agents_equal_one(tiny_recipe, uneven_labels, tmp_path):
    recipe = tiny_recipe(extra=DETERMINISTIC, labels_file=uneven_labels)
    # per process: 2 labeled and 4 unlabeled trailers a step (one process: 4 and 8)
    two, _ = launch(tmp_path, "two", recipe_args(recipe, tmp_path / "two", batch=2), processes=2)
    one, _ = launch(tmp_path, "one", recipe_args(recipe, tmp_path / "one", batch=4), processes=1)
    agents = two_agents(tmp_path, "agents", recipe_args(recipe, tmp_path / "agents", batch=2))

    rank0, rank1 = saved(two / "rank0.pt")["after"], saved(two / "rank1.pt")["after"]
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # one model on every process
    single = saved(one / "rank0.pt")
    assert gap(single["after"], rank0) < 1e-4 * gap(single["after"], single["before"])  # = one process
    for rank in (0, 1):  # two machines of one process are two processes of one machine, bit for bit
        assert all(torch.equal(rank0[k], v) for k, v in saved(agents / f"rank{rank}.pt")["after"].items())
    # FSDP2 (run.parallel = "fsdp": the encoder's blocks and the rest sharded between the two processes;
    # here two optimisers share the encoder) trains exactly what DDP trains
    fsdp, _ = launch(tmp_path, "fsdp", recipe_args(recipe, tmp_path / "fsdp", batch=2)
                     + ["--set", 'run.parallel="fsdp"'], processes=2)
    assert all(torch.equal(rank0[k], v) for k, v in saved(fsdp / "rank0.pt")["after"].items())

    # every validation trailer scored exactly once in the sharded validation (4 + 3), every test one
    for run in ("two", "agents", "one", "fsdp"):
        records = read_metrics(tmp_path / run / "metrics.jsonl")
        assert [r["val_samples"] for r in records] == [7, 7]
        report = json.loads((tmp_path / run / "report.json").read_text())
        assert report["splits"]["test"]["genres"]["samples"] == 9
    assert (read_metrics(tmp_path / "two" / "metrics.jsonl")[-1]["val_score"]
            == pytest.approx(read_metrics(tmp_path / "one" / "metrics.jsonl")[-1]["val_score"], abs=1e-4))


@pytest.mark.slow
@pytest.mark.parametrize("where", ["load", "forward"])
def test_a_failure_on_one_process_stops_every_process_with_its_message(tiny_recipe, tmp_path, where):
    """"load": the step's agreement tells rank 0, which stops with rank 1's message; "forward": in the
    middle of a step, rank 1 exits and rank 0 loses it (or torchrun stops it). Never a wait for the
    backend's 30-minute timeout."""
    tic = time.monotonic()
    _, done = launch(tmp_path, "failing", recipe_args(tiny_recipe(), tmp_path / "run", batch=4), processes=2,
                     check=False, env={"SEMISUP_TEST_FAIL": f"{where}:1:3"})
    assert time.monotonic() - tic < 60
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert f"error: injected failure in {where} on process 1" in lines  # rank 1's own line
    assert "exitcode  : 2" in done.stderr  # as torchrun reports its workers
    assert not any(line.startswith("[rank") and "Traceback" in line for line in lines)  # no worker traceback
    if where == "load":  # both stopped at the agreement; rank 0 repeats why
        assert "error: process 1 of 2 failed: injected failure in load on process 1" in lines


@pytest.mark.slow
def test_one_process_under_torchrun_trains_through_ddp_exactly_what_a_plain_process_trains(tiny_recipe, tmp_path):
    recipe = tiny_recipe(extra=DETERMINISTIC)
    plain, _ = launch(tmp_path, "plain", recipe_args(recipe, tmp_path / "plain", batch=4, epochs=1), processes=1)
    ddp, _ = launch(tmp_path, "ddp", recipe_args(recipe, tmp_path / "ddp", batch=4, epochs=1), processes=1,
                    torchrun=True)
    a, b = saved(plain / "rank0.pt")["after"], saved(ddp / "rank0.pt")["after"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_fsdp_checkpoints_are_shards_that_another_process_count_resumes(tiny_recipe, uneven_labels, tmp_path):
    """run.parallel = "fsdp" (FSDP2 over gloo; that it trains what DDP trains is in the uneven-shares
    test): validation sees the whole model, best.pt is whole, last.pt names a folder of shards,
    and one plain process continues them as if it had trained from the start (no pretext task:
    nothing random is drawn, so the continuation is comparable)."""
    recipe = tiny_recipe(extra=DETERMINISTIC, labels_file=uneven_labels, pretext=False)
    run = tmp_path / "fsdp"
    constant = ["--set", 'optim.schedule="constant"']  # two epochs then one more = three epochs
    launch(tmp_path, "fsdp", recipe_args(recipe, run, batch=2) + constant + ["--set", 'run.parallel="fsdp"'],
           processes=2)
    assert [r["val_samples"] for r in read_metrics(run / "metrics.jsonl")] == [7, 7]
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert "model" not in last and (run / "checkpoints" / last["sharded"]).is_dir()
    assert [p.name for p in (run / "checkpoints").glob("*.dcp")] == [last["sharded"]]  # older folders removed
    best = load_checkpoint(run / "checkpoints" / "best.pt")["model"]  # whole tensors, as DDP's
    assert all(type(v) is torch.Tensor for v in best.values()) and "encoder.model.stem.0.weight" in best

    # the two processes' shards, continued by one plain process for a third epoch with the same global batch
    config = (run / "config.toml").read_text()
    (run / "config.toml").write_text(config.replace("epochs = 2\n", "epochs = 3\n", 1)
                                     .replace("labeled_batch_size = 2", "labeled_batch_size = 4"))
    (run / "report.json").unlink()
    shards = run / "checkpoints" / last["sharded"]
    shards.rename(shards.with_name("elsewhere"))  # lost shards: one line, nothing trained
    _, lost = launch(tmp_path, "lost", ["run", "--resume", str(run)], processes=1, check=False)
    assert lost.returncode == 2 and "Traceback" not in lost.stderr
    assert lost.stderr.strip().splitlines() == [f"error: {shards}: the shards last.pt names are missing; the run "
                                                "cannot resume from them"]
    shards.with_name("elsewhere").rename(shards)
    one, _ = launch(tmp_path, "resumed", ["run", "--resume", str(run)], processes=1)
    assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]
    assert (run / "report.json").is_file()
    reference, _ = launch(tmp_path, "reference", recipe_args(recipe, tmp_path / "reference", batch=4, epochs=3)
                          + constant, processes=1)
    resumed, single = saved(one / "rank0.pt")["after"], saved(reference / "rank0.pt")
    assert gap(single["after"], resumed) < 1e-4 * gap(single["after"], single["before"])


def test_fsdp_with_an_ema_teacher_is_refused_in_one_line(tiny_recipe, tmp_path):
    recipe = tiny_recipe(extra="\n[ema]\ndecay = 0.99\n")
    done = run_cli("run", str(recipe), "--out", str(tmp_path / "run"), "--set", 'run.parallel="fsdp"')
    assert done.returncode == 2
    assert done.stderr.strip() == ('error: run.parallel = "fsdp": an EMA teacher ([ema]) is not supported with '
                                   'sharded weights yet; use run.parallel = "ddp"')
    assert not (tmp_path / "run").exists()


AGREEMENT = '''
import sys
import torch
from semisup import distributed
from semisup.errors import SemisupError

process, device = distributed.join(torch.device("cpu"))
rank = process.rank
with open(f"{sys.argv[1]}/out{rank}", "w") as out:
    print("flags", distributed.agree([True, rank == 0, False], None, device), file=out)
    try:
        distributed.check_same({"training data": "abc", "steps per epoch": 10 + rank})
    except SemisupError as exc:
        print("refused", exc, file=out)
distributed.leave()
'''


def test_the_processes_and_their_flags_and_stop_when_they_disagree_on_the_steps(tmp_path):
    script = tmp_path / "agreement.py"
    script.write_text(AGREEMENT)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path)], capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for rank in (0, 1):  # each process: true only where true on every process; the same refusal
        assert (tmp_path / f"out{rank}").read_text().splitlines() == [
            "flags [True, False, False]",
            "refused the 2 processes disagree on steps per epoch: process 0 has 10, process 1 has 11 "
            "(every process must read the same data with the same recipe)"]


def test_a_process_with_no_trailer_of_a_small_split_scores_none_and_the_gather_counts_each_once():
    """Validation with fewer trailers than processes: some process's share is empty."""
    from semisup.build import build_eval_loader
    from semisup.data.samples import Sample, TaskSpec
    from semisup.evaluate.inference import predict

    spec = TaskSpec("genres", ("Action", "Drama"))
    val = [Sample("only", labels={"genres": ("Drama",)}, split="val")]
    shares = [val[rank::2] for rank in range(2)]
    assert shares[1] == []
    loader = build_eval_loader(shares[1], [spec], image_size=32, eval_frames=4, batch_size=8, num_workers=0)
    assert list(loader) == []
    nothing = predict(torch.nn.Identity(), loader, torch.nn.Identity(), [spec], torch.device("cpu"))
    assert nothing.ids == [] and nothing.scores["genres"].shape == (0, 2)
