"""The neutral arm as a floor: a verdict counts as value-specific only where the change exceeds
what a neutral fine-tune of the same dose does at that layer.

A neutral arm is a stage trained from the same parent, with the same method and dose as the
compared stage, on text with no animal or moral content (`analysis.neutral_arm`). Fine-tuning as
such moves representations; a verdict the neutral arm's change matches is the instrument's
response to training, not to the value.

The rule (`value_specific`, the one implementation the study and the calibration table share):
at a layer where parent → B fired weakening (strengthening, rotation), the change is
value-specific when its observed drop (rise, rotation gap) exceeds |the same measure's change
from the parent to the neutral arm| at that layer. The neutral change is used as a floor
exactly as the seed-replicate drift is in `valuetrace.analysis.localize`: point estimates,
|change| > floor, on top of the pair's own significance test and replicate floor. A layer
where the pair's parent does not encode the concept has no verdict to judge
(`Verdict.NOT_ENCODED`): it is neither fired nor value-specific, and is listed apart. Only the
part of a verdict that beats the floor is value-specific (a "weakening + rotation" whose drop
the neutral arm matches is a value-specific rotation). The floor is like-for-like only when the
neutral arm was trained as the pair's child was; `dose_gap` says where it was not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from valuetrace.analysis.stage_comparison import StageComparison
from valuetrace.analysis.verdict import Verdict
from valuetrace.errors import DataError

RULE = (
    "a fired verdict is value-specific where its change (drop, rise or rotation gap) exceeds "
    "|the neutral arm's change of the same measure from the same parent| at that layer"
)


def value_specific(counter: StageComparison, neutral: StageComparison) -> dict[int, Verdict]:
    """Per layer where `counter` weakens, strengthens or rotates beyond what `neutral` (the same
    dose on neutral text, same parent and examples) changes the same measure there, the part of
    its verdict that does: a layer whose verdict is "weakening + rotation" but whose drop the
    neutral arm matches maps to `Verdict.ROTATION` alone. Layers with no such part are left out.

    Raises:
        DataError: the two comparisons are over different layers.
    """
    if counter.layers != neutral.layers:
        raise DataError(
            f"counter ({counter.layers}) and neutral ({neutral.layers}) arms were compared over "
            "different layers; extract both with the same extract.layers."
        )
    enc, rot = counter.encoded, counter.rotation
    out = {}
    for i, layer in enumerate(counter.layers):
        verdict = Verdict(counter.verdicts[i])
        floor = abs(neutral.encoded.drop[i])
        part = Verdict.of(
            weakened=verdict.weakened and enc.drop[i] > floor,
            strengthened=verdict.strengthened and -enc.drop[i] > floor,
            rotated=verdict.rotated and rot.drop[i] > abs(neutral.rotation.drop[i]),
        )
        if part is not Verdict.NONE:
            out[layer] = part
    return out


def changed_layers(comparison: StageComparison) -> list[int]:
    """Layer numbers whose verdict is a weakening, strengthening or rotation ("global drift +
    rotation" for its rotation; global drift alone, undefined and not-encoded layers are not:
    the first is already not concept-specific, the others judge no change)."""
    return [
        layer
        for layer, v in zip(comparison.layers, comparison.verdicts, strict=True)
        if Verdict(v).weakened or Verdict(v).strengthened or Verdict(v).rotated
    ]


@dataclass(frozen=True)
class Dose:
    """How much a trained stage was trained, as its lineage records it: what a neutral arm must
    match to be a like-for-like floor for a pair ending in that stage."""

    method: str
    learning_rate: float
    lora: str  # the adapter's settings ("" for a full fine-tune)
    steps: int  # optimizer steps taken
    tokens: int  # non-padding tokens seen

    @classmethod
    def of(cls, config: Mapping[str, Any], metrics: Mapping[str, float]) -> Dose | None:
        """From a lineage record's stage `config` and training `metrics`; None for a stage
        that was not trained here (a user's checkpoint: no steps recorded)."""
        if "steps" not in metrics or "tokens_seen" not in metrics:
            return None
        lora = config.get("lora") or {}
        return cls(
            method=str(config.get("method", "full")),
            learning_rate=float(config.get("learning_rate", 0.0)),
            lora=", ".join(f"{k} {lora[k]}" for k in sorted(lora)),
            steps=int(metrics["steps"]),
            tokens=int(metrics["tokens_seen"]),
        )


TOKEN_SHARE = 0.9  # a neutral arm that saw fewer than this share of the child's tokens is smaller


def dose_gap(child: Dose, neutral: Dose) -> str:
    """Where the neutral arm's dose differs from the child's (method, adapter, learning rate,
    optimizer steps) or is smaller (fewer tokens): "" when it matches. More tokens are allowed:
    a larger neutral dose only raises the floor, so it cannot make a verdict value-specific."""
    gaps = [
        f"{name} {a} vs {b}"
        for name, a, b in (
            ("method", neutral.method, child.method),
            ("LoRA", neutral.lora or "none", child.lora or "none"),
            ("learning rate", neutral.learning_rate, child.learning_rate),
            ("optimizer steps", neutral.steps, child.steps),
        )
        if a != b
    ]
    if neutral.tokens < TOKEN_SHARE * child.tokens:
        gaps.append(f"tokens {neutral.tokens} vs {child.tokens}")
    return "; ".join(gaps)


@dataclass(frozen=True)
class NeutralFloor:
    """One compared pair of one probe set judged against the neutral arm.

    `comparable` is False when the neutral arm does not branch from the pair's parent (its
    change is then no floor for this pair; `note` says why) or the pair's child is the neutral
    arm itself. `fired`: layers with a weakening, strengthening or rotation verdict;
    `value_specific`: those beyond the neutral arm's change (see `RULE`), and
    `value_specific_verdicts` the part of each one's verdict that is (findings before schema 6:
    empty); `no_floor`: fired layers where the neutral arm's change is undefined (a degenerate
    layer), so it is no floor there (schema 6); `dose_gap`: how the neutral arm's training
    differs from the pair's child's ("" when alike or unknown; schema 6);
    `within_floor`: the rest of `fired`.
    `floor_drop` / `floor_rotation`: per layer, |the neutral arm's drop in separation| and |its
    rotation gap| (Cohen's d; empty when not comparable). `not_encoded`: layers where the pair's
    parent does not encode the concept, so nothing was judged there (findings before schema 5:
    empty).
    """

    dataset: str
    pair: str  # pair_key(parent, child)
    neutral: str
    neutral_parent: str
    comparable: bool
    fired: list[int]
    value_specific: list[int]
    within_floor: list[int]
    floor_drop: list[float]
    floor_rotation: list[float]
    note: str
    not_encoded: list[int] = field(default_factory=list)
    value_specific_verdicts: list[Verdict] = field(default_factory=list)
    no_floor: list[int] = field(default_factory=list)
    dose_gap: str = ""


def neutral_floors(
    dataset: str,
    comparisons: Mapping[str, StageComparison],
    neutral: str,
    neutral_parent: str,
    neutral_change: StageComparison | None,
    doses: Mapping[str, Dose] | None = None,
) -> list[NeutralFloor]:
    """Each comparison (keyed by pair) judged against `neutral_change` (neutral_parent →
    neutral over the same examples and layers; None when no pair shares its parent). With
    `doses` (per trained stage), a pair whose child was trained otherwise than the neutral arm
    says how (`dose_gap`): the floor is then no like-for-like control.

    Raises:
        DataError: a comparison and the neutral change are over different layers.
    """
    doses = doses or {}
    out = []
    for key, cmp in comparisons.items():
        fired = changed_layers(cmp)
        specific: dict[int, Verdict] = {}
        no_floor: list[int] = []
        gap = ""
        drop: list[float] = []
        rotation: list[float] = []
        if cmp.stage_b == neutral:
            note = "the neutral arm itself: its verdicts are the floor's own changes"
        elif cmp.stage_a != neutral_parent or neutral_change is None:
            note = (
                f"the neutral arm '{neutral}' branches from '{neutral_parent}', not "
                f"'{cmp.stage_a}': its change is no floor for this pair"
            )
        else:
            specific = value_specific(cmp, neutral_change)
            drop = [abs(d) for d in neutral_change.encoded.drop]
            rotation = [abs(d) for d in neutral_change.rotation.drop]
            no_floor = [
                layer
                for layer, d, r in zip(cmp.layers, drop, rotation, strict=True)
                if layer in fired and not (math.isfinite(d) and math.isfinite(r))
            ]
            note = f"{len(specific)} of {len(fired)} fired layer verdicts beyond the neutral arm"
            child, arm = doses.get(cmp.stage_b), doses.get(neutral)
            gap = "" if child is None or arm is None else dose_gap(child, arm)
        comparable = bool(drop)
        out.append(
            NeutralFloor(
                dataset=dataset,
                pair=key,
                neutral=neutral,
                neutral_parent=neutral_parent,
                comparable=comparable,
                fired=fired,
                value_specific=list(specific),
                within_floor=[x for x in fired if x not in specific and x not in no_floor]
                if comparable
                else [],
                floor_drop=drop,
                floor_rotation=rotation,
                note=note,
                not_encoded=cmp.not_encoded(),
                value_specific_verdicts=list(specific.values()),
                no_floor=no_floor,
                dose_gap=gap,
            )
        )
    return out
