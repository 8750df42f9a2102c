"""Checkpoints: atomic writes, safe reads."""

from __future__ import annotations

import pickle

import pytest
import torch

from semisup.errors import SemisupError
from semisup.checkpoints import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_round_trip_and_no_temporary_files_left(tmp_path):
    path = tmp_path / "ckpt" / "last.pt"
    state = {"model": {"w": torch.arange(3.0)}, "position": {"epoch": 2, "batch": 5}, "best": {"score": -float("inf")}}
    save_checkpoint(path, state)
    save_checkpoint(path, {**state, "position": {"epoch": 3, "batch": 0}})  # overwrite in place
    loaded = load_checkpoint(path)
    assert loaded["position"] == {"epoch": 3, "batch": 0}
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"position": {"epoch": 1}})
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint(path, {"position": {"epoch": 2}, "bad": lambda: None})  # not serialisable
    assert load_checkpoint(path)["position"] == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_pickled_code_is_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickled code ran')",))

    torch.save({"format": "semisup-checkpoint-1", "evil": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(SemisupError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_foreign_and_missing_files(tmp_path):
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(SemisupError, match="not a semisup checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(SemisupError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_rng_state_restores_the_stream(tmp_path):
    torch.manual_seed(3)
    save_checkpoint(tmp_path / "r.pt", {"rng": rng_state()})
    expected = torch.rand(4)
    torch.manual_seed(99)
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    assert torch.equal(torch.rand(4), expected)


def test_a_raw_pickle_is_refused_in_one_line_without_torch_warnings(tmp_path):
    """torch warns "Detected pickle protocol 4" before refusing such a file; the user sees one line only."""
    import warnings

    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickled code ran')",))

    path = tmp_path / "last.pt"
    path.write_bytes(pickle.dumps({"format": "semisup-checkpoint-1", "evil": Evil()}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SemisupError, match=r"last.pt: not a readable checkpoint \(UnpicklingError\)"):
            load_checkpoint(path)
    assert caught == []
