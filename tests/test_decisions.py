"""Decision rules, per-class threshold tuning, the sweep, and multi-class metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from semisup.evaluate.decisions import (Argmax, AtLeastOne, MCut, PerClassThreshold, Threshold, TopK,
                                        rule_from_dict, tune_per_class_thresholds)
from semisup.evaluate.metrics import precision_recall_f1
from semisup.evaluate.report import multiclass_metrics
from semisup.evaluate.sweep import OBJECTIVES, sweep_task


def scored_case(seed=0, n=400, c=8):
    """Scores that carry signal: positives score higher on average, with class-specific offsets."""
    rng = np.random.default_rng(seed)
    targets = rng.random((n, c)) < np.linspace(0.4, 0.03, c)
    scores = 1 / (1 + np.exp(-(2.5 * targets + rng.normal(0, 1, (n, c)) - 1.5 + np.linspace(-1, 1, c))))
    return targets.astype(int), scores


def test_rules_decide_as_specified():
    scores = np.array([[0.9, 0.85, 0.2, 0.1], [0.3, 0.2, 0.25, 0.1], [0.6, 0.1, 0.55, 0.5]])
    assert TopK(2)(scores).sum(1).tolist() == [2, 2, 2]
    assert Threshold(0.5)(scores).tolist()[2] == [True, False, True, True]
    assert MCut()(scores).tolist() == [[True, True, False, False], [True, True, True, False],
                                       [True, False, True, True]]
    assert not Threshold(0.7)(scores)[1].any()
    assert AtLeastOne(Threshold(0.7))(scores)[1].tolist() == [True, False, False, False]
    assert PerClassThreshold((0.95, 0.1, 0.5, 0.5))(scores).tolist()[0] == [False, True, False, False]
    assert Argmax()(scores).sum(1).tolist() == [1, 1, 1]


@pytest.mark.parametrize("rule", [TopK(3), Threshold(0.35), PerClassThreshold((0.2, 0.4)), MCut(), Argmax(),
                                  AtLeastOne(PerClassThreshold((0.2, 0.4)))], ids=lambda r: r.name)
def test_rules_round_trip_through_dicts(rule):
    assert rule_from_dict(rule.to_dict()) == rule
    with pytest.raises(ValueError):
        rule_from_dict({"rule": "magic"})


def brute_force_best_f1(target, score):
    """Best F1 over every threshold (the reference for the tuned thresholds)."""
    best = 0.0
    for t in np.unique(score):
        predicted = score >= t
        tp = (predicted & (target == 1)).sum()
        best = max(best, 2 * tp / (predicted.sum() + target.sum()))
    return best


def test_per_class_thresholds_reach_the_best_f1_of_each_class():
    targets, scores = scored_case()
    tuned = tune_per_class_thresholds(targets, scores, min_positives=1, floor=0.0)
    decided = tuned(scores)
    for c in range(targets.shape[1]):
        prf = precision_recall_f1(targets[:, c:c + 1], decided[:, c:c + 1])
        assert prf.f1[0] == pytest.approx(brute_force_best_f1(targets[:, c], scores[:, c]), abs=1e-9), c


def test_rare_classes_fall_back_and_no_class_collapses_to_always_positive():
    rng = np.random.default_rng(3)
    scores = rng.random((200, 3)) * 0.3            # weak, uninformative scores
    targets = np.zeros((200, 3), int)
    targets[:120, 0] = 1                            # a frequent class
    targets[5, 1] = 1                               # a class with one positive
    tuned = tune_per_class_thresholds(targets, scores, fallback=0.45, min_positives=3, floor=0.2)
    assert tuned.thresholds[1] == 0.45 and tuned.thresholds[2] == 0.45   # fallback
    assert tuned.thresholds[0] >= 0.2                                     # floor: not "always positive"
    assert not tuned(scores)[:, 0].all()


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_sweep_never_looks_at_test_labels(objective):
    targets, scores = scored_case(seed=1, n=600)
    val_t, val_s, test_t, test_s = targets[:300], scores[:300], targets[300:], scores[300:]
    result = sweep_task("genres", val_t, val_s, test_t, test_s, objective=objective)
    scrambled = np.random.default_rng(9).permutation(test_t)           # wrong test labels ...
    other = sweep_task("genres", val_t, val_s, 1 - scrambled, test_s, objective=objective)
    assert other.chosen.rule == result.chosen.rule                      # ... same choice
    assert [c.rule for c in other.candidates] == [c.rule for c in result.candidates]
    assert other.chosen.val == result.chosen.val and other.chosen.test != result.chosen.test
    best = max(c.val[OBJECTIVES[objective]][2] for c in result.candidates)
    assert result.chosen.val[OBJECTIVES[objective]][2] == best
    assert {c.rule.name for c in result.candidates} >= {"top-k", "threshold", "per-class", "at-least-one", "mcut"}


def test_sweep_of_a_multiclass_task_takes_the_argmax():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 100)
    targets = np.eye(4)[labels]
    scores = np.eye(4)[np.where(rng.random(100) < 0.7, labels, rng.integers(0, 4, 100))] + 0.01
    result = sweep_task("scale", targets, scores, kind="multiclass")
    assert result.chosen.rule == Argmax()
    assert result.chosen.val["micro"][2] == pytest.approx(accuracy_score(labels, scores.argmax(1)))


@pytest.mark.parametrize("seed", range(4))
def test_multiclass_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, c = 150, 5
    truth = rng.integers(0, c - 1, n)               # the last class never occurs
    scores = rng.random((n, c))
    scores[np.arange(n), truth] += rng.random(n)    # some signal
    decided = scores.argmax(1)
    out = multiclass_metrics(np.eye(c)[truth], scores, [f"c{i}" for i in range(c)])
    assert out["accuracy"] == pytest.approx(accuracy_score(truth, decided), abs=1e-9)
    assert out["macro_f1"] == pytest.approx(f1_score(truth, decided, average="macro", labels=range(c),
                                                     zero_division=0), abs=1e-9)
    np.testing.assert_array_equal(out["confusion"], confusion_matrix(truth, decided, labels=range(c)))
    p, r, f, s = precision_recall_fscore_support(truth, decided, labels=range(c), zero_division=0)
    assert [out["per_class"][f"c{i}"]["f1"] for i in range(c)] == pytest.approx(f, abs=1e-9)
    assert out["ap"]["c4"] is None  # no positives: no AP, left out of mAP


def test_fast_families_equal_rule_by_rule_scoring():
    from semisup.evaluate.metrics import threshold_family, top_k_family

    targets, scores = scored_case(seed=4, n=300, c=9)
    scores = np.round(scores, 2)  # plenty of ties at the thresholds
    thresholds = [0.05, 0.3, 0.5, 0.5001, 0.73, 0.99]
    for t, fast in zip(thresholds, threshold_family(targets, scores, thresholds)):
        slow = precision_recall_f1(targets, Threshold(t)(scores))
        for avg in ("micro", "macro", "samples", "weighted"):
            assert fast.averages[avg] == pytest.approx(slow.averages[avg], abs=1e-12), (t, avg)
    untied = scored_case(seed=5, n=300, c=9)[1]
    for k, fast in enumerate(top_k_family(targets, untied, 12), start=1):
        slow = precision_recall_f1(targets, TopK(k)(untied))
        np.testing.assert_allclose(fast.f1, slow.f1)
        for avg in ("micro", "macro", "samples", "weighted"):
            assert fast.averages[avg] == pytest.approx(slow.averages[avg], abs=1e-12), (k, avg)
    assert len(top_k_family(targets, untied, 12)) == 9  # k never exceeds the number of classes
