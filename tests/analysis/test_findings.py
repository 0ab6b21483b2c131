"""Findings: concentration indices, global drift, behavioural changes, and the record round trip."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest

from valuetrace.analysis.findings import (
    ConceptFindings,
    Findings,
    Interval,
    StageBehaviour,
    check_same_examples,
    concentration_index,
    mark_global_drift,
    projection_vs_preference,
    verdict_bands,
)
from valuetrace.analysis.localize import Verdict, compare_stages
from valuetrace.errors import ValuetraceError
from valuetrace.probing.folds import grouped_folds
from valuetrace.records import load_record, save_record

N_PAIRS, LAYERS, D = 50, 3, 8


def _pair(seed: int, keep: float, strength: float = 2.0, **kwargs):
    """Stage A with a class signal along e0; stage B keeps `keep` of the gap (noise added)."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1], N_PAIRS)
    groups = np.repeat(np.arange(N_PAIRS), 2)
    a = rng.normal(size=(LAYERS, 2 * N_PAIRS, D))
    a[:, :, 0] += strength * labels
    b = a.copy()
    b[:, :, 0] = a[:, :, 0] - (1 - keep) * strength * labels
    folds = grouped_folds(groups, 5, seed=0, labels=labels)
    return compare_stages(a, b, labels, groups, folds, n_boot=300, seed=seed, **kwargs)


def test_concentration_excludes_zero_only_when_one_setting_weakened_more():
    weak, same, also_weak = _pair(0, 0.3), _pair(1, 1.0), _pair(2, 0.3, strength=4.0)
    specific = concentration_index("concept", "c − g", "a→b", ("c", *weak), ("g", *same), 0.95)
    assert specific.concentrated and specific.overall.lo > 0
    # The control has twice the baseline strength but loses the same share: relative scale.
    both = concentration_index("concept", "c − g", "a→b", ("c", *weak), ("g", *also_weak), 0.95)
    assert not both.concentrated and both.overall.covers_zero()
    assert len(both.per_layer) == LAYERS
    drift = mark_global_drift(weak[0], also_weak[0], both)
    assert weak[0].verdicts == [Verdict.WEAKENING] * LAYERS
    assert drift.verdicts == [Verdict.DRIFT] * LAYERS
    assert mark_global_drift(weak[0], same[0], specific).verdicts == weak[0].verdicts


def test_global_drift_covers_a_control_that_weakened_more_and_keeps_a_rotation():
    weak, also_weak = _pair(0, 0.3), _pair(2, 0.3, strength=4.0)
    index = concentration_index("concept", "c − g", "a→b", ("c", *weak), ("g", *also_weak), 0.95)
    more = dataclasses.replace(index, per_layer=[Interval(-0.4, -0.6, -0.2)] * LAYERS)
    assert mark_global_drift(weak[0], also_weak[0], more).verdicts == [Verdict.DRIFT] * LAYERS
    turned = dataclasses.replace(weak[0], verdicts=[Verdict.WEAKENING_ROTATION] * LAYERS)
    kept = mark_global_drift(turned, also_weak[0], index).verdicts
    assert kept == [Verdict.DRIFT_ROTATION] * LAYERS
    assert all(v.rotated and not v.weakened and v.fired for v in kept)


def test_a_band_of_verdicts_never_spans_layers_that_were_not_extracted():
    cmp = dataclasses.replace(_pair(0, 0.3)[0], layers=[0, 4, 5])
    cmp = dataclasses.replace(cmp, verdicts=[Verdict.WEAKENING] * LAYERS)
    assert verdict_bands(cmp) == [(0, 0, Verdict.WEAKENING), (4, 5, Verdict.WEAKENING)]


def test_concentration_has_no_overall_index_where_no_layer_is_defined():
    """Neither concept defined at any layer: the overall index is NaN, without a numpy warning."""
    (cmp_x, boot_x), (cmp_y, boot_y) = _pair(0, 0.3), _pair(1, 1.0)
    undefined = dataclasses.replace(cmp_x, relative=[float("nan")] * LAYERS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        index = concentration_index(
            "concept", "c − g", "a→b", ("c", undefined, boot_x), ("g", cmp_y, boot_y), 0.95
        )
    assert np.isnan([index.overall.value, index.overall.lo, index.overall.hi]).all()
    assert not index.concentrated


def test_concentration_leaves_out_layers_the_parent_does_not_encode():
    """A relative drop where the parent reads the concept at chance is a ratio of noise: that
    layer's index is NaN and the overall mean is over the judged layers only."""
    auroc = [Interval(0.9, 0.8, 1.0), Interval(0.9, 0.8, 1.0), Interval(0.52, 0.41, 0.63)]
    (weak, boot_w), (same, boot_s) = _pair(0, 0.3, parent_auroc=auroc), _pair(1, 1.0)
    assert weak.verdicts[2] is Verdict.NOT_ENCODED
    index = concentration_index(
        "concept", "c − g", "a→b", ("c", weak, boot_w), ("g", same, boot_s), 0.95
    )
    assert np.isnan(index.per_layer[2].value) and np.isfinite(index.per_layer[1].value)
    judged = np.subtract(weak.relative, same.relative)[:2]
    assert index.overall.value == pytest.approx(judged.mean())


def test_findings_round_trip_through_the_versioned_record(tmp_path):
    auroc = [Interval(0.9, 0.8, 1.0), Interval(0.9, 0.8, 1.0), Interval(0.52, 0.41, 0.63)]
    comparison, _ = _pair(4, 0.5, parent_auroc=auroc)
    assert comparison.verdicts[2] is Verdict.NOT_ENCODED
    concept = ConceptFindings(
        name="compassion",
        concept="compassion",
        layers=[0, 1, 2],
        n_examples=2 * N_PAIRS,
        probes={},
        transfer_auroc=[[[0.5, 0.6, float("nan")]]],
        comparisons={"A→B": comparison},
    )
    findings = Findings(
        stages=["A", "B"],
        replicate_of={},
        primary_dataset="compassion",
        primary_pair=["A", "B"],
        ci=0.9,
        behaviour={
            "A": StageBehaviour(
                Interval(0.5, 0.4, 0.6), Interval(0.1, 0.0, 0.2), Interval(2.0, 1.9, 2.1)
            )
        },
        behaviour_changes={},
        concepts={"compassion": concept},
        concentration=[],
        projection={},
        figures=[],
    )
    path = save_record(findings, tmp_path / "findings.json")
    back = load_record(Findings, path)
    assert back.primary.verdicts == comparison.verdicts
    assert back.primary.encoded.first_drop == comparison.encoded.first_drop
    assert np.isnan(back.concepts["compassion"].transfer_auroc[0][0][2])
    assert back.primary.localised() == comparison.localised()
    assert back.primary.parent_auroc == auroc and back.primary.not_encoded() == [2]
    # a version 4 file (no parent_auroc) reads with every layer judged as it was written
    plain = json.loads(path.read_text())
    del plain["concepts"]["compassion"]["comparisons"]["A→B"]["parent_auroc"]
    path.write_text(json.dumps({**plain, "schema_version": 4}))
    old = load_record(Findings, path)
    assert old.primary.parent_auroc is None and old.primary.verdicts == comparison.verdicts


def test_stages_over_other_examples_or_widths_are_refused():
    with pytest.raises(ValuetraceError, match="different examples"):
        check_same_examples({"a": ["x", "y"], "b": ["y", "x"]}, {"a": (1,), "b": (1,)})
    with pytest.raises(ValuetraceError, match="differ in layers or width"):
        check_same_examples({"a": ["x"], "b": ["x"]}, {"a": (2, 1, 4), "b": (2, 1, 6)})


def test_projection_gap_correlates_with_preference():
    rng = np.random.default_rng(1)
    gap = rng.normal(size=60)
    pos = np.zeros((1, 60, 4))
    pos[0, :, 0] = gap
    neg = np.zeros((1, 60, 4))
    direction = np.array([[1.0, 0, 0, 0]])
    pref = 2 * gap + 0.1 * rng.normal(size=60)
    out = projection_vs_preference(pos, neg, direction, pref, 0, 7, n_boot=200, seed=0, ci=0.9)
    assert out.r > 0.95 and out.lo > 0.9 and out.layer == 7
    flat = projection_vs_preference(
        pos, neg, np.zeros((1, 4)), pref, 0, 7, n_boot=20, seed=0, ci=0.9
    )
    assert np.isnan(flat.r)  # an undefined direction gives NaN, not an error
    with pytest.raises(ValuetraceError, match="eval items"):
        projection_vs_preference(pos, neg, direction, gap[:10], 0, 7, n_boot=10, seed=0, ci=0.9)
