"""Motion in the input (frame differences, temporal shift), the camera-move pretext task and
the cross-source movement benchmark: time order is kept, clips never leak into each other,
padding never changes an output, and reversing a clip changes what an order-aware model says."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import timm
import torch

from semisup.errors import SemisupError
from semisup.models import TrailerModel, create_encoder
from semisup.models.aggregators import build_aggregator
from semisup.models.encoder import Encoder
from semisup.models.motion import frame_differences, temporal_shift
from semisup.pretext.temporal import CAMERA_MOVES, CameraMove, camera_windows, film

MOTION_INPUTS = {"differences": {"frame_differences": True}, "shift": {"temporal_shift": 0.125},
                 "both": {"frame_differences": True, "temporal_shift": 0.25}, "video": {}}
"""Every way the encoder sees motion: its two inputs, and a torchvision video network."""


def motion_encoder(kind: str) -> Encoder:
    """A small encoder of ``kind`` (see :data:`MOTION_INPUTS`), every stage training, in eval mode."""
    if kind == "video":
        torch.manual_seed(0)
        return create_encoder("torchvision:r3d_18", trainable_stages="all").eval()
    return woken(Encoder("test_resnet", trainable_stages="all", **MOTION_INPUTS[kind]))


def photos(n: int, size: int = 32) -> torch.Tensor:
    """``n`` real photos (scikit-image), ``(n, 3, size, size)`` in [0, 1]."""
    from skimage import data

    images = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.hubble_deep_field(),
              data.immunohistochemistry()]
    def resized(image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1).float()[None] / 255
        return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)[0]

    return torch.stack([resized(images[i % len(images)]) for i in range(n)])


def woken(encoder: Encoder) -> Encoder:
    """timm starts each residual branch at zero (zero-init last BN): give the branches weight, so a
    shift inside them shows in the output, as it does after training."""
    torch.manual_seed(1)
    for name, param in encoder.named_parameters():
        if name.endswith("bn2.weight"):
            torch.nn.init.normal_(param)
    return encoder.eval()


def test_the_temporal_shift_moves_channels_between_neighbouring_frames_of_a_clip_only():
    x = torch.randn(7, 16, 3, 3)
    owner = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    out = temporal_shift(x, owner, 0.125)                              # fold = 2 channels each way
    assert out.shape == x.shape
    for i in range(7):
        previous_in_clip = i > 0 and owner[i - 1] == owner[i]
        next_in_clip = i < 6 and owner[i + 1] == owner[i]
        assert torch.equal(out[i, :2], x[i - 1, :2] if previous_in_clip else torch.zeros(2, 3, 3))
        assert torch.equal(out[i, 2:4], x[i + 1, 2:4] if next_in_clip else torch.zeros(2, 3, 3))
        assert torch.equal(out[i, 4:], x[i, 4:])                       # the rest stays with its frame
    assert torch.equal(temporal_shift(x, torch.arange(7), 0.125)[:, 4:], x[:, 4:])
    assert not temporal_shift(x, torch.arange(7), 0.125)[:, :4].any()  # one-frame clips: nothing comes in


def test_frame_differences_stay_inside_each_clip():
    x = torch.randn(5, 3, 4, 4)
    d = frame_differences(x, torch.tensor([0, 0, 1, 1, 1]))
    assert not d[0].any() and not d[2].any()                           # first frames of their clips
    assert torch.equal(d[1], x[1] - x[0]) and torch.equal(d[4], x[4] - x[3])
    assert not frame_differences(x, None).any()


@pytest.mark.parametrize("kind", sorted(MOTION_INPUTS))
def test_a_clip_is_read_in_order_and_alone(kind):
    """Each motion input: a clip's features do not depend on the other clips in the batch, they
    change when the clip runs backwards, and frames without clips are plain frames."""
    encoder = motion_encoder(kind)
    x = photos(7)
    owner = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    with torch.no_grad():
        together = encoder(x, owner)
        alone = encoder(x[4:], torch.zeros(3, dtype=torch.long))
        backwards = encoder(torch.cat([x[:4].flip(0), x[4:]]), owner)
        unclipped = encoder(x)
        one_by_one = torch.cat([encoder(x[i:i + 1], torch.zeros(1, dtype=torch.long)) for i in range(7)])
    assert torch.allclose(together[4:], alone, atol=1e-5)
    assert not torch.allclose(backwards[:4].flip(0), together[:4], atol=1e-3)
    assert torch.allclose(backwards[4:], together[4:], atol=1e-5)
    assert torch.allclose(unclipped, one_by_one, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(MOTION_INPUTS))
def test_padding_never_changes_a_trailer_and_order_changes_even_a_mean(kind):
    """Through the whole model: a trailer scored beside a longer one (so padded) gets the scores it
    gets alone; with motion in the input even a mean-pooled task hears the order."""
    encoder = motion_encoder(kind)
    torch.manual_seed(0)
    model = TrailerModel(encoder, {"movement": build_aggregator("mean", None, encoder.num_features),
                                   "order": build_aggregator("gru", {"hidden": 8}, encoder.num_features)},
                         {"movement": 4, "order": 4}, head_hidden=16, head_dropout=0.0).eval()
    x = photos(9)
    owner = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1])
    with torch.no_grad():
        both = model(x, owner, 2)
        short = model(x[:3], torch.zeros(3, dtype=torch.long), 1)
        reversed_short = model(torch.cat([x[:3].flip(0), x[3:]]), owner, 2)
    for task in ("movement", "order"):
        assert torch.allclose(both[task][:1], short[task], atol=1e-5)
        assert not torch.allclose(reversed_short[task][0], both[task][0], atol=1e-4)
        assert torch.allclose(reversed_short[task][1], both[task][1], atol=1e-5)


@pytest.mark.parametrize("kind", ["differences", "shift"])
def test_a_copy_of_the_encoder_sees_motion_as_the_original(kind):
    """An EMA teacher is a deep copy: its hooks must read its own clips, not the original's."""
    import copy

    encoder = motion_encoder(kind)
    teacher = copy.deepcopy(encoder)
    x, owner = photos(6), torch.tensor([0, 0, 0, 1, 1, 1])
    with torch.no_grad():
        assert torch.allclose(teacher(x, owner), encoder(x, owner), atol=1e-6)
        assert not torch.allclose(teacher(x, owner), teacher(x), atol=1e-3)   # and it does see the clips


def test_frame_differences_start_from_pretrained_weights_unchanged(tmp_path):
    """With pretrained weights the difference stem starts at zero: the encoder is the pretrained
    one until training teaches the stem, which trains even where the stem is frozen."""
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "w.pth")
    plain = Encoder("resnet18", pretrained=tmp_path / "w.pth", trainable_stages=1).eval()
    seeing = Encoder("resnet18", pretrained=tmp_path / "w.pth", trainable_stages=1, frame_differences=True).eval()
    x, owner = photos(6, 64), torch.tensor([0, 0, 0, 1, 1, 1])
    with torch.no_grad():
        assert torch.allclose(plain(x), seeing(x, owner), atol=1e-5)
    trained = {n for n, p in seeing.named_parameters() if p.requires_grad}
    assert "model.difference_stem.weight" in trained and "model.conv1.weight" not in trained
    seeing.train()
    seeing(x, owner).sum().backward()
    assert seeing.model.difference_stem.weight.grad.abs().sum() > 0
    frozen = Encoder("resnet18", pretrained=tmp_path / "w.pth", trainable_stages=0, frame_differences=True)
    assert [n for n, p in frozen.named_parameters() if p.requires_grad] == ["model.difference_stem.weight"]
    # an encoder saved before the differences were switched on loads with the stem at zero
    seeing.load_backbone_state(plain.model.state_dict(), "encoder.pt")
    assert not seeing.model.difference_stem.weight.any()


def test_motion_inputs_are_refused_where_they_cannot_work(tiny_recipe, tmp_path):
    from semisup.config import load_recipe

    with pytest.raises(SemisupError, match="model.temporal_shift: test_vit has no ResNet blocks"):
        Encoder("test_vit", trainable_stages="all", temporal_shift=0.125)
    with pytest.raises(SemisupError, match="model.temporal_shift: .*trainable_stages = 0 trains none"):
        load_recipe(tiny_recipe(), ["model.temporal_shift=0.125", "model.trainable_stages=0"])
    with pytest.raises(SemisupError, match=r"model.temporal_shift: expected .*0.5"):
        load_recipe(tiny_recipe(), ["model.temporal_shift=0.75"])


def test_a_video_network_loads_local_weights_and_refuses_what_does_not_fit(tmp_path, monkeypatch):
    import torchvision

    source = torchvision.models.video.r3d_18()
    torch.save(source.state_dict(), tmp_path / "r3d.pth")
    encoder = create_encoder("torchvision:r3d_18", pretrained=tmp_path / "r3d.pth", trainable_stages=1)
    assert torch.equal(encoder.model.layer2[0].conv1[0].weight, source.layer2[0].conv1[0].weight)
    assert {n.split(".")[1] for n, p in encoder.named_parameters() if p.requires_grad} == {"layer4"}
    torch.save(torchvision.models.video.r2plus1d_18().state_dict(), tmp_path / "r21d.pth")
    with pytest.raises(SemisupError, match="r21d.pth: weights do not fit"):
        create_encoder("torchvision:r3d_18", pretrained=tmp_path / "r21d.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SemisupError, match="torchvision's weights for 'torchvision:r3d_18' are not cached"):
        create_encoder("torchvision:r3d_18", pretrained=True)
    with pytest.raises(SemisupError, match="model.temporal_shift: 'torchvision:r3d_18' is a video network"):
        create_encoder("torchvision:r3d_18", temporal_shift=0.125)


def test_camera_windows_move_the_way_they_are_named_and_stay_in_the_frame():
    torch.manual_seed(0)
    moves = torch.arange(len(CAMERA_MOVES)).repeat(50)
    w = camera_windows(moves, 6, (1.2, 2.0), (0.15, 0.4))
    half = w[..., 2] / 2
    assert bool(((w[..., 0] - half >= -1e-6) & (w[..., 0] + half <= 1 + 1e-6)).all())
    assert bool(((w[..., 1] - half >= -1e-6) & (w[..., 1] + half <= 1 + 1e-6)).all())
    step = w[:, 1:] - w[:, :-1]
    named = dict(zip(CAMERA_MOVES, range(len(CAMERA_MOVES))))
    for move, axis, sign in (("left", 0, -1), ("right", 0, 1), ("up", 1, -1), ("down", 1, 1),
                             ("push", 2, -1), ("pull", 2, 1)):
        rows = step[moves == named[move]]
        assert bool((sign * rows[..., axis] > 0).all()), move
        assert bool((rows[..., [a for a in range(3) if a != axis]].abs() < 1e-6).all()), move
    assert bool((step[moves == named["static"]].abs() < 1e-6).all())


def test_a_filmed_push_is_a_filmed_pull_backwards():
    still = photos(1, 48)
    push = camera_windows(torch.tensor([CAMERA_MOVES.index("push")]), 5, (1.5, 1.5), (0.2, 0.2))
    pull = push.flip(1)
    assert torch.allclose(film(still, push).flip(1), film(still, pull))
    clip = film(still, push)[0]
    assert clip.shape == (5, 3, 48, 48)
    edges = [float((c[:, :, 1:] - c[:, :, :-1]).abs().mean()) for c in clip]
    assert edges[-1] < edges[0]             # pushed in: the same photo, magnified, has softer detail


def test_the_camera_move_task_is_learned_from_real_photos():
    """An encoder with frame differences learns the seven moves of real photos well above chance
    (1/7) in a hundred steps: the labels are right and the task can be learned (measured: 0.94 by
    step 100; without the differences it takes about twice as many steps)."""
    torch.manual_seed(0)
    encoder = Encoder("test_resnet", trainable_stages="all", frame_differences=True)
    task = CameraMove(CameraMove.Options(), feature_dim=encoder.num_features, head_hidden=64, frames=4)
    optimizer = torch.optim.Adam([*encoder.parameters(), *task.parameters()], lr=2e-3)
    stills = (photos(6, 32) - 0.45) / 0.25
    accuracy = []
    for _ in range(100):
        frames = stills[torch.randint(0, 6, (32,))].unsqueeze(1).expand(-1, 4, -1, -1, -1)
        out = task(frames, lambda x: encoder(x, torch.arange(len(x) // 4).repeat_interleave(4)))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        accuracy.append(float(out.accuracy))
    assert np.mean(accuracy[-25:]) > 0.6, np.mean(accuracy[-25:])


def test_a_moving_patch_crosses_its_own_clip_only_in_a_straight_line():
    """Scene motion: each clip's patch comes from its own source, moves at a constant pace along
    one line, and never reaches another clip's frames; probability 0 changes nothing."""
    from semisup.augment import paste_moving_patch

    torch.manual_seed(0)
    owner = torch.tensor([0] * 5 + [1] * 3 + [2] * 4)
    frames = torch.zeros(len(owner), 1, 48, 48)
    sources = torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1).expand(3, 1, 48, 48)
    assert torch.equal(paste_moving_patch(frames, owner, sources, 0.0), frames)
    pasted = paste_moving_patch(frames, owner, sources, 1.0, size=(0.2, 0.2), travel=(0.3, 0.3), growth=(1, 1))
    for clip in range(3):
        values = pasted[owner == clip]
        assert abs(float(values.max()) - (clip + 1)) < 1e-5         # only this clip's source shows
        weight = values[:, 0] / (clip + 1)
        ys, xs = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
        centres = torch.stack([(weight * xs).sum((1, 2)), (weight * ys).sum((1, 2))], 1) / weight.sum((1, 2)).view(-1, 1)
        steps = centres[1:] - centres[:-1]
        assert float(steps.norm(dim=1).min()) > 2                  # it moves every frame ...
        assert torch.allclose(steps, steps[0].expand_as(steps), atol=0.5)   # ... the same step: one line, one pace


def test_scene_motion_is_drawn_per_clip_in_the_labeled_view():
    from semisup.augment import FrameAugment

    torch.manual_seed(0)
    owner = torch.tensor([0, 0, 0, 1, 1, 1])
    frames = (photos(2, 32)[owner] * 255).to(torch.uint8)
    plain = FrameAugment(32, (0.5,) * 3, (0.25,) * 3, hflip=0, degrees=0, scale=(1, 1), per_clip=True)
    moving = FrameAugment(32, (0.5,) * 3, (0.25,) * 3, hflip=0, degrees=0, scale=(1, 1), per_clip=True,
                          scene_motion=1.0)
    still = plain(frames, owner)
    assert torch.equal(still[0], still[2])                           # a still camera over a still scene
    shown = moving(frames, owner)
    assert not torch.allclose(shown[0], shown[2])                    # something moved through it
    assert float((shown[0] - still[0]).abs().amax((0,)).gt(0.01).float().mean()) < 0.5   # a patch, not the frame


def test_the_cross_source_benchmark_tests_on_footage_no_other_split_uses(tmp_path):
    from semisup.data.demo import write_demo
    from semisup.data.demo_moves import TEST_CAMERA, TRAIN_CAMERA, _path

    summary = write_demo(tmp_path / "moves", seed=0, scale=0.05, variant="moves")
    rows = list(csv.DictReader((summary.root / "labels.csv").open()))
    assert list(rows[0]) == ["id", "split", "movement"]
    assert {r["split"] for r in rows} == {"train", "unlabeled", "val", "test"}
    assert all(r["movement"] == "" for r in rows if r["split"] == "unlabeled")
    every = {r["id"]: r["movement"] for r in csv.DictReader((summary.root / "labels_all.csv").open())}
    assert set(every.values()) <= {"Static", "Motion", "Push", "Pull"}
    frames = sorted((summary.root / "frames" / rows[0]["id"]).glob("*.jpg"))
    assert 8 <= len(frames) <= 12
    # the paths the cameras draw: the test pans steeply and zooms outside training's range, training never does
    def drawn(style, move: str) -> list[np.ndarray]:
        return [_path(move, 10, style, np.random.default_rng(seed)) for seed in range(200)]

    def pan_angle(path: np.ndarray) -> float:      # from horizontal, in radians
        dx, dy = path[-1, :2] - path[0, :2]
        return float(np.arctan2(abs(dy), abs(dx)))

    def zoom(path: np.ndarray) -> float:
        return float(path[0, 2] / path[-1, 2])

    assert max(pan_angle(p) for p in drawn(TRAIN_CAMERA, "motion")) < 0.4
    assert max(pan_angle(p) for p in drawn(TEST_CAMERA, "motion")) > 1.2       # vertical pans
    train_zooms = [zoom(p) for p in drawn(TRAIN_CAMERA, "push")]
    test_zooms = [zoom(p) for p in drawn(TEST_CAMERA, "push")]
    assert 1.5 <= min(train_zooms) and max(train_zooms) <= 2.2 + 1e-9
    assert min(test_zooms) < 1.5 and max(test_zooms) > 2.2


def test_motion_inputs_and_the_camera_move_task_train_end_to_end(tmp_path):
    """The shipped benchmark recipe, tiny, with both motion inputs and the camera-move task:
    trains, scores the test split, and `compare` shows the rare classes' F1."""
    from conftest import run_cli

    from semisup.data.demo import write_demo
    from semisup.train.run import start_run

    root = write_demo(tmp_path / "moves", seed=0, scale=0.06, variant="moves").root
    small = [f"data.root={root}", 'data.format="folder"', "model.encoder=test_resnet", "data.image_size=32",
             "data.num_workers=0", "train.epochs=1", "model.frame_differences=true", "model.temporal_shift=0.125",
             'pretext=[{name="sesemi", frames_per_trailer=2, head_hidden=16}, '
             '{name="camera-move", frames_per_trailer=4, head_hidden=16, scene_motion=0.5}]',
             "augment.scene_motion=0.5"]
    result = start_run("recipes/moves.toml", small, tmp_path / "run")
    test = result.report["splits"]["test"]["movement"]
    assert test["samples"] == sum(1 for r in csv.DictReader((root / "labels.csv").open()) if r["split"] == "test")
    import json

    record = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert set(record["pretext"]) == {"sesemi", "camera-move"}
    compared = run_cli("compare", str(result.run_dir), "--markdown", "--class", "Push", "--class", "Pull")
    assert compared.returncode == 0, compared.stderr
    header = compared.stdout.splitlines()[0]
    assert "| test macro-F1 | Push F1 | Pull F1 | worst-class F1 |" in header
    wrong = run_cli("compare", str(result.run_dir), "--class", "Dolly")
    assert wrong.returncode == 2 and "--class: no test sample of 'Dolly'" in wrong.stderr


def test_a_video_network_trains_and_predicts_end_to_end(tmp_path):
    """torchvision's r3d_18 as the encoder: labeled clips in order, SESEMI's frames as one-frame
    clips, the final evaluation and `semisup predict` on a shot's frames folder."""
    from conftest import run_cli

    from semisup.data.demo import write_demo
    from semisup.train.run import start_run

    root = write_demo(tmp_path / "moves", seed=0, scale=0.05, variant="moves").root
    small = [f"data.root={root}", 'data.format="folder"', 'model.encoder="torchvision:r3d_18"',
             "model.frame_differences=false",
             "data.image_size=32", "data.max_frames=4", "data.eval_frames=4", "data.num_workers=0", "train.epochs=1"]
    result = start_run("recipes/moves.toml", small, tmp_path / "run")
    assert result.report["splits"]["test"]["movement"]["samples"] > 0
    assert 'encoder = "torchvision:r3d_18"' in (result.run_dir / "config.toml").read_text()
    shot = next(p for p in sorted((root / "frames").iterdir()))
    predicted = run_cli("predict", str(result.run_dir), str(shot), "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert '"movement"' in predicted.stdout


def test_time_reversal_plays_labeled_clips_backwards_with_the_reversed_class(tmp_path):
    """Half the push clips come back as pulls, frames in reverse order; a class the map does not
    list is never reversed; other tasks keep their labels; the same seed, the same decision."""
    from PIL import Image

    from semisup.data.loaders import TrailerFrames, ordered_picker
    from semisup.data.reversal import TimeReversal
    from semisup.data.samples import Sample, TaskSpec

    movement = TaskSpec("movement", ("Static", "Motion", "Push", "Pull"), "multiclass")
    scale = TaskSpec("scale", ("LS", "CS"), "multiclass")
    folder = tmp_path / "shot"
    folder.mkdir()
    paths = []
    for i in range(6):                                  # frame i is grey level 40 * i: the order shows
        paths.append(folder / f"{i:03d}.png")
        Image.new("RGB", (32, 32), (40 * i,) * 3).save(paths[-1])
    samples = [Sample("push", tuple(paths), labels={"movement": ("Push",), "scale": ("CS",)}),
               Sample("dolly", tuple(paths), labels={"movement": ("Motion",), "scale": ("LS",)})]
    reversal = TimeReversal({"movement": {"Push": "Pull", "Pull": "Push"}})
    frames = TrailerFrames(samples, [movement, scale], 16, ordered_picker(6), reversal=reversal)
    reversed_count = 0
    for seed in range(40):
        item = frames[(0, seed)]
        levels = item.frames[:, 0, 0, 0].astype(int).tolist()
        label = movement.labels[int(item.targets["movement"].argmax())]
        if levels == sorted(levels, reverse=True):
            reversed_count += 1
            assert label == "Pull"
        else:
            assert levels == sorted(levels) and label == "Push"
        assert scale.labels[int(item.targets["scale"].argmax())] == "CS"
        assert frames[(0, seed)].frames.tobytes() == item.frames.tobytes()
        other = frames[(1, seed)]
        assert other.frames[:, 0, 0, 0].tolist() == sorted(other.frames[:, 0, 0, 0].tolist())
    assert 10 <= reversed_count <= 30                    # about half of 40


def test_bad_reversed_labels_name_the_key(tiny_recipe):
    from semisup.config import load_recipe

    with pytest.raises(SemisupError, match=r"tasks.0.reversed_labels: only for multiclass tasks"):
        load_recipe(tiny_recipe(), ['tasks.aggregator="gru"', 'tasks.reversed_labels={Drama="Comedy"}'])
    with pytest.raises(SemisupError, match="task .movement. does not read its frames in order"):
        load_recipe("recipes/moves.toml", ['tasks.0.aggregator="mean"', "tasks.0.aggregator_options={motion=false}",
                                           "model.frame_differences=false", 'tasks.0.reversed_labels={Push="Pull"}'])
    with pytest.raises(SemisupError, match="'Dolly' is not a label of task 'movement'"):
        load_recipe("recipes/moves.toml", ['tasks.0.reversed_labels={Push="Dolly"}'])
    # mean pooling with motion features hears the order: allowed
    load_recipe("recipes/moves.toml", ['tasks.0.aggregator="mean"', "tasks.0.aggregator_options={motion=true}",
                                       'tasks.0.reversed_labels={Push="Pull"}'])


def test_compare_names_a_class_only_for_multiclass_tasks(trained_run):
    from conftest import run_cli

    refused = run_cli("compare", str(trained_run), "--class", "Drama")
    assert refused.returncode == 2 and "--class: per-class F1 is shown for multi-class tasks" in refused.stderr
