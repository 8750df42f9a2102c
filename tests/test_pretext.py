"""The pretext-task API: contract tests over every task, targets of each built-in, plug-ins, several tasks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from semisup.config import load_recipe
from semisup.errors import SemisupError
from semisup.pretext import get_pretext_task, pretext_catalogue, pretext_tasks
from semisup.pretext.jigsaw import Jigsaw, permutation_set, shuffle_tiles
from semisup.pretext.sesemi import Rotation
from semisup.pretext.temporal import ArrowOfTime, FrameOrder
from semisup.io import read_metrics
from semisup.train.run import start_run
from test_cli import assert_one_line_error

EXAMPLE = Path(__file__).parents[1] / "examples" / "pretext_plugin"


def flat_encode(x):
    return x.flatten(1)[:, :12].float()


@pytest.mark.parametrize("name", sorted(pretext_tasks()))
def test_every_registered_task_keeps_the_contract(name):
    cls = pretext_tasks()[name]
    frames = max(3, cls.min_frames)
    task = cls(cls.Options(), feature_dim=12, head_hidden=8, frames=frames)
    assert task.head[-1].out_features == task.output_size() >= 2
    assert (cls.__doc__ or "").strip(), "a one-line description for `semisup pretext list`"
    clips = torch.randn(4, frames, 3, 8, 8, requires_grad=True)
    out = task(clips, flat_encode)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and 0 <= out.accuracy.item() <= 1
    out.loss.backward()
    assert clips.grad is not None and task.head[0].weight.grad is not None
    with pytest.raises(ValueError, match="needs at least"):
        if cls.min_frames > 1:
            cls(cls.Options(), feature_dim=12, frames=cls.min_frames - 1)
        else:
            raise ValueError("needs at least: single-frame tasks accept any clip")


class Spy:
    """Records the targets a task classifies against."""

    @staticmethod
    def wrap(task):
        seen = {}
        original = task.classify

        def classify(features, target):
            seen["target"] = target.clone()
            return original(features, target)

        task.classify = classify
        return seen


def test_rotation_targets_undo_the_rotation():
    task = Rotation(Rotation.Options(transforms="one"), feature_dim=12)
    seen_inputs = {}
    targets = Spy.wrap(task)
    frames = torch.randn(2, 4, 3, 6, 6)
    task(frames, lambda x: seen_inputs.update(x=x) or flat_encode(x))
    flat = frames.flatten(0, 1)
    for i, k in enumerate(targets["target"].tolist()):
        assert torch.equal(torch.rot90(seen_inputs["x"][i], -k, dims=(1, 2)), flat[i])


def test_jigsaw_permutations_and_tiles():
    perms = permutation_set(4, 24)
    assert sorted(map(tuple, perms.tolist())) == sorted(set(map(tuple, perms.tolist())))  # all distinct
    assert perms[0].tolist() == [0, 1, 2, 3]
    spread = permutation_set(9, 30)
    hamming = [(a != b).sum() for i, a in enumerate(spread) for b in spread[i + 1:]]
    assert min(hamming) >= 6  # far apart: easy to tell apart
    frame = torch.arange(16.0).view(1, 1, 4, 4)
    order = torch.tensor([[3, 2, 1, 0]])
    shuffled = shuffle_tiles(frame, 2, order)
    assert shuffled[0, 0, :2, :2].tolist() == [[10.0, 11.0], [14.0, 15.0]]  # tile 3 moved to the top left
    inverse = torch.argsort(order, dim=1)
    assert torch.equal(shuffle_tiles(shuffled, 2, inverse), frame)
    task = Jigsaw(Jigsaw.Options(grid=2, permutations=6), feature_dim=12)
    assert task.output_size() == 6


def test_arrow_of_time_labels_reversed_sequences_reversed():
    task = ArrowOfTime(ArrowOfTime.Options(), feature_dim=12, frames=4)
    assert task.reorder(4, torch.tensor([0, 1])).tolist() == [[0, 1, 2, 3], [3, 2, 1, 0]]
    targets = Spy.wrap(task)
    seen = {}
    clips = torch.arange(8.0).view(2, 4, 1, 1, 1).expand(2, 4, 3, 2, 2).contiguous()
    task(clips, lambda x: seen.update(x=x) or flat_encode(x))
    order = seen["x"].view(2, 4, -1)[:, :, 0]
    for b, target in enumerate(targets["target"].tolist()):
        expected = clips[b, :, 0, 0, 0]
        assert order[b].tolist() == (expected.flip(0) if target else expected).tolist()


def test_frame_order_shuffles_only_the_positive_class():
    task = FrameOrder(FrameOrder.Options(), feature_dim=12, frames=3)
    torch.manual_seed(0)
    order = task.reorder(3, torch.tensor([0, 1] * 200))
    assert all(o == [0, 1, 2] for o in order[0::2].tolist())
    assert all(o != [0, 1, 2] and sorted(o) == [0, 1, 2] for o in order[1::2].tolist())
    assert len({tuple(o) for o in order[1::2].tolist()}) == 5  # every other permutation occurs


def test_recipe_checks_frames_and_options(tiny_recipe):
    with pytest.raises(SemisupError, match="pretext.0.frames_per_trailer: pretext task 'frame-order' needs at least 3"):
        load_recipe(tiny_recipe(), ["pretext.name=frame-order", "pretext.frames_per_trailer=2"])
    with pytest.raises(SemisupError, match="pretext.0.grid: expected grid >= 2, got 1"):
        load_recipe(tiny_recipe(), ["pretext.name=jigsaw", "pretext.grid=1"])
    with pytest.raises(SemisupError, match='unknown pretext task \'arrow-of-tim\' \\(did you mean "arrow-of-time"'):
        load_recipe(tiny_recipe(), ["pretext.name=arrow-of-tim"])


# Produced by the release before the PretextTask API (commit 9875859) with this
# very recipe: the refactor onto the API must not change what SESEMI learns.
SESEMI_BEFORE_THE_API = [  # (epoch, training loss, SESEMI loss)
    (1, 1.0819623172283173, 1.8111295998096466),
    (2, 1.0101101398468018, 1.8014435172080994),
]


@pytest.mark.slow
def test_sesemi_trains_as_it_did_before_the_api(tiny_recipe, tmp_path):
    overrides = ["train.epochs=2", 'run.precision="fp32"', 'run.device="cpu"']
    run_dir = start_run(tiny_recipe(), overrides, tmp_path / "run").run_dir
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    for record, (epoch, loss, sesemi_loss) in zip(records, SESEMI_BEFORE_THE_API):
        # Bit-identical here; the tolerance only absorbs other CPUs' fp32 kernels.
        assert record["loss"] == pytest.approx(loss, rel=1e-3), epoch
        assert record["pretext"]["sesemi"]["loss"] == pytest.approx(sesemi_loss, rel=1e-3), epoch


@pytest.mark.slow
def test_sesemi_by_name_and_by_path_train_identically(tiny_recipe, tmp_path):
    by_name = start_run(tiny_recipe(), ["train.epochs=1"], tmp_path / "a").run_dir
    by_path = start_run(tiny_recipe(), ['pretext.name="semisup.pretext.sesemi:Sesemi"', "train.epochs=1"],
                        tmp_path / "b").run_dir
    a, b = read_metrics(by_name / "metrics.jsonl")[0], read_metrics(by_path / "metrics.jsonl")[0]
    assert a["pretext"]["sesemi"] == b["pretext"]["semisup_pretext_sesemi:Sesemi"]
    assert a["val"] == b["val"] and a["loss"] == b["loss"]


@pytest.mark.slow
def test_several_tasks_at_once(tiny_recipe, tmp_path):
    extra = '\n[[pretext]]\nname = "arrow-of-time"\nframes_per_trailer = 3\nweight = 0.5\nlr = 0.002\n'
    result = start_run(tiny_recipe(extra=extra), ["train.epochs=1"], tmp_path / "run")
    record = read_metrics(result.run_dir / "metrics.jsonl")[0]
    assert set(record["pretext"]) == {"sesemi", "arrow-of-time"}
    assert all(0 <= v["accuracy"] <= 1 and v["loss"] > 0 for v in record["pretext"].values())
    from semisup.checkpoints import load_checkpoint

    assert set(load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["optimizers"]) == {
        "supervised", "pretext/sesemi", "pretext/arrow-of-time"}
    joint = start_run(tiny_recipe(extra=extra), ["train.epochs=1", "optim.mode=joint"], tmp_path / "joint")
    assert set(read_metrics(joint.run_dir / "metrics.jsonl")[0]["pretext"]) == {"sesemi", "arrow-of-time"}


def install_example(target: Path) -> None:
    """pip-install the example plug-in into a folder (not the test venv itself)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True)


@pytest.mark.slow
def test_the_example_plugin_is_found_by_entry_point_and_by_path_and_trains(tiny_recipe, tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_example(site)
    assert list(site.glob("semisup_channel_swap-*.dist-info/entry_points.txt"))
    env_path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", env_path)
    listed = run_cli("pretext", "list")
    assert listed.returncode == 0 and "channel-swap" in listed.stdout and "semisup-channel-swap" in listed.stdout
    trained = run_cli("run", str(tiny_recipe()), "--set", "pretext.name=channel-swap", "--set",
                      "pretext.identity_share=0.3", "--set", "train.epochs=1", "--out", str(tmp_path / "run"))
    assert trained.returncode == 0, trained.stderr
    record = read_metrics(tmp_path / "run" / "metrics.jsonl")[0]
    assert 0 <= record["pretext"]["channel-swap"]["accuracy"] <= 1
    monkeypatch.setenv("PYTHONPATH", str(EXAMPLE))
    by_path = run_cli("run", str(tiny_recipe()), "--set", 'pretext.name="semisup_channel_swap:ChannelSwap"',
                      "--set", "train.epochs=1", "--out", str(tmp_path / "path"))
    assert by_path.returncode == 0, by_path.stderr


def test_a_broken_plugin_is_named_in_one_line(tiny_recipe, tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[semisup.pretext]\nbroken = broken_plugin_module:Task\n")
    (tmp_path / "broken_plugin_module.py").write_text("raise ImportError('needs libfoo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(SemisupError, match="pretext plug-in 'broken' .*broken-plugin.* failed to import: ImportError"):
        get_pretext_task("broken")
    assert any(e.name == "broken" and e.description.startswith("BROKEN") for e in pretext_catalogue())
    assert_one_line_error(run_cli("run", str(tiny_recipe()), "--set", "pretext.name=broken"),
                          "pretext plug-in 'broken'", "needs libfoo")
