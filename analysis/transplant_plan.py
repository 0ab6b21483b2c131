"""Which causal transplants a run makes (`analysis.transplant`): the primary pair at its
localised layers and, when the run names them, the counter-value and neutral arms at the
counter-value arm's layers; a transplant that cannot run is kept with its reason."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from valuetrace.analysis.findings import Findings, pair_key
from valuetrace.analysis.stage_comparison import StageComparison

PRIMARY, COUNTER, NEUTRAL = "primary pair", "counter-value arm", "neutral arm"


@dataclass(frozen=True)
class PlannedTransplant:
    """One transplant to run: parent → child at `layers`; `roles` says why (primary pair,
    counter-value arm, neutral arm); `layers_found` whether they hold found weakening (else they
    are the pair's largest, not significant, drop: `StageComparison.localised`)."""

    parent: str
    child: str
    roles: list[str]
    layers: list[int]
    layers_found: bool


@dataclass(frozen=True)
class SkippedTransplant:
    """A transplant that was asked for (by role) but not run, and why."""

    child: str
    roles: list[str]
    reason: str


def _localised(cmp: StageComparison) -> tuple[list[int], bool]:
    """The pair's localised layers (model layer numbers) and whether a concept-specific
    weakening was found (a drop the control concept matched is global drift, not one)."""
    return [cmp.layers[i] for i in cmp.localised()], any(v.weakened for v in cmp.verdicts)


def _arm(findings: Findings, arm: str) -> StageComparison | None:
    """The primary probe set's comparison whose second stage is `arm` (first in config order)."""
    comparisons = findings.concepts[findings.primary_dataset].comparisons.values()
    return next((c for c in comparisons if c.stage_b == arm), None)


def plan_transplants(
    findings: Findings, counter_arm: str | None, neutral_arm: str | None
) -> tuple[list[PlannedTransplant], list[SkippedTransplant]]:
    """Which transplants to run: the primary pair at its localised layers, and (when the run
    names them) the counter-value arm and the neutral arm, each from its parent in
    `analysis.compare`, both at the counter-value arm's localised layers, so the neutral arm
    answers "does a neutral fine-tune change behaviour through the same place?". A pair asked
    for twice at the same layers (the primary pair is often the counter-value arm) runs once
    with both roles. One that cannot run is returned as skipped with its reason.
    """
    planned: list[PlannedTransplant] = []
    skipped: list[SkippedTransplant] = []

    def add(cmp: StageComparison, role: str, layers: list[int], found: bool) -> None:
        for i, plan in enumerate(planned):
            if (plan.parent, plan.child, plan.layers) == (cmp.stage_a, cmp.stage_b, layers):
                planned[i] = dataclasses.replace(plan, roles=[*plan.roles, role])
                return
        planned.append(PlannedTransplant(cmp.stage_a, cmp.stage_b, [role], layers, found))

    concept = findings.concepts[findings.primary_dataset]
    primary = concept.comparisons[pair_key(*findings.primary_pair)]
    layers, found = _localised(primary)
    if layers:
        add(primary, PRIMARY, layers, found)
    else:
        skipped.append(SkippedTransplant(primary.stage_b, [PRIMARY], _no_layer(primary)))
    arms = [(COUNTER, counter_arm), (NEUTRAL, neutral_arm)]
    counter_layers: tuple[list[int], bool] | None = None
    counter_reason = ""
    for role, arm in arms:
        if arm is None:
            continue
        cmp = _arm(findings, arm)
        if cmp is None:
            reason = (
                f"'{arm}' is the second stage of no pair in analysis.compare; add [its parent, "
                f"{arm}] there and rerun `valuetrace analyze`."
            )
            skipped.append(SkippedTransplant(arm, [role], reason))
            continue
        if role == COUNTER:
            counter_layers = _localised(cmp)
            if not counter_layers[0]:
                counter_reason = _no_layer(cmp)
        if counter_layers is None:
            reason = "no counter-value arm was compared (analysis.counter_arm), so no layers."
            skipped.append(SkippedTransplant(arm, [role], reason))
        elif not counter_layers[0]:
            skipped.append(SkippedTransplant(arm, [role], counter_reason))
        else:
            add(cmp, role, *counter_layers)
    return planned, skipped


def _no_layer(cmp: StageComparison) -> str:
    """Why a pair has no layer to patch at: its parent encodes the concept nowhere, or its
    change is undefined at every layer."""
    why = (
        f"{cmp.stage_a} encodes the concept at no layer (its probe's held-out AUROC interval "
        "never lies above 0.5)"
        if cmp.not_encoded()
        else "its change is undefined at every layer"
    )
    return (
        f"no layer of {cmp.stage_a} → {cmp.stage_b} is localised ({why}), so there is nowhere "
        "to patch; see that pair's verdicts."
    )
