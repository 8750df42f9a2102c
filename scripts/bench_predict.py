"""Prediction over a catalogue: semisup predict against a hand-written loop, ONNX Runtime against PyTorch.

    python scripts/bench_predict.py [--trailers 300] [--frames 16] [--encoder resnet18] [--size 112]
                                    [--workers 2] [--batch 16] [--write BENCHMARKS.md]

Generates a folder dataset of ``--trailers`` trailers of ``--frames`` 480x270
JPEGs of real photos, trains a run on 60 of them for one epoch (the weights
only have to exist; ``eval_frames = 8``), then, side by side in one process on
the same model, frames and batch size:

* ``semisup predict RUN FOLDER --out predictions.csv`` as the library runs it
  (:class:`semisup.predict.Predictor` + :func:`semisup.catalogue.predict_catalogue`:
  frames decoded in ``--workers`` loader processes, rows journalled and fsynced per batch);
* the loop one writes by hand: decode each trailer's 8 evenly spaced frames in
  this process (the same ``load_frame``), stack ``--batch`` trailers, forward,
  sigmoid, write a CSV at the end;
* the forward pass alone on already decoded clips (``--batch`` trailers x 8
  frames): PyTorch fp32 against the exported ONNX file in ONNX Runtime (CPU).

Model loading is not timed. Trailers/s and frames/s of the model's input.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_shards import generate_pool  # noqa: E402
from bench_train import markdown_section, replace_section  # noqa: E402

RECIPE = """
[run]
name = "bench-predict"
seed = 0

[data]
format = "folder"
root = "{root}"
image_size = {size}
max_frames = 4
eval_frames = 8
num_workers = {workers}

[[tasks]]
name = "genres"

[model]
encoder = "{encoder}"
trainable_stages = 1

[train]
epochs = 1
labeled_batch_size = 8
eval_batch_size = {batch}
"""


def semisup(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "semisup.cli", *args], check=True, capture_output=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})


def hand_loop(model, normalize, folders: list[Path], size: int, batch: int, out: Path) -> None:
    """What a user writes without semisup: decode in this process, batch, forward, write at the end."""
    import numpy as np
    import torch

    from semisup.data.frames import even_frames
    from semisup.data.images import load_frame

    rows = []
    with torch.no_grad():
        for start in range(0, len(folders), batch):
            clips, owners = [], []
            for k, folder in enumerate(folders[start:start + batch]):
                files = sorted(folder.glob("*.jpg"))
                frames = [load_frame(files[i], size) for i in even_frames(len(files), 8)]
                clips += frames
                owners += [k] * len(frames)
            pixels = normalize(torch.from_numpy(np.stack(clips)).permute(0, 3, 1, 2))
            logits = model(pixels, torch.tensor(owners), len(set(owners)))["genres"]
            rows += [[str(f), *p] for f, p in zip(folders[start:start + batch], torch.sigmoid(logits).tolist())]
    with out.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trailers", type=int, default=300)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10, help="forward-only repeats")
    parser.add_argument("--job-repeats", type=int, default=3, help="whole-job repeats (median)")
    parser.add_argument("--write", type=Path, help="put the table into this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()

    import numpy as np
    import onnxruntime
    import torch

    from semisup.catalogue import predict_catalogue
    from semisup.export.classifier import TrailerClassifier
    from semisup.predict import Predictor, expand_inputs

    with tempfile.TemporaryDirectory() as scratch:
        root, run = Path(scratch) / "data", Path(scratch) / "run"
        generate_pool(root, args.trailers, args.frames)
        recipe = Path(scratch) / "recipe.toml"
        recipe.write_text(RECIPE.format(root=root, size=args.size, encoder=args.encoder, workers=args.workers,
                                        batch=args.batch))
        semisup("run", str(recipe), "--out", str(run))
        semisup("export", str(run), "--format", "onnx", "--out", str(Path(scratch) / "model.onnx"))
        folders = sorted(p for p in (root / "frames").iterdir() if p.is_dir())
        frames_in = len(folders) * 8

        predictor = Predictor(run, batch_size=args.batch, workers=args.workers)
        inputs = expand_inputs([root / "frames"])
        model = predictor.loaded.model
        amp = predictor.loaded.amp_dtype
        semisup_runs, hand_runs = [], []
        for attempt in range(args.job_repeats):  # alternated, so both see the same machine
            start = time.perf_counter()
            predict_catalogue(predictor, inputs, Path(scratch) / f"semisup{attempt}.csv")
            semisup_runs.append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
                hand_loop(model, predictor.loaded.normalize, folders, args.size, args.batch,
                          Path(scratch) / f"hand{attempt}.csv")
            hand_runs.append(time.perf_counter() - start)
        semisup_s, hand_s = statistics.median(semisup_runs), statistics.median(hand_runs)

        classifier = TrailerClassifier(model.float(), predictor.tasks).eval()
        clips = torch.randint(0, 256, (args.batch, 8, args.size, args.size, 3), dtype=torch.uint8)
        session = onnxruntime.InferenceSession(str(Path(scratch) / "model.onnx"), providers=["CPUExecutionProvider"])
        feed = {"frames": clips.numpy()}
        times = {"torch": [], "amp": [], "ort": []}
        with torch.no_grad():
            classifier(clips), session.run(None, feed)  # warm-up
            for _ in range(args.repeats):
                start = time.perf_counter()
                torch_out = classifier(clips)[0].numpy()
                times["torch"].append(time.perf_counter() - start)
                if amp is not None:
                    start = time.perf_counter()
                    with torch.autocast("cpu", dtype=amp):
                        classifier(clips)
                    times["amp"].append(time.perf_counter() - start)
                start = time.perf_counter()
                ort_out = session.run(None, feed)[0]
                times["ort"].append(time.perf_counter() - start)
        difference = float(np.abs(torch_out - ort_out).max())
        torch_s, ort_s = statistics.median(times["torch"]), statistics.median(times["ort"])
        amp_s = statistics.median(times["amp"]) if times["amp"] else None

    precision = str(predictor.loaded.amp_dtype).replace("torch.", "") if predictor.loaded.amp_dtype else "fp32"
    n = len(folders)
    rows = [
        ("whole job", f"semisup predict --out (loader {args.workers} workers, batch {args.batch}, {precision}; median of "
                      f"{args.job_repeats})",
         f"{n / semisup_s:.1f}", f"{frames_in / semisup_s:.0f}", f"{hand_s / semisup_s:.2f}x"),
        ("whole job", f"hand-written loop (decode in the main process, batch {args.batch}, {precision}; median of "
                      f"{args.job_repeats})",
         f"{n / hand_s:.1f}", f"{frames_in / hand_s:.0f}", "1.00x"),
        ("forward only", f"PyTorch fp32, {args.batch} decoded clips x 8 frames (median of {args.repeats})",
         f"{args.batch / torch_s:.1f}", f"{args.batch * 8 / torch_s:.0f}", "1.00x"),
        *([("forward only", f"PyTorch {precision} autocast (the run's precision), same clips",
            f"{args.batch / amp_s:.1f}", f"{args.batch * 8 / amp_s:.0f}", f"{torch_s / amp_s:.2f}x")] if amp_s else []),
        ("forward only", f"ONNX Runtime {onnxruntime.__version__} CPU, the exported file, same clips "
                         f"(largest difference {difference:.1e})",
         f"{args.batch / ort_s:.1f}", f"{args.batch * 8 / ort_s:.0f}", f"{torch_s / ort_s:.2f}x"),
    ]
    title = f"bench_predict: {args.encoder} at {args.size} px, {n} trailers x 8 frames"
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    intro = (f"`python scripts/bench_predict.py --trailers {args.trailers} --frames {args.frames} --encoder "
             f"{args.encoder} --size {args.size} --workers {args.workers} --batch {args.batch} --job-repeats "
             f"{args.job_repeats}` on {machine}; the two whole jobs alternate. Same "
             "model, frames and batch size in each pair of rows; model loading not timed. Ratio: over the row "
             "marked 1.00x of the same kind.")
    table = markdown_section(title, intro, ("what", "how", "trailers/s", "frames/s", "ratio"), rows)
    print(table)
    if args.write:
        replace_section(args.write, title, table)


if __name__ == "__main__":
    main()
