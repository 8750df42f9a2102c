"""Where one epoch of ``semisup run`` spends its time: torch.profiler over a whole epoch.

    python scripts/bench_profile.py --recipe recipes/sesemi.toml --write BENCHMARKS.md

Trains one epoch of the recipe (on the generated folder dataset of
``bench_train.py``, with that script's model, batch and augmentation settings)
under ``torch.profiler`` and adds up the loop's own labels
(``semisup/load``: waiting for the loader's workers; ``semisup/view:*``: kornia
augmentation; ``semisup/forward:*`` and ``semisup/backward+step:*`` per
objective; ``semisup/validate``), then lists the operators that took the most
time themselves. Shares are of the epoch's training steps (validation apart).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import markdown_section, recipe_overrides, replace_section, write_dataset  # noqa: E402

from semisup.device import resolve_device, resolve_precision  # noqa: E402
from semisup.train.run import start_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=Path("recipes/sesemi.toml"))
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--trainable-stages", default="all")
    parser.add_argument("--labeled-trailers", type=int, default=64)
    parser.add_argument("--unlabeled-trailers", type=int, default=128)
    parser.add_argument("--top", type=int, default=8, help="operators listed")
    parser.add_argument("--write", type=Path, help="Markdown file whose section to replace")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = resolve_device("auto")
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    kind = "sesemi" if "sesemi" in args.recipe.name else "supervised"

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_dataset(data, args.labeled_trailers, args.unlabeled_trailers)
        overrides = recipe_overrides(args, data, kind) + ["train.epochs=1"]
        with torch.profiler.profile(activities=activities) as prof:
            start_run(args.recipe, overrides, Path(tmp) / "run")
    events = prof.key_averages()

    phases: dict[str, float] = defaultdict(float)
    for e in events:
        if e.key.startswith("semisup/"):
            phases[e.key[len("semisup/"):]] += e.cpu_time_total / 1e6  # the label's wall time, inclusive
    steps = sum(v for k, v in phases.items() if k.split(":")[0] in ("load", "to_device", "forward", "backward+step",
                                                                     "ema"))
    rows = []
    for name, seconds in sorted(phases.items(), key=lambda kv: -kv[1]):
        if name == "validate":
            continue
        # a view is made inside the forward of the first objective that asks for it
        label = f"{name} (inside a forward)" if name.startswith("view:") else name
        rows.append((label, f"{seconds:.2f}", f"{seconds / steps:.0%}"))
    rows.append(("**training steps, all**", f"{steps:.2f}", "100%"))
    rows.append(("validate (after the epoch; not in the steps)", f"{phases.get('validate', 0.0):.2f}", ""))
    ops = sorted((e for e in events if not e.key.startswith(("semisup/", "ProfilerStep", "enumerate("))),
                 key=lambda e: -e.self_cpu_time_total)[:args.top]
    rows += [(f"operator `{e.key}` (self time, all phases)", f"{e.self_cpu_time_total / 1e6:.2f}",
              f"{e.self_cpu_time_total / 1e6 / steps:.0%}") for e in ops]

    dtype = resolve_precision(device, "auto")
    title = f"bench_profile: {args.recipe.stem}, {args.model} at {args.size} px, one epoch"
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device.type}, "
               f"{dtype or 'fp32'}, torch {torch.__version__}")
    intro = (f"`python scripts/bench_profile.py --recipe {args.recipe} --model {args.model} --size {args.size} "
             f"--trainable-stages {args.trainable_stages}` on {machine} (the dataset and settings of bench_train).")
    table = markdown_section(title, intro, ("where", "seconds", "share of the steps"), rows)
    print(table)
    if args.write:
        replace_section(args.write, title, table)


if __name__ == "__main__":
    main()
