"""Does the loader keep the training step fed? Frames per second, side by side in one run.

    python scripts/bench_data.py --write BENCHMARKS.md

Rows:

* loader, JPEG keyframes: the training loader on MovieNet-like keyframes
  (640x360 JPEGs made from real photos): sample frames, decode (PIL, draft
  mode), crop, collate in worker processes, then kornia augmentation;
* loader, mp4 clips: the same on MovieShots-like shot clips decoded on the
  fly with PyAV (no extraction);
* the ResNet50 SESEMI step (last stage trains, all six transforms), the
  supervised step and the SimCLR step (two views): frames they consume per
  second, at the same image size;
* SimCLR's view augmentation two ways: kornia on a batch (what semisup uses)
  and lightly's PIL-based ``SimCLRTransform`` per image.

The ratio column divides by the SESEMI step; the loader should deliver at
least 3x what the step consumes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import (FRAMES, LABELED, UNLABELED, UNLABELED_FRAMES, markdown_section, replace_section,  # noqa: E402
                         semisup_step, timed, write_dataset)
from semisup.augment import FrameAugment  # noqa: E402
from semisup.data.loaders import CyclingBatchSampler, TrailerFrames, collate_packed, make_loader, train_picker  # noqa: E402
from semisup.data.samples import Sample, TaskSpec  # noqa: E402
from semisup.device import resolve_device, resolve_precision  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "brick", "grass", "hubble_deep_field")


def photo_frames(count: int, size=(640, 360)) -> list[np.ndarray]:
    from skimage import data

    out = []
    for i in range(count):
        array = np.asarray(getattr(data, PHOTOS[i % len(PHOTOS)])())
        array = np.stack([array] * 3, -1) if array.ndim == 2 else array[..., :3]
        image = Image.fromarray(array).resize(size)
        out.append(np.roll(np.asarray(image), 13 * i, axis=1))
    return out


def keyframe_samples(root: Path, trailers: int, frames: int) -> list[Sample]:
    images = photo_frames(frames)
    samples = []
    for t in range(trailers):
        folder = root / f"tt{t:07d}"
        folder.mkdir(parents=True)
        paths = []
        for j, image in enumerate(images):
            path = folder / f"shot_{j:04d}_img_1.jpg"
            Image.fromarray(np.roll(image, t, axis=0)).save(path, quality=90)
            paths.append(path)
        samples.append(Sample(folder.name, tuple(paths), labels={"genres": ("a",)}))
    return samples


def clip_samples(root: Path, clips: int, frames: int) -> list[Sample]:
    import av

    images = photo_frames(frames, size=(640, 360))
    samples = []
    for c in range(clips):
        path = root / f"shot_{c:04d}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
            for image in images:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.roll(image, c, axis=0), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        samples.append(Sample(path.stem, video=path, labels={"genres": ("a",)}))
    return samples


def loader_rate(samples, size: int, frames: int, batch: int, workers: int, batches: int, device) -> float:
    """Frames per second out of loader + augmentation."""
    dataset = TrailerFrames(samples, [TaskSpec("genres", ("a",))], size, train_picker(frames))
    loader = make_loader(dataset, CyclingBatchSampler(len(samples), batch, 0, 1), collate_packed, workers)
    augment = FrameAugment(size, (0.5,) * 3, (0.25,) * 3).to(device)
    it = iter(loader)
    for _ in range(3):  # start the workers, fill the queues
        augment(next(it).frames.to(device))
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        frames_ = augment(next(it).frames.to(device))
        count += len(frames_)
    return count / (time.perf_counter() - start)


def views_rate(kind: str, size: int, frames: int = 64, rounds: int = 3) -> float:
    """Frames per second turned into two SimCLR views: kornia on a batch, or lightly's PIL transform per image."""
    images = photo_frames(frames, size=(size, size))
    if kind == "kornia":
        from semisup.augment import ContrastiveViews

        views = ContrastiveViews(size, (0.5,) * 3, (0.25,) * 3)
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        views(batch)
        start = time.perf_counter()
        for _ in range(rounds):
            views(batch), views(batch)
    else:
        from lightly.transforms import SimCLRTransform

        transform = SimCLRTransform(input_size=size, cj_strength=0.5)
        pil = [Image.fromarray(image) for image in images]
        start = time.perf_counter()
        for _ in range(rounds):
            for image in pil:
                transform(image)
    return rounds * frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    device = resolve_device("auto")
    dtype = resolve_precision(device, "auto")
    with tempfile.TemporaryDirectory() as tmp:
        step_args = argparse.Namespace(model=args.model, size=args.size, trainable_stages="1", data=Path(tmp) / "folder")
        write_dataset(step_args.data, labeled=16, unlabeled=32)  # what semisup's steps are built from
        keyframes = keyframe_samples(Path(tmp) / "keyframes", trailers=32, frames=24)
        clips = clip_samples(Path(tmp), clips=16, frames=48)
        rows = [
            ("loader: JPEG keyframes 640x360 (8 trailers x 8 frames per batch)",
             loader_rate(keyframes, args.size, 8, 8, args.workers, args.batches, device)),
            ("loader: mp4 clips 640x360 decoded on the fly (8 clips x 8 frames per batch)",
             loader_rate(clips, args.size, 8, 8, args.workers, args.batches, device)),
        ]
        # images/s -> frames/s: a SESEMI step's images are its labeled frames plus six of each unlabeled one
        labeled, unlabeled = LABELED * FRAMES, UNLABELED * UNLABELED_FRAMES
        sesemi_rate = timed(semisup_step(step_args, "sesemi", device, dtype), 2, 6, device) * (
            (labeled + unlabeled) / (labeled + 6 * unlabeled))
        supervised_rate = timed(semisup_step(step_args, "supervised", device, dtype), 2, 6, device)
        simclr_rate = timed(semisup_step(step_args, "simclr", device, dtype), 2, 6, device) / 2  # two views each
    rows += [(f"SESEMI step, {args.model} last stage, all six transforms (frames consumed)", sesemi_rate),
             (f"supervised step, {args.model} last stage (frames consumed)", supervised_rate),
             (f"SimCLR step, {args.model} last stage, two views (frames consumed)", simclr_rate),
             (f"SimCLR views, kornia, batch of 64 on the main process ({args.size} px)",
              views_rate("kornia", args.size)),
             (f"SimCLR views, lightly SimCLRTransform, per PIL image, one process ({args.size} px)",
              views_rate("lightly", args.size))]
    title = f"bench_data: {args.model} at {args.size} px, {args.workers} loader workers"
    intro = (f"`python scripts/bench_data.py --model {args.model} --size {args.size} --workers {args.workers}`; "
             "ratio = frames/s divided by what the SESEMI step consumes.")
    table = markdown_section(title, intro, ("stage", "frames/s", "ratio to SESEMI step"),
                             [(name, f"{rate:.1f}", f"{rate / sesemi_rate:.1f}x") for name, rate in rows])
    print(table)
    if args.write:
        replace_section(args.write, title, table)


if __name__ == "__main__":
    main()
