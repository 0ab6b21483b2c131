"""The study: from each stage's cached activations, probes and behaviour to the `Findings`.

The domain rules of a valuetrace analysis live here, not in the pipeline step that calls it:
which stage pair the headline is about (`primary_pair`), which other pair is its control arm
(`control_arm`), whose seed replicates set a pair's noise floor (`floor_twins`), the
concentration indices, the global-drift relabelling, the layer the detail figures show, and
which verdicts survive the neutral arm's floor (`neutral_floor`, when `analysis.neutral_arm`
names one).
The step `valuetrace analyze` only reads the records (`StageData`), calls `study` and writes
what it returns.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from valuetrace.activations.store import Activations
from valuetrace.analysis.behaviour import (
    BehaviourChange,
    BehaviourResult,
    ReplicateDrift,
    behaviour_change,
    replicate_drift,
)
from valuetrace.analysis.findings import (
    Concentration,
    ConceptFindings,
    Findings,
    ProbeTable,
    Projection,
    StageBehaviour,
    check_same_examples,
    concentration_index,
    mark_global_drift,
    pair_key,
    projection_vs_preference,
)
from valuetrace.analysis.localize import Replicate, compare_stages
from valuetrace.analysis.neutral_floor import Dose, NeutralFloor, neutral_floors
from valuetrace.analysis.stage_comparison import StageComparison
from valuetrace.analysis.verdict import held_out_auroc
from valuetrace.config import RunConfig
from valuetrace.probing import ProbeResults, transfer_matrix

Pair = tuple[str, str]


@dataclass(frozen=True)
class StageData:
    """One stage's cached activations of a probe set and the probes fitted on them."""

    cache: Activations
    probes: ProbeResults


@dataclass(frozen=True)
class StudyInputs:
    """What the study reads: per probe set (config order, the first is the primary one) each
    stage's `StageData`, each stage's behaviour record, and each main stage's activations of
    the behaviour eval items (compassionate = 1, dismissive = 0, item-major pairs)."""

    concepts: Mapping[str, tuple[str, Mapping[str, StageData]]]  # name -> (concept, stages)
    behaviour: Mapping[str, BehaviourResult]
    items: Mapping[str, Activations]
    stages: list[str]  # every recorded stage, lineage order
    replicate_of: Mapping[str, str]  # seed replicate -> the stage it replicates
    doses: Mapping[str, Dose] = field(default_factory=dict)  # trained stages' recorded dose


def primary_pair(compare: list[Pair]) -> Pair:
    """The pair the headline is about: the first pair whose first stage is another's second."""
    seconds = {b for _, b in compare}
    for a, b in compare:
        if a in seconds:
            return a, b
    return compare[0]


def control_arm(compare: list[Pair], primary: Pair) -> Pair | None:
    """Another pair from the same parent as the primary pair (e.g. the coding SFT arm)."""
    for a, b in compare:
        if a == primary[0] and b != primary[1]:
            return a, b
    return None


def floor_twins(
    a: str, b: str, replicate_of: Mapping[str, str], have: Collection[str]
) -> tuple[str, list[str]] | None:
    """The stage whose seed replicates (those in `have`) set the noise floor of A → B, and
    those replicates: B's, else A's, else None."""
    for stage in (b, a):
        reps = [r for r, original in replicate_of.items() if original == stage and r in have]
        if reps:
            return stage, reps
    return None


def focus_index(comparison: StageComparison) -> int:
    """The layer index the detail figures show: the largest weakening of the headline pair
    (among the layers its parent encodes; index 0 when it encodes the concept at none)."""
    layer = comparison.encoded.largest_drop.layer
    return 0 if layer is None else layer


def _replicates(
    a: str, b: str, replicate_of: Mapping[str, str], loaded: Mapping[str, StageData]
) -> list[Replicate]:
    """The seed replicates whose activations' drift is the floor of A → B."""
    twins = floor_twins(a, b, replicate_of, loaded)
    if twins is None:
        return []
    stage, reps = twins
    return [Replicate(r, loaded[stage].cache.acts, loaded[r].cache.acts) for r in reps]


def compare_concept(
    config: RunConfig,
    name: str,
    concept: str,
    loaded: Mapping[str, StageData],
    replicate_of: Mapping[str, str],
) -> tuple[ConceptFindings, dict[str, np.ndarray]]:
    """One probe set: probe tables, transfer and every configured stage-pair comparison, with
    the bootstrap samples [b, l] of each pair's relative drop (keyed by `pair_key`).

    Raises:
        DataError: stages hold different examples or activation shapes.
    """
    stages = list(loaded)
    check_same_examples(
        {s: d.cache.ids for s, d in loaded.items()},
        {s: d.cache.acts.shape for s, d in loaded.items()},
    )
    first = loaded[stages[0]]
    comparisons: dict[str, StageComparison] = {}
    boots: dict[str, np.ndarray] = {}
    for a, b in config.analysis.compare:
        key = pair_key(a, b)
        comparisons[key], boots[key] = _compare(config, a, b, loaded, replicate_of)
    main = [s for s in stages if s not in replicate_of]
    transfer = transfer_matrix(
        {s: loaded[s].probes.probe for s in main},
        {s: loaded[s].cache.acts for s in main},
        first.cache.labels,
    )
    found = ConceptFindings(
        name=name,
        concept=concept,
        layers=list(first.cache.layers),
        n_examples=len(first.cache.ids),
        probes={s: ProbeTable.from_results(d.probes) for s, d in loaded.items()},
        transfer_auroc=np.asarray(transfer.auroc, dtype=np.float64).tolist(),
        comparisons=comparisons,
    )
    return found, boots


def _compare(
    config: RunConfig,
    a: str,
    b: str,
    loaded: Mapping[str, StageData],
    replicate_of: Mapping[str, str],
) -> tuple[StageComparison, np.ndarray]:
    """A → B over one probe set's cached activations, with its replicate floor, judged only
    at layers where A's probe shows that A encodes the concept (`parent_encodes`)."""
    first = loaded[next(iter(loaded))]
    return compare_stages(
        loaded[a].cache.acts,
        loaded[b].cache.acts,
        first.cache.labels,
        first.cache.groups,
        first.probes.folds,
        stage_a=a,
        stage_b=b,
        layers=first.cache.layers,
        replicates=_replicates(a, b, replicate_of, loaded),
        n_boot=config.probing.n_bootstrap,
        alpha=config.analysis.alpha,
        ci=config.probing.ci,
        seed=config.seed,
        parent_auroc=held_out_auroc(loaded[a].probes),
    )


def neutral_floor(
    config: RunConfig,
    inputs: StudyInputs,
    concepts: Mapping[str, ConceptFindings],
) -> list[NeutralFloor]:
    """Every compared pair of every probe set judged against `analysis.neutral_arm`'s change
    from its parent (`valuetrace.analysis.neutral_floor`); empty without a neutral arm.

    The neutral arm's change is its configured comparison when `analysis.compare` lists it,
    else computed here the same way (same examples, replicate floor and seed). A pair whose
    child was trained otherwise than the neutral arm (`inputs.doses`) carries the difference.
    """
    neutral = config.analysis.neutral_arm
    if neutral is None:
        return []
    parent = config.stage(neutral).parent
    out: list[NeutralFloor] = []
    for name, (_, loaded) in inputs.concepts.items():
        comparisons = concepts[name].comparisons
        change = None
        if parent is not None and parent in loaded and neutral in loaded:
            key = pair_key(parent, neutral)
            change = (
                comparisons.get(key)
                or _compare(config, parent, neutral, loaded, inputs.replicate_of)[0]
            )
        out += neutral_floors(name, comparisons, neutral, str(parent), change, inputs.doses)
    return out


def concentration(
    concepts: Mapping[str, ConceptFindings],
    boots: Mapping[str, Mapping[str, np.ndarray]],
    primary: str,
    compare: list[Pair],
    ci: float,
    sources: Collection[str] = (),
) -> list[Concentration]:
    """Primary concept vs each control concept per pair, and the headline arm vs the other.

    `sources` names the probe sets that are other sources of the primary concept
    (`concept_sources.sources`): they are not control concepts.
    """
    out = []
    main = concepts[primary]
    for a, b in compare:
        key = pair_key(a, b)
        for name, control in concepts.items():
            if name == primary or name in sources:
                continue  # another source of the primary concept is no control concept
            out.append(
                concentration_index(
                    "concept",
                    f"{primary} − {name} ({key})",
                    key,
                    (primary, main.comparisons[key], boots[primary][key]),
                    (name, control.comparisons[key], boots[name][key]),
                    ci,
                )
            )
    arm = control_arm(compare, primary_pair(compare))
    if arm is not None:
        k1, k2 = pair_key(*primary_pair(compare)), pair_key(*arm)
        out.append(
            concentration_index(
                "arm",
                f"{primary}: {k1} − {k2}",
                "",
                (k1, main.comparisons[k1], boots[primary][k1]),
                (k2, main.comparisons[k2], boots[primary][k2]),
                ci,
            )
        )
    return out


def _behaviour_floor(
    a: str, b: str, behaviour: Mapping[str, BehaviourResult], replicate_of: Mapping[str, str]
) -> ReplicateDrift | None:
    """The behaviour drift between B and its seed replicates, else A's, else None."""
    twins = floor_twins(a, b, replicate_of, behaviour)
    if twins is None:
        return None
    stage, reps = twins
    return replicate_drift(behaviour[stage], [behaviour[r] for r in reps])


def behaviour_changes(
    config: RunConfig, behaviour: Mapping[str, BehaviourResult], replicate_of: Mapping[str, str]
) -> dict[str, BehaviourChange]:
    """Paired item-bootstrap changes of margin, share and helpfulness loss per compared pair,
    each with its seed-replicate noise floor."""
    return {
        pair_key(a, b): behaviour_change(
            behaviour[a],
            behaviour[b],
            n_boot=config.behaviour.n_bootstrap,
            seed=config.seed,
            ci=config.probing.ci,
            floor=_behaviour_floor(a, b, behaviour, replicate_of),
        )
        for a, b in config.analysis.compare
    }


def projections(
    config: RunConfig,
    inputs: StudyInputs,
    primary: Mapping[str, StageData],
    concept: ConceptFindings,
    focus: int,
) -> dict[str, Projection]:
    """Per main stage, at the focus layer: projection gap of each eval item vs its preference."""
    out = {}
    for stage in [s for s in inputs.stages if s not in inputs.replicate_of]:
        items = inputs.items[stage]
        out[stage] = projection_vs_preference(
            items.acts[:, items.labels == 1],
            items.acts[:, items.labels == 0],
            primary[stage].probes.mean_direction.vectors,
            np.asarray(inputs.behaviour[stage].preference),
            focus,
            concept.layers[focus],
            n_boot=config.probing.n_bootstrap,
            seed=config.seed,
            ci=config.probing.ci,
            n_null=config.behaviour.null_directions,
        )
    return out


def study(config: RunConfig, inputs: StudyInputs) -> Findings:
    """Compare stages per concept; the primary concept's weakening becomes global drift where a
    control concept weakened as much; behaviour changes and projections complete `Findings`
    (its `figures` empty: `valuetrace.analysis.figures` draws them from the record).

    Raises:
        DataError: stages of a probe set hold different examples or activation shapes.
    """
    compare = [(a, b) for a, b in config.analysis.compare]
    concepts: dict[str, ConceptFindings] = {}
    boots: dict[str, dict[str, np.ndarray]] = {}
    for name, (concept, loaded) in inputs.concepts.items():
        concepts[name], boots[name] = compare_concept(
            config, name, concept, loaded, inputs.replicate_of
        )
    primary_set = next(iter(inputs.concepts))
    sources = config.concept_sources.sources if config.concept_sources else []
    indices = concentration(concepts, boots, primary_set, compare, config.probing.ci, sources)
    main_concept = concepts[primary_set]
    for index in indices:
        if index.kind == "concept":
            key = index.pair
            main_concept.comparisons[key] = mark_global_drift(
                main_concept.comparisons[key], concepts[index.second].comparisons[key], index
            )
    headline = primary_pair(compare)
    focus = focus_index(main_concept.comparisons[pair_key(*headline)])
    primary_loaded = inputs.concepts[primary_set][1]
    return Findings(
        stages=[s for s in inputs.stages if s not in inputs.replicate_of],
        replicate_of=dict(inputs.replicate_of),
        primary_dataset=primary_set,
        primary_pair=list(headline),
        ci=config.probing.ci,
        behaviour={
            s: StageBehaviour(b.compassion, b.margin, b.helpfulness_loss)
            for s, b in inputs.behaviour.items()
        },
        behaviour_changes=behaviour_changes(config, inputs.behaviour, inputs.replicate_of),
        concepts=concepts,
        concentration=indices,
        projection=projections(config, inputs, primary_loaded, main_concept, focus),
        figures=[],
        neutral_floor=neutral_floor(config, inputs, concepts),
    )
