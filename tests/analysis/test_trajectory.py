"""Trajectory analysis and the calibration table on constructed trajectories: a signal that
shrinks at one layer from a known step on, beside a neutral arm that changes nothing."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict

import numpy as np
import pytest

from valuetrace.analysis.calibration import (
    DoseRow,
    KnownAnswer,
    arm_calibration,
    calibration_table,
    format_table,
    headline,
)
from valuetrace.analysis.report_evidence import trajectory_sentences
from valuetrace.analysis.trajectory import (
    Trajectory,
    TrajectoryRecord,
    analyse_trajectory,
    drift_layers,
    heatmap_matrix,
    layers_showing,
    mark_trajectory_drift,
    neutral_gaps,
    trajectory_points,
)
from valuetrace.analysis.verdict import Verdict, held_out_auroc
from valuetrace.config import ProbingConfig
from valuetrace.errors import DataError
from valuetrace.probing import probe_layers
from valuetrace.probing.folds import grouped_folds
from valuetrace.records import load_record, save_record
from valuetrace.stats import Interval
from valuetrace.training.lineage import StageRecord

N_LAYERS, N_PAIRS, D, LAYER = 4, 60, 12, 2
STEPS = (10, 20, 30)
SHRINK = {10: 1.0, 20: 0.2, 30: 0.1}  # the signal at LAYER, as a share of the parent's


def _noise(seed: int, scale: float = 0.05) -> np.ndarray:
    return scale * np.random.default_rng(seed).normal(size=(N_LAYERS, 2 * N_PAIRS, D))


@pytest.fixture(scope="module")
def arms() -> dict:
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], N_PAIRS)
    groups = np.repeat(np.arange(N_PAIRS), 2)
    parent = rng.normal(size=(N_LAYERS, 2 * N_PAIRS, D))
    parent[:, :, 0] += 1.5 * labels
    acts = {"parent": parent}
    for i, step in enumerate(STEPS):
        counter = parent + _noise(10 + i)
        counter[LAYER, :, 0] -= (1 - SHRINK[step]) * 1.5 * labels
        acts[f"counter-step{step}"] = counter
        acts[f"counter~seed1-step{step}"] = counter + _noise(20 + i)
        acts[f"neutral-step{step}"] = parent + _noise(30 + i)
        acts[f"neutral~seed1-step{step}"] = acts[f"neutral-step{step}"] + _noise(40 + i)
    return _both_arms(acts, labels, groups)


def _both_arms(
    acts: dict[str, np.ndarray],
    labels: np.ndarray,
    groups: np.ndarray,
    parent_auroc: list[Interval] | None = None,
) -> dict:
    """The counter and neutral arms' trajectories from "parent", each with its seed-1 replicate
    as the floor at every step, and (under "boots") each arm's bootstrap samples per step."""
    folds = grouped_folds(groups, 5, seed=0, labels=labels)
    both = {
        arm: analyse_trajectory(
            arm,
            "parent",
            [(s, f"{arm}-step{s}") for s in STEPS],
            acts,
            labels,
            groups,
            folds,
            replicate_points={s: [f"{arm}~seed1-step{s}"] for s in STEPS},
            n_boot=300,
            seed=1,
            parent_auroc=parent_auroc,
        )
        for arm in ("counter", "neutral")
    }
    return {arm: t for arm, (t, _) in both.items()} | {
        "boots": {arm: b for arm, (_, b) in both.items()}
    }


def test_the_first_step_of_a_weakening_and_its_layer_are_found(arms) -> None:
    counter = arms["counter"]
    first = counter.first_step("weakening")
    assert (first.step, first.layers) == (20, [LAYER])
    assert counter.first_step("rotation").step is None
    assert counter.steps[1].floor_from == ["counter~seed1-step20"]
    assert counter.steps[1].comparison.encoded.floor is not None
    heat = heatmap_matrix(counter)
    assert heat.shape == (N_LAYERS, len(STEPS))
    assert heat[LAYER, 2] > 0.5 and abs(heat[0, 2]) < 0.2
    json.dumps(asdict(counter))  # a plain record
    steps = [layers_showing(p, counter.layers, "weakening") for p in counter.steps]
    assert steps == [[], [LAYER], [LAYER]]


def test_the_neutral_arm_gives_no_verdict_and_the_counter_arm_is_value_specific(arms) -> None:
    rows = calibration_table(arms["counter"], arms["neutral"], alpha=0.05)
    assert [(r.arm, r.step) for r in rows[:2]] == [("counter", 10), ("neutral", 10)]
    neutral = [r for r in rows if r.arm == "neutral"]
    assert all(r.false_positives == 0 and r.first_layer is None for r in neutral)
    assert rows[0].false_positives_allowed == pytest.approx(0.05 * 3 * N_LAYERS)
    assert all(r.floored for r in rows)  # every step has its seed replicate's drift
    late = [r for r in rows if r.arm == "counter" and r.step >= 20]
    assert all(r.first_layer == LAYER and r.value_specific_layers == [LAYER] for r in late)
    assert all(r.verdict is Verdict.WEAKENING and r.value_specific for r in late)
    assert rows[0].first_layer is None
    assert "value-specific" in format_table(rows)
    said, neutral_said = headline(KnownAnswer("counter", "neutral", rows))
    first = min(r.step for r in late)
    assert f"first fired at step {first}: weakening at layer {LAYER}" in said
    assert "was not scored on behaviour" in said and "fired 0 stage × layer" in neutral_said


def _renumbered(t: Trajectory, numbers: list[int]) -> Trajectory:
    """The same trajectory with its layers numbered `numbers` (model layers, not indices)."""
    steps = [
        dataclasses.replace(p, comparison=dataclasses.replace(p.comparison, layers=numbers))
        for p in t.steps
    ]
    return dataclasses.replace(t, layers=numbers, steps=steps)


def test_the_known_answer_says_what_was_probed_how_large_its_drop_was_and_its_cause(arms):
    gaps = neutral_gaps(
        arms["counter"], arms["neutral"], arms["boots"]["counter"], arms["boots"]["neutral"], 0.95
    )
    assert [g.step for g in gaps] == list(STEPS)
    assert gaps[1].per_layer[LAYER].lo > 0  # the counter arm weakened more, beyond resampling
    assert gaps[0].per_layer[LAYER].lo < 0 < gaps[0].per_layer[LAYER].hi  # not yet at step 10
    record = TrajectoryRecord([arms["counter"], arms["neutral"]], 0.05, 0.95, gaps)
    cause = "the counter arm's text removes the distinction"
    known = arm_calibration(
        record, "compassion", "counter", "neutral", 0.05, concept="compassion", cause=cause
    )
    drop = known.strongest
    assert drop is not None and (drop.step, drop.layer) == (20, LAYER)
    comparison = arms["counter"].steps[1].comparison.encoded
    assert drop.drop == comparison.at(LAYER) and drop.before == comparison.a[LAYER]
    assert drop.drop.lo > 0 and abs(drop.neutral_drop.value) < drop.drop.value
    assert drop.gap == gaps[1].per_layer[LAYER]
    said, stated, _ = headline(known)
    assert said.startswith(
        "Known answer on probe set 'compassion' (concept compassion): the counter-value arm"
    )
    assert (
        f"; the largest value-specific drop at step 20, layer {LAYER}: d {drop.before:.2f} → "
        f"{drop.after:.2f} (Δ {drop.drop.value:.3f} [{drop.drop.lo:.3f}, {drop.drop.hi:.3f}]; "
        "the neutral arm's Δ there" in said
    )
    assert "(paired resamples): the counter arm weakened more)" in said
    assert stated == f"Cause, by construction: {cause}."
    unsure = dataclasses.replace(drop, gap=Interval(0.1, -0.05, 0.25))
    assert (
        "its interval covers 0, so the margin over the neutral arm rests on the point"
        in (headline(dataclasses.replace(known, strongest=unsure))[0])
    )
    overlapping = dataclasses.replace(
        known, strongest=dataclasses.replace(drop, neutral_drop=drop.drop, gap=None)
    )
    assert "the two intervals overlap" in headline(overlapping)[0]
    apart = dataclasses.replace(
        drop, gap=None, neutral_drop=Interval(0.0, -0.1, drop.drop.lo - 0.01)
    )
    assert "overlap" not in headline(dataclasses.replace(known, strongest=apart))[0]
    # an undefined gap (NaN: a layer one arm cannot judge) is no interval to report
    undefined = [
        dataclasses.replace(g, per_layer=[Interval(np.nan, np.nan, np.nan)] * len(g.per_layer))
        for g in gaps
    ]
    unknown = arm_calibration(
        TrajectoryRecord([arms["counter"], arms["neutral"]], 0.05, 0.95, undefined),
        "compassion",
        "counter",
        "neutral",
        0.05,
    )
    assert unknown.strongest is not None and unknown.strongest.gap is None
    # layer numbers that are not indices (every third layer extracted) are reported as numbers
    numbers = [0, 3, 6, 9]
    renumbered = arm_calibration(
        TrajectoryRecord(
            [_renumbered(arms["counter"], numbers), _renumbered(arms["neutral"], numbers)],
            0.05,
            0.95,
            gaps,
        ),
        "compassion",
        "counter",
        "neutral",
        0.05,
    )
    assert renumbered.strongest is not None and renumbered.strongest.layer == numbers[LAYER]
    assert renumbered.strongest.gap == gaps[1].per_layer[LAYER]
    # a neutral arm that weakens as much leaves no value-specific drop to report
    same = arm_calibration(
        TrajectoryRecord(
            [arms["counter"], dataclasses.replace(arms["counter"], stage="neutral")], 0.05, 0.95
        ),
        "compassion",
        "counter",
        "neutral",
        0.05,
    )
    assert same.strongest is None and len(headline(same)) == 2
    assert "largest value-specific drop" not in headline(same)[0]


def test_the_known_answer_names_the_first_value_specific_weakening_apart_from_rotation():
    def row(
        arm: str, step: int, verdicts: dict[int, Verdict], moved: bool, floored: bool = False
    ) -> DoseRow:
        margin = Interval(-0.5, -0.6, -0.4) if moved else Interval(0.0, -0.1, 0.1)
        return DoseRow(
            arm,
            arm,
            step,
            moved,
            margin,
            None,
            Verdict.NONE,
            False,
            list(verdicts),
            list(verdicts.values()),
            list(verdicts),
            list(verdicts.values()),
            2,
            1.5,
            [0],
            floored,
        )

    rotated, weakened = Verdict.ROTATION, Verdict.WEAKENING
    rows = [
        row("counter", 5, {3: rotated, 4: rotated}, True),
        row("neutral", 5, {}, False),
        row("counter", 10, {1: weakened, 3: rotated}, True),
        row("neutral", 10, {}, False),
    ]
    said, neutral_said = headline(KnownAnswer("c", "n", rows))
    assert (
        "moved behaviour from step 5 (Δ mean margin -0.500 [-0.600, -0.400]; CI excludes 0, no "
        "replicate floor)" in said
    )
    assert (
        "first fired at step 5: rotation at layers 3–4; a value-specific weakening first "
        "at step 10, at layer 1; not judged at layer 0" in said
    )
    assert "did not move behaviour at any saved step (every margin CI covers 0)" in neutral_said
    assert (
        "fired 4 stage × layer verdicts of a change in the concept (false positives; global "
        "drift alone is none) against at most 3.0 expected by "
        "chance (α × tests: Holm over layers keeps each test family's chance of any false "
        "positive at α, so fewer). At steps 5, 10, which no seed replicate floors, a verdict "
        "needs significance alone" in neutral_said
    )
    floored = [row(r.arm, r.step, {}, r.behaviour_changed, floored=True) for r in rows]
    floored_counter, floored_said = headline(KnownAnswer("c", "n", floored))
    assert floored_said.endswith("so fewer).") and "seed replicate" not in floored_said
    # only the unfloored step is named when a replicate floors the other
    some = [dataclasses.replace(r, floored=r.step == 5) for r in rows]
    assert "At step 10, which no seed replicate floors" in headline(KnownAnswer("c", "n", some))[1]
    assert "did not move behaviour beyond its floor at any saved step" in floored_said
    assert "moved behaviour beyond its floor from step 5" in floored_counter


def test_the_table_names_the_part_of_a_first_verdict_that_beats_the_neutral_arm() -> None:
    both, rotated = Verdict.WEAKENING_ROTATION, Verdict.ROTATION
    base = DoseRow(
        "counter", "c", 5, True, Interval(-0.5, -0.6, -0.4), 2, both, True, [2], [both], [2],
        [both], 0, 1.5, [], False,
    )  # fmt: skip
    part = dataclasses.replace(base, value_specific_verdicts=[rotated])
    none = dataclasses.replace(base, value_specific=False, value_specific_layers=[])
    lines = [" ".join(format_table([r]).splitlines()[1].split()) for r in (base, part, none)]
    assert "weakening + rotation (value-specific) 2" in lines[0]
    assert "weakening + rotation (rotation value-specific) 2" in lines[1]
    assert "weakening + rotation -" in lines[2] and "value-specific" not in lines[2]


def test_the_table_names_what_fired_when_nothing_weakened_or_rotated() -> None:
    up = Verdict.STRENGTHENING
    row = DoseRow(
        "neutral", "n", 5, False, Interval(0.0, -0.1, 0.1), None, Verdict.NONE, False, [1, 2, 7],
        [up, up, up], [], [], 3, 1.5, [], False,
    )  # fmt: skip
    quiet = dataclasses.replace(row, layers=[], fired_verdicts=[], false_positives=0)
    cells = [" ".join(format_table([r]).splitlines()[1].split()) for r in (row, quiet)]
    assert "None strengthening at layers 1–2, 7 - 3/1.50" in cells[0]
    assert "None no meaningful change - 0/1.50" in cells[1]


FAINT = 0  # a layer whose parent signal is too faint for its probe to read


@pytest.fixture(scope="module")
def faint_arms() -> dict:
    """As `arms`, but the parent barely separates the classes at FAINT, and both arms drop most
    of that faint separation there from step 10 on (the counter arm also shrinks LAYER from
    step 20 on); the parent's probe decides which layers are judged."""
    rng = np.random.default_rng(1)
    labels = np.tile([0, 1], N_PAIRS)
    groups = np.repeat(np.arange(N_PAIRS), 2)
    strength = np.full(N_LAYERS, 1.5)
    strength[FAINT] = 0.2
    parent = rng.normal(size=(N_LAYERS, 2 * N_PAIRS, D))
    parent[:, :, 0] += strength[:, None] * labels
    acts = {"parent": parent}
    for i, step in enumerate(STEPS):
        for arm, seed in (("counter", 10), ("neutral", 30)):
            x = parent + 0.02 * np.random.default_rng(seed + i).normal(size=parent.shape)
            x[FAINT, :, 0] -= 0.7 * strength[FAINT] * labels
            if arm == "counter":
                x[LAYER, :, 0] -= (1 - SHRINK[step]) * 1.5 * labels
            acts[f"{arm}-step{step}"] = x
            acts[f"{arm}~seed1-step{step}"] = x + _noise(seed + 10 + i, 0.02)
    probes = probe_layers(parent, labels, groups.astype(str), ProbingConfig(n_folds=5), seed=0)
    return {"probes": probes, **_both_arms(acts, labels, groups, held_out_auroc(probes))}


def test_layers_the_parent_does_not_encode_are_never_a_first_detection_or_a_false_positive(
    faint_arms,
) -> None:
    probes, counter, neutral = faint_arms["probes"], faint_arms["counter"], faint_arms["neutral"]
    lows = probes.auroc_ci[:, 0]
    assert lows[FAINT] <= 0.5 and all(np.delete(lows, FAINT) > 0.5)
    first = neutral.steps[0].comparison.encoded
    # what the paired test and the floor alone would call a weakening on the neutral arm
    assert first.p_drop[FAINT] <= 0.05 and first.drop[FAINT] > first.floor[FAINT]
    for point in (*counter.steps, *neutral.steps):
        assert point.comparison.verdicts[FAINT] is Verdict.NOT_ENCODED
    assert (counter.first_step("weakening").step, counter.first_step("weakening").layers) == (
        20,
        [LAYER],
    )
    assert neutral.first_step("weakening").step is None
    rows = calibration_table(counter, neutral, alpha=0.05)
    assert all(r.not_encoded == [FAINT] for r in rows)
    assert all(r.false_positives == 0 for r in rows if r.arm == "neutral")
    assert rows[0].false_positives_allowed == pytest.approx(0.05 * 3 * (N_LAYERS - 1))
    assert rows[0].first_layer is None  # step 10: only the unjudged layer dropped
    words = " ".join(format_table(rows).split())
    assert "not judged at layer 0: the parent does not encode the concept there" in words
    head = " ".join(trajectory_sentences(counter)[0].split())
    assert "Not judged at layer 0: parent does not encode the concept there" in head
    assert "First step beyond the floor: weakening at step 20" in head
    assert "without a control-concept check" in head  # no global-drift relabel along a run
    bare = dataclasses.replace(
        counter, steps=[dataclasses.replace(p, floor_from=[]) for p in counter.steps]
    )
    bare_head = " ".join(trajectory_sentences(bare)[0].split())
    assert "First significant step (no seed replicate, so no floor): weakening" in bare_head


def test_a_version_1_trajectory_record_reads_with_every_layer_judged(arms, tmp_path) -> None:
    record = TrajectoryRecord([arms["counter"]], 0.05, 0.95)
    path = save_record(record, tmp_path / "trajectories.json")
    plain = json.loads(path.read_text())
    for step in plain["trajectories"][0]["steps"]:
        del step["comparison"]["parent_auroc"]
    path.write_text(json.dumps({**plain, "schema_version": 1}))
    old = load_record(TrajectoryRecord, path)
    assert old == record and old.trajectories[0].steps[0].comparison.parent_auroc is None


def test_a_weakening_a_control_concept_matches_along_a_run_is_global_drift(arms) -> None:
    counter, boots = arms["counter"], arms["boots"]["counter"]
    # a control concept that weakened exactly as much at every step: global drift
    matched = dataclasses.replace(counter, dataset="grammar")
    marked = mark_trajectory_drift(counter, matched, boots, boots, 0.95)
    assert marked.drift_controls == ["grammar"]
    assert [drift_layers(p, marked.layers) for p in marked.steps] == [[], [LAYER], [LAYER]]
    numbers = [0, 3, 6, 9]
    far = mark_trajectory_drift(
        _renumbered(counter, numbers), _renumbered(matched, numbers), boots, boots, 0.95
    )
    assert drift_layers(far.steps[1], far.layers) == [numbers[LAYER]]
    assert marked.first_step("weakening").step is None
    lines = [" ".join(line.split()) for line in trajectory_sentences(marked)]
    assert (
        "a weakening that a control concept (grammar) matches at that step and layer" in (lines[0])
    )
    assert f"global drift at layer {LAYER}" in lines[2]
    # on a neutral arm, global drift alone is no false positive; the weakening was one
    as_neutral = dataclasses.replace(marked, stage="neutral")
    unmarked = dataclasses.replace(counter, stage="neutral")
    fp = {r.step: r.false_positives for r in calibration_table(counter, as_neutral, 0.05)}
    before = {r.step: r.false_positives for r in calibration_table(counter, unmarked, 0.05)}
    assert fp[20] == before[20] - 1
    # a control concept that did not change leaves the weakening standing
    steady = dataclasses.replace(arms["neutral"], stage="counter", dataset="grammar")
    kept = mark_trajectory_drift(counter, steady, boots, arms["boots"]["neutral"], 0.95)
    assert [p.comparison for p in kept.steps] == [p.comparison for p in counter.steps]
    assert kept.first_step("weakening").step == 20
    with pytest.raises(DataError, match="not of the primary's stage"):
        mark_trajectory_drift(counter, arms["neutral"], boots, boots, 0.95)


def test_neutral_gaps_round_trip_and_leave_unjudged_layers_undefined(faint_arms, tmp_path) -> None:
    counter, neutral, boots = faint_arms["counter"], faint_arms["neutral"], faint_arms["boots"]
    gaps = neutral_gaps(counter, neutral, boots["counter"], boots["neutral"], 0.95)
    assert all(np.isnan(g.per_layer[FAINT].value) for g in gaps)  # not judged: no gap
    record = TrajectoryRecord([counter, neutral], 0.05, 0.95, gaps)
    path = save_record(record, tmp_path / "trajectories.json")
    again = load_record(TrajectoryRecord, path)
    assert [g.step for g in again.neutral_gaps] == list(STEPS)
    assert again.neutral_gaps[1].per_layer[LAYER] == gaps[1].per_layer[LAYER]
    # a version 2 record (before the gaps) reads with none
    plain = json.loads(path.read_text())
    del plain["neutral_gaps"]
    path.write_text(json.dumps({**plain, "schema_version": 2}))
    assert load_record(TrajectoryRecord, path).neutral_gaps == []
    with pytest.raises(DataError, match="do not share a parent"):
        neutral_gaps(
            counter,
            dataclasses.replace(neutral, parent="base"),
            boots["counter"],
            boots["neutral"],
            0.95,
        )


def test_arms_saved_at_other_steps_are_refused(arms) -> None:
    short = type(arms["neutral"])(**{**vars(arms["neutral"]), "steps": arms["neutral"].steps[:2]})
    with pytest.raises(DataError, match="same data size"):
        calibration_table(arms["counter"], short, alpha=0.05)


def test_trajectory_points_come_from_the_lineage() -> None:
    records = [
        StageRecord("mid", "m"),
        StageRecord("sft-step20", "b", "mid", trajectory_of="sft", step=20),
        StageRecord("sft-step10", "a", "mid", trajectory_of="sft", step=10),
        StageRecord("sft", "c", "mid", metrics={"steps": 40}),
    ]
    assert trajectory_points(records) == {
        "sft": [(10, "sft-step10"), (20, "sft-step20"), (40, "sft")]
    }
