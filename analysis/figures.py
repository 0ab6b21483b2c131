"""The analysis figures, drawn from the `Findings` record (and, for UMAP, the primary activations).

One function per figure family; each returns `Figure` records (name, kind, concept, path) so
the report finds a figure by what it shows, never by parsing its file name. File names come
from `RunPaths.figure`. The drawing itself is `valuetrace.analysis.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from valuetrace.analysis.findings import ConceptFindings, Figure, Findings
from valuetrace.analysis.measures import CURVE_MEASURES
from valuetrace.analysis.plots import (
    LayerCurve,
    plot_heatmap,
    plot_layer_curves,
    plot_scores,
    plot_umap,
)
from valuetrace.analysis.study import StageData, focus_index
from valuetrace.analysis.trajectory import Trajectory, TrajectoryRecord, heatmap_matrix
from valuetrace.config import RunConfig
from valuetrace.errors import ConfigError
from valuetrace.paths import RunPaths
from valuetrace.stats import Interval


def _band(values: list[float], lo: list[float], hi: list[float]) -> LayerCurve:
    return LayerCurve(np.asarray(values), np.asarray(lo), np.asarray(hi))


def _figure(paths: RunPaths, name: str, kind: str, concept: str | None) -> Figure:
    path = paths.figure(name).relative_to(paths.root).as_posix()
    return Figure(name=name, kind=kind, concept=concept, path=path)


def concept_figures(
    concept: ConceptFindings, stages: list[str], paths: RunPaths, focus: int, ci: float
) -> list[Figure]:
    """Per-concept figures: each curve measure per stage pair, probe accuracy and selectivity
    per stage, cosine and CKA heatmaps, and probe transfer at the layer index `focus`."""
    name, layers, pct = concept.name, concept.layers, f"{round(100 * ci)}% CI"
    figs: list[Figure] = []
    for measure in CURVE_MEASURES:
        curves: dict[str, LayerCurve] = {}
        for key, cmp in concept.comparisons.items():
            change = measure.change(cmp)
            curves[key] = _band(change.drop, change.lo, change.hi)
            if change.floor is not None:
                curves[f"{key} replicate drift"] = LayerCurve(np.asarray(change.floor))
        fig = _figure(paths, f"{name}_{measure.name}", measure.name, name)
        plot_layer_curves(
            curves,
            measure.unit,
            f"{name}: {measure.title} per stage pair ({pct})",
            paths.figure(fig.name),
            chance=0.0,
            layers=layers,
            chance_label="no change",
        )
        figs.append(fig)
    probes = concept.probes
    for metric, label, chance in (
        ("accuracy", "held-out accuracy", 0.5),
        ("selectivity", "accuracy − control accuracy", 0.0),
    ):
        if getattr(probes[stages[0]], metric) is None:
            continue
        fig = _figure(paths, f"{name}_{metric}", metric, name)
        plot_layer_curves(
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
            paths.figure(fig.name),
            chance=chance,
            layers=layers,
        )
        figs.append(fig)
    keys = list(concept.comparisons)
    columns = [f"L{layer}" for layer in layers]
    for kind, values, title, label, vmin in (
        (
            "cosine",
            [concept.comparisons[k].cosine.value for k in keys],
            "cosine of the stages' difference-of-means directions",
            "cosine",
            -1,
        ),
        (
            "cka",
            [concept.comparisons[k].cka for k in keys],
            "debiased linear CKA between stages",
            "CKA",
            0,
        ),
    ):
        fig = _figure(paths, f"{name}_{kind}", kind, name)
        plot_heatmap(
            np.array(values),
            keys,
            columns,
            f"{name}: {title}",
            paths.figure(fig.name),
            label,
            vmin=vmin,
            vmax=1,
        )
        figs.append(fig)
    # AUROC, not accuracy: a probe's threshold does not survive a change of residual scale.
    auroc = np.asarray(concept.transfer_auroc)  # [train, test, layer]
    fig = _figure(paths, f"{name}_transfer", "transfer", name)
    plot_heatmap(
        auroc[:, :, focus],
        [f"train {s}" for s in stages],
        [f"test {s}" for s in stages],
        f"{name}: probe transfer AUROC at layer {layers[focus]}",
        paths.figure(fig.name),
        "AUROC",
        vmin=0,
        vmax=1,
    )
    return [*figs, fig]


def behaviour_figure(findings: Findings, paths: RunPaths) -> Figure:
    """Share, mean margin and helpfulness loss per stage with their intervals."""
    stages, beh = findings.stages, findings.behaviour

    def rows(score: str) -> list[tuple[float, float, float]]:
        values: list[Interval] = [getattr(beh[s], score) for s in stages]
        return [(v.value, v.lo, v.hi) for v in values]

    scores = {
        "compassion preference (share)": rows("compassion"),
        "mean log-prob margin (nats/token)": rows("margin"),
        "helpfulness loss (nats/token)": rows("helpfulness_loss"),
    }
    fig = _figure(paths, "behaviour", "behaviour", None)
    title = f"behaviour per stage ({round(100 * findings.ci)}% CI)"
    plot_scores(scores, stages, title, paths.figure(fig.name))
    return fig


def umap_figure(
    config: RunConfig, primary: Mapping[str, StageData], findings: Findings, focus: int
) -> Figure:
    """UMAP of the primary probe set per main stage at `analysis.umap_layer` (default: the
    layer of largest weakening in the headline pair).

    Raises:
        ConfigError: `analysis.umap_layer` is not a cached layer.
    """
    layers = findings.concepts[findings.primary_dataset].layers
    layer = config.analysis.umap_layer
    if layer is None:
        layer = layers[focus]
    if layer not in layers:
        raise ConfigError(
            f"analysis.umap_layer: {layer} is not a cached layer ({layers}); pick one of them, "
            "or leave it out to use the layer of largest weakening."
        )
    i = layers.index(layer)
    stages = findings.stages
    fig = _figure(config.paths, "umap", "umap", findings.primary_dataset)
    plot_umap(
        {s: primary[s].cache.acts[i] for s in stages},
        primary[stages[0]].cache.labels,
        config.paths.figure(fig.name),
        seed=config.seed,
        layer_name=f"layer {layer}",
    )
    return fig


def trajectory_figure(trajectory: Trajectory, paths: RunPaths) -> Figure:
    """The record of a trajectory's layer x step heatmap (kind "trajectory", its probe set's;
    file `RunPaths.figure(trajectory.figure_name)`)."""
    return _figure(paths, trajectory.figure_name, "trajectory", trajectory.dataset)


def trajectory_figures(record: TrajectoryRecord, paths: RunPaths) -> list[Figure]:
    """Per trajectory, the layer x step heatmap of the relative weakening (drop / parent's
    separation along its own cross-fitted direction): where and when a concept weakened."""
    figures = []
    for t in record.trajectories:
        fig = trajectory_figure(t, paths)
        plot_heatmap(
            heatmap_matrix(t),
            [f"L{layer}" for layer in t.layers],
            [f"step {p.step}" for p in t.steps],
            f"{t.dataset}: relative weakening {t.parent} → {t.stage} along its run",
            paths.figure(fig.name),
            "drop / parent separation",
            annotate=len(t.layers) <= 16,
        )
        figures.append(fig)
    return figures


def draw_figures(
    config: RunConfig, findings: Findings, primary: Mapping[str, StageData]
) -> list[Figure]:
    """Every analysis figure of `findings`; `primary`: the primary probe set's stage data.

    Raises:
        ConfigError: `analysis.umap_layer` is not a cached layer.
    """
    paths = config.paths
    focus = focus_index(findings.primary)
    figures: list[Figure] = []
    for concept in findings.concepts.values():
        figures += concept_figures(concept, findings.stages, paths, focus, findings.ci)
    figures.append(behaviour_figure(findings, paths))
    if config.analysis.umap:
        figures.append(umap_figure(config, primary, findings, focus))
    return figures
