"""Streaming shards against frames folders: writing them, and reading trailers from them.

    python scripts/bench_shards.py [--trailers 300] [--frames 20] [--write BENCHMARKS.md]

Generates a folder dataset (``--trailers`` trailers of ``--frames`` 480x270 JPEGs
of real photos), writes it with ``semisup data shard`` (``--side 128``) into a
folder and into a bucket of moto's S3 server on 127.0.0.1, then reads every
trailer once in a seeded random order, 8 picked frames each at 64 px, as a
training loader's worker does (one process, no workers): from the folders,
from the shards on disk, and from the bucket (first pass: every shard
downloaded on first use; second pass: from the local cache).

The reading rows do the same picks of the same trailers, but not the same
decoding: folders decode the 480x270 originals, shards their 128 px squares.
The bucket is on this machine (no network latency or bandwidth limit).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import markdown_section, replace_section  # noqa: E402

from semisup.data.folder import read_folder  # noqa: E402
from semisup.data.labels import TaskColumn  # noqa: E402
from semisup.data.loaders import TrailerFrames, train_picker  # noqa: E402
from semisup.data.shards import read_shards, write_shards  # noqa: E402

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "hubble_deep_field", "immunohistochemistry"]
GENRES = [TaskColumn("genres", "genres")]


def generate(root: Path, trailers: int, frames: int) -> None:
    from skimage import data as photos

    root.mkdir(parents=True)
    sources = []
    for i, name in enumerate(PHOTOS):
        image = Image.fromarray(getattr(photos, name)()).convert("RGB").resize((480, 270))
        path = root / f"source{i}.jpg"
        image.save(path, quality=90)
        sources.append(path)
    rows = ["id,split,genres"]
    for t in range(trailers):
        rows.append(f"t{t:05d},{'train' if t % 5 else 'val'},{['Action', 'Drama', 'Comedy'][t % 3]}")
        folder = root / "frames" / f"t{t:05d}"
        folder.mkdir(parents=True)
        for k in range(frames):
            os.link(sources[(t + k) % len(sources)], folder / f"{k:03d}.jpg")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def generate_pool(root: Path, trailers: int, frames: int, labeled: int = 60) -> None:
    """:func:`generate`, then only the first ``labeled`` trailers keep a label (40 train, 10 val,
    10 test for 60); the others are unlabeled: the pool a run predicts on or selects from."""
    generate(root, trailers, frames)
    lines = (root / "labels.csv").read_text().splitlines()
    splits = ["train"] * (labeled * 2 // 3) + ["val"] * (labeled // 6)
    splits += ["test"] * (labeled - len(splits))
    rows = [lines[0]] + [
        f"{line.split(',')[0]},{splits[i]},{line.split(',')[2]}" if i < labeled else f"{line.split(',')[0]},unlabeled,"
        for i, line in enumerate(lines[1:])]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def read_all(samples, seed: int = 0) -> float:
    """Seconds to read every trailer once, 8 picked frames at 64 px, in a seeded random order."""
    frames = TrailerFrames(samples, (), 64, train_picker(8))
    order = np.random.default_rng(seed).permutation(len(samples))
    start = time.perf_counter()
    for i in order:
        item = frames[int(i), int(i)]
        assert len(item.frames) == 8
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trailers", type=int, default=300)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--write", type=Path, help="put the table into this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()

    import logging

    import boto3
    import streaming  # noqa: F401  (imported before the clock starts: 2-4 s once per process)
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["S3_ENDPOINT_URL"] = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"]).create_bucket(Bucket="bench")

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "folder"
        generate(root, args.trailers, args.frames)
        dataset = read_folder(root, GENRES)
        n = len(dataset.samples)
        rows = []
        for where, out in (("a folder", str(Path(scratch) / "shards")), ("the S3 server", "s3://bench/shards")):
            start = time.perf_counter()
            write_shards(dataset.samples, dataset.tasks, out, side=128, part_size=100,
                         staging=Path(scratch) / "staging")
            seconds = time.perf_counter() - start
            rows.append((f"`semisup data shard` into {where} (--side 128)", f"{seconds:.1f}", f"{n / seconds:.1f}"))
        local = read_shards(str(Path(scratch) / "shards"), GENRES).samples
        remote = read_shards("s3://bench/shards", GENRES, cache=Path(scratch) / "cache").samples
        for name, samples in (("frames folders (480x270 JPEGs)", dataset.samples),
                              ("shards on disk (128 px squares)", local),
                              ("shards on the S3 server, first pass (downloads each shard)", remote),
                              ("shards on the S3 server, second pass (local cache)", remote)):
            seconds = read_all(samples)
            rows.append((f"read every trailer once: {name}", f"{seconds:.1f}", f"{n / seconds:.1f}"))
    server.stop()
    title = "bench_shards: streaming shards against frames folders"
    intro = (f"`python scripts/bench_shards.py --trailers {args.trailers} --frames {args.frames}` on "
             f"{platform.machine()}, {os.cpu_count()} cores: {n} trailers of {args.frames} frames; reading takes 8 "
             "picked frames of each at 64 px in a seeded random order, one process. The reading rows pick the "
             "same frames but decode different files (originals against 128 px squares); the S3 server is "
             "moto's on 127.0.0.1 (no network in between).")
    table = markdown_section(title, intro, ("what", "seconds", "trailers/s"), rows)
    print(table)
    if args.write:
        replace_section(args.write, title, table)


if __name__ == "__main__":
    main()
