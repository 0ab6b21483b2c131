"""Tests for valuetrace.stats: AUROC vs scikit-learn, the group bootstrap, intervals, label checks,
bootstrap p-values and Holm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from valuetrace.errors import DataError, ValuetraceError
from valuetrace.stats import (
    accuracy,
    auroc,
    auroc_gain,
    bootstrap_means,
    check_labels,
    check_labels_groups,
    cohens_d,
    group_bootstrap_weights,
    holm,
    pearson_r,
    percentile_ci,
    shifted_bootstrap_p,
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


def test_bootstrap_of_nothing_is_refused() -> None:
    with pytest.raises(DataError, match="n_boot >= 1"):
        group_bootstrap_weights(np.arange(4), 0, seed=0)
    with pytest.raises(DataError, match="at least one example"):
        group_bootstrap_weights(np.array([]), 10, seed=0)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([0, 1, 2, 1]), r"must be 0/1.*\[0, 1, 2\]"),
        (np.ones(4, dtype=int), r"only class \[1\]"),
        (np.array([0, 1, 1]), r"shape \(3,\) for 4 examples"),
    ],
    ids=["not-01", "one-class", "wrong-length"],
)
def test_label_checks_name_the_problem(labels: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=match):
        check_labels(labels, 4)


def test_groups_are_coded_and_a_single_group_is_refused() -> None:
    y, codes = check_labels_groups([0, 1, 1, 0], ["b", "b", "a", "a"], 4)
    assert y.dtype == np.int64 and codes.tolist() == [1, 1, 0, 0]
    with pytest.raises(DataError, match="single group"):
        check_labels_groups([0, 1, 1, 0], ["a"] * 4, 4)
    with pytest.raises(DataError, match="one group id per example"):
        check_labels_groups([0, 1, 1, 0], ["a", "b"], 4)


def test_shifted_bootstrap_p_matches_the_normal_tail() -> None:
    rng = np.random.default_rng(3)
    observed = np.array([0.0, 1.0, 2.0])
    boot = observed + rng.standard_normal((40_000, 3))  # centred null ~ N(0, 1)
    p = shifted_bootstrap_p(observed, boot, observed)
    np.testing.assert_allclose(p, norm.sf(observed), atol=0.006)
    per_replicate = shifted_bootstrap_p(boot[:5], boot, observed)
    assert per_replicate.shape == (5, 3) and (per_replicate > 0).all()
    assert shifted_bootstrap_p(np.array([99.0, 99.0, 99.0]), boot, observed)[0] == 1 / 40_001
    with pytest.raises(DataError, match="share the layer axis"):
        shifted_bootstrap_p(observed, boot[:, :2], observed)


def test_holm_follows_the_step_down_rule_per_row_and_skips_nan() -> None:
    p = np.array([[0.01, 0.04, 0.03, 0.5], [0.01, np.nan, 0.04, 0.03]])
    # Row 0: sorted 0.01·4, 0.03·3, 0.04·2 (raised to the running max 0.09), 0.5·1.
    # Row 1: three tests: 0.01·3, 0.03·2, 0.04·1 (raised to 0.06); the NaN is no test.
    np.testing.assert_allclose(
        holm(p), [[0.04, 0.09, 0.09, 0.5], [0.03, np.nan, 0.06, 0.06]], equal_nan=True
    )
    assert holm(np.array([0.6, 0.9])).tolist() == [1.0, 1.0]


def test_auroc_gain_is_paired_and_takes_the_best_reference_per_replicate() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 100)
    groups = np.arange(200) % 100
    good = labels * 2.0 + rng.normal(size=200)
    reference = np.stack([rng.normal(size=200), labels * 1.0 + rng.normal(size=200)])
    weights = group_bootstrap_weights(groups, 400, 0)
    gain, ci = auroc_gain(np.stack([good, reference[1]]), reference, labels, weights, 0.95)
    expected = auroc(good[None], labels)[0] - auroc(reference[1][None], labels)[0]
    assert gain[0] == pytest.approx(expected) and ci[0, 0] > 0
    # A row equal to the best reference has no gain, and a CI at or below 0.
    assert gain[1] == pytest.approx(0.0) and ci[1, 1] <= 1e-12
    _, no_ci = auroc_gain(good[None], reference, labels, None, 0.95)
    assert np.isnan(no_ci).all()
    with pytest.raises(DataError, match="line up"):
        auroc_gain(good[None], reference[:, :10], labels, weights, 0.95)


def test_cohens_d_matches_the_textbook_formula_and_is_nan_where_undefined() -> None:
    rng = np.random.default_rng(1)
    labels = np.tile([0, 1], 40)
    proj = rng.normal(size=(2, 80)) + np.array([[1.5], [0.0]]) * labels
    proj[1] = 3.0  # a constant layer: no pooled variance
    x1, x0 = proj[0, labels == 1], proj[0, labels == 0]
    pooled = np.sqrt(((x1.size - 1) * x1.var(ddof=1) + (x0.size - 1) * x0.var(ddof=1)) / 78)
    d = cohens_d(proj, labels)
    np.testing.assert_allclose(d[0], (x1.mean() - x0.mean()) / pooled)
    assert np.isnan(d[1])
    weights = np.vstack([np.ones(80), np.r_[np.ones(40), np.zeros(40)], labels])
    by_weight = cohens_d(proj[:1], labels, weights)
    np.testing.assert_allclose(by_weight[0], d[:1])
    np.testing.assert_allclose(by_weight[1], cohens_d(proj[:1, :40], labels[:40]))
    assert np.isnan(by_weight[2, 0])  # one class only


def test_shifted_bootstrap_p_treats_identical_stages_as_ties_and_nan_as_undefined() -> None:
    boot = np.array([[1e-17, np.nan], [-1e-17, np.nan], [0.0, np.nan]])
    p = shifted_bootstrap_p(np.zeros(2), boot, np.array([-4e-16, np.nan]))
    assert p[0] == 1.0 and np.isnan(p[1])


def test_bootstrap_means_resample_items_jointly_across_rows() -> None:
    values = np.random.default_rng(0).normal(size=50)
    paired = np.stack([values, values + 1.0, 2.0 * values])  # three measurements, same items
    boot = bootstrap_means(paired, 300, seed=0)
    assert boot.shape == (300, 3)
    np.testing.assert_allclose(boot[:, 1] - boot[:, 0], 1.0)  # same resample in every row
    np.testing.assert_allclose(boot[:, 2], 2.0 * boot[:, 0])
    assert abs(boot[:, 0].mean() - values.mean()) < 0.05
    assert boot[:, 0].std() == pytest.approx(values.std() / np.sqrt(50), rel=0.2)
    with pytest.raises(ValuetraceError, match="no items"):
        bootstrap_means(np.zeros((2, 0)), 10, seed=0)


def test_pearson_r_matches_numpy_per_row() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 30)), rng.normal(size=30)
    want = [np.corrcoef(row, y)[0, 1] for row in x]
    np.testing.assert_allclose(pearson_r(x, y), want)
    assert np.isnan(pearson_r(np.ones((1, 30)), y)[0])


def test_spearman_ci_matches_scipy_and_covers_it() -> None:
    from scipy.stats import spearmanr

    from valuetrace.stats import spearman_ci

    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    y[:5] = y[5]  # ties get their average rank
    rho = spearman_ci(x, y, n_boot=500, seed=0, ci=0.95)
    assert rho.value == pytest.approx(spearmanr(x, y).statistic)
    assert rho.lo < rho.value < rho.hi
    with pytest.raises(DataError, match="at least 3"):
        spearman_ci(x[:2], y[:2], n_boot=10, seed=0, ci=0.95)


def test_pearson_ci_matches_numpy_covers_it_and_is_undefined_for_a_constant_side() -> None:
    from valuetrace.stats import pearson_ci

    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = 0.5 * x + rng.normal(size=50)
    r = pearson_ci(x, y, n_boot=500, seed=0, ci=0.95)
    assert r.value == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert r.lo < r.value < r.hi
    # the interval is the percentile interval of resampled pairs' r, computed the plain way
    idx = np.random.default_rng(0).integers(0, 50, size=(500, 50))
    boot = [np.corrcoef(x[i], y[i])[0, 1] for i in idx]
    assert (r.lo, r.hi) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])))
    assert np.isnan(pearson_ci(x, np.ones(50), n_boot=50, seed=0, ci=0.95).value)
    with pytest.raises(DataError, match="at least 3"):
        pearson_ci(x[:2], y[:2], n_boot=10, seed=0, ci=0.95)
