"""Step `analyze`: compare stages per concept, localise the weakening, write metrics, figures."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from valuetrace.activations.store import Activations, read_activations
from valuetrace.analysis.behaviour import BehaviourResult, behaviour_change, random_direction_band
from valuetrace.analysis.findings import (
    StageArrays,
    check_same_examples,
    concentration,
    concept_findings,
    projection_vs_preference,
)
from valuetrace.analysis.plots import (
    LayerCurve,
    plot_heatmap,
    plot_layer_curves,
    plot_scores,
    plot_umap,
)
from valuetrace.config import (
    RunConfig,
)
from valuetrace.errors import DataError, MissingStepError
from valuetrace.probing import (
    ProbeResults,
    load_results,
    transfer_matrix,
)
from valuetrace.records import record_to_dict
from valuetrace.steps.common import BEHAVIOUR_SET, focus_index, primary_pair
from valuetrace.training.lineage import Lineage


def _load_stage(config: RunConfig, dataset: str, stage: str) -> tuple[Activations, ProbeResults]:
    path = config.paths.probes(dataset, stage)
    if not path.is_file():
        raise MissingStepError(
            f"no probes for '{dataset}' under stage '{stage}' ({path}); run `valuetrace probe` "
            "first."
        )
    return read_activations(config.paths.activations(dataset, stage)), load_results(path)


def _probe_table(results: ProbeResults) -> dict[str, list[float]]:
    d = results.to_dict()
    return {
        k: d[k]
        for k in (
            "accuracy",
            "accuracy_lo",
            "accuracy_hi",
            "auroc",
            "auroc_lo",
            "auroc_hi",
            "control_accuracy",
            "selectivity",
            "selectivity_lo",
            "selectivity_hi",
        )
    }


def analyze(config: RunConfig) -> dict[str, Any]:
    """Compare stages per concept, localise the weakening, and write metrics, CSVs and plots."""
    paths = config.paths
    lineage = Lineage.load(paths.lineage)
    stages = lineage.names()
    compare = [(a, b) for a, b in config.analysis.compare]
    boot = {"n_boot": config.probing.n_bootstrap, "seed": config.seed, "ci": config.probing.ci}
    behaviour = {s: BehaviourResult.load(paths.behaviour(s)) for s in stages}
    figures: dict[str, Path] = {}
    concepts: dict[str, Any] = {}
    loaded: dict[str, dict[str, tuple[Activations, ProbeResults]]] = {}
    for probe_set in config.probes:
        name = probe_set.name
        loaded[name] = {s: _load_stage(config, name, s) for s in stages}
        arrays = {
            s: StageArrays(
                acts=a.acts,
                oof_scores=r.oof_scores,
                probe_direction=r.probe_direction.vectors,
                mean_direction=r.mean_direction.vectors,
            )
            for s, (a, r) in loaded[name].items()
        }
        first = loaded[name][stages[0]][0]
        check_same_examples(arrays, {s: a.ids for s, (a, _) in loaded[name].items()})
        found = concept_findings(
            arrays,
            first.labels,
            first.groups,
            compare,
            n_boot=config.probing.n_bootstrap,
            seed=config.seed,
            metric=config.analysis.metric,
        )
        transfer = transfer_matrix(
            {s: r.probe for s, (_, r) in loaded[name].items()},
            {s: a.acts for s, (a, _) in loaded[name].items()},
            first.labels,
        )
        concepts[name] = {
            "concept": probe_set.concept,
            "layers": first.layers,
            "n_examples": len(first.ids),
            "probes": {s: _probe_table(r) for s, (_, r) in loaded[name].items()},
            "transfer": {
                "stages": stages,
                "accuracy": transfer.accuracy.tolist(),
                "auroc": transfer.auroc.tolist(),
            },
            **found,
        }
        figures.update(
            _concept_figures(
                name, concepts[name], stages, paths.figures, focus_index(config, concepts[name])
            )
        )
    primary_set = config.probes[0].name
    headline = primary_pair(compare)
    control_arm = _control_arm(compare, headline)
    metrics: dict[str, Any] = {
        "stages": stages,
        "compare": [list(p) for p in compare],
        "primary": {"dataset": primary_set, "pair": list(headline)},
        "lineage": {
            r.name: {
                "parent": r.parent,
                "checkpoint": r.checkpoint,
                "weights_hash": r.weights_hash,
                "data_hash": r.data_hash,
                "metrics": r.metrics,
            }
            for r in lineage.records
        },
        "behaviour": {s: record_to_dict(b) for s, b in behaviour.items()},
        "behaviour_changes": [
            asdict(behaviour_change(behaviour[a], behaviour[b], **boot)) for a, b in compare
        ],
        "concepts": concepts,
    }
    metrics["concentration"] = concentration(concepts, primary_set, headline, control_arm)
    metrics["behaviour_vs_projection"] = _behaviour_vs_projection(
        config, stages, behaviour, loaded[primary_set], concepts
    )
    figures.update(_behaviour_figure(metrics, paths.figures))
    if config.analysis.umap:
        figures.update(_umap_figure(config, loaded[primary_set], concepts[primary_set]))
    metrics["figures"] = {k: str(v.relative_to(paths.root)) for k, v in figures.items()}
    paths.analysis.mkdir(parents=True, exist_ok=True)
    (paths.analysis / "metrics.json").write_text(json.dumps(metrics, indent=1))
    _write_csvs(metrics, paths.analysis)
    return metrics


def _control_arm(
    compare: list[tuple[str, str]], primary: tuple[str, str]
) -> tuple[str, str] | None:
    """Another pair from the same parent as the primary pair (e.g. the coding SFT arm)."""
    for a, b in compare:
        if a == primary[0] and b != primary[1]:
            return a, b
    return None


def _curve(probes: dict[str, list[float]], metric: str) -> LayerCurve:
    return LayerCurve(
        np.asarray(probes[metric]),
        np.asarray(probes[f"{metric}_lo"]),
        np.asarray(probes[f"{metric}_hi"]),
    )


def _concept_figures(
    name: str, concept: dict[str, Any], stages: list[str], out: Path, focus: int
) -> dict[str, Path]:
    """Per-concept figures; `focus` is the index of the layer the transfer heatmap shows."""
    probes = concept["probes"]
    layers = concept["layers"]
    metric = next(iter(concept["localization"].values()))["metric"]
    unit = "AUROC" if metric == "auroc" else "Cohen's d along the parent's direction"
    figs = {
        f"{name}_drop": plot_layer_curves(
            {
                key: LayerCurve(
                    np.asarray(loc[metric]["drop"]),
                    np.asarray(loc[metric]["lo"]),
                    np.asarray(loc[metric]["hi"]),
                )
                for key, loc in concept["localization"].items()
            },
            f"drop in {unit}",
            f"{name}: layer-wise weakening per stage pair (95% CI)",
            out / f"{name}_drop.png",
            chance=0.0,
            layers=layers,
            chance_label="no change",
        ),
        f"{name}_accuracy": plot_layer_curves(
            {s: _curve(probes[s], "accuracy") for s in stages},
            "held-out accuracy",
            f"{name}: probe accuracy per layer (95% CI)",
            out / f"{name}_accuracy.png",
            chance=0.5,
            layers=layers,
        ),
        f"{name}_selectivity": plot_layer_curves(
            {s: _curve(probes[s], "selectivity") for s in stages},
            "accuracy − control accuracy",
            f"{name}: probe selectivity per layer (95% CI)",
            out / f"{name}_selectivity.png",
            chance=0.0,
            layers=layers,
        ),
    }
    keys = list(concept["cosine"])
    figs[f"{name}_cosine"] = plot_heatmap(
        np.array([concept["cosine"][k]["mean_diff"] for k in keys]),
        keys,
        [f"L{layer}" for layer in layers],
        f"{name}: cosine of mean-difference directions",
        out / f"{name}_cosine.png",
        "cosine",
        vmin=-1,
        vmax=1,
    )
    figs[f"{name}_cka"] = plot_heatmap(
        np.array([concept["cka"][k] for k in keys]),
        keys,
        [f"L{layer}" for layer in layers],
        f"{name}: debiased linear CKA between stages",
        out / f"{name}_cka.png",
        "CKA",
        vmin=0,
        vmax=1,
    )
    # AUROC, not accuracy: a probe's threshold does not survive a change of residual scale.
    auroc = np.asarray(concept["transfer"]["auroc"])  # [train, test, layer]
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


def _behaviour_figure(metrics: dict[str, Any], out: Path) -> dict[str, Path]:
    stages = metrics["stages"]
    beh = metrics["behaviour"]
    scores = {
        label: [(beh[s][key]["value"], beh[s][key]["lo"], beh[s][key]["hi"]) for s in stages]
        for key, label in (
            ("compassion", "compassion preference (share)"),
            ("margin", "mean log-prob margin (nats/token)"),
            ("helpfulness_loss", "helpfulness loss (nats/token)"),
        )
    }
    path = plot_scores(scores, stages, "behaviour per stage (95% CI)", out / "behaviour.png")
    return {"behaviour": path}


def _behaviour_vs_projection(
    config: RunConfig,
    stages: list[str],
    behaviour: dict[str, BehaviourResult],
    primary: dict[str, tuple[Activations, ProbeResults]],
    concepts: dict[str, Any],
) -> dict[str, Any]:
    """Per stage, at the layer of largest weakening: projection gap vs log-prob preference."""
    name = config.probes[0].name
    best = focus_index(config, concepts[name])
    out = {}
    for stage in stages:
        items = read_activations(config.paths.activations(BEHAVIOUR_SET, stage))
        pos, neg = items.acts[:, items.labels == 1], items.acts[:, items.labels == 0]
        direction = primary[stage][1].mean_direction.vectors
        result = projection_vs_preference(
            pos,
            neg,
            direction,
            np.asarray(behaviour[stage].preference),
            best,
            n_boot=config.probing.n_bootstrap,
            seed=config.seed,
        )
        null = random_direction_band(
            pos[best] - neg[best],
            behaviour[stage].preference,
            n_directions=config.behaviour.null_directions,
            seed=config.seed,
            ci=config.probing.ci,
        )
        out[stage] = {"layer": concepts[name]["layers"][best], **result, "null_abs_r": null}
    return out


def _umap_figure(
    config: RunConfig, primary: dict[str, tuple[Activations, ProbeResults]], concept: dict[str, Any]
) -> dict[str, Path]:
    layers = concept["layers"]
    layer = config.analysis.umap_layer
    if layer is None:
        layer = layers[focus_index(config, concept)]
    if layer not in layers:
        raise DataError(f"analysis.umap_layer {layer} is not a cached layer ({layers}).")
    i = layers.index(layer)
    first = next(iter(primary.values()))[0]
    path = plot_umap(
        {s: a.acts[i] for s, (a, _) in primary.items()},
        first.labels,
        config.paths.figures / "umap.png",
        seed=config.seed,
        layer_name=f"layer {layer}",
    )
    return {"umap": path}


def _write_csvs(metrics: dict[str, Any], out: Path) -> None:
    """Long-format CSVs of per-layer probe metrics and cross-stage comparisons."""
    with (out / "probes.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "stage", "layer", "metric", "value"])
        for name, concept in metrics["concepts"].items():
            for stage, table in concept["probes"].items():
                for metric, values in table.items():
                    for layer, value in zip(concept["layers"], values, strict=True):
                        writer.writerow([name, stage, layer, metric, value])
    with (out / "comparisons.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "stages", "layer", "metric", "value"])
        for name, concept in metrics["concepts"].items():
            for key in concept["cka"]:
                rows = {
                    "cosine_probe": concept["cosine"][key]["probe"],
                    "cosine_mean_diff": concept["cosine"][key]["mean_diff"],
                    "cka_debiased": concept["cka"][key],
                    "auroc_drop": concept["localization"][key]["auroc"]["drop"],
                    "separation_drop": concept["localization"][key]["separation"]["drop"],
                }
                for metric, values in rows.items():
                    for layer, value in zip(concept["layers"], values, strict=True):
                        writer.writerow([name, key, layer, metric, value])
    with (out / "behaviour.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stage", "score", "value", "lo", "hi"])
        for stage, scores in metrics["behaviour"].items():
            for score in ("compassion", "margin", "helpfulness_loss"):
                v = scores[score]
                writer.writerow([stage, score, v["value"], v["lo"], v["hi"]])
