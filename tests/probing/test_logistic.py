"""Tests for probing.logistic: the batched solver reproduces scikit-learn's LogisticRegression."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from tests.probing.synthetic import planted
from valuetrace.errors import ValuetraceError
from valuetrace.probing import logistic
from valuetrace.probing.logistic import fit_logistic


def _sklearn(x: np.ndarray, y: np.ndarray, train: np.ndarray, C: float) -> tuple:
    scaler = StandardScaler().fit(x[train])
    model = LogisticRegression(C=C, tol=1e-10, max_iter=100_000)
    model.fit(scaler.transform(x[train]), y[train])
    return model, scaler


def _problems(labels: np.ndarray, n_masks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One problem per fold of a random split, each training on the other folds."""
    fold = np.random.default_rng(0).permutation(len(labels)) % n_masks
    train = np.stack([fold != k for k in range(n_masks)])
    y = np.tile(labels, (n_masks, 1))
    return torch.from_numpy(y.astype(np.float32)), torch.from_numpy(train)


@pytest.mark.parametrize(("n_pairs", "d"), [(150, 20), (30, 150)], ids=["n>d", "n<d"])
def test_coefficients_and_decisions_match_sklearn(n_pairs: int, d: int) -> None:
    acts, labels, _ = planted(n_pairs, (0.5, 2.0), d=d)
    y, train = _problems(labels, 3)
    C = torch.tensor([1.0, 0.1, 10.0])
    fit = fit_logistic(torch.from_numpy(acts), y, train, C, tol=1e-6)
    assert fit.converged.all()
    for layer in range(2):
        for p in range(3):
            model, scaler = _sklearn(acts[layer], labels, train[p].numpy(), float(C[p]))
            np.testing.assert_allclose(fit.mean[layer, p], scaler.mean_, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(fit.std[layer, p], scaler.scale_, rtol=1e-5)
            scale = np.abs(model.coef_).max()
            np.testing.assert_allclose(fit.coef[layer, p], model.coef_[0], atol=2e-3 * scale)
            want = model.decision_function(scaler.transform(acts[layer]))
            np.testing.assert_allclose(fit.decision[layer, p], want, atol=2e-3 * np.abs(want).max())


def test_standardisation_matches_standard_scaler_on_awkward_features() -> None:
    rng = np.random.default_rng(0)
    acts = (rng.normal(size=(1, 300, 5)) * 3 + 100).astype(np.float32)
    acts[0, :, 1] = 0.1  # constant everywhere
    acts[0, :150, 2] = 7.3  # constant on the first problem's training rows only
    acts[0, :, 3] = 1000 + rng.normal(size=300) * 1e-3  # tiny spread on a large offset
    labels = np.tile([0, 1], 150)
    train = torch.zeros(2, 300, dtype=torch.bool)
    train[0, :150] = True
    train[1] = True
    y = torch.from_numpy(np.tile(labels, (2, 1)).astype(np.float32))
    fit = fit_logistic(torch.from_numpy(acts), y, train, torch.ones(2))
    for p in range(2):
        scaler = StandardScaler().fit(acts[0, train[p].numpy()])
        np.testing.assert_allclose(fit.std[0, p], scaler.scale_, rtol=1e-4)
        np.testing.assert_allclose(fit.mean[0, p], scaler.mean_, rtol=1e-5)
    assert abs(fit.coef[0, :, 1]).max() < 1e-6 and abs(fit.coef[0, 0, 2]) < 1e-6


def test_input_is_not_modified() -> None:
    acts, labels, _ = planted(20, (1.0,), d=5)
    x = torch.from_numpy(acts.astype(np.float64))
    before = x.clone()
    y, train = _problems(labels, 2)
    fit_logistic(x, y, train, torch.ones(2))
    assert torch.equal(x, before)


def test_problem_with_one_class_in_training_rows_raises() -> None:
    acts, labels, _ = planted(10, (1.0,), d=4)
    y = torch.from_numpy(labels[None].astype(np.float32))
    train = torch.from_numpy(labels[None] == 1)
    with pytest.raises(ValuetraceError, match=r"problems \[0\] have one class"):
        fit_logistic(torch.from_numpy(acts), y, train, torch.ones(1))


def test_tolerance_below_float32_resolution_raises() -> None:
    acts, labels, _ = planted(10, (1.0,), d=4)
    y, train = _problems(labels, 2)
    with pytest.raises(ValuetraceError, match=r"use tol >= 1e-07"):
        fit_logistic(torch.from_numpy(acts), y, train, torch.ones(2), tol=1e-9)


def test_layers_that_finish_early_keep_their_results() -> None:
    # layer 0 is pure noise (converges fast), layer 1 separable-ish (many steps): the early
    # layer retires first and must come back in its own slot
    acts, labels, _ = planted(60, (0.0, 6.0, 0.0), d=10)
    y, train = _problems(labels, 3)
    together = fit_logistic(torch.from_numpy(acts), y, train, torch.ones(3), tol=1e-6)
    for layer in range(3):
        alone = fit_logistic(
            torch.from_numpy(acts[layer : layer + 1]), y, train, torch.ones(3), tol=1e-6
        )
        torch.testing.assert_close(together.coef[layer], alone.coef[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(
            together.decision[layer], alone.decision[0], atol=1e-3, rtol=1e-4
        )


def test_parallel_products_give_the_single_thread_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    # large inputs run the products over the shared matrix on every thread and the rest on one
    acts, labels, _ = planted(60, (0.5, 2.0), d=12)
    y, train = _problems(labels, 3)
    serial = fit_logistic(torch.from_numpy(acts), y, train, torch.ones(3), tol=1e-6)
    monkeypatch.setattr(logistic, "_PARALLEL_MIN_ELEMENTS", 0)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        parallel = fit_logistic(torch.from_numpy(acts), y, train, torch.ones(3), tol=1e-6)
        assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(parallel.coef, serial.coef, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(parallel.decision, serial.decision, atol=1e-3, rtol=1e-4)
