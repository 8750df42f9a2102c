"""Training augmentation: set by the recipe, and drawn once per clip where time order matters."""

from __future__ import annotations

import pytest
import torch

from semisup.augment import FrameAugment, FrameNormalize
from semisup.config import load_recipe
from semisup.errors import SemisupError

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def clips_of_one_frame(clips: int = 4, frames: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip repeats one random image: any difference inside a clip comes from augmentation."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (clips, 3, 24, 24), dtype=torch.uint8)
    owner = torch.arange(clips).repeat_interleave(frames)
    return images[owner], owner


def test_per_clip_gives_every_frame_of_a_clip_the_same_crop_rotation_and_flip():
    frames, owner = clips_of_one_frame()
    out = FrameAugment(24, MEAN, STD, hflip=0.5, degrees=30, scale=(0.3, 1.0), per_clip=True)(frames, owner)
    for clip in range(4):
        same = out[owner == clip]
        assert torch.allclose(same, same[0].expand_as(same))
    assert not torch.allclose(out[owner == 0][0], out[owner == 1][0])


def test_per_frame_draws_fresh_parameters_for_every_frame():
    frames, owner = clips_of_one_frame()
    out = FrameAugment(24, MEAN, STD, hflip=0.5, degrees=30, scale=(0.3, 1.0), per_clip=False)(frames, owner)
    assert not torch.allclose(out[0], out[1])


def test_every_part_can_be_off():
    frames, _ = clips_of_one_frame()
    plain = FrameAugment(24, MEAN, STD, hflip=0.0, degrees=0.0, scale=(1.0, 1.0))(frames.clone())
    torch.testing.assert_close(plain, FrameNormalize(MEAN, STD)(frames))


def test_a_strong_view_without_colour_keeps_every_unerased_pixel_as_it_was():
    frames, _ = clips_of_one_frame(clips=8, frames=1)
    plain = FrameNormalize(MEAN, STD)(frames)
    torch.manual_seed(1)
    no_colour = FrameAugment(24, MEAN, STD, hflip=0.0, degrees=0.0, scale=(1.0, 1.0), strong=True,
                             strong_colour=False)(frames.clone())
    kept = torch.isclose(no_colour, plain, atol=1e-4).all(1)  # per pixel: all channels as they were
    assert kept.float().mean() > 0.7 and not kept.all()  # random erasing only: some patches, no colour change
    torch.manual_seed(1)
    coloured = FrameAugment(24, MEAN, STD, hflip=0.0, degrees=0.0, scale=(1.0, 1.0), strong=True)(frames.clone())
    assert torch.isclose(coloured, plain, atol=1e-4).all(1).float().mean() < 0.5  # colour jitter (p = 0.8) moves most pixels


@pytest.mark.parametrize("task_aggregator, pretext, per_clip, expected", [
    ("mean", "sesemi", "auto", (False, False)),
    ("gru", "sesemi", "auto", (True, False)),
    ("mean", "arrow-of-time", "auto", (False, True)),
    ("transformer", "frame-order", "never", (False, False)),
    ("mean", "sesemi", "always", (True, True)),
])
def test_per_clip_follows_what_reads_time(tiny_recipe, task_aggregator, pretext, per_clip, expected):
    from semisup.data.samples import TaskSpec
    from semisup.build import build_model
    from semisup.train.setup import build_augmentations

    recipe = load_recipe(tiny_recipe(), [f'tasks.aggregator="{task_aggregator}"', f'pretext.name="{pretext}"',
                                         f'augment.per_clip="{per_clip}"', "augment.hflip=0.2",
                                         "pretext.frames_per_trailer=3"])
    model = build_model(recipe, [TaskSpec("genres", ("a", "b"))])
    views = build_augmentations(recipe, model)
    labeled, pretext_aug = views["labeled"], views["pretext"]
    assert (labeled.per_clip, pretext_aug.per_clip) == expected
    flips = [type(step).__name__ for step in pretext_aug.pipeline.children()]
    assert "RandomHorizontalFlip" not in flips  # never for pretext frames
    assert any(getattr(step, "p", None) == 0.2 for step in labeled.pipeline.children()
               if type(step).__name__ == "RandomHorizontalFlip")


def test_augment_keys_are_checked(tiny_recipe):
    with pytest.raises(SemisupError, match=r"augment.hflip: expected 0 <= x <= 1, got 1.5"):
        load_recipe(tiny_recipe(), ["augment.hflip=1.5"])
    with pytest.raises(SemisupError, match='augment.per_clip: expected one of "auto", "always", "never"'):
        load_recipe(tiny_recipe(), ['augment.per_clip="sometimes"'])
