"""Forward cost of the encoders that see motion, against a ResNet18, side by side in one process.

    python scripts/bench_clip_encoders.py [--clips 8] [--frames 8] [--size 64] [--threads 1]

Each encoder embeds the same clips (random pixels; the cost does not depend on
them), in eval mode without gradients; the best of three passes is kept, and
every row is divided by the ResNet18's. Same work in every row: the same
frames, one feature per frame out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semisup.models import create_encoder  # noqa: E402

ENCODERS = {"resnet18": {}, "resnet18 + frame differences": {"frame_differences": True},
            "resnet18 + temporal shift": {"temporal_shift": 0.125}, "torchvision:r3d_18": {},
            "torchvision:mc3_18": {}, "torchvision:r2plus1d_18": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.clips * args.frames, 3, args.size, args.size)
    owner = torch.arange(args.clips).repeat_interleave(args.frames)
    encoders = {label: create_encoder(label.split(" ")[0], trainable_stages="all", **options).eval()
                for label, options in ENCODERS.items()}
    best = {label: float("inf") for label in encoders}
    with torch.no_grad():
        for _ in range(3):
            for label, encoder in encoders.items():
                start = time.perf_counter()
                encoder(x, owner)
                best[label] = min(best[label], time.perf_counter() - start)
    print(f"| encoder ({args.clips} clips x {args.frames} frames, {args.size} px, {args.threads} thread) "
          "| seconds | x resnet18 |")
    print("|---|---|---|")
    for label, seconds in best.items():
        print(f"| {label} | {seconds:.3f} | {seconds / best['resnet18']:.1f}x |")


if __name__ == "__main__":
    main()
