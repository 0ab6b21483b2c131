"""Tests for probing.controls: shuffles within pairs, keeps balance for singletons."""

from __future__ import annotations

import numpy as np

from valuetrace.probing.controls import control_labels


def test_pairs_keep_one_of_each_label_but_swap_about_half() -> None:
    labels = np.tile([0, 1], 500)
    groups = np.repeat(np.arange(500), 2)
    control = control_labels(labels, groups, seed=0)
    per_pair = control.reshape(500, 2)
    assert (per_pair.sum(1) == 1).all()
    swapped = (control != labels).reshape(500, 2)[:, 0].mean()
    assert 0.4 < swapped < 0.6


def test_singletons_permute_globally_and_keep_class_counts() -> None:
    labels = np.r_[np.ones(30, dtype=int), np.zeros(70, dtype=int)]
    groups = np.arange(100)
    control = control_labels(labels, groups, seed=3)
    assert control.sum() == 30
    assert (control != labels).any()


def test_deterministic_for_a_seed() -> None:
    labels = np.tile([0, 1], 20)
    groups = np.repeat(np.arange(20), 2)
    assert np.array_equal(control_labels(labels, groups, 7), control_labels(labels, groups, 7))
