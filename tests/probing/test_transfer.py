"""Tests for probing.transfer: the stage × stage × layer matrix and its input checks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.probing.synthetic import planted
from valuetrace.errors import ValuetraceError
from valuetrace.probing import fit_probe, transfer_matrix


def test_diagonal_is_in_sample_accuracy_and_transfer_drops_on_other_data() -> None:
    base, labels, _ = planted(100, (3.0, 0.0), seed=1)
    tuned, _, _ = planted(100, (0.0, 3.0), seed=2)
    probes = {"base": fit_probe(base, labels), "tuned": fit_probe(tuned, labels)}
    result = transfer_matrix(probes, {"base": base, "tuned": tuned}, labels)
    assert result.accuracy.shape == result.auroc.shape == (2, 2, 2)
    assert result.train_stages == result.test_stages == ["base", "tuned"]
    for i, (name, acts) in enumerate((("base", base), ("tuned", tuned))):
        in_sample = ((probes[name].decision(acts) > 0) == (labels == 1)).mean(1)
        np.testing.assert_allclose(result.accuracy[i, i], in_sample)
    assert result.accuracy[0, 0, 0] > 0.8 and result.accuracy[0, 1, 0] < 0.7


def test_mismatched_inputs_are_refused() -> None:
    acts, labels, _ = planted(20, (1.0,), d=8)
    probe = fit_probe(acts, labels)
    with pytest.raises(ValuetraceError, match="activation shapes"):
        transfer_matrix({"a": probe}, {"a": acts, "b": acts[:, :10]}, labels)
    with pytest.raises(
        ValuetraceError, match="width 8 but the activations have 1 layers of width 9"
    ):
        transfer_matrix({"a": probe}, {"a": np.zeros((1, 40, 9), np.float32)}, labels)
    with pytest.raises(ValuetraceError, match="one label per example"):
        transfer_matrix({"a": probe}, {"a": acts}, labels[:-2])


def test_weights_give_each_auroc_an_interval_around_it_that_widens_with_fewer_examples() -> None:
    from valuetrace.stats import group_bootstrap_weights

    acts, all_labels, _ = planted(240, (1.5, 0.0), seed=1)
    train, labels = acts[:, :240], all_labels[:240]
    probe = {"train": fit_probe(train, labels)}
    widths = []
    for n in (240, 40):
        test, test_labels = acts[:, 240 : 240 + n], all_labels[240 : 240 + n]
        weights = group_bootstrap_weights(np.arange(n), 500, seed=0)
        result = transfer_matrix(probe, {"test": test}, test_labels, weights, ci=0.9)
        assert result.auroc_ci is not None and result.auroc_ci.shape == (1, 1, 2, 2)
        lo, hi = result.auroc_ci[0, 0, 0]
        assert lo < result.auroc[0, 0, 0] < hi
        widths.append(hi - lo)
    assert widths[1] > widths[0]
    assert transfer_matrix(probe, {"test": train}, labels).auroc_ci is None
    with pytest.raises(ValuetraceError, match="bootstrap weights"):
        transfer_matrix(probe, {"test": train}, labels, np.ones((5, 3)))
