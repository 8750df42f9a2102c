"""Re-balancing the labeled stream: class balance per pass, freshness across passes, exact resume."""

from __future__ import annotations

import numpy as np
import pytest

from semisup.config import load_recipe
from semisup.data.balance import BalancedPasses
from semisup.data.loaders import CyclingBatchSampler
from semisup.errors import SemisupError

# 60 Static, 25 Motion, 4 Push, 1 Pull, and 10 shots without a movement label
COUNTS = [60, 25, 4, 1]
CLASSES = np.repeat(np.arange(4), COUNTS)
TARGETS = np.vstack([np.eye(4)[CLASSES], np.zeros((10, 4))])
LABELED = np.r_[np.ones(len(CLASSES), bool), np.zeros(10, bool)]


def per_class(order: np.ndarray) -> list[int]:
    return TARGETS[order].sum(0).astype(int).tolist()


def test_undersampling_caps_classes_at_the_median_and_draws_the_majority_afresh():
    passes = BalancedPasses(TARGETS, LABELED, "undersample", seed=0, stream=1)
    median = int(np.median(COUNTS))  # 14
    first, second = passes(0), passes(1)
    assert per_class(first) == per_class(second) == [min(n, median) for n in COUNTS]
    assert len(first) == len(second) == passes.length == sum(min(n, median) for n in COUNTS) + 10
    assert set(range(90, 100)) <= set(first.tolist())  # unlabeled for the task: always there, once

    def static(order):  # samples 0..59 are the Static ones
        return {int(i) for i in order if i < 60}

    assert static(first) != static(second)  # a fresh subset of the majority class each pass
    seen = set().union(*(static(passes(p)) for p in range(20)))
    assert seen == set(range(60))  # nothing thrown away over the run
    np.testing.assert_array_equal(passes(3), BalancedPasses(TARGETS, LABELED, "undersample", 0, 1)(3))


def test_oversampling_fills_every_class_up_to_the_largest():
    passes = BalancedPasses(TARGETS, LABELED, "oversample", seed=0, stream=1)
    order = passes(0)
    assert per_class(order) == [60, 60, 60, 60] and len(order) == passes.length == 250
    assert set(order.tolist()) == set(range(100))  # every sample at least once


def test_repeat_factor_repeats_rare_labels_of_multilabel_samples():
    rng = np.random.default_rng(0)
    targets = (rng.random((200, 5)) < [0.5, 0.3, 0.1, 0.02, 0.01]).astype(float)
    passes = BalancedPasses(targets, np.ones(200, bool), "repeat-factor", seed=0, stream=1, threshold=0.1)
    draws = np.stack([np.bincount(passes(p), minlength=200) for p in range(50)]).mean(0)
    rare = targets[:, 4] > 0
    common_only = (targets[:, 0] > 0) & (targets[:, 1:].sum(1) == 0)
    assert draws[rare].mean() > 2.5 and draws[common_only].mean() == pytest.approx(1.0)
    assert {len(passes(p)) for p in range(5)} == {passes.length}


def test_a_balanced_cycling_stream_resumes_exactly():
    passes = BalancedPasses(TARGETS, LABELED, "undersample", seed=3, stream=1)
    stream = CyclingBatchSampler(100, 8, seed=3, stream=1, plan=passes)
    batches = [batch for batch, _ in zip(stream, range(30))]
    assert [i for batch in batches[:len(stream.epochs)] for i, _ in batch] == \
        passes(0)[:len(stream.epochs) * 8].tolist()
    resumed = CyclingBatchSampler(100, 8, seed=3, stream=1, start_batch=17, plan=passes)
    assert [b for b, _ in zip(resumed, range(13))] == batches[17:]
    seeds = [seed for batch in batches for _, seed in batch]
    assert len(set(seeds)) == len(seeds)  # a repeated sample still gets its own draws


def test_balance_keys_are_checked(tiny_recipe):
    with pytest.raises(SemisupError, match='train.balance = "undersample" needs a multiclass task'):
        load_recipe(tiny_recipe(), ['train.balance="undersample"'])
    with pytest.raises(SemisupError, match="train.balance_task: no task 'mood'"):
        load_recipe(tiny_recipe(), ['train.balance="repeat-factor"', 'train.balance_task="mood"'])
    assert load_recipe(tiny_recipe(), ['train.balance="repeat-factor"']).train.balance == "repeat-factor"
