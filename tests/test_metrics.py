"""Metrics and decision rules against scikit-learn, the reference."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from semisup.evaluate.decisions import Threshold, TopK, default_rules
from semisup.evaluate.metrics import average_precision, mean_average_precision, precision_recall_f1
from semisup.evaluate.report import task_metrics


def random_case(seed, n=60, c=9, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < rng.uniform(0.05, 0.5, size=c)).astype(int)
    y[:, 0] = 0          # a class with no positives
    y[3] = 0             # a sample with no labels
    scores = rng.random((n, c))
    if ties:
        scores = np.round(scores * 4) / 4  # heavy ties
    scores[:, 1] = 0.0   # a class with all-zero scores
    return y, scores


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_equals_sklearn(seed, ties):
    y, scores = random_case(seed, ties=ties)
    ap = average_precision(y, scores)
    for c in range(y.shape[1]):
        if y[:, c].any():
            assert ap[c] == pytest.approx(average_precision_score(y[:, c], scores[:, c]), abs=1e-6)
        else:
            assert np.isnan(ap[c])  # undefined: reported as NaN ...
    positives = y.any(0)
    expected = np.mean([average_precision_score(y[:, c], scores[:, c]) for c in np.flatnonzero(positives)])
    assert mean_average_precision(y, scores) == pytest.approx(expected, abs=1e-6)  # ... and left out of mAP


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rule", [TopK(1), TopK(3), TopK(20), Threshold(0.5), Threshold(0.9)], ids=lambda r: r.describe())
def test_precision_recall_f1_equal_sklearn(seed, rule):
    y, scores = random_case(seed)
    pred = rule(scores)
    ours = precision_recall_f1(y, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        p, r, f, s = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
        np.testing.assert_allclose(ours.precision, p, atol=1e-6)
        np.testing.assert_allclose(ours.recall, r, atol=1e-6)
        np.testing.assert_allclose(ours.f1, f, atol=1e-6)
        np.testing.assert_array_equal(ours.support, s)
        for avg in ("micro", "macro", "samples", "weighted"):
            p, r, f, _ = precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
            assert ours.averages[avg] == pytest.approx((p, r, f), abs=1e-6), avg


def test_edge_cases_all_zero_and_empty():
    y = np.zeros((4, 3), int)
    scores = np.zeros((4, 3))
    assert np.isnan(average_precision(y, scores)).all()
    assert np.isnan(mean_average_precision(y, scores))
    prf = precision_recall_f1(y, Threshold(0.5)(scores))
    assert prf.averages["micro"] == (0.0, 0.0, 0.0)


def test_top_k_picks_the_highest_and_caps_at_c():
    scores = np.array([[0.1, 0.9, 0.5, 0.3], [0.8, 0.2, 0.7, 0.6]])
    assert TopK(2)(scores).tolist() == [[False, True, True, False], [True, False, True, False]]
    assert TopK(10)(scores).all()
    assert Threshold(0.6)(scores).tolist() == [[False, True, False, False], [True, False, True, True]]
    assert [r.describe() for r in default_rules((1, 2), 0.5)] == ["top-1", "top-2", "round"]
    with pytest.raises(ValueError):
        TopK(0)


def test_task_metrics_is_json_ready():
    import json

    y, scores = random_case(1)
    out = task_metrics(y, scores, [f"c{i}" for i in range(9)], default_rules())
    json.dumps(out, allow_nan=False)
    assert out["ap"]["c0"] is None and out["support"]["c0"] == 0
    assert set(out["rules"]) == {"top-1", "top-2", "top-3", "top-4", "top-5", "round"}
    assert set(out["rules"]["round"]) == {"micro", "macro", "samples"}
