"""Does a concept agree across independent sources? Cross-source probe transfer and directions.

Why: a probe set built from one generator measures that generator. If the compassion read out
of one source (templated speciesism pairs) is the same compassion as in another (entity-swap
minimal pairs, human empathy essays, the model's own answers under a compassionate or dismissive
persona), a probe fitted on one source separates the others too, and the sources'
difference-of-means directions point the same way. Per layer this module computes:

- a source × source AUROC matrix: the diagonal is the source's own out-of-fold AUROC
  (`probing.probe_layers`, grouped CV); off the diagonal, the row source's full-data probe
  scored on the column source (`probing.transfer_matrix`), with group-bootstrap intervals over
  the column source's groups;
- the cosine between every two sources' difference-of-means directions, beside the band of the
  cosine between random directions (`analysis.similarity.random_direction_null`);
- each source's surface baseline (word n-gram and length models on the raw text,
  `probing.surface`) and each layer's gain over it, on the source's own folds.

The rule (stated in every record): a layer is **cross-source** when the primary source's probe
reaches AUROC >= ``min_auroc``, with its interval's lower end above 0.5, on at least
``min_sources`` other sources; otherwise it is **source-specific**. A layer is a **concept
layer** when it is cross-source *and* the primary's own probe beats its surface baseline there
(gain interval above 0): a concept must pass both checks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from jaxtyping import Float, Int, Shaped

from valuetrace.analysis.findings import Concentration
from valuetrace.analysis.similarity import cosine_per_layer, random_direction_null
from valuetrace.analysis.stage_comparison import StageComparison
from valuetrace.analysis.stage_pair import StagePair
from valuetrace.analysis.verdict import Verdict
from valuetrace.config import ConceptSourcesConfig, ProbingConfig
from valuetrace.errors import DataError
from valuetrace.probing import ProbeResults, probe_layers, transfer_matrix
from valuetrace.probing.surface import fit_surface, surface_record
from valuetrace.stats import group_bootstrap_weights

CROSS = "cross-source"
SPECIFIC = "source-specific"


@dataclass(frozen=True)
class SourceData:
    """One source's cached activations ``[l, n, d]``, 0/1 labels, group ids and raw texts.

    ``texts`` (prompt then response, `probing.surface.example_texts`) feed the surface baseline.
    """

    acts: Float[np.ndarray, "l n d"]
    labels: Int[np.ndarray, " n"]
    groups: Shaped[np.ndarray, " n"]
    texts: list[str]


@dataclass
class SourceAgreement:
    """Per-layer agreement of a concept's sources (one stage), and the layers that pass the rule.

    ``auroc[i][j][k]``: probe of source ``i`` scored on source ``j`` at ``layers[k]`` (the
    diagonal out of fold), with ``auroc_lo``/``auroc_hi``. ``cosine[i][j][k]``: cosine of the
    two sources' difference-of-means directions; ``cosine_null`` the central band of two random
    directions' cosine at the same width. ``surface_auroc[s]``: the best surface baseline's
    out-of-fold AUROC; ``surface_gain_lo[s][k]`` the lower end of the layer's gain over it.
    ``transfers_to[s][k]``: how many other sources source ``s``'s probe passes the bar on.
    ``verdict[k]``: `CROSS` or `SPECIFIC` for the primary; ``passes_surface[k]``: the primary's
    gain over its surface baseline is above 0; ``concept_layers``: layers passing both.
    """

    SCHEMA: ClassVar[str] = "valuetrace.concept_sources"
    VERSION: ClassVar[int] = 1

    stage: str
    primary: str
    sources: list[str]
    layers: list[int]
    n_examples: dict[str, int]
    rule: str
    ci: float
    auroc: list[list[list[float]]]
    auroc_lo: list[list[list[float]]]
    auroc_hi: list[list[list[float]]]
    cosine: list[list[list[float]]]
    cosine_null: list[float]
    surface_auroc: dict[str, float]
    surface_gain_lo: dict[str, list[float]]
    transfers_to: dict[str, list[int]]
    verdict: list[str]
    passes_surface: list[bool]
    concept_layers: list[int]

    def scope(self, layer: int) -> str:
        """`CROSS` or `SPECIFIC`: whether the primary's direction at `layer` transfers.

        Raises:
            DataError: `layer` was not analysed.
        """
        if layer not in self.layers:
            raise DataError(f"layer {layer} is not among the analysed layers {self.layers}")
        return self.verdict[self.layers.index(layer)]


@dataclass
class ConceptSourcesRecord:
    """Every main stage's source agreement, and the notes on source-specific verdicts
    (`analysis/concept_sources.json`, written by `valuetrace analyze`, rendered by the report)."""

    SCHEMA: ClassVar[str] = "valuetrace.concept_sources_section"
    VERSION: ClassVar[int] = 1

    stages: list[SourceAgreement]
    notes: list[str]


def rule_text(config: ConceptSourcesConfig, primary: str) -> str:
    """The stated rule, as the record and the report print it."""
    return (
        f"cross-source: {primary}'s probe reaches AUROC >= {config.min_auroc:g} (interval above "
        f"0.5) on at least {config.min_sources} other source(s); otherwise source-specific. "
        f"Concept layer: cross-source and {primary}'s probe beats its surface baseline (gain "
        "interval above 0)."
    )


def source_agreement(
    sources: dict[str, SourceData],
    primary: str,
    config: ConceptSourcesConfig,
    probing: ProbingConfig,
    *,
    layers: list[int],
    stage: str = "",
    seed: int = 0,
    fitted: dict[str, ProbeResults] | None = None,
) -> SourceAgreement:
    """Probe every source, transfer every probe to every other source, compare directions.

    ``probing`` sets the folds, C, bootstrap size and interval level (the control task is
    skipped: selectivity is the probe step's job). ``seed`` seeds folds and bootstraps.
    ``fitted`` passes each source's `probe_layers` results when the probe step already made
    them (the pipeline's saved probes); the sources are then not probed again.

    Raises:
        DataError: fewer than two sources, ``primary`` is not a source, the sources differ in
            layers or width, or a source's labels, groups or texts do not line up.
    """
    names = list(sources)
    if len(names) < 2 or primary not in sources:
        raise DataError(
            f"source agreement needs at least two sources including the primary '{primary}'; "
            f"got {names}. List them in concept_sources.sources."
        )
    widths = {n: np.shape(s.acts)[::2] for n, s in sources.items()}
    if len(set(widths.values())) > 1:
        raise DataError(
            f"sources differ in (layers, width): {widths}; extract every source from the same "
            "layers of the same model"
        )
    for name, source in sources.items():
        if not len(source.texts) == len(source.labels) == np.shape(source.acts)[1]:
            raise DataError(
                f"source '{name}': {np.shape(source.acts)[1]} activation rows, "
                f"{len(source.labels)} labels and {len(source.texts)} texts; pass one of each "
                "per example"
            )
    own_config = replace(probing, control=False)
    fitted = fitted or {}
    own = {
        n: fitted[n]
        if n in fitted
        else probe_layers(
            s.acts, s.labels, np.asarray(s.groups), own_config, seed=seed, layers=layers
        )
        for n, s in sources.items()
    }
    stale = [
        n
        for n, r in own.items()
        if r.layers != list(layers) or len(r.labels) != len(sources[n].labels)
    ]
    if stale:
        raise DataError(
            f"the fitted probes of {stale} cover other layers or examples than their "
            "activations; rerun `valuetrace probe`"
        )
    auc, lo, hi = _transfer(sources, own, probing, seed)
    directions = {n: r.mean_direction.vectors for n, r in own.items()}
    cosine = np.array(
        [[cosine_per_layer(directions[a], directions[b]) for b in names] for a in names]
    )
    surface_auroc, gain_lo = _surface(sources, own, probing, seed, layers)
    passes = (auc >= config.min_auroc) & (lo > 0.5)
    for i in range(len(names)):
        passes[i, i] = False  # a source does not count toward itself
    transfers = passes.sum(1)
    p = names.index(primary)
    cross = transfers[p] >= config.min_sources
    beats = np.nan_to_num(np.asarray(gain_lo[primary]), nan=-1.0) > 0
    return SourceAgreement(
        stage=stage,
        primary=primary,
        sources=names,
        layers=list(layers),
        n_examples={n: len(s.labels) for n, s in sources.items()},
        rule=rule_text(config, primary),
        ci=probing.ci,
        auroc=auc.tolist(),
        auroc_lo=lo.tolist(),
        auroc_hi=hi.tolist(),
        cosine=cosine.tolist(),
        cosine_null=list(
            random_direction_null(np.shape(sources[primary].acts)[2], ci=probing.ci, seed=seed)
        ),
        surface_auroc=surface_auroc,
        surface_gain_lo=gain_lo,
        transfers_to={n: transfers[i].tolist() for i, n in enumerate(names)},
        verdict=[CROSS if c else SPECIFIC for c in cross],
        passes_surface=beats.tolist(),
        concept_layers=[layer for layer, c, b in zip(layers, cross, beats, strict=True) if c and b],
    )


def _transfer(
    sources: dict[str, SourceData],
    own: dict[str, ProbeResults],
    probing: ProbingConfig,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUROC ``[s, s, l]`` with interval ends: off-diagonal transfer, diagonal out of fold."""
    names = list(sources)
    probes = {n: r.probe for n, r in own.items()}
    columns = []
    for name in names:
        test = sources[name]
        weights = group_bootstrap_weights(np.asarray(test.groups), probing.n_bootstrap, seed)
        result = transfer_matrix(probes, {name: test.acts}, test.labels, weights, probing.ci)
        columns.append((result.auroc[:, 0], result.auroc_ci[:, 0]))  # type: ignore[index]
    auc = np.stack([c[0] for c in columns], axis=1)  # [train, test, l]
    ci = np.stack([c[1] for c in columns], axis=1)  # [train, test, l, 2]
    for i, name in enumerate(names):
        auc[i, i] = own[name].auroc
        ci[i, i] = own[name].auroc_ci
    return auc, ci[..., 0], ci[..., 1]


def _surface(
    sources: dict[str, SourceData],
    own: dict[str, ProbeResults],
    probing: ProbingConfig,
    seed: int,
    layers: list[int],
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Best surface baseline AUROC per source and the lower end of each layer's gain over it."""
    best: dict[str, float] = {}
    gain_lo: dict[str, list[float]] = {}
    for name, source in sources.items():
        res = own[name]
        baselines = fit_surface(source.texts, source.labels, res.folds, probing.surface)
        record = surface_record(
            name,
            "",
            baselines,
            source.labels,
            np.asarray(source.groups),
            {name: (layers, res.oof_scores)},
            probing,
            seed,
        )
        best[name] = record.best_baseline.auroc
        gain_lo[name] = record.stages[0].gain_lo
    return best, gain_lo


def format_matrix(agreement: SourceAgreement) -> str:
    """The transfer matrix as plain text: per layer, one row per training source.

    Each cell is ``AUROC [lo, hi]``; the diagonal is out of fold. The layer line adds the
    verdict and whether the primary beats its surface baseline; a cosine block and the surface
    baselines follow.
    """
    names, pct = agreement.sources, round(100 * agreement.ci)
    width = max(len(n) for n in names) + 2
    cell = 20
    lines = [
        f"stage {agreement.stage or '-'}; train (rows) -> test (columns) AUROC [{pct}% CI], "
        "diagonal = out-of-fold",
        f"rule: {agreement.rule}",
        "examples: " + ", ".join(f"{n} {k}" for n, k in agreement.n_examples.items()),
        "surface baseline (best of n-gram, length; out-of-fold AUROC): "
        + ", ".join(f"{n} {a:.3f}" for n, a in agreement.surface_auroc.items()),
        f"random-direction cosine band: [{agreement.cosine_null[0]:.3f}, "
        f"{agreement.cosine_null[1]:.3f}]",
    ]
    for k, layer in enumerate(agreement.layers):
        surface = "beats surface" if agreement.passes_surface[k] else "not above surface"
        lines.append(f"\nlayer {layer}: {agreement.verdict[k]}, {agreement.primary} {surface}")
        lines.append(" " * width + "".join(f"{n:>{cell}}" for n in names))
        for i, name in enumerate(names):
            row = "".join(f"{_cell(agreement, i, j, k):>{cell}}" for j in range(len(names)))
            lines.append(f"{name:<{width}}{row}")
        cos = "  ".join(
            f"{names[i]}~{names[j]} {agreement.cosine[i][j][k]:+.3f}"
            for i in range(len(names))
            for j in range(i + 1, len(names))
        )
        lines.append(f"{'cosine':<{width}}{cos}")
    return "\n".join(lines)


def _cell(agreement: SourceAgreement, i: int, j: int, k: int) -> str:
    value = agreement.auroc[i][j][k]
    return f"{value:.2f} [{agreement.auroc_lo[i][j][k]:.2f},{agreement.auroc_hi[i][j][k]:.2f}]"


def scope_notes(
    agreements: dict[str, SourceAgreement],
    comparisons: list[StageComparison],
    concentration: list[Concentration],
) -> list[str]:
    """Say which localisation and concentration verdicts sit on source-specific layers.

    A stage pair's verdict at a layer is judged along its parent's direction, so the parent's
    agreement (``agreements[stage_a]``) decides whether that direction is the concept or only
    its source there. A pair whose parent has no agreement record gets no note.
    """
    notes = []
    for cmp in comparisons:
        agreement = agreements.get(cmp.stage_a)
        if agreement is None:
            continue
        specific = [
            f"{layer} ({verdict})"
            for layer, verdict in zip(cmp.layers, cmp.verdicts, strict=True)
            if Verdict(verdict).fired and agreement.scope(layer) == SPECIFIC
        ]
        if specific:
            notes.append(
                f"{StagePair(cmp.stage_a, cmp.stage_b)}: source-specific at layer(s) "
                f"{', '.join(specific)}: "
                f"there {agreement.primary}'s direction does not transfer to the other sources, "
                "so the verdict is about that source, not the concept"
            )
    for index in concentration:
        agreement = agreements.get(StagePair.parse(index.pair or index.first).parent)
        if agreement is None:
            continue
        n_specific = sum(agreement.scope(layer) == SPECIFIC for layer in agreement.layers)
        if n_specific:
            notes.append(
                f"{index.label}: {n_specific} of {len(agreement.layers)} layers averaged are "
                f"source-specific (cross-source layers: "
                f"{[la for la in agreement.layers if agreement.scope(la) == CROSS] or 'none'})"
            )
    return notes
