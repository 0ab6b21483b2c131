"""Tests for analysis.similarity: cosines, null bands and linear CKA against literal formulas."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from valuetrace.analysis.similarity import (
    cka_per_layer,
    cosine_per_layer,
    degenerate_layers,
    linear_cka,
    random_direction_null,
    shuffled_label_null,
)
from valuetrace.errors import ValuetraceError


def _hsic_biased_literal(gk: np.ndarray, gl: np.ndarray) -> float:
    """tr(K H L H) / (n - 1)² with H = I - 11ᵀ/n (Gretton et al. 2005, Kornblith et al. 2019)."""
    n = gk.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(gk @ h @ gl @ h)) / (n - 1) ** 2


def _hsic_unbiased_literal(gk: np.ndarray, gl: np.ndarray) -> float:
    """Song et al. (2012), Eq. 5, term by term, with K̃ and L̃ = K and L with zeroed diagonals."""
    n = gk.shape[0]
    kt = gk - np.diag(np.diag(gk))
    lt = gl - np.diag(np.diag(gl))
    one = np.ones(n)
    term1 = np.trace(kt @ lt)
    term2 = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return float(term1 + term2 - term3) / (n * (n - 3))


def _cka_literal(x: np.ndarray, y: np.ndarray, debiased: bool) -> float:
    hsic = _hsic_unbiased_literal if debiased else _hsic_biased_literal
    gk, gl = x @ x.T, y @ y.T
    return hsic(gk, gl) / np.sqrt(hsic(gk, gk) * hsic(gl, gl))


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize(("n", "d1", "d2"), [(30, 8, 5), (12, 40, 50)])
def test_linear_cka_matches_literal_formula(debiased: bool, n: int, d1: int, d2: int) -> None:
    rng = np.random.default_rng(n + d1)
    x = rng.normal(size=(n, d1)) + 3.0  # uncentred on purpose
    y = x[:, :d2] @ rng.normal(size=(d2, d2)) if d2 <= d1 else rng.normal(size=(n, d2))
    y = y + 0.5 * rng.normal(size=y.shape) - 1.0
    assert linear_cka(x, y, debiased) == pytest.approx(_cka_literal(x, y, debiased), rel=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_invariances_and_self_similarity(debiased: bool) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 10))
    y = np.tanh(x @ rng.normal(size=(10, 12))) + 0.3 * rng.normal(size=(40, 12))
    base = linear_cka(x, y, debiased)
    q = ortho_group.rvs(12, random_state=2)
    assert linear_cka(x, y @ q, debiased) == pytest.approx(base, rel=1e-9)
    assert linear_cka(7.5 * x, 0.01 * y, debiased) == pytest.approx(base, rel=1e-9)
    assert linear_cka(x, x, debiased) == pytest.approx(1.0, abs=1e-12)
    assert 0 < base < 1


def test_debiased_cka_removes_small_n_bias() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 500)), rng.normal(size=(30, 500))
    assert linear_cka(x, y) > 0.8  # biased CKA of independent data is large when n << d
    assert abs(linear_cka(x, y, debiased=True)) < 0.05


def test_cka_per_layer_is_rotation_invariant_and_nan_on_a_constant_layer() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=(3, 20, 6)).astype(np.float32)
    b = a @ ortho_group.rvs(6, random_state=5).astype(np.float32)
    c = rng.normal(size=(3, 20, 9)).astype(np.float32)  # different width is fine
    np.testing.assert_allclose(cka_per_layer(a, b), 1.0, atol=1e-6)
    assert (np.abs(cka_per_layer(a, c, debiased=True)) < 0.5).all()
    a[1] = 2.0  # a constant layer: undefined there, the others unaffected
    cka = cka_per_layer(a, b, debiased=True)
    assert np.isnan(cka[1]) and np.isfinite(cka[[0, 2]]).all()
    labels = np.tile([0, 1], 10)
    assert degenerate_layers(a, labels) == {
        1: "constant layer: every example has the same activation"
    }
    with pytest.raises(ValuetraceError, match="examples"):
        cka_per_layer(a, a[:, :10])


def test_cosine_per_layer_keeps_sign_and_checks_width() -> None:
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    b = np.array([[-2.0, 0.0], [1.0, 1.0], [3.0, 0.0]])
    np.testing.assert_allclose(cosine_per_layer(a, b), [-1.0, 1.0, 0.0], atol=1e-12)
    with pytest.raises(ValuetraceError, match=r"d_model=2.*d_model=3"):
        cosine_per_layer(a, np.ones((3, 3)))
    b[1] = 0.0  # a zero direction: undefined at that layer only
    cos = cosine_per_layer(a, b)
    assert np.isnan(cos[1]) and np.isfinite(cos[[0, 2]]).all()


def test_random_direction_null_band_shrinks_with_width() -> None:
    lo16, hi16 = random_direction_null(16, seed=0)
    lo1k, hi1k = random_direction_null(1024, seed=0)
    assert lo16 < 0 < hi16 and lo1k < 0 < hi1k
    assert (hi16 - lo16) / (hi1k - lo1k) == pytest.approx(8.0, rel=0.1)  # ∝ 1/√D
    assert hi1k == pytest.approx(1.96 / np.sqrt(1024), rel=0.03)
    # Agrees with cosines of explicitly drawn random unit vectors.
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(2, 20_000, 16))
    cos = np.einsum("nd,nd->n", u, v) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    assert np.quantile(cos, 0.975) == pytest.approx(hi16, abs=0.01)
    with pytest.raises(ValuetraceError, match="ci"):
        random_direction_null(16, ci=1.5)


def _planted(rng: np.random.Generator, n_pairs: int = 40) -> tuple[np.ndarray, ...]:
    n_layers, d = 2, 32
    labels = np.tile([0, 1], n_pairs)
    groups = np.repeat(np.arange(n_pairs), 2)
    direction = rng.normal(size=(n_layers, 1, d))
    acts = rng.normal(size=(n_layers, 2 * n_pairs, d)) + 1.5 * labels[None, :, None] * direction
    return acts, labels, groups, direction[:, 0]


def test_shuffled_label_null_is_below_real_direction() -> None:
    rng = np.random.default_rng(6)
    acts, labels, groups, truth = _planted(rng)
    real = acts[:, labels == 1].mean(1) - acts[:, labels == 0].mean(1)
    null = shuffled_label_null(acts, labels, groups, truth, n_shuffles=150, seed=0)
    assert null.shape == (150, 2)
    assert (cosine_per_layer(real, truth) > np.quantile(np.abs(null), 0.99, axis=0)).all()
    again = shuffled_label_null(acts, labels, groups, truth, n_shuffles=150, seed=0)
    np.testing.assert_array_equal(null, again)


def test_shuffled_label_null_only_permutes_within_groups() -> None:
    rng = np.random.default_rng(7)
    acts, labels, _, _ = _planted(rng, n_pairs=10)
    groups = labels.copy()  # each group holds one class: within-group shuffles change nothing
    real = acts[:, labels == 1].mean(1) - acts[:, labels == 0].mean(1)
    null = shuffled_label_null(acts, labels, groups, real, n_shuffles=5, seed=0)
    np.testing.assert_allclose(null, 1.0, atol=1e-12)


def test_shuffled_label_null_errors() -> None:
    rng = np.random.default_rng(8)
    acts, labels, groups, truth = _planted(rng, n_pairs=5)
    with pytest.raises(ValuetraceError, match="reference"):
        shuffled_label_null(acts, labels, groups, truth[:, :5])
    with pytest.raises(ValuetraceError, match="both classes"):
        shuffled_label_null(acts, np.ones_like(labels), groups, truth)
    with pytest.raises(ValuetraceError, match="single group"):
        shuffled_label_null(acts, labels, np.zeros_like(groups), truth)
