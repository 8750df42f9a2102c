"""A large dataset in the folder layout: how long until `semisup data inspect` answers and
`semisup run` takes its first training step, and how much memory that takes.

    python scripts/bench_scale.py --trailers 50000 --frames 20 --write BENCHMARKS.md

The dataset is generated under ``--root`` (kept for the next call): ``labels.csv``
(10% labeled train, 5% val, 5% test, the rest unlabeled; 20 genres) and
``frames/<id>/NNN.jpg``, every frame a hard link to a small real JPEG (content
does not matter here, only how many files there are). Each measurement runs in
a fresh interpreter, as a user would call it:

* ``semisup data inspect ROOT`` (without ``--check``: no frame is decoded);
* ``semisup run`` of a small recipe (ResNet18 at 64 px, SESEMI), stopped at its
  first training step: reading the labels and listing every trailer's frames,
  checks, splits, model, loaders, the first batches;
* ``semisup data index ROOT`` once, then both again reading the index instead of
  listing every trailer's folder.

The file system's cache is warm in every row (the generator or an earlier row
has just touched every folder); on a network file system or a cold cache the
listing costs more, the index about the same.

Peak memory is the child process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import markdown_section, replace_section  # noqa: E402

from semisup.data.index import INDEX_FILE  # noqa: E402

GENRES = [f"genre{i:02d}" for i in range(20)]

RECIPE = """
[run]
name = "scale"
[data]
format = "folder"
root = "{root}"
image_size = 64
max_frames = 8
eval_frames = 8
num_workers = 2
[[tasks]]
name = "genres"
kind = "multilabel"
labels = [{labels}]
[model]
encoder = "resnet18"
trainable_stages = "all"
head_hidden = 128
[[pretext]]
name = "sesemi"
frames_per_trailer = 2
[train]
epochs = 1
labeled_batch_size = 8
unlabeled_batch_size = 16
"""

# Stops `semisup run` at its first training step and prints how long it took.
FIRST_STEP = """
import sys, time
start = time.perf_counter()
import semisup.train.engine as engine
step = engine.step_objectives
def first_step(*args, **kwargs):
    step(*args, **kwargs)
    print(f"FIRST_STEP {time.perf_counter() - start:.2f}", flush=True)
    raise SystemExit(0)
engine.step_objectives = first_step
from semisup.train.run import start_run
from pathlib import Path
start_run(Path(sys.argv[1]), [], Path(sys.argv[2]))
"""


def generate(root: Path, trailers: int, frames: int) -> float:
    """Write the dataset (unless a complete one is there); return the seconds it took."""
    done = root / ".complete"
    if done.is_file() and done.read_text() == f"{trailers} {frames}":
        return 0.0
    tic = time.perf_counter()
    from skimage import data as photos
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    photo = Image.fromarray(photos.astronaut()).resize((96, 96))
    per_source = 50000 // frames  # trailers per source file: file systems cap the links to one file (ext4: 65000)
    rng = np.random.default_rng(0)
    rows = ["id,split,genres"]
    for i in range(trailers):
        sample = f"t{i:06d}"
        split = ["train"] * 10 + ["val"] * 5 + ["test"] * 5 + ["unlabeled"] * 80
        split = split[i % 100]
        genres = "|".join(rng.choice(GENRES, size=rng.integers(1, 4), replace=False)) if split != "unlabeled" else ""
        rows.append(f"{sample},{split},{genres}")
        source = root / f"source{i // per_source}.jpg"
        if not source.exists():
            photo.save(source, quality=85)
        folder = root / "frames" / sample
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(frames):
            target = folder / f"{k:03d}.jpg"
            if not target.exists():
                os.link(source, target)
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    done.write_text(f"{trailers} {frames}")
    return time.perf_counter() - tic


PEAK = ("import atexit, resource, runpy, sys; "
        "atexit.register(lambda: print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)); ")


def timed(code: str, args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Seconds and peak resident memory (GiB, the main process) of ``python -c CODE ARGS``, and its output."""
    tic = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK + code, *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - tic
    if done.returncode != 0:
        raise SystemExit(f"{args} failed:\n{done.stderr[-2000:]}")
    peak = next(int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("PEAK_KIB"))
    return seconds, peak / 2**20, done.stdout


def can_drop_caches() -> bool:
    """Whether this process may drop the page cache (root on Linux)."""
    try:
        drop_caches()
        return True
    except OSError:
        return False


def drop_caches() -> None:
    """Empty the kernel's page cache (and its cache of folders), so reads go to the disk."""
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as handle:
        handle.write("3\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trailers", type=int, default=50000)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--root", type=Path, default=Path("/tmp/semisup-scale"))
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    root = args.root / f"{args.trailers}x{args.frames}"
    made = generate(root, args.trailers, args.frames)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    recipe = args.root / "recipe.toml"
    recipe.write_text(RECIPE.format(root=root, labels=", ".join(f'"{g}"' for g in GENRES)))
    run_dir = args.root / f"run-{time.time_ns()}"

    index_file = root / INDEX_FILE
    index_file.unlink(missing_ok=True)  # the first rows list the folders, as without an index
    cli = "sys.argv = ['semisup', *sys.argv[1:]]; runpy.run_module('semisup', run_name='__main__')"
    cold = can_drop_caches()

    def measure(what: str, code: str, arguments: list[str], first_step: bool = False) -> tuple[str, ...]:
        """A row: the command after the page cache was dropped (cold), then again at once (warm)."""
        cells = []
        for dropped in ((True, False) if cold else (False,)):
            if dropped:
                drop_caches()
            seconds, gib, out = timed(code, arguments(), env) if callable(arguments) else timed(code, arguments, env)
            if first_step:
                seconds = next(float(line.split()[1]) for line in out.splitlines() if line.startswith("FIRST_STEP"))
            cells.append(f"{seconds:.1f}")
        if not cold:
            cells.insert(0, "not measured")
        return (what, *cells, f"{gib:.2f}")

    runs = iter(range(1000))
    rows = []
    for how in ("listing every folder", "reading the index"):
        if how == "reading the index":
            rows.append(measure("`semisup data index ROOT --refresh` (writes the index)", cli,
                                ["data", "index", str(root), "--refresh"]))
        rows.append(measure(f"`semisup data inspect ROOT` (no --check), whole command, {how}", cli,
                            ["data", "inspect", str(root)]))
        rows.append(measure(f"`semisup run`: start to the first training step (SESEMI, ResNet18 at 64 px), {how}",
                            FIRST_STEP, lambda: [str(recipe), str(run_dir / f"r{next(runs)}")], first_step=True))
    title = f"bench_scale: {args.trailers} trailers x {args.frames} frames, folder layout"
    made_text = f"generated in {made:.0f} s" if made else "generated by an earlier call"
    intro = (f"`python scripts/bench_scale.py --trailers {args.trailers} --frames {args.frames}` on "
             f"{platform.machine()}, {os.cpu_count()} cores ({args.trailers * args.frames} frame files, {made_text}). "
             "Each row is a fresh interpreter, run once after the page cache was dropped (cold: every folder "
             "and file read from disk, as on a network file system's first read) and once right after (warm); "
             "memory is the peak resident set of its main process (warm run).")
    table = markdown_section(title, intro, ("what", "cold cache: seconds", "warm cache: seconds",
                                            "peak memory (GiB)"), rows)
    print(table)
    if args.write:
        replace_section(args.write, title, table)


if __name__ == "__main__":
    main()
