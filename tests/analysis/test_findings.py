"""Cross-stage findings: mismatched stages are refused; concentration verdicts follow the rule."""

from __future__ import annotations

import numpy as np
import pytest
from valuetrace.analysis.findings import (
    StageArrays,
    check_same_examples,
    concentration,
    concept_findings,
    projection_vs_preference,
)

from valuetrace.errors import ValuetraceError


def _stage(rng, n=40, d=8, layers=3, signal=2.0):
    labels = np.arange(n) % 2
    acts = rng.normal(size=(layers, n, d))
    acts[:, :, 0] += signal * labels
    direction = np.zeros((layers, d))
    direction[:, 0] = 1
    return StageArrays(acts, acts[:, :, 0], direction, direction), labels


def test_a_removed_signal_is_localised_and_reported():
    rng = np.random.default_rng(0)
    a, labels = _stage(rng)
    b, _ = _stage(rng, signal=0.0)
    groups = [str(i // 2) for i in range(40)]
    found = concept_findings(
        {"a": a, "b": b}, labels, groups, [("a", "b")], n_boot=200, seed=0, n_shuffles=20
    )
    loc = found["localization"]["a→b"]
    assert all(loc["separation"]["significant"])
    assert len(found["cka"]["a→b"]) == 3 and found["cosine_null"][0] < 0 < found["cosine_null"][1]


def test_stages_over_other_examples_or_widths_are_refused():
    rng = np.random.default_rng(0)
    a, _ = _stage(rng)
    b, _ = _stage(rng, d=6)
    with pytest.raises(ValuetraceError, match="different examples"):
        check_same_examples({"a": a, "b": a}, {"a": ["x", "y"], "b": ["y", "x"]})
    with pytest.raises(ValuetraceError, match="differ in layers or width"):
        check_same_examples({"a": a, "b": b}, {"a": ["x"], "b": ["x"]})


def _loc(drops, significant):
    return {"metric": "separation", "separation": {"drop": drops, "significant": significant}}


@pytest.mark.parametrize(
    ("control", "arm", "verdict"),
    [
        ([0.1, 0.1], [0.2, 0.1], "concentrated in compassion and in this arm"),
        ([0.1, 0.1], [1.0, 0.9], "specific to compassion but not to this arm"),
        ([0.9, 1.0], [0.1, 0.1], "not specific to compassion"),
    ],
)
def test_concentration_verdicts(control, arm, verdict):
    concepts = {
        "compassion": {
            "localization": {"m→h": _loc([1.0, 1.2], [True, True]), "m→c": _loc(arm, [True, True])}
        },
        "grammar": {"localization": {"m→h": _loc(control, [True, True])}},
    }
    out = concentration(concepts, "compassion", ("m", "h"), ("m", "c"))
    assert verdict in out["sentence"] and out["primary_drop"] == 1.2


def test_projection_gap_correlates_with_preference():
    rng = np.random.default_rng(1)
    gap = rng.normal(size=60)
    pos = np.zeros((1, 60, 4))
    pos[0, :, 0] = gap
    neg = np.zeros((1, 60, 4))
    direction = np.array([[1.0, 0, 0, 0]])
    out = projection_vs_preference(
        pos, neg, direction, 2 * gap + 0.1 * rng.normal(size=60), 0, n_boot=200, seed=0
    )
    assert out["r"] > 0.95 and out["lo"] > 0.9
    with pytest.raises(ValuetraceError, match="eval items"):
        projection_vs_preference(pos, neg, direction, gap[:10], 0, n_boot=10, seed=0)
