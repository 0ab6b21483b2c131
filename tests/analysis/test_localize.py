"""Tests for analysis.localize on synthetic stages with a planted (or no) loss of separation."""

import json

import numpy as np
import pytest
from valuetrace.analysis.localize import _group_weights, _weighted_auroc, cohens_d, localize

from valuetrace.errors import ValuetraceError

N_LAYERS, N_PAIRS, BROKEN_FROM = 8, 60, 5


def _stages(seed: int, planted: bool) -> tuple[np.ndarray, ...]:
    """Stage A separates classes at every layer; stage B keeps it below BROKEN_FROM (if planted)."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1], N_PAIRS)
    groups = np.repeat(np.arange(N_PAIRS), 2)
    shared = rng.normal(size=(N_LAYERS, 2 * N_PAIRS)) + 1.5 * labels
    a = shared + 0.3 * rng.normal(size=shared.shape)
    b = shared + 0.3 * rng.normal(size=shared.shape)
    if planted:
        b[BROKEN_FROM:] = rng.normal(size=(N_LAYERS - BROKEN_FROM, 2 * N_PAIRS))
    return a, b, labels, groups


def _auroc_literal(s: np.ndarray, y: np.ndarray) -> float:
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def test_weighted_auroc_matches_pairwise_definition_with_ties_and_repeats() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 15)
    s = rng.normal(size=(2, 30)).round(1)  # rounding creates ties
    w = rng.integers(0, 3, size=(4, 30)).astype(float)
    got = _weighted_auroc(s, y, w)
    for b in range(4):
        rep = np.repeat(np.arange(30), w[b].astype(int))
        for layer in range(2):
            assert got[b, layer] == pytest.approx(_auroc_literal(s[layer, rep], y[rep]))


def test_cohens_d_matches_direct_formula() -> None:
    rng = np.random.default_rng(1)
    y = np.array([0] * 7 + [1] * 11)
    x = rng.normal(size=(3, 18)) + 100.0
    x1, x0 = x[:, y == 1], x[:, y == 0]
    pooled = ((10 * x1.var(1, ddof=1) + 6 * x0.var(1, ddof=1)) / 16) ** 0.5
    np.testing.assert_allclose(cohens_d(x, y), (x1.mean(1) - x0.mean(1)) / pooled, rtol=1e-9)


def test_group_weights_resample_whole_groups() -> None:
    codes = np.repeat(np.arange(5), [1, 2, 3, 2, 2])
    w = _group_weights(codes, 50, np.random.default_rng(2))
    assert w.shape == (50, 10)
    for g in range(5):
        assert (w[:, codes == g] == w[:, codes == g][:, :1]).all()
    np.testing.assert_array_equal(w[:, np.r_[0, 1, 3, 6, 8]].sum(1), 5)


def test_localize_finds_planted_break() -> None:
    a, b, labels, groups = _stages(seed=3, planted=True)
    cos = np.r_[np.full(BROKEN_FROM, 0.9), np.full(N_LAYERS - BROKEN_FROM, 0.02)]
    loc = localize(
        a, b, a, b, labels, groups, cos, (-0.05, 0.05), stage_a="mid", stage_b="sft", seed=0
    )
    for drops in (loc.auroc, loc.separation):
        assert drops.significant == [i >= BROKEN_FROM for i in range(N_LAYERS)]
        assert drops.first_significant.layer == BROKEN_FROM
        assert drops.first_significant.mode == BROKEN_FROM
        assert drops.largest_drop.layer is not None and drops.largest_drop.layer >= BROKEN_FROM
        lo, hi = np.array(drops.lo), np.array(drops.hi)
        assert (lo[BROKEN_FROM:] > 0).all() and (lo[:BROKEN_FROM] < 0).all()
        assert (hi >= np.array(drops.drop)).all()
    assert loc.separation.largest_drop.lo is not None
    assert loc.separation.largest_drop.lo >= BROKEN_FROM
    text = loc.summary()
    assert f"from layer {BROKEN_FROM} on" in text and "mid to sft" in text
    assert "inside the random-direction band" in text
    json.dumps(loc.to_dict())


def test_localize_no_change_is_not_significant() -> None:
    a, b, labels, groups = _stages(seed=4, planted=False)
    loc = localize(a, b, a, b, labels, groups, metric="separation", seed=0)
    assert not any(loc.auroc.significant) and not any(loc.separation.significant)
    assert loc.separation.first_significant.layer is None
    assert min(loc.auroc.p_holm) > 0.05
    assert "no layer shows a significant drop in class separation" in loc.summary()


def test_localize_shape_and_input_errors() -> None:
    a, b, labels, groups = _stages(seed=5, planted=False)
    with pytest.raises(ValuetraceError, match="proj_b"):
        localize(a, b, a, b[:, :-2], labels, groups)
    with pytest.raises(ValuetraceError, match="labels"):
        localize(a, b, a, b, labels[:-1], groups)
    with pytest.raises(ValuetraceError, match="both classes"):
        localize(a, b, a, b, np.zeros_like(labels), groups)
    with pytest.raises(ValuetraceError, match="2 groups"):
        localize(a, b, a, b, labels, np.zeros_like(groups))
    with pytest.raises(ValuetraceError, match="cos_ab"):
        localize(a, b, a, b, labels, groups, np.ones(3))
    with pytest.raises(ValuetraceError, match="raise n_boot"):
        localize(a, b, a, b, labels, groups, n_boot=100)
