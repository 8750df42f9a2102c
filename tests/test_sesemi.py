"""SESEMI: transforms and targets on batched tensors."""

from __future__ import annotations

import pytest
import torch

from semisup.pretext import get_pretext_task, pretext_tasks
from semisup.pretext.sesemi import SESEMI_CLASSES, Sesemi, sesemi_transform

INVERSE = {
    0: lambda x: x,
    1: lambda x: torch.rot90(x, -1, dims=(2, 3)),
    2: lambda x: torch.rot90(x, -2, dims=(2, 3)),
    3: lambda x: torch.rot90(x, -3, dims=(2, 3)),
    4: lambda x: torch.flip(x, dims=(3,)),
    5: lambda x: torch.flip(x, dims=(2,)),
}


def test_undoing_each_target_restores_the_frame():
    frames = torch.randn(12, 3, 8, 8)
    target = torch.arange(12) % 6
    out = sesemi_transform(frames, target)
    for i in range(12):
        restored = INVERSE[int(target[i])](out[i:i + 1])
        assert torch.equal(restored, frames[i:i + 1])


def test_the_six_transforms_are_distinct_and_named():
    frame = torch.arange(16.0).view(1, 1, 4, 4)  # asymmetric, so every transform differs
    outs = [sesemi_transform(frame, torch.tensor([k])) for k in range(6)]
    assert len({o.flatten().tolist().__repr__() for o in outs}) == 6
    assert torch.equal(outs[1], torch.rot90(frame, 1, dims=(2, 3)))  # 90 degrees counter-clockwise
    assert torch.equal(outs[4][0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))  # left-right flip
    assert SESEMI_CLASSES == ("rot0", "rot90", "rot180", "rot270", "hflip", "vflip")


def test_non_square_frames_are_refused():
    with pytest.raises(ValueError, match="square"):
        sesemi_transform(torch.zeros(2, 3, 8, 6), torch.zeros(2, dtype=torch.long))


class Recorder:
    """An encoder stand-in that remembers what it was given and returns fixed features."""

    def __init__(self):
        self.seen = None

    def __call__(self, x):
        self.seen = x
        return x.flatten(1)[:, :5]


def test_all_mode_applies_all_six_to_every_frame():
    task = Sesemi(Sesemi.Options(transforms="all"), feature_dim=5, head_hidden=8)
    frames = torch.randn(2, 3, 3, 6, 6)  # B=2 trailers, T=3 frames
    encode = Recorder()
    out = task(frames, encode)
    assert encode.seen.shape == (36, 3, 6, 6)
    flat = frames.flatten(0, 1)
    for k in range(6):
        assert torch.equal(INVERSE[k](encode.seen[k * 6:(k + 1) * 6]), flat)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and 0 <= out.accuracy <= 1


def test_one_mode_gives_one_random_transform_per_frame():
    torch.manual_seed(0)
    task = Sesemi(Sesemi.Options(transforms="one"), feature_dim=5, head_hidden=8)
    frames = torch.randn(4, 8, 3, 6, 6)
    encode = Recorder()
    task(frames, encode)
    assert encode.seen.shape == (32, 3, 6, 6)
    flat = frames.flatten(0, 1)
    # every output is exactly one of the six transforms of its input frame
    ks = [next(k for k in range(6) if torch.equal(INVERSE[k](encode.seen[i:i + 1]), flat[i:i + 1]))
          for i in range(32)]
    assert len(set(ks)) >= 4


def test_sesemi_head_learns_its_targets():
    """A linear-ish head on raw pixels separates the six transforms of a fixed asymmetric frame."""
    torch.manual_seed(0)
    task = Sesemi(Sesemi.Options(transforms="all"), feature_dim=64, head_hidden=64)
    frames = torch.arange(64.0).view(1, 1, 1, 8, 8).expand(4, 1, 1, 8, 8) / 64
    optimizer = torch.optim.Adam(task.parameters(), lr=1e-2)
    for _ in range(150):
        out = task(frames, lambda x: x.flatten(1))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert out.accuracy.item() == 1.0


def test_registry_knows_sesemi():
    assert pretext_tasks()["sesemi"] is Sesemi
    assert get_pretext_task("sesemi") is Sesemi


def test_a_task_outside_the_package_loads_by_module_path(tmp_path, monkeypatch, tiny_recipe):
    from semisup.config import load_recipe
    from semisup.errors import SemisupError

    (tmp_path / "my_tasks.py").write_text(
        "import torch\n"
        "from dataclasses import dataclass\n"
        "from semisup.pretext import PretextTask\n\n"
        "class Mirror(PretextTask):\n"
        "    num_classes = 2\n\n"
        "    @dataclass(frozen=True)\n"
        "    class Options:\n"
        "        p: float = 0.5\n\n"
        "    def forward(self, frames, encode):\n"
        "        x = frames.flatten(0, 1)\n"
        "        target = (torch.rand(x.shape[0]) < self.options.p).long()\n"
        "        x = torch.where(target.view(-1, 1, 1, 1) == 1, x.flip(3), x)\n"
        "        return self.classify(encode(x), target)\n"
        "\nclass NotATask:\n    pass\n")
    (tmp_path / "broken_tasks.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = get_pretext_task("my_tasks:Mirror")
    task = cls(cls.Options(p=1.0), feature_dim=12, head_hidden=4)
    out = task(torch.randn(2, 2, 3, 2, 2), lambda x: x.flatten(1))
    assert torch.isfinite(out.loss)
    recipe = load_recipe(tiny_recipe(), ['pretext.name="my_tasks:Mirror"', "pretext.p=0.25"])
    assert recipe.pretext[0].options.p == 0.25
    with pytest.raises(SemisupError, match="'broken_tasks:X' failed to import: RuntimeError: boom"):
        get_pretext_task("broken_tasks:X")
    with pytest.raises(SemisupError, match="'my_tasks:NotATask' is not a PretextTask subclass"):
        get_pretext_task("my_tasks:NotATask")
