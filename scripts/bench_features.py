"""Training from cached features against training from frames, side by side in one run.

    python scripts/bench_features.py --recipe recipes/supervised.toml --epochs 4 --write BENCHMARKS.md

Both runs train the same recipe with a frozen encoder (``model.trainable_stages
= 0``), the same epochs and batches: one decodes, augments and encodes frames
at every step, the other reads the features ``semisup features`` computed
once (no pixel augmentation: that is the difference in the work, besides the
encoder). Rows: seconds of training as ``report.json`` counts them (the first
row's evaluation and data preparation are left out of both), the one-off cost
of computing the cache, and trailers per second of training.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import markdown_section, replace_section  # noqa: E402

from semisup.config import load_recipe  # noqa: E402
from semisup.data.samples import labeled_pool  # noqa: E402
from semisup.features import write_features  # noqa: E402
from semisup.train.run import start_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path("recipes/supervised.toml"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--write", type=Path, help="Markdown file whose matching section to replace")
    args = parser.parse_args()

    frozen = ["model.trainable_stages=0", f"train.epochs={args.epochs}"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pixels = start_run(args.recipe, frozen, work / "pixels")
        tic = time.perf_counter()
        summary = write_features(load_recipe(args.recipe, frozen), work / "cache")
        cache_seconds = time.perf_counter() - tic
        cached = start_run(args.recipe, frozen + [f'data.features="{work / "cache"}"'], work / "cached")

    from semisup.build import read_recipe_data
    recipe = load_recipe(args.recipe, frozen)
    labeled = len(labeled_pool(read_recipe_data(recipe.data, recipe.tasks).samples))
    seconds = {name: run.report["training"]["train_seconds"] for name, run in (("pixels", pixels),
                                                                                ("cached", cached))}
    task = recipe.tasks[0].name
    mAP = {name: run.report["splits"]["test"][task]["mAP"] for name, run in (("pixels", pixels), ("cached", cached))}
    rate = {name: labeled * args.epochs / s for name, s in seconds.items()}
    m = recipe.model
    title = f"bench_features: {m.encoder} frozen at {recipe.data.image_size} px, {args.epochs} epochs"
    machine = (f"{platform.machine()}, {torch.get_num_threads()} threads, "
               f"{'cuda' if torch.cuda.is_available() else 'cpu'}, torch {torch.__version__}")
    intro = (f"`python scripts/bench_features.py --recipe {args.recipe} --epochs {args.epochs}` on {machine}: "
             f"the recipe with `model.trainable_stages = 0`, {summary['trailers']} trailers cached "
             f"({recipe.data.eval_frames} frames each); train seconds from each run's report.json. The cached run "
             "skips pixel augmentation besides the encoder, so its test mAP may differ.")
    rows = [("train from frames (decode, augment, encode every step)", f"{seconds['pixels']:.1f}",
             f"{rate['pixels']:.1f}", "1.00x", f"{mAP['pixels']:.3f}"),
            ("train from the feature cache", f"{seconds['cached']:.1f}", f"{rate['cached']:.1f}",
             f"{seconds['pixels'] / seconds['cached']:.2f}x", f"{mAP['cached']:.3f}"),
            ("computing the cache once (`semisup features`)", f"{cache_seconds:.1f}", "-", "-", "-")]
    table = markdown_section(title, intro, ("what", "seconds", "labeled trailers/s", "speed-up", "test mAP"), rows)
    print(table)
    print(json.dumps({"seconds": seconds, "cache_seconds": cache_seconds, "mAP": mAP}))
    if args.write:
        replace_section(args.write, title, table)


if __name__ == "__main__":
    main()
