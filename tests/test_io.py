"""Writing files: atomic, with the usual file modes, never over what exists unless forced."""

from __future__ import annotations

import os
import stat

import pytest

from semisup.data.splits import write_split_column
from semisup.errors import SemisupError
from semisup.io import (atomic_folder, atomic_write, new_file_mode, refuse_existing, remove_stale_partials,
                        write_json, write_text)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_get_the_umask_mode_and_rewritten_files_keep_theirs(tmp_path, umask_022):
    """A bare temporary file is 0600; what semisup writes must look like any other file."""
    path = tmp_path / "a" / "report.json"
    write_json(path, {"x": float("nan")})
    assert mode(path) == 0o644 == new_file_mode()
    assert path.read_text() == '{\n  "x": null\n}\n'
    os.chmod(path, 0o664)
    write_text(path, "again")
    assert mode(path) == 0o664 and path.read_text() == "again"
    os.umask(0o077)
    write_text(tmp_path / "private.txt", "x")
    assert mode(tmp_path / "private.txt") == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "labels.csv"
    write_text(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as handle:
            handle.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["labels.csv"]


def test_a_folder_built_aside_gets_the_usual_mode(tmp_path, umask_022):
    with atomic_folder(tmp_path / "frames" / "clip") as tmp:
        assert tmp.name.startswith(".clip.") and mode(tmp) == 0o755
        (tmp / "0.jpg").write_bytes(b"x")
    assert mode(tmp_path / "frames" / "clip") == 0o755
    assert [p.name for p in (tmp_path / "frames").iterdir()] == ["clip"]


def test_split_rewrites_labels_csv_with_its_mode_and_a_backup(tmp_path, umask_022):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("id,genres\na,Drama\nb,Comedy\n")
    os.chmod(csv_path, 0o664)
    backup = write_split_column(csv_path, {"a": "train", "b": "test"})
    assert csv_path.read_text() == "id,split,genres\na,train,Drama\nb,test,Comedy\n"
    assert mode(csv_path) == 0o664 and mode(backup) == 0o664
    assert backup.read_text() == "id,genres\na,Drama\nb,Comedy\n"


def test_refuse_existing_files_and_folders_unless_forced(tmp_path):
    target = tmp_path / "emb.npy"
    refuse_existing(target, force=False)  # nothing there: fine
    target.write_bytes(b"mine")
    with pytest.raises(SemisupError, match=r"emb.npy: already exists \(use --force to overwrite it"):
        refuse_existing(target, force=False)
    refuse_existing(target, force=True)
    with pytest.raises(SemisupError, match="emb.npy: is a file, expected a sweep folder"):
        refuse_existing(target, force=True, what="sweep", kind="folder")
    with pytest.raises(SemisupError, match="is a folder, expected a report file"):
        refuse_existing(tmp_path, force=True, what="report")
    folder = tmp_path / "sweep"
    folder.mkdir()
    refuse_existing(folder, force=False, kind="folder")  # empty: fine
    (folder / "sweep.json").write_text("{}")
    with pytest.raises(SemisupError, match="sweep: already exists and is not empty"):
        refuse_existing(folder, force=False, kind="folder")
    refuse_existing(folder, force=True, kind="folder")


def test_stale_partials_are_removed_and_nothing_else(tmp_path):
    keep = ["best.pt", "last.pt", ".gitignore", ".hidden.pt", "notes.partial"]
    stale = [".best.pt.k2j4_x9a", ".last.pt.abc123xy.partial", ".report.json.9q8w7e6r.partial"]
    for name in keep + stale:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".clip.x1y2.partial").mkdir()
    removed = remove_stale_partials(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale + [".clip.x1y2.partial"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert remove_stale_partials(tmp_path / "missing") == []
