"""Calibration against a known answer: a counter-value arm (the positive control) and a neutral
arm of the same dose and method, both watched along their trajectories.

Per dose (optimizer step) and arm: did behaviour move beyond its floor, at which layers does a
weakening or rotation fire, and which of those are *value-specific*: larger than the change a
neutral fine-tune of the same dose makes at that layer (the neutral arm's change is used as a
floor exactly as the seed-replicate drift is in `valuetrace.analysis.localize`: |drop| must
exceed it; the rule is `valuetrace.analysis.neutral_floor.value_specific`, which the study
applies to every compared pair too). On the neutral arm every stage x layer verdict that claims
a change of the concept (weakening, strengthening, rotation; not global drift alone) is a false
positive; it is counted against alpha x tests (three one-sided tests per judged layer and
step: weakening, strengthening, rotation), the number expected by chance if every test ran at
alpha uncorrected: Holm over layers only rejects fewer, keeping each family's chance of any false
positive at alpha, so this is an upper bound on the expected count, not a tolerance. A layer
where the arms' parent does not encode the concept (`valuetrace.analysis.verdict.parent_encodes`)
is not judged: it is never a first layer, never a false positive, and not among the allowed tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from valuetrace.analysis.neutral_floor import changed_layers, value_specific
from valuetrace.analysis.report_model import (
    by_verdict,
    fmt,
    fmt_interval,
    fmt_layers,
    layer_word,
    signed,
)
from valuetrace.analysis.trajectory import (
    NeutralGap,
    Trajectory,
    TrajectoryRecord,
    TrajectoryStep,
    twin_steps,
)
from valuetrace.analysis.verdict import NOT_ENCODED_WHY, Verdict
from valuetrace.errors import MissingStepError
from valuetrace.stats import Interval

TESTS_PER_LAYER = 3  # weakening, strengthening, rotation


@dataclass(frozen=True)
class DoseRow:
    """One arm at one dose: behaviour, the representation verdict, and the false-positive count.

    `first_layer` is the first layer (model layer number) where weakening or rotation fires,
    None if none; `verdict` the verdict there (`Verdict.NONE` when none fired) and
    `value_specific` whether it beats the neutral arm at that layer (`neutral_floor`).
    `layers` are the layers where any verdict fired (strengthening and global drift too) and
    `fired_verdicts` their verdicts. `value_specific_verdicts` holds, at each of
    `value_specific_layers`, the part of its verdict that beats the neutral arm (a "weakening +
    rotation" whose drop the neutral arm matches is a value-specific "rotation").
    `false_positives` is the neutral arm's number of layers at this dose whose verdict claims a
    change of the concept itself: weakening, strengthening or rotation (the same on both arms'
    rows; "global drift" alone, a weakening a control concept matched, is not such a claim:
    `neutral_floor.changed_layers`), `false_positives_allowed` = alpha x its tests.
    `not_encoded`: the layers this row's stage was not judged at, because the parent does not
    encode the concept there; none of them is a first layer or a false positive. `floored`:
    whether this row's verdicts had to exceed a seed replicate's drift (its step has a replicate
    floor); without one a verdict needs significance alone, so the neutral arm's count is every
    change a neutral fine-tune of this dose makes, not only test errors.
    """

    arm: str
    stage: str
    step: int
    behaviour_changed: bool | None
    margin_change: Interval | None
    first_layer: int | None
    verdict: Verdict
    value_specific: bool
    layers: list[int]
    fired_verdicts: list[Verdict]
    value_specific_layers: list[int]
    value_specific_verdicts: list[Verdict]
    false_positives: int
    false_positives_allowed: float
    not_encoded: list[int]
    floored: bool


def _fired(step: TrajectoryStep, layers: Sequence[int]) -> dict[int, Verdict]:
    return {
        layer: Verdict(v)
        for layer, v in zip(layers, step.comparison.verdicts, strict=True)
        if Verdict(v).fired
    }


def _first_change(step: TrajectoryStep, layers: Sequence[int]) -> tuple[int | None, Verdict]:
    for layer, v in zip(layers, step.comparison.verdicts, strict=True):
        if Verdict(v).weakened or Verdict(v).rotated:
            return layer, Verdict(v)
    return None, Verdict.NONE


def calibration_table(counter: Trajectory, neutral: Trajectory, alpha: float) -> list[DoseRow]:
    """Per dose, a row for the counter arm and one for the neutral arm (see `DoseRow`).

    Raises:
        DataError: the arms were not saved at the same steps, or compared over other layers.
    """
    by_step = twin_steps(counter, neutral)
    layers = counter.layers
    rows: list[DoseRow] = []
    for point in counter.steps:
        twin = by_step[point.step]
        fp = len(changed_layers(twin.comparison))
        judged = sum(Verdict(v).judged for v in twin.comparison.verdicts)
        allowed = alpha * TESTS_PER_LAYER * judged
        specific = value_specific(point.comparison, twin.comparison)
        for arm, p, spec in (("counter", point, specific), ("neutral", twin, {})):
            first, verdict = _first_change(p, layers)
            fired = _fired(p, layers)
            beh = p.behaviour
            rows.append(
                DoseRow(
                    arm=arm,
                    stage=p.stage,
                    step=p.step,
                    behaviour_changed=None if beh is None else beh.margin_moved(),
                    margin_change=None if beh is None else beh.margin,
                    first_layer=first,
                    verdict=verdict,
                    value_specific=first is not None and first in spec,
                    layers=list(fired),
                    fired_verdicts=list(fired.values()),
                    value_specific_layers=list(spec),
                    value_specific_verdicts=list(spec.values()),
                    false_positives=fp,
                    false_positives_allowed=allowed,
                    not_encoded=p.comparison.not_encoded(),
                    floored=bool(p.floor_from),
                )
            )
    return rows


@dataclass(frozen=True)
class SpecificDrop:
    """How sure the known answer is: at the first step with a value-specific weakening, the
    layer (model layer number) where the counter arm's drop is largest, its separation before
    and after (along each stage's own cross-fitted direction, in pooled within-class standard
    deviations: Cohen's d), the drop with its interval, and the neutral arm's drop of the same
    measure at that step and layer (the floor it beat, on point estimates). `gap`: the counter
    arm's relative weakening minus the neutral arm's there, with its paired interval
    (`valuetrace.analysis.trajectory.NeutralGap`; None when the record holds no gaps)."""

    step: int
    layer: int
    before: float
    after: float
    drop: Interval
    neutral_drop: Interval
    gap: Interval | None = None


@dataclass(frozen=True)
class KnownAnswer:
    """A run's known answer: the calibration rows of its counter-value and neutral arms over
    one probe set, the largest value-specific drop at the first step with one (None if none),
    the probe set's name and concept, and the cause the config states it was built with
    (`analysis.known_cause`; None when the config states none)."""

    counter: str
    neutral: str
    rows: list[DoseRow]
    strongest: SpecificDrop | None = None
    dataset: str | None = None
    concept: str | None = None
    cause: str | None = None


def _strongest_drop(
    counter: Trajectory, neutral: Trajectory, rows: Sequence[DoseRow], gaps: Sequence[NeutralGap]
) -> SpecificDrop | None:
    """The `SpecificDrop` of the first counter row with a value-specific weakening, with its
    gap to the neutral arm from `gaps` (the record's) when they hold its step."""
    row = next(
        (
            r
            for r in rows
            if r.arm == "counter" and any(v.weakened for v in r.value_specific_verdicts)
        ),
        None,
    )
    if row is None:
        return None
    point = next(p for p in counter.steps if p.step == row.step)
    twin = next(p for p in neutral.steps if p.step == row.step)
    weakened = [
        counter.layers.index(layer)
        for layer, v in zip(row.value_specific_layers, row.value_specific_verdicts, strict=True)
        if v.weakened
    ]
    enc = point.comparison.encoded
    i = max(weakened, key=lambda j: enc.drop[j])
    gap = next(
        (
            g.per_layer[i]
            for g in gaps
            if (g.dataset, g.counter, g.neutral, g.step)
            == (counter.dataset, counter.stage, neutral.stage, row.step)
        ),
        None,
    )
    if gap is not None and not math.isfinite(gap.value):
        gap = None  # undefined there (a layer one arm cannot judge): no interval to report
    return SpecificDrop(
        row.step,
        counter.layers[i],
        enc.a[i],
        enc.b[i],
        enc.at(i),
        twin.comparison.encoded.at(i),
        gap,
    )


def arm_calibration(
    record: TrajectoryRecord,
    dataset: str,
    counter: str,
    neutral: str,
    alpha: float,
    *,
    concept: str | None = None,
    cause: str | None = None,
) -> KnownAnswer:
    """The known answer of one probe set's trajectories: the `counter` arm's and the `neutral`
    arm's calibration table (`calibration_table`) and the largest value-specific drop at the
    first step with one; `concept` and `cause` are carried for the summary's words.

    Raises:
        MissingStepError: an arm has no trajectory over `dataset` in `record`.
        DataError: as `calibration_table`.
    """
    by_stage = {t.stage: t for t in record.trajectories if t.dataset == dataset}
    missing = [s for s in (counter, neutral) if s not in by_stage]
    if missing:
        raise MissingStepError(
            f"arms {missing} have no trajectory; give both arms the same save_at and run "
            "`valuetrace train` again."
        )
    rows = calibration_table(by_stage[counter], by_stage[neutral], alpha)
    strongest = _strongest_drop(by_stage[counter], by_stage[neutral], rows, record.neutral_gaps)
    return KnownAnswer(counter, neutral, rows, strongest, dataset, concept, cause)


def _first_moved(rows: Sequence[DoseRow]) -> str:
    """When an arm's behaviour first moved: "beyond its floor" only where the step had a seed
    replicate's drift as its floor; otherwise the margin's CI excluding 0 is all it shows."""
    if all(r.behaviour_changed is None for r in rows):
        return "was not scored on behaviour"
    moved = next((r for r in rows if r.behaviour_changed), None)
    if moved is None or moved.margin_change is None:
        if any(r.floored for r in rows):
            return "did not move behaviour beyond its floor at any saved step"
        return "did not move behaviour at any saved step (every margin CI covers 0)"
    change = f"Δ mean margin {signed(moved.margin_change)}"
    if moved.floored:
        return f"moved behaviour beyond its floor from step {moved.step} ({change})"
    return f"moved behaviour from step {moved.step} ({change}; CI excludes 0, no replicate floor)"


def _layers_where(row: DoseRow, keep: Callable[[Verdict], bool]) -> str:
    """A row's value-specific layers whose verdict passes `keep`, as `layers 1, 11–13`."""
    layers = [
        layer
        for layer, v in zip(row.value_specific_layers, row.value_specific_verdicts, strict=True)
        if keep(v)
    ]
    return f"{layer_word(layers)} {fmt_layers(layers)}"


def _how_sure(drop: SpecificDrop | None) -> str:
    """The largest value-specific drop of the first step with one, beside the neutral arm's,
    and how sure its margin over the neutral arm is: the paired interval of the gap when there
    is one, else whether the two drops' intervals overlap (the floor compares point
    estimates)."""
    if drop is None:
        return ""
    if drop.gap is not None:
        sure = (
            "the counter arm weakened more"
            if drop.gap.lo > 0
            else "its interval covers 0, so the margin over the neutral arm rests on the point "
            "estimates"
        )
        margin = (
            f"; counter − neutral relative weakening {fmt_interval(drop.gap)} (paired "
            f"resamples): {sure}"
        )
    elif drop.drop.lo <= drop.neutral_drop.hi:
        margin = "; the two intervals overlap: the neutral floor compares point estimates"
    else:
        margin = ""
    return (
        f"; the largest value-specific drop at step {drop.step}, layer {drop.layer}: d "
        f"{fmt(drop.before, 2)} → {fmt(drop.after, 2)} (Δ {fmt_interval(drop.drop)}; the "
        f"neutral arm's Δ there {fmt_interval(drop.neutral_drop)}{margin})"
    )


def _what(known: KnownAnswer) -> str:
    """The probe set and its concept for the headline (` on probe set 'status' (concept
    compassion)`); empty when the probe set is not known."""
    if known.dataset is None:
        return ""
    concept = f" (concept {known.concept})" if known.concept else ""
    return f" on probe set '{known.dataset}'{concept}"


def headline(known: KnownAnswer) -> list[str]:
    """The known answer for the first lines of a summary: what was probed, when behaviour
    first moved on each arm, when and where a value-specific representation change first
    fired on the counter-value arm and how large the largest such drop was beside the neutral
    arm's, the cause the config states, and the neutral arm's false positives against alpha x
    tests (saying what that count means at the steps no replicate floors)."""
    counter = [r for r in known.rows if r.arm == "counter"]
    neutral = [r for r in known.rows if r.arm == "neutral"]
    first = next((r for r in counter if r.value_specific_layers), None)
    representation = (
        f"a value-specific representation change (beyond the neutral arm's change at that "
        f"layer) first fired at step {first.step}: "
        f"{by_verdict(first.value_specific_layers, first.value_specific_verdicts)}"
        if first
        else "no value-specific representation change fired at any saved step"
    )
    weakened = next(
        (r for r in counter if any(v.weakened for v in r.value_specific_verdicts)), None
    )
    if first is not None and weakened is not first:
        representation += (
            f"; a value-specific weakening first at step {weakened.step}, at "
            f"{_layers_where(weakened, lambda v: v.weakened)}"
            if weakened
            else "; no value-specific weakening at any saved step"
        )
    representation += _how_sure(known.strongest)
    unjudged = sorted({layer for r in known.rows for layer in r.not_encoded})
    if unjudged:
        representation += (
            f"; not judged at {layer_word(unjudged)} {fmt_layers(unjudged)}, where the parent "
            "does not encode the concept"
        )
    fp = sum(r.false_positives for r in neutral)
    allowed = sum(r.false_positives_allowed for r in neutral)
    bare = [str(r.step) for r in neutral if r.false_positives and not r.floored]
    unfloored = (
        f" At {'step' if len(bare) == 1 else 'steps'} {', '.join(bare)}, which no seed replicate "
        "floors, a verdict needs significance alone, so the count there is every change a "
        "neutral fine-tune of this dose makes, not only test errors; `replicates: 1` on both "
        "arms gives each step a noise floor."
        if bare
        else ""
    )
    cause = [] if known.cause is None else [f"Cause, by construction: {known.cause.rstrip('.')}."]
    return [
        f"Known answer{_what(known)}: the counter-value arm '{known.counter}' "
        f"{_first_moved(counter)}; {representation}.",
        *cause,
        f"The neutral arm '{known.neutral}' (same dose, text without the value) "
        f"{_first_moved(neutral)}, and fired {fp} stage × layer verdicts of a change in the "
        "concept (false positives; global drift alone is none) "
        f"against at most {allowed:.1f} expected by chance (α × tests: Holm over layers keeps "
        f"each test family's chance of any false positive at α, so fewer).{unfloored}",
    ]


def save_rows(rows: Sequence[DoseRow], path: Path) -> None:
    """Write the table as JSON: a list of one object per arm and dose (`DoseRow`'s fields)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in rows], indent=1))


def _specific_part(row: DoseRow) -> str:
    """What of the first layer's verdict beats the neutral arm: " (value-specific)" when all
    of it does, " (rotation value-specific)" when only a part does, "" when none does."""
    if not row.value_specific:
        return ""
    part = row.value_specific_verdicts[row.value_specific_layers.index(row.first_layer)]
    return " (value-specific)" if part is row.verdict else f" ({part} value-specific)"


def _others(row: DoseRow) -> str:
    """The verdict cell of a row where no weakening or rotation fired: what did fire instead
    (a strengthening is still a fired verdict, and a false positive on the neutral arm)."""
    return by_verdict(row.layers, row.fired_verdicts) or str(Verdict.NONE)


def format_table(rows: Sequence[DoseRow]) -> str:
    """The one-screen sensitivity table: dose x arm, behaviour, first layer, false positives."""
    lines = [
        f"{'arm':<8} {'step':>5}  {'behaviour Δ margin [CI]':<30} {'moved':<5} "
        f"{'first':>5}  {'verdict':<46} {'value-specific layers':<22} {'FP/allowed':>10}"
    ]
    for r in rows:
        m = r.margin_change
        margin = "not scored" if m is None else f"{m.value:+.3f} [{m.lo:+.3f}, {m.hi:+.3f}]"
        moved = "-" if r.behaviour_changed is None else "yes" if r.behaviour_changed else "no"
        spec = ",".join(map(str, r.value_specific_layers)) or "-"
        verdict = f"{r.verdict}{_specific_part(r)}" if r.first_layer is not None else _others(r)
        lines.append(
            f"{r.arm:<8} {r.step:>5}  {margin:<30} {moved:<5} {r.first_layer!s:>5}  "
            f"{verdict:<46} {spec:<22} {r.false_positives:>4}/{r.false_positives_allowed:.2f}"
        )
    unjudged = sorted({layer for r in rows for layer in r.not_encoded})
    if unjudged:
        lines.append(
            f"not judged at {layer_word(unjudged)} {fmt_layers(unjudged)}: the parent does not "
            "encode the concept "
            f"there ({NOT_ENCODED_WHY}), so they are neither first layers nor false positives, "
            "and not among the allowed tests"
        )
    return "\n".join(lines)
