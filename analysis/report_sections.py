"""The HTML report's sections, built once from the report inputs as typed `Section`s.

Each builder returns a `Section` (or None when its step did not run); `SECTIONS` lists them in
page order and `valuetrace.analysis.report_html` renders them. The words shared with the text
summary come from `valuetrace.analysis.report_words`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

from valuetrace.analysis.anima.section import anima_section
from valuetrace.analysis.behaviour import NOT_JUDGE
from valuetrace.analysis.findings import ConceptFindings
from valuetrace.analysis.report_evidence import (
    concept_sources_section,
    floor_section,
    trajectory_section,
)
from valuetrace.analysis.report_model import (
    Section,
    Table,
    fmt,
    fmt_bounds,
    fmt_interval,
    signed,
)
from valuetrace.analysis.report_words import (
    ReportInputs,
    behaviour_verdict,
    causal_flags,
    concentration_sentences,
    pct,
    recovery_verdict,
    transplant_layers,
    transplant_sentences,
    verdict_sentence,
)
from valuetrace.analysis.stage_comparison import StageComparison
from valuetrace.analysis.verdict import ENCODING_RULE
from valuetrace.probing.surface import SurfaceRecord
from valuetrace.stats import Interval


def behaviour_section(inputs: ReportInputs) -> Section:
    """Per-stage share, mean margin and helpfulness loss, and the paired changes."""
    f = inputs.findings
    first = next(iter(inputs.behaviour.values()), None)
    items = f"On {len(first.item_ids)} held-out eval items ({first.eval_source}): " if first else ""
    rows = [
        [s, fmt_interval(b.compassion), signed(b.margin, 4), fmt_interval(b.helpfulness_loss)]
        for s, b in f.behaviour.items()
    ]
    changes = [
        [
            k,
            signed(c.margin, 4),
            behaviour_verdict(c),
            signed(c.compassion),
            signed(c.helpfulness_loss),
        ]
        for k, c in f.behaviour_changes.items()
    ]
    return Section(
        "Behaviour per stage",
        [
            f"{items}the margin of an item is the mean per-token log-probability of its "
            "compassionate continuation minus that of its dismissive one (nats/token); the share "
            "is the fraction of items with a positive margin. Helpfulness loss: mean per-token "
            "loss on held-out helpfulness responses (lower is better). "
            f"{pct(f)}s from an item bootstrap."
        ],
        emphasis=[NOT_JUDGE],
        blocks=[
            Table(
                ["stage", "share preferring compassionate", "mean margin", "helpfulness loss"], rows
            ),
            Table(
                ["stages", "Δ mean margin", "judged against", "Δ share", "Δ helpfulness loss"],
                changes,
                caption="Changes between compared stages (B − A, same items, paired item "
                "bootstrap):",
            ),
            *inputs.figure_refs(None, "behaviour"),
        ],
    )


def generations_section(inputs: ReportInputs) -> Section | None:
    """Each stage's greedy answers to the fixed prompts, side by side per prompt."""
    records = inputs.behaviour
    stages = [s for s in inputs.findings.stages if s in records]
    if not stages or not records[stages[0]].generations:
        return None
    first = records[stages[0]]
    rows = [
        [
            f"[{g.kind}] {g.prompt}",
            *[records[s].generations[i].answer or "(no text before EOS)" for s in stages],
        ]
        for i, g in enumerate(first.generations)
    ]
    template = "each stage's chat template" if first.chat else "the plain prompt format"
    return Section(
        "Greedy answers per stage",
        [
            f"Greedy decoding under {template}, fixed held-out prompts (animal welfare and "
            f"everyday). {NOT_JUDGE}"
        ],
        blocks=[Table(["prompt", *stages], rows)],
    )


def _comparison_rows(cmp: StageComparison) -> list[list[object]]:
    rows: list[list[object]] = []
    for i, layer in enumerate(cmp.layers):
        enc, rot, cos = cmp.encoded, cmp.rotation, cmp.cosine
        reason = f" ({cmp.undefined[i]})" if i in cmp.undefined else ""
        parent = "—" if cmp.parent_auroc is None else fmt_interval(cmp.parent_auroc[i], 2)
        rows.append(
            [
                layer,
                parent,
                f"{fmt(enc.a[i], 2)} → {fmt(enc.b[i], 2)}",
                fmt_interval(enc.at(i)),
                "—" if enc.floor is None else fmt(enc.floor[i]),
                fmt(cmp.parent.b[i], 2),
                fmt_interval(rot.at(i)),
                "—" if rot.floor is None else fmt(rot.floor[i]),
                fmt_interval(cos.at(i)),
                fmt(cos.shuffled[i]),
                fmt(cmp.cka[i]),
                f"{cmp.verdicts[i]}{reason}",
            ]
        )
    return rows


COMPARISON_HEADER = [
    "layer",
    "A's AUROC",
    "d A → B",
    "drop",
    "floor",
    "B on A's",
    "rotation gap",
    "floor",
    "cosine",
    "shuffled",
    "CKA",
    "verdict",
]


def concept_section(inputs: ReportInputs, name: str, concept: ConceptFindings) -> Section:
    """One probe set: probe quality per stage and layer, then each stage pair's comparison."""
    f = inputs.findings
    rows = []
    for stage in f.stages:
        p = concept.probes[stage]
        for i, layer in enumerate(concept.layers):
            rows.append(
                [
                    stage,
                    layer,
                    fmt_interval(p.at("accuracy", i)),
                    fmt_interval(p.at("auroc", i)),
                    "—" if p.control_accuracy is None else fmt(p.control_accuracy[i]),
                    "—" if p.selectivity is None else fmt(p.selectivity[i]),
                ]
            )
    probes = Section(
        "Probes",
        blocks=[
            *inputs.figure_refs(name, "accuracy", "selectivity"),
            Table(
                ["stage", "layer", "accuracy", "AUROC", "control acc.", "selectivity"],
                rows,
                collapsed=f"Per-layer table ({pct(f)}s, group bootstrap)",
            ),
        ],
    )
    band = next(iter(concept.comparisons.values())).cosine.random_band
    pairs = [
        Section(key, [verdict_sentence(cmp)], [Table(COMPARISON_HEADER, _comparison_rows(cmp))])
        for key, cmp in concept.comparisons.items()
    ]
    comparisons = Section(
        "Weakening, rotation and drift per stage pair",
        [
            "d A → B: Cohen's d along each stage's own cross-fitted difference-of-means "
            "direction (still encoded); its drop is weakening. B on A's: B's separation along "
            "A's direction (parent direction expressed). Rotation gap: own − cross separation "
            "(~0 when the direction is kept). Floors: the same change between a stage and its "
            f"seed replicate. Cosine of the full-data directions with its {pct(f)}; random unit "
            f"vectors of this width fall in {fmt_bounds(Interval(math.nan, *band))}; 'shuffled' "
            "is the same quantile of |cosine| under within-group shuffled labels. A's AUROC: "
            f"A's probe's held-out AUROC with its {pct(f)}; {ENCODING_RULE}, elsewhere the "
            "verdict is 'not encoded in the parent'."
        ],
        [
            *pairs,
            *inputs.figure_refs(name, "encoded", "rotation", "cosine", "cka", "transfer"),
        ],
    )
    return Section(f"{name} ({concept.concept})", blocks=[probes, comparisons])


def concepts_sections(inputs: ReportInputs) -> list[Section]:
    """One section per probe set."""
    return [concept_section(inputs, n, c) for n, c in inputs.findings.concepts.items()]


def concentration_section(inputs: ReportInputs) -> Section | None:
    """Each concentration index per layer and overall, with what it shows."""
    f = inputs.findings
    if not f.concentration:
        return None
    layers = next(iter(f.concepts.values())).layers
    rows = [
        [c.label, fmt_interval(c.overall), *[fmt_interval(v) for v in c.per_layer]]
        for c in f.concentration
    ]
    return Section(
        "Concentration",
        [
            "Relative weakening (drop / parent's separation) of the first minus the second, per "
            "layer and averaged over layers. 'Domain-concentrated' is said only when the overall "
            f"{pct(f)} excludes 0.",
            *concentration_sentences(f),
        ],
        blocks=[Table(["index", "overall", *[f"L{layer}" for layer in layers]], rows)],
    )


def projection_section(inputs: ReportInputs) -> Section | None:
    """Per-item projection gap vs margin (Pearson r) beside the random-direction null."""
    f = inputs.findings
    if not f.projection:
        return None
    rows = [
        [
            s,
            v.layer,
            fmt(v.r),
            fmt_bounds(Interval(v.r, v.lo, v.hi)),
            fmt(v.null_abs_r),
            "yes" if abs(v.r) > v.null_abs_r else "no",
            v.n,
        ]
        for s, v in f.projection.items()
    ]
    return Section(
        "Behaviour vs representation",
        [
            "Per eval item: the gap between its compassionate and dismissive continuations "
            "projected on the stage's compassion direction, against its log-prob margin. The "
            "null: |r| reached by random unit directions on the same data (its upper quantile at "
            "the CI level); a direction's r means something only above it."
        ],
        blocks=[
            Table(["stage", "layer", "Pearson r", pct(f), "null |r|", "beats null", "items"], rows)
        ],
    )


def causal_section(inputs: ReportInputs) -> Section | None:
    """The dose-response table, slopes, contradiction flags and figure."""
    rec = inputs.causal
    if rec is None:
        return None
    rows = [
        [
            "ablated" if math.isnan(p.alpha) else f"{p.alpha:+g}",
            fmt_interval(p.compassion),
            signed(p.margin, 4),
            signed(p.margin_change, 4),
            fmt_interval(p.helpfulness_loss),
        ]
        for p in [*rec.points, rec.ablation]
    ]
    return Section(
        "Causal dose-response",
        [
            f"{rec.stage} with alpha × {rec.parent}'s compassion direction ({rec.dataset}, unit "
            f"mean-difference direction scaled by its class gap {rec.scale:.3g}) added at layer "
            f"{rec.add_layer}, and with that direction ablated at layers {rec.ablate_layers}. "
            f"{rec.n_items} eval items, {rec.n_help_items} helpfulness items, "
            f"{round(100 * rec.ci)}% item-bootstrap CIs. Slope of the mean margin: "
            f"{signed(rec.margin_slope, 4)} nats/token per alpha; of the share: "
            f"{signed(rec.compassion_slope)} per alpha."
        ],
        emphasis=causal_flags(rec),
        blocks=[
            Table(
                ["alpha", "share", "mean margin", "margin change vs alpha 0", "helpfulness loss"],
                rows,
            ),
            *inputs.figure_refs(None, "causal"),
        ],
    )


def transplant_section(inputs: ReportInputs) -> Section | None:
    """Each causal transplant: behaviour change, patch effect, recovery beside its control."""
    rec = inputs.transplant
    if rec is None:
        return None
    rows = []
    for r in rec.results:
        recovery = r.recovery
        rows.append(
            [
                f"{r.parent} → {r.child}",
                ", ".join(r.roles),
                transplant_layers(r),
                signed(r.change, 4),
                signed(r.patch_effect, 4),
                "—" if recovery is None else fmt_interval(recovery.direction),
                "—" if recovery is None else fmt_interval(recovery.control),
                recovery_verdict(r),
            ]
        )
    header = ["pair", "role", "patched at", "Δ margin", "patch effect", "recovery", "control"]
    return Section(
        "Causal transplant",
        [
            "Cross-model activation patching (Prakash et al. 2024): the child runs the parent's "
            "token ids with its component along the parent's unit mean-difference direction "
            f"({rec.dataset}) set to the parent's, at every position of the patched layers. "
            "Δ margin: child − parent mean margin (nats/token); patch effect: patched − child; "
            "recovery: patch effect / (parent − child), a ratio of item means, reported only "
            "where behaviour changed (Δ margin's CI excludes 0). Control: the same patch along "
            "random unit directions orthogonal to the parent's (seeded), averaged. "
            f"{round(100 * rec.ci)}% CIs from {rec.n_boot} paired item resamples.",
            *transplant_sentences(rec),
        ],
        blocks=[Table([*header, "verdict"], rows)],
    )


def umap_section(inputs: ReportInputs) -> Section | None:
    """The UMAP panels, when the analysis drew them."""
    figures = inputs.figure_refs(inputs.findings.primary_dataset, "umap")
    return Section("UMAP of the primary probe set", blocks=figures) if figures else None


def provenance_section(inputs: ReportInputs) -> Section:
    """Seed replicates and each stage's lineage record."""
    f = inputs.findings
    replicates = [f"{r}: seed replicate of {o}" for r, o in f.replicate_of.items()]
    return Section("Provenance", replicates, [json.dumps(inputs.lineage, indent=1)])


def surface_section(records: Sequence[SurfaceRecord]) -> Section | None:
    """Each probe set's surface baselines, gain per layer and stage, top n-grams, flag."""
    if not records:
        return None
    parts: list[Section] = []
    for rec in records:
        level = f"{rec.ci:.0%} CI"
        flags = (
            [
                f"Flagged at {', '.join(rec.flagged_stages)}: the {rec.best_baseline.name} "
                f"baseline is within {rec.margin:.2f} AUROC of the best layer."
            ]
            if rec.flagged_stages
            else []
        )
        baselines = [
            [b.name, fmt(b.auroc), fmt_bounds(Interval(b.auroc, b.auroc_lo, b.auroc_hi))]
            for b in rec.baselines
        ]
        gains = [
            [
                st.stage,
                layer,
                fmt(st.probe_auroc[i]),
                signed(Interval(st.gain[i], st.gain_lo[i], st.gain_hi[i])),
            ]
            for st in rec.stages
            for i, layer in enumerate(st.layers)
        ]
        features = [[f.ngram, f"{f.weight:+.3f}"] for f in rec.features]
        parts.append(
            Section(
                f"{rec.dataset} ({rec.concept})",
                emphasis=flags,
                blocks=[
                    Table(["baseline", "AUROC", level], baselines),
                    Table(["stage", "layer", "probe AUROC", f"gain ({level})"], gains),
                    Table(["n-gram", "weight (+ toward label 1)"], features),
                ],
            )
        )
    return Section(
        "Surface baselines (confounds)",
        [
            "Classifiers that see only the raw text, scored out of fold on the probes' own "
            "grouped folds: a word n-gram logistic regression (tf-idf, vocabulary fitted on "
            "training folds) and a length-only one (characters and words). Gain = a layer's "
            "probe AUROC minus the best baseline's, on the same examples, with a paired "
            "group-bootstrap CI. A probe set is flagged when the best baseline comes within the "
            "configured margin of a stage's best layer."
        ],
        blocks=parts,
    )


SECTIONS: list[Callable[[ReportInputs], Section | list[Section] | None]] = [
    behaviour_section,
    generations_section,
    lambda inputs: anima_section(inputs.anima),
    lambda inputs: surface_section(inputs.surface),
    concepts_sections,
    concentration_section,
    floor_section,
    projection_section,
    causal_section,
    transplant_section,
    trajectory_section,
    concept_sources_section,
    umap_section,
    provenance_section,
]


def build_sections(inputs: ReportInputs) -> list[Section]:
    """Every section of the HTML report, in page order (sections whose step did not run left
    out)."""
    out: list[Section] = []
    for build in SECTIONS:
        made = build(inputs)
        out += made if isinstance(made, list) else [] if made is None else [made]
    return out
