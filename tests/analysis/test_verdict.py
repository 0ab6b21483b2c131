"""The encoding rule every change verdict rests on: the parent's probe must read the concept
above chance (the lower bound of its held-out AUROC interval above 0.5)."""

from __future__ import annotations

import math

import numpy as np

from valuetrace.analysis.verdict import Verdict, held_out_auroc, parent_encodes
from valuetrace.config import ProbingConfig
from valuetrace.probing import probe_layers
from valuetrace.stats import Interval


def test_the_parent_encodes_only_where_its_auroc_interval_lies_above_chance():
    assert parent_encodes(Interval(0.9, 0.51, 0.99))
    assert not parent_encodes(Interval(0.6, 0.5, 0.7))  # the bound touching chance: not above
    assert not parent_encodes(Interval(0.55, 0.46, 0.64))
    assert not parent_encodes(Interval(0.2, 0.1, 0.3))  # reliably below chance is no encoding
    assert not parent_encodes(Interval(math.nan, math.nan, math.nan))  # a degenerate layer


def test_not_encoded_is_neither_a_change_nor_judged():
    v = Verdict.NOT_ENCODED
    assert not (v.fired or v.judged or v.weakened or v.strengthened or v.rotated)
    assert Verdict.NONE.judged and not Verdict.NONE.fired
    assert Verdict.WEAKENING.judged and Verdict.WEAKENING.fired
    assert not Verdict.UNDEFINED.judged


def test_held_out_auroc_reads_a_real_probe_fit_layer_by_layer():
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], 40)
    groups = np.repeat(np.arange(40), 2).astype(str)
    acts = rng.normal(size=(2, 80, 6))
    acts[1, :, 0] += 3.0 * labels  # layer 1 carries the concept, layer 0 is noise
    results = probe_layers(acts, labels, groups, ProbingConfig(n_folds=3, n_bootstrap=200))
    intervals = held_out_auroc(results)
    assert [i.value for i in intervals] == results.auroc.tolist()
    assert [[i.lo, i.hi] for i in intervals] == results.auroc_ci.tolist()
    assert [parent_encodes(i) for i in intervals] == [False, True]
