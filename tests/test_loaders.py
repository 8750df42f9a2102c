"""Frame picking, decoding, corrupt frames, collation and resumable samplers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from semisup.data.folder import TaskColumn, read_folder
from semisup.data.frames import even_frames, fixed_frames, random_frames, strided_frames
from semisup.data.images import load_frame
from semisup.data.loaders import (CyclingBatchSampler, EpochBatchSampler, TrailerFrames, clip_picker,
                                  collate_clips, collate_packed, eval_picker, make_loader, train_picker)
from semisup.data.samples import Sample, TaskSpec


def test_random_frames_are_distinct_sorted_and_vary():
    rng = np.random.default_rng(0)
    picks = [random_frames(30, 5, rng) for _ in range(20)]
    for pick in picks:
        assert len(pick) == 5 and len(set(pick)) == 5 and list(pick) == sorted(pick)
        assert 0 <= pick.min() and pick.max() < 30
    assert len({tuple(p) for p in picks}) > 10  # fresh frames each draw
    assert list(random_frames(3, 5, rng)) == [0, 1, 2]  # short trailers give all they have


def test_even_frames_are_deterministic_and_spread():
    assert list(even_frames(100, 4)) == [12, 37, 62, 87]
    assert list(even_frames(4, 10)) == [0, 1, 2, 3]
    picks = even_frames(20, 20)
    assert list(picks) == list(range(20))


def test_strided_frames_are_ordered_clips_with_a_random_start():
    rng = np.random.default_rng(2)
    picks = [strided_frames(100, 4, rng) for _ in range(30)]
    for pick in picks:
        assert len(pick) == 4 and list(pick) == sorted(pick) and 0 <= pick.min() and pick.max() < 100
        assert all(24 <= gap <= 26 for gap in np.diff(pick))  # a steady rhythm: stride 25
        assert pick[0] < 25  # the start lies in the first segment, so the clip spans the trailer
    assert len({tuple(p) for p in picks}) > 10  # other frames each epoch
    assert list(strided_frames(3, 5, rng)) == [0, 1, 2]


def test_a_temporal_aggregator_gets_ordered_clips(tiny_recipe):
    from semisup.config import load_recipe
    from semisup.build import load_data
    from semisup.train.setup import build_streams

    for aggregator, expected in (("mean", "_random_picker"), ("gru", "_strided_picker")):
        recipe = load_recipe(tiny_recipe(), [f'tasks.aggregator="{aggregator}"'])
        dataset = load_data(recipe.data, recipe.tasks, needs_unlabeled=True)
        streams = build_streams(recipe, dataset.samples, dataset.tasks)
        assert streams.labeled.dataset.pick.func.__name__ == expected


def test_fixed_frames_always_give_k():
    rng = np.random.default_rng(1)
    for n in (1, 2, 3, 7, 50):
        pick = fixed_frames(n, 4, rng)
        assert len(pick) == 4 and list(pick) == sorted(pick) and pick.max() < n
    assert set(fixed_frames(3, 6, rng)) == {0, 1, 2}  # every frame used before any repeats


def test_load_frame_crops_the_centre_square(tmp_path):
    image = np.zeros((60, 120, 3), np.uint8)
    image[:, 30:90] = 255  # the centre 60x60 is white, the sides black
    Image.fromarray(image).save(tmp_path / "f.png")
    frame = load_frame(tmp_path / "f.png", 30)
    assert frame.shape == (30, 30, 3) and frame.dtype == np.uint8
    assert frame.min() > 200


def make_trailer(tmp_path, frames: int, corrupt: tuple[int, ...] = (), name: str = "t") -> Sample:
    folder = tmp_path / name
    folder.mkdir()
    paths = []
    for j in range(frames):
        path = folder / f"{j:03d}.jpg"
        if j in corrupt:
            path.write_bytes(b"\xff\xd8\xff not really a jpeg")
        else:
            Image.fromarray(np.full((20, 20, 3), 10 * j, np.uint8)).save(path)
        paths.append(path)
    return Sample(name, tuple(paths), labels={"genres": ("A",)})


def test_corrupt_frames_are_skipped_and_reported(tmp_path):
    sample = make_trailer(tmp_path, 6, corrupt=(1, 4))
    spec = TaskSpec("genres", ("A", "B"))
    dataset = TrailerFrames([sample], [spec], 16, eval_picker(6))
    item = dataset[(0, 0)]
    assert item.frames.shape == (4, 16, 16, 3)
    assert sorted(p.rsplit("/", 1)[1] for p in item.bad_frames) == ["001.jpg", "004.jpg"]
    assert list(item.targets["genres"]) == [1.0, 0.0]


def test_trailer_whose_picked_frames_are_all_corrupt_falls_back_then_is_dropped(tmp_path):
    sample = make_trailer(tmp_path, 4, corrupt=(0, 1, 2))
    dataset = TrailerFrames([sample], [], 16, train_picker(1))
    # whatever frame is picked, a readable one is found
    for seed in range(5):
        assert len(dataset[(0, seed)].frames) == 1
    broken = make_trailer(tmp_path, 2, corrupt=(0, 1), name="broken")
    batch = collate_packed([TrailerFrames([broken], [], 16, eval_picker(2))[(0, 0)], dataset[(0, 0)]])
    assert batch.num_trailers == 1 and len(batch.bad_frames) >= 2


def test_collate_packed_and_clips():
    def item(index, n):
        from semisup.data.loaders import TrailerItem

        return TrailerItem(index, np.full((n, 4, 4, 3), index, np.uint8), {"g": np.array([index % 2, 1], np.float32)},
                           {"g": index != 2}, [])

    batch = collate_packed([item(0, 2), item(1, 3), item(2, 1)])
    assert batch.frames.shape == (6, 3, 4, 4)
    assert batch.owner.tolist() == [0, 0, 1, 1, 1, 2]
    assert batch.frames[2:5].unique().tolist() == [1]  # trailer 1's frames sit at its owner's rows
    assert batch.targets["g"].tolist() == [[0, 1], [1, 1], [0, 1]]
    assert batch.has_label["g"].tolist() == [True, True, False]
    clips = collate_clips([item(0, 2), item(1, 2)])
    assert clips.frames.shape == (2, 2, 3, 4, 4)


def test_epoch_sampler_is_a_pure_function_of_seed_epoch_and_position():
    sampler = EpochBatchSampler(23, 4, seed=7, stream=2, drop_last=True)
    sampler.set_epoch(3)
    full = list(sampler)
    assert len(full) == len(sampler) == 5 and all(len(b) == 4 for b in full)
    sampler.set_epoch(3, start_batch=2)
    assert list(sampler) == full[2:]
    sampler.set_epoch(4)
    assert list(sampler) != full
    # the same index gets a different frame-draw seed in another epoch
    seeds3 = {i: s for b in full for i, s in b}
    seeds4 = {i: s for b in sampler for i, s in b}
    assert any(seeds3[i] != seeds4[i] for i in set(seeds3) & set(seeds4))


@pytest.mark.parametrize("num_samples", [1, 2, 3, 7, 13, 20, 63, 639])
@pytest.mark.parametrize("world_size", [2, 3, 4, 7])
@pytest.mark.parametrize("batch_size", [1, 4, 16])
@pytest.mark.parametrize("drop_last", [True, False])
def test_every_process_gets_the_same_number_of_batches_whatever_the_pool(num_samples, world_size, batch_size,
                                                                         drop_last):
    samplers = [EpochBatchSampler(num_samples, batch_size, seed=1, stream=1, rank=rank, world_size=world_size,
                                  drop_last=drop_last) for rank in range(world_size)]
    shards = []
    for sampler in samplers:
        sampler.set_epoch(0)
        shards.append([[i for i, _ in batch] for batch in sampler])
    # the same number of steps on every process (a step's collectives pair up), each as long
    assert len({len(sampler) for sampler in samplers}) == 1
    assert all(len(shard) == len(samplers[0]) for shard in shards)
    assert len({tuple(len(b) for b in shard) for shard in shards}) == 1
    read = [i for shard in shards for batch in shard for i in batch]
    if num_samples >= world_size:  # an equal share each: no sample read twice, at most world_size - 1 left out
        assert len(read) == len(set(read))
        if not drop_last or num_samples // world_size < batch_size:
            assert num_samples - len(read) < world_size
    else:  # fewer samples than processes: wrapped around, every sample read
        assert set(read) == set(range(num_samples)) and len(read) == world_size


def test_a_repeated_sample_draws_afresh():
    """A pool smaller than the processes wraps around: the repeat gets its own frame draws."""
    draws = [list(EpochBatchSampler(1, 4, seed=1, stream=1, rank=rank, world_size=2))[0][0] for rank in range(2)]
    assert draws[0][0] == draws[1][0] == 0 and draws[0][1] != draws[1][1]


def test_two_shares_are_the_batches_of_one_process_with_twice_the_batch():
    """What makes N processes train what one process trains with N times the batch."""
    one = EpochBatchSampler(63, 32, seed=1, stream=1, drop_last=True)
    two = [EpochBatchSampler(63, 16, seed=1, stream=1, drop_last=True, rank=r, world_size=2) for r in range(2)]
    for batches in (one, *two):
        batches.set_epoch(3)
    assert len(one) == len(two[0]) == 1
    assert sorted(list(one)[0]) == sorted(list(two[0])[0] + list(two[1])[0])


def test_cycling_sampler_resumes_exactly():
    def take(start, n):
        it = iter(CyclingBatchSampler(10, 4, seed=3, stream=1, start_batch=start))
        return [next(it) for _ in range(n)]

    stream = take(0, 12)
    assert take(5, 7) == stream[5:]
    assert all(len(batch) == 4 for batch in stream)  # each pass drops its incomplete batch
    per_pass = 2
    first_pass = [i for b in stream[:per_pass] for i, _ in b]
    assert len(set(first_pass)) == 8


def test_loader_with_workers_gives_the_same_batches_as_without(demo_root):
    data = read_folder(demo_root, [TaskColumn("genres", "genres")])
    dataset = TrailerFrames(data.samples[:12], data.tasks, 32, train_picker(3))

    def batches(workers):
        sampler = EpochBatchSampler(12, 4, seed=0, stream=1)
        sampler.set_epoch(1)
        return [b.frames for b in make_loader(dataset, sampler, collate_packed, workers)]

    serial, parallel = batches(0), batches(2)
    assert len(serial) == 3 and all(torch.equal(a, b) for a, b in zip(serial, parallel))


def test_clip_picker_gives_fixed_length_clips(demo_root):
    samples = read_folder(demo_root, [TaskColumn("genres", "genres")]).samples
    dataset = TrailerFrames(samples[:6], [], 32, clip_picker(5))
    clips = collate_clips([dataset[(i, i)] for i in range(6)])
    assert clips.frames.shape == (6, 5, 3, 32, 32) and clips.frames.dtype == torch.uint8
