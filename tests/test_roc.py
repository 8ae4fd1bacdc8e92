"""The one ROC AUC and the one case bootstrap (``neonet_ext.roc``), on examples whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from neonet_ext.roc import bootstrap_auc, percentile_interval, resample_cases, roc_auc


def test_auc_of_a_hand_counted_example_with_ties():
    # positives 0.9, 0.5, 0.7 against negatives 0.5, 0.1, 0.7: 3 + (1 + 1/2) + (2 + 1/2) of 9 pairs
    assert roc_auc([1, 1, 0, 0, 1, 0], [0.9, 0.5, 0.5, 0.1, 0.7, 0.7]) == pytest.approx(7 / 9)
    assert roc_auc([1, 0], [0.3, 0.3]) == 0.5
    assert roc_auc([True, False, False], [1.0, 0.0, 0.5]) == 1.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_auc_matches_sklearn_with_ties_and_scores_several_sets_at_once():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    scores = np.round(rng.normal(size=(3, 40)), 1)  # rounding makes ties
    aucs = roc_auc(labels, scores)
    assert aucs.shape == (3,)
    for auc, s in zip(aucs, scores):
        assert auc == pytest.approx(roc_auc_score(labels, s), abs=1e-12)
        assert roc_auc(labels, s) == auc
    assert np.isnan(roc_auc([0, 0], np.zeros((2, 2)))).all()


def test_resamples_are_drawn_with_replacement_row_after_row():
    picks = resample_cases(np.random.default_rng(5), 7, 4)
    assert picks.shape == (4, 7) and picks.min() >= 0 and picks.max() < 7
    rng = np.random.default_rng(5)  # one resample at a time draws the same cases
    np.testing.assert_array_equal(picks, [rng.integers(0, 7, 7) for _ in range(4)])
    assert percentile_interval(np.arange(101), 0.9) == pytest.approx((5.0, 95.0))
    assert all(math.isnan(b) for b in percentile_interval([]))


def test_bootstrap_auc_is_the_interval_documented_figures_were_made_with():
    # computed with the bootstrap NeoCls's metrics.json used before the AUC was unified (sklearn's AUC)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    scores = np.round(labels + rng.normal(0, 1.0, 40), 1)
    expected = (0.8951406649616368, 0.7884125784701232, 0.9806523237691817)
    assert bootstrap_auc(labels, scores, n_resamples=500, seed=3) == pytest.approx(expected, abs=1e-12)


def test_bootstrap_auc_interval_holds_the_auc_and_narrows_with_data():
    rng = np.random.default_rng(0)
    small_y = rng.integers(0, 2, 40)
    small = bootstrap_auc(small_y, small_y + rng.normal(0, 1.0, 40), n_resamples=500)
    large_y = rng.integers(0, 2, 800)
    large = bootstrap_auc(large_y, large_y + rng.normal(0, 1.0, 800), n_resamples=500)
    for auc, low, high in (small, large):
        assert low <= auc <= high
    assert large[2] - large[1] < small[2] - small[1]
    assert bootstrap_auc(small_y, small_y, n_resamples=50) == (1.0, 1.0, 1.0)
    assert all(math.isnan(b) for b in bootstrap_auc([0, 1], [0.2, 0.8], n_resamples=0)[1:])
    with pytest.raises(ValueError, match="both classes"):
        bootstrap_auc(np.ones(5), np.ones(5))
