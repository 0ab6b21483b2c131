"""Tests for probing.folds: whole groups per fold, balance, determinism, and the fold errors."""

from __future__ import annotations

import numpy as np
import pytest

from valuetrace.errors import ValuetraceError
from valuetrace.probing.folds import grouped_folds


def test_groups_stay_together_and_folds_are_balanced() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(103), rng.integers(1, 4, size=103))
    labels = rng.integers(0, 2, size=len(groups))
    folds = grouped_folds(groups, 5, seed=0, labels=labels)
    for g in np.unique(groups):
        assert len(np.unique(folds[groups == g])) == 1
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 3  # at most one group's size apart


def test_same_seed_same_folds_other_seed_differs() -> None:
    groups = np.repeat(np.arange(50), 2)
    assert np.array_equal(grouped_folds(groups, 5, 1), grouped_folds(groups, 5, 1))
    assert not np.array_equal(grouped_folds(groups, 5, 1), grouped_folds(groups, 5, 2))


def test_string_group_ids() -> None:
    groups = np.array(["s1", "s1", "s2", "s2", "s3", "s3"])
    folds = grouped_folds(groups, 3, seed=0)
    assert sorted(np.bincount(folds).tolist()) == [2, 2, 2]


def test_fewer_groups_than_folds_raises() -> None:
    with pytest.raises(ValuetraceError, match=r"3 groups cannot fill 5 folds.*n_folds <= 3"):
        grouped_folds(np.array([0, 0, 1, 1, 2, 2]), 5, seed=0)


def test_groups_that_make_a_fold_one_class_raise() -> None:
    # every positive example sits in one group: the fold holding it trains on negatives only
    groups = np.array([0, 0, 0, 1, 1, 2, 2])
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    with pytest.raises(
        ValuetraceError, match=r"fold \d's (test|training) part holds only.*use fewer folds"
    ):
        grouped_folds(groups, 3, seed=0, labels=labels)
