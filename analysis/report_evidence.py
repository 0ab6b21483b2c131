"""The report's evidence beyond one stage pair: the neutral-arm floor, the trajectories (where
*and when*) and the multi-source concept.

For each, one function gives the sentences both renderings share (the text summary wraps them,
the HTML report shows them as paragraphs) and one builds its typed HTML `Section` with the
tables and figures. Each is absent (no lines, no section) when its record is: a run without
`analysis.neutral_arm`, without `save_at` / `trajectory` points, or without `concept_sources`.
"""

from __future__ import annotations

import math
from pathlib import Path

from valuetrace.analysis.behaviour import BehaviourChange
from valuetrace.analysis.concept_sources import SPECIFIC, SourceAgreement
from valuetrace.analysis.neutral_floor import RULE, NeutralFloor
from valuetrace.analysis.report_model import (
    FigureRef,
    Section,
    Table,
    by_verdict,
    fmt,
    fmt_bounds,
    fmt_interval,
    fmt_layers,
    layer_word,
    signed,
)
from valuetrace.analysis.report_words import ReportInputs, behaviour_verdict
from valuetrace.analysis.stage_pair import StagePair
from valuetrace.analysis.trajectory import Trajectory, drift_layers, layers_showing
from valuetrace.analysis.verdict import CHANGES, ENCODING_RULE, NOT_ENCODED_WHY
from valuetrace.stats import Interval

# --- the neutral-arm floor -------------------------------------------------------------------


def _at(layers: list[int]) -> str:
    """`layer 3` or `layers 1–2, 4`."""
    return f"{layer_word(layers)} {fmt_layers(layers)}"


def _unjudged(layers: list[int], parent: str) -> str:
    """The note on layers where `parent` does not encode the concept ("" when none)."""
    if not layers:
        return ""
    return (
        f" Not judged at {_at(layers)}: {parent} does not encode the "
        f"concept there ({NOT_ENCODED_WHY}), so no verdict there counts."
    )


def floor_sentence(floor: NeutralFloor) -> str:
    """Which of a pair's verdicts survive the neutral arm's floor (count and layers), or why the
    neutral arm is no floor for it; the layers not judged because the parent does not encode the
    concept there."""
    head = f"{floor.dataset} {floor.pair}"
    unjudged = _unjudged(floor.not_encoded, StagePair.parse(floor.pair).parent)
    if not floor.comparable:
        return f"{head}: {floor.note}.{unjudged}"
    if not floor.fired:
        return (
            f"{head}: no layer verdict fired, so none to judge against the neutral floor.{unjudged}"
        )
    specific = (
        by_verdict(floor.value_specific, floor.value_specific_verdicts)
        if floor.value_specific_verdicts
        else f"at layers: {fmt_layers(floor.value_specific)}"
    )
    no_floor = (
        f" No floor at {layer_word(floor.no_floor)} {fmt_layers(floor.no_floor)}: the neutral "
        "arm's change is undefined there."
        if floor.no_floor
        else ""
    )
    dose = (
        f" The neutral arm {_trained_otherwise(floor)}: not a like-for-like floor."
        if floor.dose_gap
        else ""
    )
    return (
        f"{head}: {len(floor.value_specific)} of {len(floor.fired)} fired layer verdicts survive "
        f"the neutral floor (value-specific {specific}); "
        f"within it: {fmt_layers(floor.within_floor)}.{no_floor}{dose}{unjudged}"
    )


def _trained_otherwise(floor: NeutralFloor) -> str:
    """How the neutral arm's training differs from the pair's child's, in words (after "the
    neutral arm")."""
    child = StagePair.parse(floor.pair).child
    return f"was trained otherwise than {child} ({floor.dose_gap}; neutral first)"


def _specific_part(floor: NeutralFloor, layer: int) -> str:
    """The part of a fired layer's verdict beyond the neutral arm ("no" when none, "no floor"
    where the neutral arm's change is undefined; "yes" in findings from before that part was
    recorded)."""
    if layer in floor.no_floor:
        return "no floor"
    if layer not in floor.value_specific:
        return "no"
    if not floor.value_specific_verdicts:
        return "yes"
    return str(floor.value_specific_verdicts[floor.value_specific.index(layer)])


def floor_sentences(inputs: ReportInputs) -> list[str]:
    """The neutral floor's rule, then one sentence per compared pair and probe set."""
    floors = inputs.findings.neutral_floor
    if not floors:
        return []
    first = floors[0]
    head = (
        f"Neutral-arm floor (stage '{first.neutral}', trained from {first.neutral_parent}; a "
        f"floor for pairs from {first.neutral_parent} of the same dose and method): {RULE}."
    )
    return [head, *[floor_sentence(f) for f in floors]]


def floor_section(inputs: ReportInputs) -> Section | None:
    """Per pair, the verdicts that survive the neutral arm; per fired layer, the pair's change
    beside the neutral arm's."""
    f = inputs.findings
    if not f.neutral_floor:
        return None
    head, *_ = floor_sentences(inputs)
    summary = Table(
        ["probe set", "pair", "fired", "value-specific", "layers", "within the floor", "note"],
        [
            [
                n.dataset,
                n.pair,
                len(n.fired),
                len(n.value_specific) if n.comparable else "—",
                fmt_layers(n.value_specific) if n.comparable else "—",
                fmt_layers(n.within_floor) if n.comparable else "—",
                f"{n.note}; the neutral arm {_trained_otherwise(n)}" if n.dose_gap else n.note,
            ]
            for n in f.neutral_floor
        ],
    )
    details: list[Section] = []
    for n in f.neutral_floor:
        if not n.comparable or not n.fired:
            continue
        cmp = f.concepts[n.dataset].comparisons[n.pair]
        rows = []
        for layer in n.fired:
            i = cmp.layers.index(layer)
            rows.append(
                [
                    layer,
                    cmp.verdicts[i],
                    fmt_interval(cmp.encoded.at(i)),
                    fmt(n.floor_drop[i]),
                    fmt_interval(cmp.rotation.at(i)),
                    fmt(n.floor_rotation[i]),
                    _specific_part(n, layer),
                ]
            )
        header = ["layer", "verdict", "drop", "neutral |drop|", "rotation gap", "neutral |gap|"]
        details.append(
            Section(
                f"{n.dataset}: {n.pair}",
                blocks=[Table([*header, "value-specific"], rows, collapsed="fired layers")],
            )
        )
    return Section(
        "Value-specific verdicts: the neutral-arm floor",
        [
            head,
            "A verdict counts as value-specific only where it exceeds what a neutral fine-tune "
            "of the same dose does at that layer; the others are the response to fine-tuning "
            "as such. The neutral arm must share the pair's parent to be its floor.",
        ],
        blocks=[summary, *details],
    )


# --- trajectories --------------------------------------------------------------------------


def _behaviour(change: BehaviourChange | None) -> str:
    if change is None:
        return "behaviour not scored"
    return f"Δ mean margin {signed(change.margin, 4)} ({behaviour_verdict(change)})"


def _first_text(t: Trajectory) -> str:
    parts = []
    for first in t.first:
        where = f" ({_at(first.layers)})" if first.layers else ""
        step = "never" if first.step is None else f"at step {first.step}{where}"
        parts.append(f"{first.verdict} {step}")
    return "; ".join(parts)


def trajectory_sentences(t: Trajectory) -> list[str]:
    """One trajectory: what it compares, per saved step the behaviour change and the layers of
    each verdict, then the first step of each verdict (significant and beyond its floor)."""
    unjudged = _unjudged(t.steps[0].comparison.not_encoded(), t.parent) if t.steps else ""
    first = (
        "First step beyond the floor"
        if any(p.floor_from for p in t.steps)
        else "First significant step (no seed replicate, so no floor)"
    )
    controls = ", ".join(t.drift_controls)
    concept = "control concept" if len(t.drift_controls) == 1 else "control concepts"
    check = (
        f"a weakening that a {concept} ({controls}) matches at that step and layer is global "
        "drift, as in the pair view"
        if controls
        else "without a control-concept check (only the primary probe set's trajectories are "
        "checked, against the control concepts analysed beside them): a weakening here that a "
        "control concept matches is what the pair view calls global drift"
    )
    out = [
        f"{t.dataset}: {t.parent} → {t.stage} along its run, each saved checkpoint compared with "
        f"{t.parent} as a configured pair is (floor: the seed replicate's drift at the same "
        f"step, else at the end of the run); {check}. {first}: {_first_text(t)}.{unjudged}"
    ]
    for point in t.steps:
        drift = drift_layers(point, t.layers)
        fired = [
            f"{v} at {_at(hit)}" for v in CHANGES if (hit := layers_showing(point, t.layers, v))
        ] + ([f"global drift at {_at(drift)}"] if drift else [])
        floor = ", ".join(point.floor_from)
        floor = f"floor from {floor}" if floor else "no seed replicate: no floor"
        out.append(
            f"step {point.step} ({point.stage}): {_behaviour(point.behaviour)}; "
            f"{'; '.join(fired) or 'no layer verdict'} ({floor})."
        )
    return out


def trajectory_section(inputs: ReportInputs) -> Section | None:
    """Per trajectory: the steps with behaviour and layer verdicts, the first steps, and the
    layer x step heatmap."""
    record = inputs.trajectories
    if record is None or not record.trajectories:
        return None
    parts = []
    for t in record.trajectories:
        rows = []
        for point in t.steps:
            beh = point.behaviour
            floor = None if beh is None or beh.floor is None else beh.floor.margin
            rows.append(
                [
                    point.step,
                    point.stage,
                    "not scored" if beh is None else signed(beh.margin, 4),
                    "—" if floor is None else fmt(floor, 4),
                    "—" if beh is None else "yes" if beh.margin_moved() else "no",
                    *[fmt_layers(layers_showing(point, t.layers, v)) for v in CHANGES],
                    fmt_layers(drift_layers(point, t.layers))
                    if t.drift_controls
                    else "not checked",
                    ", ".join(point.floor_from) or "—",
                ]
            )
        first = [
            [f.verdict, "never" if f.step is None else f.step, fmt_layers(f.layers)]
            for f in t.first
        ]
        figures = [
            FigureRef(Path(fig.path), f"{t.dataset}: relative weakening per layer and step")
            for fig in inputs.figures
            if fig.kind == "trajectory" and fig.name == t.figure_name
        ]
        parts.append(
            Section(
                f"{t.dataset}: {t.parent} → {t.stage}",
                trajectory_sentences(t)[:1],
                blocks=[
                    Table(
                        [
                            "step",
                            "checkpoint",
                            f"Δ mean margin ({round(100 * record.ci)}% CI)",
                            "margin floor",
                            "beyond floor",
                            *[f"{v} layers" for v in CHANGES],
                            "global drift layers",
                            "floor from",
                        ],
                        rows,
                    ),
                    Table(["verdict", "first step", "layers"], first),
                    *figures,
                ],
            )
        )
    return Section(
        "Trajectories: where and when",
        [
            "Each checkpoint saved along a stage's run is compared with the stage's parent: "
            "per layer, weakening, rotation and strengthening are significant (Holm over layers, "
            f"α = {record.alpha}) and, where the stage has a seed replicate, beyond its drift, "
            f"and {ENCODING_RULE}; behaviour is the paired change of the eval margin "
            "(nats/token), against the replicate's drift where there is one."
        ],
        blocks=parts,
    )


# --- the multi-source concept --------------------------------------------------------------


def _others(a: SourceAgreement) -> list[int]:
    p = a.sources.index(a.primary)
    return [j for j in range(len(a.sources)) if j != p]


def _outside_band(a: SourceAgreement, j: int) -> int:
    """How many layers' cosine of the primary's and source j's directions leave the random
    band."""
    p = a.sources.index(a.primary)
    lo, hi = a.cosine_null
    return sum(1 for c in a.cosine[p][j] if not math.isnan(c) and not lo <= c <= hi)


def _range(values: list[float]) -> str:
    """The smallest to the largest defined value (undefined layers left out)."""
    finite = [v for v in values if not math.isnan(v)]
    return f"{min(finite):+.2f} to {max(finite):+.2f}" if finite else "undefined"


def concept_sentences(a: SourceAgreement) -> list[str]:
    """One stage's agreement: cross-source and source-specific layers, concept layers, and the
    cosine of the primary's direction with each other source's against the random band."""
    p = a.sources.index(a.primary)
    cross = [la for la, v in zip(a.layers, a.verdict, strict=True) if v != SPECIFIC]
    specific = [la for la in a.layers if la not in cross]
    band = fmt_bounds(Interval(math.nan, *a.cosine_null))
    cosines = "; ".join(
        f"{a.sources[j]} {_range(a.cosine[p][j])}, outside the random band {band} at "
        f"{_outside_band(a, j)} of {len(a.layers)} layers"
        for j in _others(a)
    )
    return [
        f"{a.stage}: {a.primary}'s direction transfers across sources (cross-source) at layers "
        f"{fmt_layers(cross)}; source-specific at {fmt_layers(specific)}; concept layers (also "
        f"above the surface baseline): {fmt_layers(a.concept_layers)}.",
        f"{a.stage}: cosine of {a.primary}'s direction with {cosines}.",
    ]


def concept_sources_lines(inputs: ReportInputs) -> list[str]:
    """The rule, each stage's agreement sentences and the notes on source-specific verdicts."""
    record = inputs.concept_sources
    if record is None or not record.stages:
        return []
    lines = [f"Rule: {record.stages[0].rule}"]
    for agreement in record.stages:
        lines += concept_sentences(agreement)
    return [*lines, *record.notes]


def concept_sources_section(inputs: ReportInputs) -> Section | None:
    """Per stage and layer: the primary's transfer AUROC to each other source with its CI, the
    direction cosines, the verdict and the surface check; the source-specific notes."""
    record = inputs.concept_sources
    if record is None or not record.stages:
        return None
    parts = []
    for a in record.stages:
        p, others = a.sources.index(a.primary), _others(a)
        rows = [
            [
                layer,
                a.verdict[k],
                "yes" if a.passes_surface[k] else "no",
                *[
                    fmt_interval(
                        Interval(a.auroc[p][j][k], a.auroc_lo[p][j][k], a.auroc_hi[p][j][k]), 2
                    )
                    for j in others
                ],
                *[fmt(a.cosine[p][j][k], 2, signed=True) for j in others],
            ]
            for k, layer in enumerate(a.layers)
        ]
        header = [
            "layer",
            "verdict",
            "beats surface",
            *[f"AUROC on {a.sources[j]}" for j in others],
            *[f"cos with {a.sources[j]}" for j in others],
        ]
        parts.append(
            Section(
                a.stage,
                concept_sentences(a),
                blocks=[Table(header, rows, collapsed=f"{a.stage}: per-layer transfer matrix")],
            )
        )
    return Section(
        "A concept from several sources",
        [
            f"{record.stages[0].primary}'s probe scored on every other source of the concept "
            f"({round(100 * record.stages[0].ci)}% group-bootstrap CIs), and the cosine of the "
            "sources' difference-of-means directions beside the band two random directions of "
            f"this width reach. Rule: {record.stages[0].rule}",
        ],
        emphasis=list(record.notes),
        blocks=parts,
    )
