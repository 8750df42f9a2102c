"""Temporal aggregators: contract tests over every registered one, order, masking, recipes, plug-ins."""

from __future__ import annotations

import pytest
import torch

from semisup.config import load_recipe
from semisup.errors import SemisupError
from semisup.models.aggregators import AGGREGATORS, build_aggregator, pad_packed

NAMES = sorted(AGGREGATORS.builtins())
D = 12


def sequences(seed: int = 0):
    """Three trailers of 5, 3 and 1 frames, padded to 5."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 5, D, generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    return x, mask


def make(name: str, **options):
    torch.manual_seed(0)
    return build_aggregator(name, options, D).eval()


def test_the_built_ins_are_registered():
    assert set(NAMES) >= {"mean", "max", "attention", "gru", "lstm", "transformer"}


@pytest.mark.parametrize("name", NAMES)
def test_shape_declared_width_and_gradients(name):
    aggregator = make(name)
    x, mask = sequences()
    x.requires_grad_(True)
    out = aggregator(x, mask)
    assert out.shape == (3, aggregator.out_dim) and torch.isfinite(out).all()
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    assert x.grad[mask].abs().sum() > 0  # every real frame can matter
    assert x.grad[~mask].abs().sum() == 0  # padding never does


@pytest.mark.parametrize("name", NAMES)
def test_padding_never_changes_the_output(name):
    aggregator = make(name)
    x, mask = sequences()
    garbage = x.masked_fill(~mask.unsqueeze(-1), 1e3)
    longer_x = torch.cat([garbage, torch.full((3, 4, D), -7.0)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], dim=1)
    expected = aggregator(x, mask)
    torch.testing.assert_close(aggregator(garbage, mask), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(aggregator(longer_x, longer_mask), expected, atol=1e-5, rtol=1e-5)
    alone = aggregator(x[1:2, :3], mask[1:2, :3])  # a trailer does not depend on its batch
    torch.testing.assert_close(alone, expected[1:2], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_order_sensitivity_is_what_the_aggregator_declares(name):
    """A push and a pull hold the same frames in opposite order: only an order-sensitive
    aggregator can tell them apart."""
    aggregator = make(name)
    x, mask = sequences()
    reversed_x = x.clone()
    for row, length in enumerate(mask.sum(1).tolist()):
        reversed_x[row, :length] = x[row, :length].flip(0)
    same = torch.allclose(aggregator(x, mask)[:2], aggregator(reversed_x, mask)[:2], atol=1e-5)
    assert same != type(aggregator).order_sensitive, name


def test_gru_and_lstm_readouts_and_motion():
    x, mask = sequences()
    for name in ("gru", "lstm"):
        for readout in ("last", "max"):
            out = make(name, hidden=8, readout=readout, bidirectional=True)(x, mask)
            assert out.shape == (3, 16)
        assert make(name, hidden=8, bidirectional=False)(x, mask).shape == (3, 8)
    moving = make("mean", motion=True)
    assert moving.in_dim == moving.out_dim == 2 * D
    # the motion half of "mean" is the mean of consecutive differences: (last - first) / frames
    out = moving(x, mask)
    torch.testing.assert_close(out[0, D:], (x[0, 4] - x[0, 0]) / 5)
    assert torch.all(out[2, D:] == 0)  # one frame: no motion


def test_pad_packed_keeps_time_order():
    features = torch.tensor([[1.0, 0.0], [3.0, 4.0], [5.0, -1.0], [7.0, 2.0], [9.0, 9.0]])
    owner = torch.tensor([0, 0, 0, 1, 1])
    x, mask = pad_packed(features, owner, 2)
    assert x.tolist() == [[[1.0, 0.0], [3.0, 4.0], [5.0, -1.0]], [[7.0, 2.0], [9.0, 9.0], [0.0, 0.0]]]
    assert mask.tolist() == [[True, True, True], [True, True, False]]
    assert make("mean")(x[:, :, :2].repeat(1, 1, D // 2), mask)[:, :2].tolist() == [[3.0, 1.0], [8.0, 5.5]]


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match='readout: expected "last" or "max"'):
        build_aggregator("gru", {"readout": "min"}, D)
    with pytest.raises(ValueError, match="multiple of heads"):
        build_aggregator("transformer", {"dim": 30, "heads": 4}, D)
    with pytest.raises(SemisupError, match='unknown aggregator \'gur\' \\(did you mean "gru"\\?\\)'):
        build_aggregator("gur", None, D)


def test_recipe_keys_are_checked_and_written_back(tiny_recipe, tmp_path):
    from semisup.config import recipe_to_toml

    path = tiny_recipe(extra="")
    recipe = load_recipe(path, ['tasks.aggregator="lstm"', "tasks.aggregator_options={hidden = 16, readout = \"max\"}"])
    task = recipe.tasks[0]
    assert task.aggregator == "lstm" and task.aggregator_options.hidden == 16
    assert task.aggregator_options.readout == "max" and task.aggregator_options.bidirectional is True
    again = tmp_path / "again.toml"
    again.write_text(recipe_to_toml(recipe))
    assert load_recipe(again).tasks[0] == task  # the run directory's config.toml reads back the same
    cases = [
        (['tasks.aggregator="gur"'], 'tasks.0.aggregator: unknown aggregator \'gur\' (did you mean "gru"?)'),
        (['tasks.aggregator="gru"', "tasks.aggregator_options={hiden = 3}"],
         'tasks.0.aggregator_options.hiden: unknown key (did you mean "hidden"?)'),
        (['tasks.aggregator="gru"', 'tasks.aggregator_options={readout = "min"}'],
         'tasks.0.aggregator_options.readout: expected one of "last", "max", got \'min\''),
        (['tasks.aggregator="gru"', "tasks.aggregator_options={hidden = 0}"],
         "tasks.0.aggregator_options.hidden: expected a positive width, got 0"),
        (["tasks.aggregator_options={hidden = 3}"], "tasks.0.aggregator_options: set only together with an aggregator"),
    ]
    for overrides, message in cases:
        with pytest.raises(SemisupError) as error:
            load_recipe(path, overrides)
        assert message in str(error.value)


def test_a_plug_in_aggregator_by_module_path_trains_end_to_end(tiny_recipe, tmp_path, monkeypatch):
    from semisup.train.run import start_run

    (tmp_path / "my_aggregators.py").write_text(
        "import torch\n"
        "from semisup.models import Aggregator\n\n"
        "class LastFrame(Aggregator):\n"
        "    '''The last real frame's features.'''\n"
        "    order_sensitive = True\n\n"
        "    def aggregate(self, x, mask):\n"
        "        return x[torch.arange(len(x)), mask.sum(1) - 1]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = start_run(tiny_recipe(pretext=False), ['tasks.aggregator="my_aggregators:LastFrame"', "train.epochs=1"],
                       tmp_path / "run")
    assert 0 <= result.report["splits"]["test"]["genres"]["mAP"] <= 1
    assert 'aggregator = "my_aggregators:LastFrame"' in (result.run_dir / "config.toml").read_text()


def test_a_gru_task_trains_predicts_and_embeds_with_its_aggregator(tiny_recipe, tmp_path):
    import numpy as np

    from semisup.embed import embed_run
    from semisup.train.run import start_run

    run = start_run(tiny_recipe(pretext=False), ['tasks.aggregator="gru"', "tasks.aggregator_options={hidden = 8}",
                                                 "train.epochs=1"], tmp_path / "run").run_dir
    path, count, width = embed_run(run, splits=["val"], task="genres", out=tmp_path / "gru.npz")
    assert width == 16  # a bidirectional GRU with 8 hidden units: what the head reads
    with np.load(path) as data:
        assert data["embeddings"].shape == (count, 16) and str(data["task"]) == "genres"
    _, _, frames_width = embed_run(run, splits=["val"], out=tmp_path / "mean.npz")
    assert frames_width != 16  # without --task: the mean of the encoder's frame features
    with pytest.raises(SemisupError, match="--task: the run has no task 'mood'"):
        embed_run(run, splits=["val"], task="mood", out=tmp_path / "x.npz")
    report = (run / "report.json").read_text()
    assert '"mAP"' in report  # the final evaluation went through the GRU
