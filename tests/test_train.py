"""End-to-end training on the tiny demo: run directory, determinism, optimiser modes, resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from semisup.config import load_recipe
from semisup.evaluate.predictions import Predictions
from semisup.checkpoints import load_checkpoint
from semisup.io import read_metrics
from semisup.train.run import resume_run, start_run
from semisup.build import build_model, load_data
from semisup.train.setup import build_objectives, build_optimizers, build_streams

from conftest import MACHINE_FIELDS, run_cli

pytestmark = pytest.mark.slow


def epoch_records(run_dir):
    """metrics.jsonl without the fields that measure the machine (speed, time, memory)."""
    return [{k: v for k, v in r.items() if k not in MACHINE_FIELDS} for r in read_metrics(run_dir / "metrics.jsonl")]


def test_cli_run_writes_the_whole_run_directory(tiny_recipe, tmp_path):
    result = run_cli("run", str(tiny_recipe()), "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    for name in ("config.toml", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt",
                 "predictions/val.npz", "predictions/test.npz", "report.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    records = read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"loss", "pretext", "val", "images_per_s", "peak_memory_mb", "lr", "corrupt_frames"} <= set(records[0])
    assert records[0]["peak_memory_mb"] > 100  # the process's peak resident set: torch alone is more
    assert 0 <= records[0]["pretext"]["sesemi"]["accuracy"] <= 1
    report = json.loads((run / "report.json").read_text())
    test = report["splits"]["test"]["genres"]
    assert 0 < test["mAP"] <= 1 and test["samples"] == 20
    assert set(test["rules"]) == {"top-1", "top-2", "top-3", "top-4", "top-5", "round"}
    # the printed table
    assert "test: genres" in result.stdout and "top-3" in result.stdout and "round" in result.stdout
    predictions = Predictions.load(run / "predictions" / "test.npz")
    assert predictions.scores["genres"].shape == (20, len(predictions.labels["genres"]))
    assert ((predictions.scores["genres"] >= 0) & (predictions.scores["genres"] <= 1)).all()
    # the resolved recipe holds the vocabulary and repeats the run
    config = load_recipe(run / "config.toml")
    assert config.tasks[0].labels == predictions.labels["genres"]
    again = run_cli("run", str(run / "config.toml"), "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert epoch_records(tmp_path / "again") == epoch_records(run)


def test_identical_runs_give_identical_results(tiny_recipe, tmp_path):
    recipe = tiny_recipe(extra="")
    first = start_run(recipe, [], tmp_path / "a")
    second = start_run(recipe, [], tmp_path / "b")
    assert epoch_records(first.run_dir) == epoch_records(second.run_dir)
    a = Predictions.load(first.run_dir / "predictions" / "test.npz")
    b = Predictions.load(second.run_dir / "predictions" / "test.npz")
    np.testing.assert_array_equal(a.scores["genres"], b.scores["genres"])
    third = start_run(recipe, ["run.seed=1"], tmp_path / "c")
    assert epoch_records(third.run_dir) != epoch_records(first.run_dir)


# A tiny SESEMI run's epoch losses in fp32 (supervised ASL, SESEMI cross-entropy), pinned on 2026-12-01
# before the loop became a loop over objectives (issue 11): restructuring must not change what it computes.
# Another CPU's kernels sum in another order: on 2026-12-03 a machine of the same kind gave epoch 2's
# supervised loss 1.0101101 (2.3e-4 off), the landed code and the restructured one alike; a real change
# of the computation moves these by far more than 1e-3.
PINNED_LOSSES = [1.0819342, 1.8111089, 1.0103441, 1.8014491]  # epoch 1 (supervised, sesemi), epoch 2


def test_a_tiny_sesemi_run_computes_the_pinned_losses(tiny_recipe, tmp_path):
    run = start_run(tiny_recipe(), ["run.precision=fp32"], tmp_path / "run")
    losses = [x for r in epoch_records(run.run_dir) for x in (r["loss"], r["pretext"]["sesemi"]["loss"])]
    assert losses == pytest.approx(PINNED_LOSSES, rel=1e-3)


def test_a_compiled_encoder_computes_the_same_run_and_plain_checkpoints(tiny_recipe, tmp_path):
    # torch.compile's "eager" backend captures the graphs (what breaks them would fail here) and runs
    # them with the same kernels: the pinned losses hold; compiling in place keeps the state_dict keys
    run = start_run(tiny_recipe(), ["run.precision=fp32", "run.compile=eager"], tmp_path / "run")
    losses = [x for r in epoch_records(run.run_dir) for x in (r["loss"], r["pretext"]["sesemi"]["loss"])]
    assert losses == pytest.approx(PINNED_LOSSES, rel=1e-3)
    keys = load_checkpoint(run.run_dir / "checkpoints" / "best.pt")["model"].keys()
    assert "encoder.model.conv1.0.weight" in keys and not any("_orig_mod" in k for k in keys)


def test_separate_mode_steps_each_optimiser_on_its_own_loss(tiny_recipe, demo_root):
    recipe = load_recipe(tiny_recipe())
    dataset = load_data(recipe.data, recipe.tasks, needs_unlabeled=True)
    specs = dataset.tasks
    model = build_model(recipe, specs)
    optimizers = build_optimizers(recipe, build_objectives(recipe, dataset.samples, specs), model)
    assert set(optimizers) == {"supervised", "pretext/sesemi"}
    ids = lambda opt: {id(p) for g in opt.param_groups for p in g["params"]}  # noqa: E731
    sup, pre = ids(optimizers["supervised"]), ids(optimizers["pretext/sesemi"])
    encoder = {id(p) for p in model.encoder.trainable_parameters()}
    assert encoder <= sup and encoder <= pre  # both update the shared encoder ...
    assert {id(p) for p in model.heads.parameters()} <= sup - pre  # ... each its own head only
    assert {id(p) for p in model.pretext.parameters()} <= pre - sup
    joint_recipe = load_recipe(tiny_recipe(), ["optim.mode=joint", "pretext.lr=0.01"])
    joint = build_optimizers(joint_recipe, build_objectives(joint_recipe, dataset.samples, specs), model)
    assert set(joint) == {"joint"}
    assert ids(joint["joint"]) == sup | pre
    assert [g["lr"] for g in joint["joint"].param_groups] == [1e-3, 0.01]
    fixmatch = load_recipe(tiny_recipe(extra=FIXMATCH_EMA, name="fm.toml"))
    objectives = build_objectives(fixmatch, dataset.samples, specs)
    assert [o.objective_name for o in objectives] == ["supervised", "consistency/fixmatch", "pretext/sesemi"]
    assert set(build_optimizers(fixmatch, objectives, model)) == {"supervised", "pretext/sesemi"}  # L_s + w L_u
    own = load_recipe(tiny_recipe(extra=FIXMATCH_EMA + "own_optimizer = true\n", name="own.toml"))
    assert set(build_optimizers(own, build_objectives(own, dataset.samples, specs), model)) == {
        "supervised", "consistency/fixmatch", "pretext/sesemi"}


def test_epochs_over_the_labeled_stream_cycle_the_unlabeled_one(tiny_recipe):
    """``epoch_over = "labeled"``: an epoch is one labeled pass, as in a supervised run, and the
    unlabeled batches run on across epochs, each pass over the pool a fresh permutation; a
    resumed run reads the same batches."""
    two = ["train.labeled_batch_size=2"]  # a few labeled steps per epoch
    recipe = load_recipe(tiny_recipe(extra=FIXMATCH_EMA, name="fm.toml"), ["train.epoch_over=labeled"] + two)
    dataset = load_data(recipe.data, recipe.tasks, needs_unlabeled=True)
    streams = build_streams(recipe, dataset.samples, dataset.tasks)
    supervised = build_streams(load_recipe(tiny_recipe(pretext=False), two), dataset.samples, dataset.tasks)
    by_pool = build_streams(load_recipe(tiny_recipe(extra=FIXMATCH_EMA, name="fm2.toml")), dataset.samples,
                            dataset.tasks)
    assert streams.steps_per_epoch == supervised.steps_per_epoch == len(streams.labeled_sampler.epochs)
    assert by_pool.steps_per_epoch == len(by_pool.unlabeled_sampler) != streams.steps_per_epoch
    pool, per_pass = len(streams.unlabeled.dataset), len(by_pool.unlabeled_sampler)

    def epoch(s, number, start=0):  # the unlabeled trailers of each step of one epoch
        return [batch.indices.tolist() for batch in s.unlabeled_epoch(number, start)]

    epochs = [epoch(streams, e) for e in range(2 * per_pass // streams.steps_per_epoch + 1)]
    assert all(len(e) == streams.steps_per_epoch for e in epochs)
    draws = [batch for e in epochs for batch in e]
    assert len(draws) >= 2 * per_pass  # two passes over the pool and more
    first_pass = [i for batch in draws[:per_pass] for i in batch]
    assert len(set(first_pass)) == len(first_pass) == per_pass * recipe.train.unlabeled_batch_size <= pool
    assert draws[per_pass:2 * per_pass] != draws[:per_pass]  # the next pass is another permutation
    resumed = build_streams(recipe, dataset.samples, dataset.tasks)
    assert epoch(resumed, 1, 1) == epochs[1][1:] and epoch(resumed, 2) == epochs[2]


def test_a_pretext_step_does_not_touch_the_task_heads(tiny_recipe):
    """One separate-mode step each: the pretext optimiser moves the encoder but no task head."""
    recipe = load_recipe(tiny_recipe(), ["optim.lr=0.01"])
    dataset = load_data(recipe.data, recipe.tasks, needs_unlabeled=True)
    specs = dataset.tasks
    torch.manual_seed(0)
    model = build_model(recipe, specs)
    optimizers = build_optimizers(recipe, build_objectives(recipe, dataset.samples, specs), model)
    heads = [p.detach().clone() for p in model.heads.parameters()]
    encoder = [p.detach().clone() for p in model.encoder.parameters()]
    out = model.pretext["sesemi"](torch.randn(2, 2, 3, 32, 32), model.encoder)
    optimizers["pretext/sesemi"].zero_grad()
    out.loss.backward()
    optimizers["pretext/sesemi"].step()
    assert all(torch.equal(a, b) for a, b in zip(heads, model.heads.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(encoder, model.encoder.parameters()))


def test_joint_mode_and_supervised_only_runs(tiny_recipe, tmp_path):
    joint = start_run(tiny_recipe(), ["optim.mode=joint", "pretext.transforms=all", "pretext.weight=0.5"],
                      tmp_path / "joint")
    assert joint.report["splits"]["test"]["genres"]["mAP"] > 0
    state = load_checkpoint(joint.run_dir / "checkpoints" / "last.pt")
    assert set(state["optimizers"]) == {"joint"}
    supervised = start_run(tiny_recipe(pretext=False), [], tmp_path / "sup")
    records = read_metrics(supervised.run_dir / "metrics.jsonl")
    assert "pretext" not in records[0] and "consistency" not in records[0] and len(records) == 2


def test_corrupt_frames_are_skipped_and_counted(tiny_recipe, demo_root, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    victims = sorted((root / "frames").glob("demo-000*/000.jpg"))[:3]
    for path in victims:
        path.write_bytes(path.read_bytes()[:200])  # truncated JPEG
    result = start_run(tiny_recipe(root=root), ["data.max_frames=20", "data.eval_frames=20"], tmp_path / "run")
    records = read_metrics(result.run_dir / "metrics.jsonl")
    assert records[-1]["corrupt_frames"] >= 1
    assert result.report["splits"]["test"]["genres"]["mAP"] > 0


def _wait_for(predicate, timeout=300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


FIXMATCH_EMA = """
[[consistency]]
name = "fixmatch"
threshold = "cap"
teacher = "ema"
frames_per_trailer = 2
warmup_epochs = 0.5
"""


@pytest.mark.parametrize("every_step, consistency, sets", [
    (False, "", []), (True, "", []),
    (True, FIXMATCH_EMA, ["train.epoch_over=labeled", "train.labeled_batch_size=2"])],  # 2+ labeled steps per epoch
    ids=["epoch-checkpoint", "mid-epoch-checkpoint", "mid-epoch-fixmatch-ema-cycling-unlabeled"])
def test_sigkill_during_second_epoch_then_resume(tiny_recipe, tmp_path, every_step, consistency, sets):
    """A killed run resumes and ends exactly where an uninterrupted run does (with FixMatch
    too: its thresholds' memory and the EMA teacher are in last.pt; and with epochs over the
    labeled stream, the unlabeled one cycling)."""
    extra = "\n[optim]\nlr = 0.002\n" + consistency
    sets = ["train.epochs=3"] + sets + (["train.checkpoint_minutes=0.00001"] if every_step else [])
    reference = start_run(tiny_recipe(extra=extra), sets, tmp_path / "reference")

    run = tmp_path / "killed"
    args = [sys.executable, "-m", "semisup.cli", "run", str(tiny_recipe(extra=extra, name="r2.toml")),
            "--out", str(run)] + [a for s in sets for a in ("--set", s)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def reached(epoch, batch):
        def check():
            try:
                position = load_checkpoint(run / "checkpoints" / "last.pt")["state"]
            except Exception:
                return False
            return position["epoch"] == epoch and position["batch"] >= batch
        return check

    # killed during the second epoch: after the end-of-epoch-1 checkpoint, or after one inside epoch 2
    assert _wait_for(reached(1, 1 if every_step else 0))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "report.json").exists()
    position = load_checkpoint(run / "checkpoints" / "last.pt")["state"]
    assert position["epoch"] == 1 and (position["batch"] >= 1) == every_step

    resumed = run_cli("run", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "report.json").is_file()
    assert epoch_records(run) == epoch_records(reference.run_dir)
    a = Predictions.load(run / "predictions" / "test.npz")
    b = Predictions.load(reference.run_dir / "predictions" / "test.npz")
    np.testing.assert_array_equal(a.scores["genres"], b.scores["genres"])


def test_resume_of_a_finished_or_foreign_folder(tiny_recipe, tmp_path):
    from semisup.errors import SemisupError

    with pytest.raises(SemisupError, match="not a run directory"):
        resume_run(tmp_path)
    first = start_run(tiny_recipe(), ["train.epochs=1"], tmp_path / "run")
    with pytest.raises(SemisupError, match="already exists and is a run directory"):
        start_run(tiny_recipe(), [], tmp_path / "run")
    again = resume_run(first.run_dir)  # nothing left to train: evaluates again
    assert again.report["splits"]["test"] == first.report["splits"]["test"]


def test_training_with_a_pretext_task_from_a_module_path(tiny_recipe, tmp_path, monkeypatch):
    package = tmp_path / "plugins"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mirror.py").write_text(
        "import torch\n"
        "from semisup.pretext import PretextTask\n\n"
        "class Mirror(PretextTask):\n"
        "    num_classes = 2\n\n"
        "    def forward(self, frames, encode):\n"
        "        x = frames.flatten(0, 1)\n"
        "        target = torch.randint(0, 2, (x.shape[0],), device=x.device)\n"
        "        x = torch.where(target.view(-1, 1, 1, 1) == 1, x.flip(3), x)\n"
        "        return self.classify(encode(x), target)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = start_run(tiny_recipe(), ['pretext.name="plugins.mirror:Mirror"', "train.epochs=1"], tmp_path / "run")
    records = read_metrics(result.run_dir / "metrics.jsonl")
    assert set(records[0]["pretext"]) == {"plugins_mirror:Mirror"}
    assert 0 <= records[0]["pretext"]["plugins_mirror:Mirror"]["accuracy"] <= 1


def test_a_run_that_fails_in_setup_does_not_block_the_retry(tiny_recipe, tmp_path):
    """Weights that do not load, a device that is not there, a run killed before its first
    checkpoint: the run directory never trained and must not stand in the way (issue 9, case 5)."""
    from semisup.errors import SemisupError

    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"not a state dict")
    out = tmp_path / "run"
    with pytest.raises(SemisupError, match="weights.pth: not a readable weights file"):
        start_run(tiny_recipe(), [f'model.pretrained="{weights}"'], out)
    assert not out.exists()
    with pytest.raises(SemisupError, match="CUDA is not available"):
        start_run(tiny_recipe(), ['run.device="cuda"'], out)
    assert not out.exists()
    # killed during setup (nothing could clean up): only the setup files are there
    out.mkdir()
    (out / "config.toml").write_text("[run]\n")
    (out / "stage.json").write_text('{"stage": "all", "from": null}')
    (out / "tensorboard").mkdir()
    result = start_run(tiny_recipe(), ["train.epochs=1"], out)
    assert (out / "checkpoints" / "best.pt").is_file() and result.report["splits"]["test"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(SemisupError, match="file: is a file, expected a run directory"):
        start_run(tiny_recipe(), [], tmp_path / "file")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(SemisupError, match="mine: already exists and is not empty"):
        start_run(tiny_recipe(), [], mine)
    assert (mine / "notes.txt").read_text() == "mine"


def test_resume_removes_the_temporary_files_of_a_killed_checkpoint_write(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    stale = [run / "checkpoints" / ".best.pt.k2j4_x9a", run / "checkpoints" / ".last.pt.ab12cd34.partial",
             run / ".report.json.zz9yy8xx.partial"]
    for path in stale:
        path.write_bytes(b"\0" * 1024)
    resume_run(run)
    assert not any(path.exists() for path in stale)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


def test_run_files_have_the_usual_modes(trained_run):
    """Not the 0600 of a bare temporary file (issue 9, case 11)."""
    import stat

    from semisup.io import new_file_mode

    for name in ("config.toml", "stage.json", "report.json", "checkpoints/best.pt", "checkpoints/last.pt",
                 "predictions/test.npz"):
        assert stat.S_IMODE((trained_run / name).stat().st_mode) == new_file_mode(), name
