"""Where a transplant patches: the localised layers of a pair, and whether a concept-specific
weakening was found there (a drop the control concept matched, global drift, is not one)."""

from __future__ import annotations

from tests.analysis.test_findings import _pair
from valuetrace.analysis.findings import concentration_index, mark_global_drift
from valuetrace.analysis.transplant_plan import _localised


def test_layers_relabelled_global_drift_are_not_a_found_weakening():
    weak, also_weak = _pair(0, 0.3), _pair(2, 0.3, strength=4.0)
    layers, found = _localised(weak[0])
    assert found and layers
    index = concentration_index("concept", "c − g", "a→b", ("c", *weak), ("g", *also_weak), 0.95)
    drift = mark_global_drift(weak[0], also_weak[0], index)
    drift_layers, drift_found = _localised(drift)
    assert drift_layers == layers and not drift_found
