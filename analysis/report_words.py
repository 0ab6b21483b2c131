"""The report's words: how valuetrace states a verdict, a concentration index, a behavioural
change and a causal contradiction, shared by the text summary and the HTML report.

`ReportInputs` is what both render: the `Findings` record the analysis wrote, plus the lineage,
each stage's behaviour record, the causal step's results and the surface baselines when those
steps ran; the report computes nothing itself, so every number in it can be traced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from valuetrace.analysis.anima.section import AnimaReport
from valuetrace.analysis.behaviour import BehaviourChange, BehaviourResult
from valuetrace.analysis.calibration import KnownAnswer, headline
from valuetrace.analysis.causal import CausalRecord
from valuetrace.analysis.concept_sources import ConceptSourcesRecord
from valuetrace.analysis.findings import Concentration, Figure, Findings, pair_key, verdict_bands
from valuetrace.analysis.report_model import (
    FigureRef,
    fmt,
    fmt_interval,
    fmt_layers,
    layer_word,
    signed,
)
from valuetrace.analysis.stage_comparison import StageComparison
from valuetrace.analysis.trajectory import TrajectoryRecord
from valuetrace.analysis.transplant import TransplantRecord, TransplantResult
from valuetrace.analysis.verdict import ENCODING_RULE, NOT_ENCODED_WHY, Verdict
from valuetrace.probing.surface import SurfaceRecord


@dataclass(frozen=True)
class ReportInputs:
    """What the report renders: the findings, its figures (paths usable from the cwd), lineage,
    each stage's behaviour record, the causal dose-response and transplants (when they ran),
    the surface baselines and the ANIMA scores (when ANIMA ran); the trajectories and the
    multi-source concept record when those steps wrote them (None: no section); the known answer
    when the run has a counter-value and a neutral arm watched along their trajectories."""

    findings: Findings
    figures: Sequence[Figure] = ()
    lineage: dict[str, Any] = field(default_factory=dict)
    behaviour: dict[str, BehaviourResult] = field(default_factory=dict)
    causal: CausalRecord | None = None
    surface: Sequence[SurfaceRecord] = ()
    trajectories: TrajectoryRecord | None = None
    concept_sources: ConceptSourcesRecord | None = None
    anima: AnimaReport | None = None
    transplant: TransplantRecord | None = None
    known_answer: KnownAnswer | None = None

    def figure_refs(self, concept: str | None, *kinds: str) -> list[FigureRef]:
        """The figures of `concept` (None: run-wide) of these kinds, captioned by name."""
        return [
            FigureRef(Path(f.path), f.name.replace("_", " "))
            for kind in kinds
            for f in self.figures
            if f.concept == concept and f.kind == kind
        ]


def pct(findings: Findings) -> str:
    """The interval level as the report names it, e.g. "95% CI"."""
    return f"{round(100 * findings.ci)}% CI"


def _layers(first: int, last: int) -> str:
    return f"layer {first}" if first == last else f"layers {first}–{last}"


def _strongest(cmp: StageComparison) -> str:
    """The largest change in the still-encoded separation, with its CI and noise floor, among
    the layers where a change is judged (defined, and encoded in stage A)."""
    enc = cmp.encoded
    judged = [i for i, v in enumerate(cmp.verdicts) if v.judged and enc.drop[i] == enc.drop[i]]
    if not judged:
        if cmp.not_encoded():
            return (
                f"No largest change is named: {cmp.stage_a} encodes the concept at no defined layer"
            )
        return "No layer is defined"
    i = max(judged, key=lambda j: abs(enc.drop[j]))
    floor = (
        f"replicate drift {fmt(enc.floor[i])}"
        if enc.floor is not None
        else "no seed replicate, so no noise floor"
    )
    kind = "drop" if enc.drop[i] >= 0 else "rise"
    return (
        f"The largest {kind} at layer {cmp.layers[i]}: d {fmt(enc.a[i], 2)} → {fmt(enc.b[i], 2)} "
        f"(Δ {fmt_interval(enc.at(i))}, relative "
        f"{fmt(cmp.relative[i], 2)}; {floor})"
    )


def _band(cmp: StageComparison, verdict: Verdict) -> str:
    """A band's verdict in words; a not-encoded band says why no change is judged there."""
    if verdict is Verdict.NOT_ENCODED:
        return f"not encoded in {cmp.stage_a} ({NOT_ENCODED_WHY}), so no change can be judged"
    return str(verdict)


def verdict_sentence(cmp: StageComparison) -> str:
    """Which happened where, for one stage pair: verdict bands, then the largest change."""
    bands = "; ".join(f"{_layers(a, b)}: {_band(cmp, v)}" for a, b, v in verdict_bands(cmp))
    return f"{cmp.stage_a} → {cmp.stage_b}: {bands}. {_strongest(cmp)}."


def _weakened(findings: Findings, index: Concentration, side: str) -> bool:
    """Whether `side` of a concentration index (a concept over the index's pair, or a pair of
    the primary concept) shows a significant drop beyond its floor at some judged layer: only
    then may a sentence say it "weakened" (two strengthenings also give a positive index)."""
    if index.kind == "concept":
        cmp = findings.concepts[side].comparisons.get(index.pair)
    else:
        cmp = findings.concepts[findings.primary_dataset].comparisons.get(side)
    return cmp is not None and any(cmp.encoded.drop_found)


def concentration_sentences(findings: Findings) -> list[str]:
    """One sentence per concentration index: its overall interval and what it shows."""
    out = []
    for index in findings.concentration:
        o = index.overall
        model_layers = findings.concepts[findings.primary_dataset].layers
        layers = [
            i for i, v in zip(model_layers, index.per_layer, strict=True) if np.isfinite(v.value)
        ]
        if not layers:
            out.append(
                f"{index.label}: no layer where both comparisons could be judged (a parent "
                "encodes neither concept there), so no concentration index."
            )
            continue
        if index.concentrated:
            verdict = (
                f"domain-concentrated: {index.first} weakened more than {index.second}"
                if _weakened(findings, index, index.first)
                else f"{index.first}'s relative drop exceeds {index.second}'s, but "
                f"{index.first} itself shows no significant weakening: not domain-concentrated"
            )
        elif o.hi < 0:
            verdict = (
                f"{index.second} weakened more than {index.first}"
                if _weakened(findings, index, index.second)
                else f"{index.second}'s relative drop exceeds {index.first}'s (no significant "
                f"weakening of {index.second} itself)"
            )
        else:
            verdict = "not shown to differ (the interval covers 0)"
        where = (
            "averaged over layers"
            if len(layers) == len(index.per_layer)
            else f"averaged over the judged {layer_word(layers)} {fmt_layers(layers)}"
        )
        out.append(f"{index.label}, relative weakening {where}: {fmt_interval(o)} → {verdict}.")
    return out


def causal_flags(causal: CausalRecord | None) -> list[str]:
    """Causal results that contradict the claimed direction: ablating the parent's direction
    raised the compassion margin, or steering along it lowered the margin (slope below 0)."""
    if causal is None:
        return []
    flags = []
    ablated = causal.ablation.margin_change
    if ablated.lo > 0:
        flags.append(
            f"Contradiction: ablating {causal.parent}'s direction in {causal.stage} at layers "
            f"{causal.ablate_layers} raised the compassion margin ({signed(ablated, 4)}); "
            "this direction does not carry the preference the way the weakening claim assumes."
        )
    if causal.margin_slope.hi < 0:
        flags.append(
            f"Contradiction: adding {causal.parent}'s direction to {causal.stage} lowered the "
            f"compassion margin (slope {signed(causal.margin_slope, 4)} per alpha)."
        )
    return flags


def transplant_layers(result: TransplantResult) -> str:
    """The layers a transplant patched, and whether a weakening was found there."""
    found = (
        "" if result.layers_found else " (the largest drop; no concept-specific weakening found)"
    )
    return f"layer{'s' if len(result.layers) > 1 else ''} {result.layers}{found}"


def recovery_verdict(result: TransplantResult) -> str:
    """What a transplant's recovery shows against its random-direction control, in words."""
    rec = result.recovery
    if rec is None:
        return "no behaviour change to recover (the change's CI covers 0)"
    if rec.excess.lo > 0:
        return "more than random directions recover: the change runs along this direction here"
    if rec.excess.hi < 0:
        return "less than random directions recover"
    return "not distinguishable from random directions"


def transplant_sentences(record: TransplantRecord | None) -> list[str]:
    """One sentence per transplant (the behaviour change, what patching the parent's direction
    recovers beside the random-direction control) and one per transplant not run."""
    if record is None:
        return []
    out = []
    for r in record.results:
        head = (
            f"Transplant {r.parent} → {r.child} ({', '.join(r.roles)}) at {transplant_layers(r)}: "
            f"Δ margin {signed(r.change, 4)}"
        )
        rec = r.recovery
        if rec is None:
            out.append(
                f"{head}: {recovery_verdict(r)}; the patch moves the margin by "
                f"{signed(r.patch_effect, 4)}, {r.n_controls} random directions by "
                f"{signed(r.control_effect, 4)}."
            )
            continue
        out.append(
            f"{head}; setting {r.child}'s component along {r.parent}'s direction to "
            f"{r.parent}'s recovers {fmt_interval(rec.direction)} of it, {r.n_controls} random "
            f"directions of the same norm {fmt_interval(rec.control)} (difference "
            f"{signed(rec.excess)}: {recovery_verdict(r)})."
        )
    out += [
        f"Transplant for {s.child} ({', '.join(s.roles)}) not run: {s.reason}"
        for s in record.skipped
    ]
    return out


def answer(inputs: ReportInputs) -> list[str]:
    """The report's opening: the known answer first when the run has one (`headline`), then
    what happened where in the headline pair, and whether it is specific to the concept and
    the arm."""
    f = inputs.findings
    cmp = f.primary
    a, b = f.primary_pair
    beh = f.behaviour_changes.get(pair_key(a, b))
    first = f"Compassion ({f.primary_dataset}), {verdict_sentence(cmp)}"
    floor_rule = (
        "no stage of this pair has a seed replicate, so a change needs significance alone"
        if cmp.encoded.floor is None
        else "a change counts only when it also exceeds the seed-replicate drift"
    )
    second = (
        f"Judged on the separation along each stage's own cross-fitted direction (paired group "
        f"bootstrap, {cmp.n_boot} resamples over {cmp.n_groups} groups, Holm α = {cmp.alpha}, "
        f"{pct(f)}); {floor_rule}, and {ENCODING_RULE}."
    )
    if beh is not None:
        second += (
            f" Behaviourally, the compassion preference changed by {fmt_interval(beh.compassion)} "
            f"(share) and {fmt_interval(beh.margin)} (mean margin; {behaviour_verdict(beh)}), "
            f"helpfulness loss by {fmt_interval(beh.helpfulness_loss)}."
        )
    known = [] if inputs.known_answer is None else headline(inputs.known_answer)
    return [*known, first, second, *concentration_sentences(f), *causal_flags(inputs.causal)]


def behaviour_verdict(change: BehaviourChange) -> str:
    """Whether a margin change is real and larger than seed noise, in words, with the floor."""
    moved = "CI covers 0" if change.margin.covers_zero() else "CI excludes 0"
    drift = change.floor
    if drift is None:
        return f"{moved}; no noise floor (no seed replicate of either stage)"
    floor = (
        f"seed-replicate drift of {drift.stage}: margin {drift.margin:.4f}, share "
        f"{drift.compassion:.3f}"
    )
    if change.margin_moved():
        return f"{moved}, beyond the {floor}"
    if change.margin.covers_zero():
        return f"{moved}; {floor}"
    return f"{moved} but within the {floor}: no meaningful change"
