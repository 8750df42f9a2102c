"""Training throughput, measured side by side in one run.

    python scripts/bench_train.py --model resnet50 --size 224 --write BENCHMARKS.md

Rows (images per second through the encoder, forward + backward + step):

* plain timm loop, fp32 eager: ``timm.create_model`` + Adam + cross-entropy
  over the whole network, the loop people write by hand;
* plain timm loop, channels_last + autocast: the same with semisup's speed
  settings, to show what they are worth;
* semisup supervised step: kornia augmentation, encoder with only the last
  ``--trainable-stages`` training, temporal pooling, genre head, ASL, Adam;
* semisup SESEMI step: pretext augmentation, all six transforms of each
  frame, encoder, pretext head, cross-entropy, Adam.

Ratios are against the first row. The table is printed and, with
``--write``, replaces the matching section of a Markdown file.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semisup.augment import FrameAugment  # noqa: E402
from semisup.device import autocast, resolve_device, resolve_precision  # noqa: E402
from semisup.losses import AsymmetricLoss  # noqa: E402
from semisup.models import Encoder, TrailerModel, build_aggregator  # noqa: E402
from semisup.pretext.sesemi import Sesemi  # noqa: E402


def timed(step: Callable[[], int], warmup: int, steps: int) -> float:
    """Images per second of ``step`` (which returns the images it processed)."""
    for _ in range(warmup):
        step()
    images, start = 0, time.perf_counter()
    for _ in range(steps):
        images += step()
    return images / (time.perf_counter() - start)


def plain_timm(args, device, dtype, channels_last: bool) -> Callable[[], int]:
    import timm

    model = timm.create_model(args.model, num_classes=10).to(device).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (args.batch,), device=device)

    def step() -> int:
        with autocast(device, dtype):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return args.batch

    return step


def semisup_model(args, device) -> TrailerModel:
    encoder = Encoder(args.model, trainable_stages=args.trainable_stages, channels_last=True)
    sesemi = Sesemi(Sesemi.Options(transforms="all"), encoder.num_features)
    return TrailerModel(encoder, {"genres": build_aggregator("mean", None, encoder.num_features)}, {"genres": 21},
                        512, 0.2, {"sesemi": sesemi}).to(device)


def supervised(args, device, dtype) -> Callable[[], int]:
    model = semisup_model(args, device).train()
    augment = FrameAugment(args.size, model.encoder.mean, model.encoder.std).to(device)
    loss_fn = AsymmetricLoss()
    optimizer = torch.optim.Adam(model.supervised_parameters(), lr=1e-4)
    trailers = max(1, args.batch // args.frames)
    frames = torch.randint(0, 256, (trailers * args.frames, 3, args.size, args.size), dtype=torch.uint8, device=device)
    owner = torch.arange(trailers, device=device).repeat_interleave(args.frames)
    targets = (torch.rand(trailers, 21, device=device) < 0.1).float()

    def step() -> int:
        with autocast(device, dtype):
            logits = model(augment(frames), owner, trailers)
        loss = loss_fn(logits["genres"], targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return len(frames)

    return step


def sesemi(args, device, dtype) -> Callable[[], int]:
    model = semisup_model(args, device).train()
    augment = FrameAugment(args.size, model.encoder.mean, model.encoder.std, hflip=False).to(device)
    optimizer = torch.optim.Adam(model.pretext_parameters("sesemi"), lr=1e-4)
    trailers = max(1, args.batch // args.frames)
    clips = torch.randint(0, 256, (trailers, args.frames, 3, args.size, args.size), dtype=torch.uint8, device=device)

    def step() -> int:
        x = augment(clips.flatten(0, 1)).view(clips.shape[0], clips.shape[1], 3, args.size, args.size)
        with autocast(device, dtype):
            out = model.pretext["sesemi"](x, model.encoder)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        return x.shape[0] * x.shape[1] * 6  # images through the encoder: all six transforms of each frame

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16, help="images per step")
    parser.add_argument("--frames", type=int, default=4, help="frames per trailer (semisup steps)")
    parser.add_argument("--trainable-stages", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--write", type=Path, help="Markdown file whose section to replace")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = resolve_device("auto")
    dtype = resolve_precision(device, "auto")
    rows = [
        ("plain timm loop, fp32 eager (whole network)", plain_timm(args, device, None, channels_last=False)),
        (f"plain timm loop, channels_last + {dtype} autocast (whole network)",
         plain_timm(args, device, dtype, channels_last=True)),
        (f"semisup supervised step (last {args.trainable_stages} stage(s) train)", supervised(args, device, dtype)),
        (f"semisup SESEMI step (last {args.trainable_stages} stage(s) train)", sesemi(args, device, dtype)),
    ]
    results = []
    for name, step in rows:
        results.append((name, timed(step, args.warmup, args.steps)))
        print(f"{name}: {results[-1][1]:.1f} img/s", flush=True)
    base = results[0][1]
    title = f"bench_train: {args.model} at {args.size} px, {args.batch} images per step"
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device.type}, "
               f"torch {torch.__version__}")
    intro = (f"`python scripts/bench_train.py --model {args.model} --size {args.size} --batch {args.batch} "
             f"--trainable-stages {args.trainable_stages}` on {machine}.")
    table = markdown_section(title, intro, ("step", "images/s", "ratio"),
                             [(name, f"{ips:.1f}", f"{ips / base:.2f}x") for name, ips in results])
    print(table)
    if args.write:
        replace_section(args.write, title, table)


def markdown_section(title: str, intro: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A titled Markdown table between ``<!-- title -->`` markers (see :func:`replace_section`)."""
    lines = [f"<!-- {title} -->", f"### {title}", "", intro, "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines + [f"<!-- /{title} -->"])


def replace_section(path: Path, title: str, table: str) -> None:
    """Replace the ``<!-- title -->`` ... ``<!-- /title -->`` section of a Markdown file (or append it)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- {re.escape(title)} -->.*?<!-- /{re.escape(title)} -->", re.S)
    text = pattern.sub(lambda _: table, text) if pattern.search(text) else text.rstrip() + "\n\n" + table + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
