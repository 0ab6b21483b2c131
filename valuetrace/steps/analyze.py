"""Step `analyze`: weakening / rotation / drift per concept and stage pair, concentration,
behavioural changes; writes the `Findings` record, long-format CSVs and figures."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Collection
from pathlib import Path

import numpy as np

from valuetrace.activations.store import Activations, read_activations
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
from valuetrace.analysis.localize import Replicate, StageComparison, compare_stages
from valuetrace.analysis.plots import (
    LayerCurve,
    plot_heatmap,
    plot_layer_curves,
    plot_scores,
    plot_umap,
)
from valuetrace.config import RunConfig
from valuetrace.errors import ConfigError, MissingStepError
from valuetrace.paths import RunPaths
from valuetrace.probing import ProbeResults, load_results, transfer_matrix
from valuetrace.records import save_record
from valuetrace.steps.common import BEHAVIOUR_SET, primary_pair, require_current
from valuetrace.steps.concept import concept_section
from valuetrace.training.lineage import Lineage, StageRecord

Loaded = dict[str, tuple[Activations, ProbeResults]]


def _load_stage(
    config: RunConfig, dataset: str, record: StageRecord
) -> tuple[Activations, ProbeResults]:
    """A stage's cache and probes for one set, refused if made from an earlier stage version."""
    stage = record.name
    path = config.paths.probes(dataset, stage)
    if not path.is_file():
        raise MissingStepError(
            f"no probes for '{dataset}' under stage '{stage}' ({path}); run `valuetrace probe` "
            "first."
        )
    cache_path = config.paths.activations(dataset, stage)
    cache, results = read_activations(cache_path), load_results(path)
    require_current(record, cache.attrs.get("stage_fingerprint"), cache_path, "extract")
    require_current(record, results.provenance.get("stage_fingerprint"), path, "probe")
    return cache, results


def _floor_twins(
    a: str, b: str, replicate_of: dict[str, str], have: Collection[str]
) -> tuple[str, list[str]] | None:
    """The stage whose seed replicates (those in `have`) set the noise floor of A → B, and
    those replicates: B's, else A's, else None."""
    for stage in (b, a):
        reps = [r for r, original in replicate_of.items() if original == stage and r in have]
        if reps:
            return stage, reps
    return None


def _replicates(a: str, b: str, replicate_of: dict[str, str], loaded: Loaded) -> list[Replicate]:
    """The seed replicates whose activations' drift is the floor of A → B."""
    twins = _floor_twins(a, b, replicate_of, loaded)
    if twins is None:
        return []
    stage, reps = twins
    return [Replicate(r, loaded[stage][0].acts, loaded[r][0].acts) for r in reps]


def _concept(
    config: RunConfig,
    name: str,
    concept: str,
    lineage: Lineage,
    replicate_of: dict[str, str],
) -> tuple[ConceptFindings, dict[str, np.ndarray], Loaded]:
    """One probe set: probe tables, transfer, and every configured stage-pair comparison."""
    stages = lineage.names()
    loaded = {s: _load_stage(config, name, lineage.get(s)) for s in stages}
    check_same_examples(
        {s: a.ids for s, (a, _) in loaded.items()},
        {s: a.acts.shape for s, (a, _) in loaded.items()},
    )
    first, first_probe = loaded[stages[0]]
    comparisons: dict[str, StageComparison] = {}
    boots: dict[str, np.ndarray] = {}
    for a, b in config.analysis.compare:
        key = pair_key(a, b)
        comparisons[key], boots[key] = compare_stages(
            loaded[a][0].acts,
            loaded[b][0].acts,
            first.labels,
            first.groups,
            first_probe.folds,
            stage_a=a,
            stage_b=b,
            layers=first.layers,
            replicates=_replicates(a, b, replicate_of, loaded),
            n_boot=config.probing.n_bootstrap,
            alpha=config.analysis.alpha,
            ci=config.probing.ci,
            seed=config.seed,
        )
    main = [s for s in stages if s not in replicate_of]
    transfer = transfer_matrix(
        {s: loaded[s][1].probe for s in main}, {s: loaded[s][0].acts for s in main}, first.labels
    )
    found = ConceptFindings(
        name=name,
        concept=concept,
        layers=list(first.layers),
        n_examples=len(first.ids),
        probes={s: ProbeTable.from_results(r) for s, (_, r) in loaded.items()},
        transfer_auroc=np.asarray(transfer.auroc, dtype=np.float64).tolist(),
        comparisons=comparisons,
    )
    return found, boots, loaded


def _control_arm(
    compare: list[tuple[str, str]], primary: tuple[str, str]
) -> tuple[str, str] | None:
    """Another pair from the same parent as the primary pair (e.g. the coding SFT arm)."""
    for a, b in compare:
        if a == primary[0] and b != primary[1]:
            return a, b
    return None


def analyze(config: RunConfig) -> Findings:
    """Compare stages per concept and write `analysis/findings.json`, CSVs and figures."""
    paths = config.paths
    lineage = Lineage.load(paths.lineage)
    stages = lineage.names()
    replicate_of = {
        s.name: s.replicate_of for s in config.stages if s.replicate_of and s.name in stages
    }
    # checkpoints along a run are the trajectory step's (valuetrace.steps.trajectory)
    main = [s for s in stages if s not in replicate_of and not lineage.get(s).trajectory_of]
    compare = [(a, b) for a, b in config.analysis.compare]
    ci = config.probing.ci
    behaviour = {s: BehaviourResult.load(paths.behaviour(s)) for s in stages}

    concepts: dict[str, ConceptFindings] = {}
    boots: dict[str, dict[str, np.ndarray]] = {}
    primary_loaded: Loaded = {}
    for probe_set in config.probes:
        found, boots[probe_set.name], loaded = _concept(
            config, probe_set.name, probe_set.concept, lineage, replicate_of
        )
        concepts[probe_set.name] = found
        if not primary_loaded:
            primary_loaded = loaded

    primary_set = config.probes[0].name
    headline = primary_pair(compare)
    sources = config.concept_sources.sources if config.concept_sources else []
    concentration = _concentration(concepts, boots, primary_set, compare, headline, ci, sources)
    main_concept = concepts[primary_set]
    for index in concentration:
        if index.kind == "concept":
            key = index.pair
            main_concept.comparisons[key] = mark_global_drift(
                main_concept.comparisons[key], concepts[index.second].comparisons[key], index
            )

    focus = _focus_index(main_concept.comparisons[pair_key(*headline)])
    paths.analysis.mkdir(parents=True, exist_ok=True)
    findings = Findings(
        stages=main,
        replicate_of=replicate_of,
        primary_dataset=primary_set,
        primary_pair=list(headline),
        ci=ci,
        behaviour={
            s: StageBehaviour(b.compassion, b.margin, b.helpfulness_loss)
            for s, b in behaviour.items()
        },
        behaviour_changes=_behaviour_changes(config, behaviour, compare, replicate_of),
        concepts=concepts,
        concentration=concentration,
        projection=_projection(config, main, behaviour, primary_loaded, main_concept, focus),
        figures={},
    )
    figures: dict[str, Path] = {}
    for concept in concepts.values():
        figures.update(_concept_figures(concept, main, paths.figures, focus, ci))
    figures.update(_behaviour_figure(findings, paths.figures))
    if config.analysis.umap:
        figures.update(_umap_figure(config, primary_loaded, main, main_concept, focus))
    findings = dataclasses.replace(
        findings, figures={k: str(v.relative_to(paths.root)) for k, v in figures.items()}
    )
    save_record(findings, paths.findings)
    _write_csvs(findings, paths)
    concept_section(config, main, list(main_concept.comparisons.values()), findings.concentration)
    return findings


def _focus_index(comparison: StageComparison) -> int:
    """The layer index the detail figures show: the largest weakening of the headline pair."""
    layer = comparison.encoded.largest_drop.layer
    return 0 if layer is None else layer


def _concentration(
    concepts: dict[str, ConceptFindings],
    boots: dict[str, dict[str, np.ndarray]],
    primary: str,
    compare: list[tuple[str, str]],
    headline: tuple[str, str],
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
    arm = _control_arm(compare, headline)
    if arm is not None:
        k1, k2 = pair_key(*headline), pair_key(*arm)
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
    a: str, b: str, behaviour: dict[str, BehaviourResult], replicate_of: dict[str, str]
) -> ReplicateDrift | None:
    """The behaviour drift between B and its seed replicates, else A's, else None."""
    twins = _floor_twins(a, b, replicate_of, behaviour)
    if twins is None:
        return None
    stage, reps = twins
    return replicate_drift(behaviour[stage], [behaviour[r] for r in reps])


def _behaviour_changes(
    config: RunConfig,
    behaviour: dict[str, BehaviourResult],
    compare: list[tuple[str, str]],
    replicate_of: dict[str, str],
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
        for a, b in compare
    }


def _projection(
    config: RunConfig,
    stages: list[str],
    behaviour: dict[str, BehaviourResult],
    primary: Loaded,
    concept: ConceptFindings,
    focus: int,
) -> dict[str, Projection]:
    """Per stage, at the focus layer: projection gap of each eval item vs its preference."""
    out = {}
    for stage in stages:
        items = read_activations(config.paths.activations(BEHAVIOUR_SET, stage))
        pos, neg = items.acts[:, items.labels == 1], items.acts[:, items.labels == 0]
        out[stage] = projection_vs_preference(
            pos,
            neg,
            primary[stage][1].mean_direction.vectors,
            np.asarray(behaviour[stage].preference),
            focus,
            concept.layers[focus],
            n_boot=config.probing.n_bootstrap,
            seed=config.seed,
            ci=config.probing.ci,
            n_null=config.behaviour.null_directions,
        )
    return out


def _band(values: list[float], lo: list[float], hi: list[float]) -> LayerCurve:
    return LayerCurve(np.asarray(values), np.asarray(lo), np.asarray(hi))


def _concept_figures(
    concept: ConceptFindings, stages: list[str], out: Path, focus: int, ci: float
) -> dict[str, Path]:
    """Per-concept figures; `focus` is the index of the layer the transfer heatmap shows."""
    name, layers, pct = concept.name, concept.layers, f"{round(100 * ci)}% CI"
    figs: dict[str, Path] = {}
    for measure, unit, title in (
        ("encoded", "drop in Cohen's d (own cross-fitted direction)", "weakening"),
        ("rotation", "own − cross separation (Cohen's d)", "rotation gap"),
    ):
        curves: dict[str, LayerCurve] = {}
        for key, cmp in concept.comparisons.items():
            change = getattr(cmp, measure)
            curves[key] = _band(change.drop, change.lo, change.hi)
            if change.floor is not None:
                curves[f"{key} replicate drift"] = LayerCurve(np.asarray(change.floor))
        figs[f"{name}_{measure}"] = plot_layer_curves(
            curves,
            unit,
            f"{name}: {title} per stage pair ({pct})",
            out / f"{name}_{measure}.png",
            chance=0.0,
            layers=layers,
            chance_label="no change",
        )
    probes = concept.probes
    for metric, label, chance in (
        ("accuracy", "held-out accuracy", 0.5),
        ("selectivity", "accuracy − control accuracy", 0.0),
    ):
        if getattr(probes[stages[0]], metric) is None:
            continue
        figs[f"{name}_{metric}"] = plot_layer_curves(
            {
                s: _band(
                    getattr(probes[s], metric),
                    getattr(probes[s], f"{metric}_lo"),
                    getattr(probes[s], f"{metric}_hi"),
                )
                for s in stages
            },
            label,
            f"{name}: probe {metric} per layer ({pct})",
            out / f"{name}_{metric}.png",
            chance=chance,
            layers=layers,
        )
    keys = list(concept.comparisons)
    columns = [f"L{layer}" for layer in layers]
    figs[f"{name}_cosine"] = plot_heatmap(
        np.array([concept.comparisons[k].cosine.value for k in keys]),
        keys,
        columns,
        f"{name}: cosine of the stages' difference-of-means directions",
        out / f"{name}_cosine.png",
        "cosine",
        vmin=-1,
        vmax=1,
    )
    figs[f"{name}_cka"] = plot_heatmap(
        np.array([concept.comparisons[k].cka for k in keys]),
        keys,
        columns,
        f"{name}: debiased linear CKA between stages",
        out / f"{name}_cka.png",
        "CKA",
        vmin=0,
        vmax=1,
    )
    # AUROC, not accuracy: a probe's threshold does not survive a change of residual scale.
    auroc = np.asarray(concept.transfer_auroc)  # [train, test, layer]
    figs[f"{name}_transfer"] = plot_heatmap(
        auroc[:, :, focus],
        [f"train {s}" for s in stages],
        [f"test {s}" for s in stages],
        f"{name}: probe transfer AUROC at layer {layers[focus]}",
        out / f"{name}_transfer.png",
        "AUROC",
        vmin=0,
        vmax=1,
    )
    return figs


def _behaviour_figure(findings: Findings, out: Path) -> dict[str, Path]:
    stages = findings.stages
    beh = findings.behaviour
    scores = {
        "compassion preference (share)": [
            (beh[s].compassion.value, beh[s].compassion.lo, beh[s].compassion.hi) for s in stages
        ],
        "mean log-prob margin (nats/token)": [
            (beh[s].margin.value, beh[s].margin.lo, beh[s].margin.hi) for s in stages
        ],
        "helpfulness loss (nats/token)": [
            (beh[s].helpfulness_loss.value, beh[s].helpfulness_loss.lo, beh[s].helpfulness_loss.hi)
            for s in stages
        ],
    }
    title = f"behaviour per stage ({round(100 * findings.ci)}% CI)"
    return {"behaviour": plot_scores(scores, stages, title, out / "behaviour.png")}


def _umap_figure(
    config: RunConfig, primary: Loaded, stages: list[str], concept: ConceptFindings, focus: int
) -> dict[str, Path]:
    layers = concept.layers
    layer = config.analysis.umap_layer
    if layer is None:
        layer = layers[focus]
    if layer not in layers:
        raise ConfigError(
            f"analysis.umap_layer: {layer} is not a cached layer ({layers}); pick one of them, "
            "or leave it out to use the layer of largest weakening."
        )
    i = layers.index(layer)
    first = primary[stages[0]][0]
    path = plot_umap(
        {s: primary[s][0].acts[i] for s in stages},
        first.labels,
        config.paths.figures / "umap.png",
        seed=config.seed,
        layer_name=f"layer {layer}",
    )
    return {"umap": path}


def _write_csvs(findings: Findings, paths: RunPaths) -> None:
    """Long-format CSVs of per-layer probe metrics, stage comparisons and behaviour."""
    with paths.table("probes").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "stage", "layer", "metric", "value"])
        for name, concept in findings.concepts.items():
            for stage, table in concept.probes.items():
                for metric, values in vars(table).items():
                    for layer, value in zip(concept.layers, values or [], strict=False):
                        writer.writerow([name, stage, layer, metric, value])
    with paths.table("comparisons").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "stages", "layer", "measure", "value", "lo", "hi", "floor"])
        for name, concept in findings.concepts.items():
            for key, cmp in concept.comparisons.items():
                for i, layer in enumerate(concept.layers):
                    for measure in ("encoded", "parent", "rotation"):
                        ch = getattr(cmp, measure)
                        floor = None if ch.floor is None else ch.floor[i]
                        writer.writerow(
                            [
                                name,
                                key,
                                layer,
                                f"{measure}_drop",
                                ch.drop[i],
                                ch.lo[i],
                                ch.hi[i],
                                floor,
                            ]
                        )
                    c = cmp.cosine
                    floor = None if c.floor is None else c.floor[i]
                    writer.writerow(
                        [name, key, layer, "cosine", c.value[i], c.lo[i], c.hi[i], floor]
                    )
                    writer.writerow([name, key, layer, "cka_debiased", cmp.cka[i], "", "", ""])
                    writer.writerow([name, key, layer, "verdict", cmp.verdicts[i], "", "", ""])
    with paths.table("behaviour").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stage", "score", "value", "lo", "hi"])
        for stage, scores in findings.behaviour.items():
            for score, v in vars(scores).items():
                writer.writerow([stage, score, v.value, v.lo, v.hi])
