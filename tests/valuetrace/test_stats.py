"""Tests for probing.stats: AUROC vs scikit-learn, the group bootstrap, the permutation test."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from valuetrace.errors import ValuetraceError
from valuetrace.stats import (
    accuracy,
    auroc,
    group_bootstrap_weights,
    percentile_ci,
    permutation_test_layers,
)


def test_auroc_matches_sklearn_with_ties_and_weights() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, size=(4, 80)).astype(float)  # many ties
    labels = rng.integers(0, 2, size=80)
    weights = rng.integers(0, 3, size=(5, 80)).astype(float)
    expected = [roc_auc_score(labels, s) for s in scores]
    np.testing.assert_allclose(auroc(scores, labels), expected)
    got = auroc(scores, labels, weights)
    for b in range(5):
        for layer in range(4):
            want = roc_auc_score(labels, scores[layer], sample_weight=weights[b])
            assert got[b, layer] == pytest.approx(want)


def test_auroc_of_a_replicate_without_both_classes_is_nan() -> None:
    weights = np.array([[1.0, 1.0, 0.0, 0.0]])
    assert np.isnan(auroc(np.array([[0.1, 0.2, 0.3, 0.4]]), np.array([1, 1, 0, 0]), weights)).all()


def test_bootstrap_resamples_whole_groups() -> None:
    groups = np.repeat(np.arange(30), 3)
    weights = group_bootstrap_weights(groups, 200, seed=0)
    assert weights.shape == (200, 90)
    assert (weights.sum(1) == 90).all()
    per_group = weights.reshape(200, 30, 3)
    assert (per_group == per_group[..., :1]).all()


def test_weighted_accuracy_and_interval() -> None:
    correct = np.array([[True, False, True, True]])
    np.testing.assert_allclose(accuracy(correct), [0.75])
    np.testing.assert_allclose(accuracy(correct, np.array([[2.0, 2.0, 0.0, 0.0]])), [[0.5]])
    samples = np.arange(101, dtype=float)[:, None]
    np.testing.assert_allclose(percentile_ci(samples, 0.9), [[5.0, 95.0]])
    with pytest.raises(ValuetraceError, match="between 0 and 1"):
        percentile_ci(samples, 95)


def test_permutation_test_small_p_for_a_planted_difference() -> None:
    rng = np.random.default_rng(1)
    labels = np.tile([0, 1], 150)
    groups = np.repeat(np.arange(150), 2)
    signal = (2 * labels - 1) * 1.0
    good = signal + rng.normal(size=(2, 300))
    worse = signal * np.array([[0.2], [1.0]]) + rng.normal(size=(2, 300))
    p = permutation_test_layers(good, worse, labels, groups, n_perm=2000, seed=0)
    assert p[0] < 0.01  # layer 0: A clearly better
    assert p[1] > 0.05  # layer 1: same signal strength


def test_permutation_test_is_roughly_uniform_under_the_null() -> None:
    rng = np.random.default_rng(2)
    labels = np.tile([0, 1], 100)
    groups = np.repeat(np.arange(100), 2)
    signal = (2 * labels - 1) * 0.5
    a = signal + rng.normal(size=(300, 200))
    b = signal + rng.normal(size=(300, 200))
    p = permutation_test_layers(a, b, labels, groups, n_perm=500, seed=0)
    assert 0.4 < p.mean() < 0.62
    assert (p < 0.05).mean() < 0.1
    assert (p < 0.5).mean() > 0.35


def test_permutation_test_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValuetraceError, match="do not line up"):
        permutation_test_layers(
            np.zeros((2, 4)), np.zeros((2, 5)), np.zeros(4), np.zeros(4), n_perm=10, seed=0
        )
