"""Data-parallel training before and after DistributedDataParallel, side by side in one run.

    python scripts/bench_ddp.py --before df56a1d --write BENCHMARKS.md

SESEMI ``semisup run`` end to end (two epochs; images/s of the second from
``metrics.jsonl``) on ``bench_train.py``'s generated folder dataset, model and
settings, four ways, before and after alternating (1 process: before, after;
2 processes: before, after; then the profiled runs):

* the code at ``--before`` (a git revision: checked out into a temporary
  worktree and run from there), alone and under ``torchrun`` with 2 gloo
  processes;
* this tree, the same two ways.

Every row does the same work: the same recipe, data and global batch (two
processes read half the batch each). Only the code that keeps the processes
one model differs (``--before``: gradients averaged by hand after backward,
one flattened all-reduce per optimiser, a buffer broadcast per step; this tree:
one DDP-wrapped learner).

Each 2-process row is also run once more under ``torch.profiler`` (rank 0, both
epochs) for the time rank 0's collectives take (the profiler's ``gloo:*`` spans,
from each collective's start to its end; validation's few gathers included), as
a share of its training steps' time. Before, every collective blocks the step,
so that is time spent waiting; with DDP the gradient all-reduce runs in gloo's
thread while the backward pass goes on, so it is an upper bound of the wait.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import (LABELED, RECIPES, UNLABELED, markdown_section, recipe_overrides,  # noqa: E402
                         replace_section, write_dataset)

ROOT = Path(__file__).resolve().parents[1]

# Runs `semisup ARGS` in this process; with PROFILE_OUT set, rank 0 profiles the second epoch's
# training steps and writes {"steps_s": ..., "collectives_s": ...} there.
PROFILED = '''
import json, os, sys
import torch
import semisup.train.engine as engine

out = os.environ.get("PROFILE_OUT")
if out and os.environ.get("RANK", "0") == "0":
    original = engine.train_stage

    def profiled(stage, settings, run_dir, *args, **kwargs):
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            result = original(stage, settings, run_dir, *args, **kwargs)
        steps = collectives = 0.0
        for e in prof.key_averages():
            if e.key.startswith("semisup/") and e.key.split("/")[1].split(":")[0] in (
                    "load", "to_device", "forward", "backward+step", "ema"):
                steps += e.cpu_time_total / 1e6
            elif e.key.startswith(("gloo:", "nccl:")):  # a collective, from its start to its end
                collectives += e.cpu_time_total / 1e6
        json.dump({"steps_s": steps, "collectives_s": collectives}, open(out, "w"))
        return result

    engine.train_stage = profiled
    import semisup.train.loop as loop
    loop.train_stage = profiled
sys.argv = ["semisup", *sys.argv[1:]]
from semisup.cli import main
main()
'''


def run(args, code: Path, name: str, processes: int, profile: Path | None = None) -> dict:
    """``semisup run`` of SESEMI with the code in ``code``: the second epoch's record (and the profile)."""
    out = args.work / name
    sets = recipe_overrides(args, args.data, "sesemi")
    if processes > 1:  # the same global batch, split between the processes
        sets += [f"train.labeled_batch_size={LABELED // processes}",
                 f"train.unlabeled_batch_size={UNLABELED // processes}"]
    script = args.work / "profiled.py"
    script.write_text(PROFILED)
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = launcher + [str(script), "run", str(ROOT / RECIPES["sesemi"]), "--out", str(out)]
    command += [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(code)}
    if profile is not None:
        env["PROFILE_OUT"] = str(profile)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=code)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    result = {"images_per_s": last["images_per_s"], "loss": last["loss"]}
    if profile is not None:
        result.update(json.loads(profile.read_text()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="df56a1d", help="git revision of the code to compare with")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--trainable-stages", default="all")
    parser.add_argument("--labeled-trailers", type=int, default=64)
    parser.add_argument("--unlabeled-trailers", type=int, default=128)
    parser.add_argument("--write", type=Path, help="Markdown file whose section to replace")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        args.work, args.data = Path(tmp), Path(tmp) / "data"
        write_dataset(args.data, args.labeled_trailers, args.unlabeled_trailers)
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                       check=True, capture_output=True)
        codes = {f"before ({args.before}: gradients averaged by hand)": before,
                 "after (this tree: one DDP-wrapped learner)": ROOT}
        results: dict[tuple[str, str], dict] = {}
        try:  # before and after alternate, so that a drift of the machine's speed falls on both alike
            for way, processes in (("1", 1), ("2", 2), ("profiled", 2)):
                for i, (label, code) in enumerate(codes.items()):
                    profile = Path(tmp) / f"{i}.json" if way == "profiled" else None
                    results[label, way] = run(args, code, f"{i}-{way}", processes, profile)
                    print(f"{label}, {way}: {results[label, way]['images_per_s']:.1f} img/s", flush=True)
            for label in codes:
                one, two, profiled = (results[label, way] for way in ("1", "2", "profiled"))
                share = profiled["collectives_s"] / profiled["steps_s"]
                rows.append((label, f"{one['images_per_s']:.1f}", f"{two['images_per_s']:.1f}",
                             f"{two['images_per_s'] / one['images_per_s']:.2f}x", f"{share:.0%}",
                             f"{one['loss']:.4f} / {two['loss']:.4f}"))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)],
                           capture_output=True)

    title = f"bench_ddp: SESEMI, {args.model} at {args.size} px, 1 vs 2 gloo processes"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}"
    intro = (f"`python scripts/bench_ddp.py --before {args.before} --model {args.model} --size {args.size} "
             f"--trainable-stages {args.trainable_stages}` on {machine}: `semisup run` end to end, the same "
             f"global batch ({LABELED} labeled trailers and {UNLABELED} unlabeled clips a step) in every row; "
             "2 processes split the machine's cores between them. Collectives: time in rank 0's collectives "
             "(gloo spans, start to end) over its training steps' time, profiled in another run of the same row; "
             "with DDP they overlap the backward pass, so this bounds the time waiting on them.")
    table = markdown_section(title, intro, ("code", "1 process, images/s", "2 processes, images/s", "2 / 1",
                                            "collectives (2 processes)", "epoch-2 loss, 1 / 2 processes"), rows)
    print(table)
    if args.write:
        replace_section(args.write, title, table)


if __name__ == "__main__":
    main()
