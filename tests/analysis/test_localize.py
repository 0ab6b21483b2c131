"""Tests for analysis.localize on synthetic stages: weakening, rotation, floors, constant layers."""

import json
from dataclasses import asdict

import numpy as np
import pytest

from valuetrace.analysis.localize import Replicate, Verdict, compare_stages, crossfit_projections
from valuetrace.errors import ValuetraceError
from valuetrace.probing.folds import grouped_folds
from valuetrace.stats import Interval

N_LAYERS, N_PAIRS, D, FROM = 5, 60, 16, 3


def _base(seed: int, strength: float = 1.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs whose members differ along e0 by `strength` at every layer, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1], N_PAIRS)
    groups = np.repeat(np.arange(N_PAIRS), 2)
    acts = rng.normal(size=(N_LAYERS, 2 * N_PAIRS, D))
    acts[:, :, 0] += strength * labels
    return acts, labels, groups


def _compare(a, b, labels, groups, **kwargs):
    folds = grouped_folds(groups, 5, seed=0, labels=labels)
    return compare_stages(a, b, labels, groups, folds, n_boot=400, seed=1, **kwargs)[0]


def test_crossfit_never_measures_an_example_on_a_direction_it_helped_fit() -> None:
    acts, labels, groups = _base(0, strength=0.0)  # no signal: in-sample d would be > 0
    folds = grouped_folds(groups, 5, seed=0, labels=labels)
    proj = crossfit_projections(acts, labels, folds)
    changed = acts.copy()
    in_fold = folds == 2
    changed[:, in_fold] += 5 * np.eye(D)[1] * labels[in_fold, None]  # fold 2 alone gains a signal
    moved = crossfit_projections(acts, labels, folds, reference=changed)
    np.testing.assert_allclose(moved[:, in_fold], proj[:, in_fold])  # its direction excludes it
    assert not np.allclose(moved[:, ~in_fold], proj[:, ~in_fold])


def test_shrinking_the_signal_from_a_layer_is_weakening_there_and_not_rotation() -> None:
    a, labels, groups = _base(0)
    b = a.copy()
    b[FROM:, :, 0] = a[FROM:, :, 0] * 0.3 + 0.95 * np.random.default_rng(9).normal(
        size=b[FROM:, :, 0].shape
    )
    out = _compare(a, b, labels, groups, stage_a="mid", stage_b="sft")
    assert out.verdicts[:FROM] == [Verdict.NONE] * FROM
    assert all(v is Verdict.WEAKENING for v in out.verdicts[FROM:])
    assert out.encoded.first_drop.layer == FROM
    assert not any(out.rotation.drop_found)
    assert out.encoded.drop[:FROM] == [0.0] * FROM
    assert min(out.relative[FROM:]) > 0.3
    assert json.loads(json.dumps(asdict(out)))["stage_b"] == "sft"


def test_rotating_the_signal_is_rotation_not_weakening() -> None:
    a, labels, groups = _base(1)
    b = a.copy()
    b[FROM:, :, 0], b[FROM:, :, 1] = -a[FROM:, :, 1], a[FROM:, :, 0]  # rotate e0 into e1
    out = _compare(a, b, labels, groups)
    assert not any(out.encoded.drop_found)
    assert out.verdicts[FROM:] == [Verdict.ROTATION] * (N_LAYERS - FROM)
    assert out.rotation.first_drop.layer == FROM
    assert all(v < 0.5 for v in out.cosine.value[FROM:])
    assert all(lo > 0.99 for lo in out.cosine.lo[:FROM])


def test_a_strengthened_signal_is_reported_as_strengthening() -> None:
    a, labels, groups = _base(2)
    b = a.copy()
    b[:, :, 0] += 1.5 * labels
    out = _compare(a, b, labels, groups)
    assert out.verdicts == [Verdict.STRENGTHENING] * N_LAYERS


def test_a_change_within_the_replicate_drift_is_no_meaningful_change() -> None:
    a, labels, groups = _base(3)
    rng = np.random.default_rng(4)
    b = a.copy()
    b[:, :, 0] -= 0.2 * labels  # a small but real weakening
    bare = _compare(a, b, labels, groups)
    assert all(v is Verdict.WEAKENING for v in bare.verdicts)
    twin = b.copy()
    twin[:, :, 0] += 0.5 * labels + 0.1 * rng.normal(size=twin.shape[:2])  # a noisy reseed
    floored = _compare(a, b, labels, groups, replicates=[Replicate("sft~seed1", b, twin)])
    assert floored.replicates == ["sft~seed1"]
    assert all(np.array(floored.encoded.floor) > np.array(floored.encoded.drop))
    assert floored.verdicts == [Verdict.NONE] * N_LAYERS


def test_a_constant_layer_is_undefined_with_its_reason_and_the_others_proceed() -> None:
    a, labels, groups = _base(5)
    b = a.copy()
    a[0] = 1.0
    b[0] = 1.0
    out = _compare(a, b, labels, groups, stage_a="base", stage_b="mid")
    assert out.verdicts[0] is Verdict.UNDEFINED
    assert "constant layer" in out.undefined[0] and out.undefined[0].startswith("base")
    assert np.isnan(out.encoded.drop[0]) and np.isnan(out.cka[0]) and np.isnan(out.cosine.value[0])
    assert out.verdicts[1:] == [Verdict.NONE] * (N_LAYERS - 1)


def test_a_layer_whose_replicate_drift_is_undefined_is_undefined_not_unchanged() -> None:
    """A degenerate replicate layer gives no floor there; a NaN floor must not read as "no
    change beyond the floor"."""
    a, labels, groups = _base(3)
    b = a.copy()
    b[:, :, 0] -= 0.6 * labels
    twin = b.copy()
    twin[1] = 1.0  # the replicate's layer 1 is constant
    out = _compare(a, b, labels, groups, replicates=[Replicate("sft~seed1", b, twin)])
    assert out.verdicts[1] is Verdict.UNDEFINED and "no noise floor" in out.undefined[1]
    assert all(v is not Verdict.UNDEFINED for i, v in enumerate(out.verdicts) if i != 1)


def test_no_change_is_judged_where_the_parent_does_not_encode_the_concept() -> None:
    """Weakened below FROM, rotated from FROM on; the parent's probe reads the concept only
    below FROM: from FROM on the verdict is "not encoded", nothing is found or localised there,
    and the encoded layers keep every number they have without the rule."""
    a, labels, groups = _base(7)
    b = a.copy()
    b[:FROM, :, 0] *= 0.3
    b[FROM:, :, 0], b[FROM:, :, 1] = -a[FROM:, :, 1], a[FROM:, :, 0]
    auroc = [Interval(0.8, 0.7, 0.9)] * FROM + [Interval(0.55, 0.45, 0.65)] * (N_LAYERS - FROM)
    judged = _compare(a, b, labels, groups, stage_a="mid", parent_auroc=auroc)
    plain = _compare(a, b, labels, groups, stage_a="mid")
    assert plain.verdicts[FROM:] == [Verdict.ROTATION] * (N_LAYERS - FROM)  # without the rule
    assert judged.verdicts[FROM:] == [Verdict.NOT_ENCODED] * (N_LAYERS - FROM)
    assert judged.not_encoded() == list(range(FROM, N_LAYERS))
    assert not any(judged.rotation.drop_found) and not any(judged.encoded.drop_found[FROM:])
    assert judged.verdicts[:FROM] == plain.verdicts[:FROM] == [Verdict.WEAKENING] * FROM
    for name in ("encoded", "rotation"):
        before, after = getattr(plain, name), getattr(judged, name)
        assert after.drop == before.drop and after.p_drop == before.p_drop
        assert after.drop_found[:FROM] == before.drop_found[:FROM]
    assert judged.encoded.first_drop.layer == 0 and judged.rotation.first_drop.layer is None
    assert set(judged.localised()) <= set(range(FROM))
    assert judged.parent_auroc == auroc and plain.parent_auroc is None


def test_a_parent_that_encodes_the_concept_nowhere_localises_nothing() -> None:
    a, labels, groups = _base(8)
    b = a.copy()
    b[:, :, 0] *= 0.3
    chance = [Interval(0.5, 0.4, 0.6)] * N_LAYERS
    out = _compare(a, b, labels, groups, parent_auroc=chance)
    assert out.verdicts == [Verdict.NOT_ENCODED] * N_LAYERS
    assert out.localised() == []
    assert out.encoded.largest_drop.layer is None and out.encoded.largest_drop.found_freq == 0
    assert out.encoded.first_drop.layer is None


def test_bad_input_names_the_problem() -> None:
    a, labels, groups = _base(6)
    folds = grouped_folds(groups, 5, seed=0, labels=labels)
    with pytest.raises(ValuetraceError, match="same examples"):
        compare_stages(a, a[:, :10], labels, groups, folds)
    with pytest.raises(ValuetraceError, match="n_bootstrap"):
        compare_stages(a, a, labels, groups, folds, n_boot=20)
    with pytest.raises(ValuetraceError, match=r"\(0, 1\)"):
        compare_stages(a, a, labels, groups, folds, ci=95)
    with pytest.raises(ValuetraceError, match="parent_auroc gives 1 intervals for 5 layers"):
        compare_stages(a, a, labels, groups, folds, parent_auroc=[Interval(0.9, 0.8, 1.0)])
