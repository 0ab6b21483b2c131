"""The researcher-facing outputs: a plain-text summary and one self-contained HTML report.

Both are rendered from the `Findings` record the analysis wrote (plus the lineage and, when
present, the causal step's results), so the report computes nothing itself and every number in
it can be traced. Each section is one function returning its text or HTML; add a section by
writing another and listing it in `SUMMARY_SECTIONS` / `HTML_SECTIONS`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from valuetrace.analysis.behaviour import NOT_JUDGE, BehaviourChange, BehaviourResult
from valuetrace.analysis.causal import CausalRecord
from valuetrace.analysis.findings import (
    ConceptFindings,
    Findings,
    Interval,
    pair_key,
    verdict_bands,
)
from valuetrace.analysis.localize import StageComparison
from valuetrace.probing.surface import SurfaceRecord
from valuetrace.training.lineage import StageRecord

WIDTH = 100


@dataclass(frozen=True)
class ReportInputs:
    """What the report renders: the findings, figure files, lineage, each stage's behaviour
    record, the causal dose-response (when it ran) and the surface baselines."""

    findings: Findings
    figures: dict[str, Path] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    behaviour: dict[str, BehaviourResult] = field(default_factory=dict)
    causal: CausalRecord | None = None
    surface: Sequence[SurfaceRecord] = ()


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or x != x else f"{x:.{digits}f}"


def _ci(v: Interval) -> str:
    return f"{_f(v.value)} [{_f(v.lo)}, {_f(v.hi)}]"


def _sc(score: Interval, signed: bool = False, digits: int = 3) -> str:
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{fmt.format(score.value)} [{fmt.format(score.lo)}, {fmt.format(score.hi)}]"


def _pct(findings: Findings) -> str:
    return f"{round(100 * findings.ci)}% CI"


def _layers(first: int, last: int) -> str:
    return f"layer {first}" if first == last else f"layers {first}–{last}"


def _strongest(cmp: StageComparison) -> str:
    """The largest change in the still-encoded separation, with its CI and noise floor."""
    enc = cmp.encoded
    finite = [i for i, d in enumerate(enc.drop) if d == d]
    if not finite:
        return "no layer is defined"
    i = max(finite, key=lambda j: abs(enc.drop[j]))
    floor = (
        f"replicate drift {_f(enc.floor[i])}"
        if enc.floor is not None
        else "no seed replicate, so no noise floor"
    )
    kind = "drop" if enc.drop[i] >= 0 else "rise"
    return (
        f"largest {kind} at layer {cmp.layers[i]}: d {_f(enc.a[i], 2)} → {_f(enc.b[i], 2)} "
        f"(Δ {_f(enc.drop[i])} [{_f(enc.lo[i])}, {_f(enc.hi[i])}], relative "
        f"{_f(cmp.relative[i], 2)}; {floor})"
    )


def verdict_sentence(cmp: StageComparison) -> str:
    """Which happened where, for one stage pair: verdict bands, then the largest change."""
    bands = "; ".join(f"{_layers(a, b)}: {v}" for a, b, v in verdict_bands(cmp))
    return f"{cmp.stage_a} → {cmp.stage_b}: {bands}. The {_strongest(cmp)}."


def _concentration_sentences(findings: Findings) -> list[str]:
    out = []
    for index in findings.concentration:
        o = index.overall
        if index.concentrated:
            verdict = f"domain-concentrated: {index.first} weakened more than {index.second}"
        elif o.hi < 0:
            verdict = f"{index.second} weakened more than {index.first}"
        else:
            verdict = "not shown to differ (the interval covers 0)"
        out.append(f"{index.label}, relative weakening averaged over layers: {_ci(o)} → {verdict}.")
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
            f"{causal.ablate_layers} raised the compassion margin ({_sc(ablated, True, 4)}); this "
            "direction does not carry the preference the way the weakening claim assumes."
        )
    if causal.margin_slope.hi < 0:
        flags.append(
            f"Contradiction: adding {causal.parent}'s direction to {causal.stage} lowered the "
            f"compassion margin (slope {_sc(causal.margin_slope, True, 4)} per alpha)."
        )
    return flags


def answer(inputs: ReportInputs) -> list[str]:
    """The report's opening: what happened where in the headline pair, and whether it is
    specific to the concept and the arm."""
    f = inputs.findings
    cmp = f.primary
    a, b = f.primary_pair
    beh = f.behaviour_changes.get(pair_key(a, b))
    first = f"Compassion ({f.primary_dataset}), {verdict_sentence(cmp)}"
    second = (
        f"Judged on the separation along each stage's own cross-fitted direction (paired group "
        f"bootstrap, {cmp.n_boot} resamples over {cmp.n_groups} groups, Holm α = {cmp.alpha}, "
        f"{_pct(f)}); a change counts only when it also exceeds the seed-replicate drift."
    )
    if beh is not None:
        second += (
            f" Behaviourally, the compassion preference changed by {_ci(beh.compassion)} "
            f"(share) and {_ci(beh.margin)} (mean margin; {behaviour_verdict(beh)}), "
            f"helpfulness loss by {_ci(beh.helpfulness_loss)}."
        )
    return [first, second, *_concentration_sentences(f), *causal_flags(inputs.causal)]


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False
    )


def _summary_answer(inputs: ReportInputs) -> list[str]:
    out: list[str] = []
    for para in answer(inputs):
        out += [*_wrap(para), ""]
    return out


def _summary_verdicts(inputs: ReportInputs) -> list[str]:
    f = inputs.findings
    out = ["Verdicts per stage pair (noise floor = drift between a stage and its seed replicate):"]
    for name, concept in f.concepts.items():
        for cmp in concept.comparisons.values():
            out += _wrap(f"{name}: {verdict_sentence(cmp)}", "  ")
            for i, reason in cmp.undefined.items():
                out += _wrap(f"undefined at layer {cmp.layers[int(i)]}: {reason}", "    ")
    return [*out, ""]


def _summary_behaviour(inputs: ReportInputs) -> list[str]:
    """Share, mean margin and helpfulness loss per stage; paired changes; not the LLM judge."""
    f = inputs.findings
    first = next(iter(inputs.behaviour.values()), None)
    source = f" {len(first.item_ids)} eval items from {first.eval_source}," if first else ""
    out = _wrap(
        f"Behaviour per stage ({_pct(f)},{source} share of items preferring the compassionate "
        "continuation, mean log-prob margin in nats/token, helpfulness loss in nats/token):"
    )
    width = max(len(s) for s in f.stages)
    for stage in f.stages:
        beh = f.behaviour[stage]
        out.append(
            f"  {stage:<{width}}  {_ci(beh.compassion)}   {_sc(beh.margin, True, 4)}   "
            f"{_ci(beh.helpfulness_loss)}"
        )
    for key, ch in f.behaviour_changes.items():
        out += _wrap(
            f"{key}: Δ mean margin {_sc(ch.margin, True, 4)} ({behaviour_verdict(ch)}), Δ share "
            f"{_sc(ch.compassion, True)}, Δ helpfulness loss {_sc(ch.helpfulness_loss, True)} "
            f"(paired over {ch.n_items} items)",
            "  ",
        )
    return [*out, *_wrap(NOT_JUDGE, "  "), ""]


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


def _summary_causal(inputs: ReportInputs) -> list[str]:
    """The dose-response's slopes and ablation, when `valuetrace causal` has run."""
    rec = inputs.causal
    if rec is None:
        return []
    text = (
        f"Causal dose-response ({rec.stage}, {rec.parent}'s direction at layer {rec.add_layer}, "
        f"alpha in class gaps of {rec.scale:.3g}): margin slope {_sc(rec.margin_slope, True, 4)} "
        f"nats/token per alpha, share slope {_sc(rec.compassion_slope, True)} per alpha "
        f"({round(100 * rec.ci)}% CI, {rec.n_items} items); ablating it at layers "
        f"{rec.ablate_layers} moves the margin by {_sc(rec.ablation.margin_change, True, 4)}."
    )
    return [*_wrap(text), *[line for flag in causal_flags(rec) for line in _wrap(flag, "  ")], ""]


def _summary_probes(inputs: ReportInputs) -> list[str]:
    f = inputs.findings
    out = []
    for name, concept in f.concepts.items():
        out.append(f"Probe quality per layer, {name} ({concept.concept}): held-out accuracy/AUROC")
        width = max(len(s) for s in f.stages)
        cols = concept.layers
        per_line = max(1, (WIDTH - width - 2) // 13)  # 13 characters a cell
        for start in range(0, len(cols), per_line):
            chunk = range(start, min(start + per_line, len(cols)))
            out.append("  " + " " * width + "".join(f"  L{cols[i]:<10}" for i in chunk))
            for stage in f.stages:
                p = concept.probes[stage]
                cells = "".join(f"  {p.accuracy[i]:.2f}/{p.auroc[i]:.2f}  " for i in chunk)
                out.append(f"  {stage:<{width}}{cells}")
        out.append("")
    return out


def surface_summary(records: Sequence[SurfaceRecord]) -> list[str]:
    """Summary lines per probe set: surface baselines, best layer's gain, flag (100 columns)."""
    lines: list[str] = []
    for rec in records:
        base = rec.best_baseline
        scores = ", ".join(
            f"{b.name} {b.auroc:.3f} [{b.auroc_lo:.3f}, {b.auroc_hi:.3f}]" for b in rec.baselines
        )
        text = f"Surface baselines — {rec.dataset} (raw-text AUROC, probes' folds): {scores}."
        for st in rec.stages:
            i = st.layers.index(st.best_layer)
            text += (
                f" {st.stage}: best layer L{st.best_layer} {st.best_auroc:.3f}, gain over "
                f"{base.name} {st.gain[i]:+.3f} [{st.gain_lo[i]:+.3f}, {st.gain_hi[i]:+.3f}]"
                f"{' FLAGGED' if st.flagged else ''}."
            )
        if rec.flagged_stages:
            text += (
                f" FLAG: the {base.name} baseline comes within {rec.margin:.2f} AUROC of the best "
                f"layer at {', '.join(rec.flagged_stages)}: there the layer curve shows nothing "
                "the raw text does not."
            )
        top = [f.ngram for f in rec.features if f.weight > 0][:5]
        if top:
            text += f" Top n-grams toward label 1: {', '.join(top)}."
        lines.append("")
        lines += textwrap.wrap(text, width=100, subsequent_indent="  ")
    return lines


def _summary_surface(inputs: ReportInputs) -> list[str]:
    return [*surface_summary(inputs.surface), ""] if inputs.surface else []


SUMMARY_SECTIONS: list[Callable[[ReportInputs], list[str]]] = [
    _summary_answer,
    _summary_verdicts,
    _summary_behaviour,
    _summary_probes,
    _summary_surface,
    _summary_causal,
]


def summary_text(inputs: ReportInputs) -> str:
    """The plain-language summary the CLI prints at the end of a run (lines ≤ 100 columns)."""
    rule = "=" * 72
    lines = ["", rule, "valuetrace summary", rule]
    for section in SUMMARY_SECTIONS:
        lines += section(inputs)
    lines.append(rule)
    return "\n".join(lines)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


def _figures(inputs: ReportInputs, keys: Sequence[str]) -> list[str]:
    return [_img(inputs.figures[k], k.replace("_", " ")) for k in keys if k in inputs.figures]


def _html_answer(inputs: ReportInputs) -> str:
    paras = "".join(f"<p>{html.escape(s)}</p>" for s in answer(inputs))
    return f"<h1>valuetrace report</h1><div class='answer'>{paras}</div>"


def _html_behaviour(inputs: ReportInputs) -> str:
    """Per-stage share, mean margin and helpfulness loss, and the paired changes."""
    f = inputs.findings
    first = next(iter(inputs.behaviour.values()), None)
    items = (
        f"On {len(first.item_ids)} held-out eval items ({html.escape(first.eval_source)}): "
        if first
        else ""
    )
    rows = [
        [s, _ci(b.compassion), _sc(b.margin, True, 4), _ci(b.helpfulness_loss)]
        for s, b in f.behaviour.items()
    ]
    changes = [
        [
            k,
            _sc(c.margin, True, 4),
            behaviour_verdict(c),
            _sc(c.compassion, True),
            _sc(c.helpfulness_loss, True),
        ]
        for k, c in f.behaviour_changes.items()
    ]
    return "".join(
        [
            "<h2>Behaviour per stage</h2>",
            f"<p>{items}the <em>margin</em> of an item is the mean per-token log-probability of "
            "its compassionate continuation minus that of its dismissive one (nats/token); the "
            "<em>share</em> is the fraction of items with a positive margin. Helpfulness loss: "
            "mean per-token loss on held-out helpfulness responses (lower is better). "
            f"{_pct(f)}s from an item bootstrap. <strong>{html.escape(NOT_JUDGE)}</strong></p>",
            _table(
                ["stage", "share preferring compassionate", "mean margin", "helpfulness loss"], rows
            ),
            "<p>Changes between compared stages (B − A, same items, paired item bootstrap):</p>",
            _table(
                ["stages", "Δ mean margin", "judged against", "Δ share", "Δ helpfulness loss"],
                changes,
            ),
            *_figures(inputs, ["behaviour"]),
        ]
    )


def _html_generations(inputs: ReportInputs) -> str:
    """Each stage's greedy answers to the fixed prompts, side by side per prompt."""
    records = inputs.behaviour
    stages = [s for s in inputs.findings.stages if s in records]
    if not stages or not records[stages[0]].generations:
        return ""
    first = records[stages[0]]
    rows = [
        [
            f"[{g.kind}] {g.prompt}",
            *[records[s].generations[i].answer or "(no text before EOS)" for s in stages],
        ]
        for i, g in enumerate(first.generations)
    ]
    template = "each stage's chat template" if first.chat else "the plain prompt format"
    return (
        "<h2>Greedy answers per stage</h2>"
        f"<p>Greedy decoding under {template}, fixed held-out prompts (animal welfare and "
        f"everyday). {html.escape(NOT_JUDGE)}</p>" + _table(["prompt", *stages], rows)
    )


def _comparison_rows(cmp: StageComparison) -> list[list[object]]:
    rows = []
    for i, layer in enumerate(cmp.layers):
        enc, rot, cos = cmp.encoded, cmp.rotation, cmp.cosine
        rows.append(
            [
                layer,
                f"{_f(enc.a[i], 2)} → {_f(enc.b[i], 2)}",
                f"{_f(enc.drop[i])} [{_f(enc.lo[i])}, {_f(enc.hi[i])}]",
                "—" if enc.floor is None else _f(enc.floor[i]),
                _f(cmp.parent.b[i], 2),
                f"{_f(rot.drop[i])} [{_f(rot.lo[i])}, {_f(rot.hi[i])}]",
                "—" if rot.floor is None else _f(rot.floor[i]),
                f"{_f(cos.value[i])} [{_f(cos.lo[i])}, {_f(cos.hi[i])}]",
                _f(cos.shuffled[i]),
                _f(cmp.cka[i]),
                cmp.verdicts[i]
                + (f" ({cmp.undefined[str(i)]})" if str(i) in cmp.undefined else ""),
            ]
        )
    return rows


def _concept_section(inputs: ReportInputs, name: str, concept: ConceptFindings) -> str:
    f = inputs.findings
    layers = concept.layers
    parts = [f"<h2>{html.escape(name)} ({html.escape(concept.concept)})</h2>"]
    parts.append("<h3>Probes</h3>")
    rows = []
    for stage in f.stages:
        p = concept.probes[stage]
        for i, layer in enumerate(layers):
            rows.append(
                [
                    stage,
                    layer,
                    f"{_f(p.accuracy[i])} [{_f(p.accuracy_lo[i])}, {_f(p.accuracy_hi[i])}]",
                    f"{_f(p.auroc[i])} [{_f(p.auroc_lo[i])}, {_f(p.auroc_hi[i])}]",
                    "—" if p.control_accuracy is None else _f(p.control_accuracy[i]),
                    "—" if p.selectivity is None else _f(p.selectivity[i]),
                ]
            )
    parts += _figures(inputs, [f"{name}_accuracy", f"{name}_selectivity"])
    parts.append(
        f"<details><summary>Per-layer table ({_pct(f)}s, group bootstrap)</summary>"
        + _table(["stage", "layer", "accuracy", "AUROC", "control acc.", "selectivity"], rows)
        + "</details>"
    )
    parts.append("<h3>Weakening, rotation and drift per stage pair</h3>")
    parts.append(
        "<p>d A → B: Cohen's d along each stage's own cross-fitted difference-of-means "
        "direction (still encoded); its drop is weakening. B on A's: B's separation along A's "
        "direction (parent direction expressed). Rotation gap: own − cross separation "
        "(~0 when the direction is kept). Floors: the same change between a stage and its seed "
        f"replicate. Cosine of the full-data directions with its {_pct(f)}; random unit "
        f"vectors of this width fall in "
        f"[{_f(next(iter(concept.comparisons.values())).cosine.random_band[0])}, "
        f"{_f(next(iter(concept.comparisons.values())).cosine.random_band[1])}]; 'shuffled' "
        "is the same quantile of |cosine| under within-group shuffled labels.</p>"
    )
    header = [
        "layer",
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
    for key, cmp in concept.comparisons.items():
        parts.append(f"<h4>{html.escape(key)}</h4><p>{html.escape(verdict_sentence(cmp))}</p>")
        parts.append(_table(header, _comparison_rows(cmp)))
    parts += _figures(
        inputs,
        [
            f"{name}_encoded",
            f"{name}_rotation",
            f"{name}_cosine",
            f"{name}_cka",
            f"{name}_transfer",
        ],
    )
    return "\n".join(parts)


def _html_concepts(inputs: ReportInputs) -> str:
    return "\n".join(
        _concept_section(inputs, name, c) for name, c in inputs.findings.concepts.items()
    )


def _html_concentration(inputs: ReportInputs) -> str:
    f = inputs.findings
    if not f.concentration:
        return ""
    rows = [[c.label, _ci(c.overall), *[_ci(v) for v in c.per_layer]] for c in f.concentration]
    layers = next(iter(f.concepts.values())).layers
    return (
        "<h2>Concentration</h2><p>Relative weakening (drop / parent's separation) of the first "
        "minus the second, per layer and averaged over layers. 'Domain-concentrated' is said "
        f"only when the overall {_pct(f)} excludes 0.</p>"
        + "".join(f"<p>{html.escape(s)}</p>" for s in _concentration_sentences(f))
        + _table(["index", "overall", *[f"L{layer}" for layer in layers]], rows)
    )


def _html_projection(inputs: ReportInputs) -> str:
    """Per-item projection gap vs margin (Pearson r) beside the random-direction null."""
    f = inputs.findings
    if not f.projection:
        return ""
    rows = [
        [
            s,
            v.layer,
            _f(v.r),
            f"[{_f(v.lo)}, {_f(v.hi)}]",
            _f(v.null_abs_r),
            "yes" if abs(v.r) > v.null_abs_r else "no",
            v.n,
        ]
        for s, v in f.projection.items()
    ]
    return (
        "<h2>Behaviour vs representation</h2><p>Per eval item: the gap between its compassionate "
        "and dismissive continuations projected on the stage's compassion direction, against "
        "its log-prob margin. The null: |r| reached by random unit directions on the same data "
        "(its upper quantile at the CI level); a direction's r means something only above it.</p>"
        + _table(["stage", "layer", "Pearson r", _pct(f), "null |r|", "beats null", "items"], rows)
    )


def _html_causal(inputs: ReportInputs) -> str:
    """The dose-response table, slopes, contradiction flags and figure."""
    rec = inputs.causal
    if rec is None:
        return ""
    rows = [
        [
            "ablated" if math.isnan(p.alpha) else f"{p.alpha:+g}",
            _sc(p.compassion),
            _sc(p.margin, True, 4),
            _sc(p.margin_change, True, 4),
            _sc(p.helpfulness_loss),
        ]
        for p in [*rec.points, rec.ablation]
    ]
    flags = "".join(f"<p><b>{html.escape(s)}</b></p>" for s in causal_flags(rec))
    return (
        "<h2>Causal dose-response</h2>"
        f"<p>{html.escape(rec.stage)} with alpha × {html.escape(rec.parent)}'s compassion "
        f"direction ({html.escape(rec.dataset)}, unit mean-difference direction scaled by its "
        f"class gap {rec.scale:.3g}) added at layer {rec.add_layer}, and with that direction "
        f"ablated at layers {rec.ablate_layers}. {rec.n_items} eval items, {rec.n_help_items} "
        f"helpfulness items, {round(100 * rec.ci)}% item-bootstrap CIs. Slope of the mean "
        f"margin: {_sc(rec.margin_slope, True, 4)} nats/token per alpha; of the share: "
        f"{_sc(rec.compassion_slope, True)} per alpha.</p>"
        + flags
        + _table(
            ["alpha", "share", "mean margin", "margin change vs alpha 0", "helpfulness loss"], rows
        )
        + "".join(_figures(inputs, [k for k in inputs.figures if k.startswith("causal")]))
    )


def _html_extra_figures(inputs: ReportInputs) -> str:
    return "".join(_figures(inputs, [k for k in inputs.figures if k.startswith("umap")]))


def _html_provenance(inputs: ReportInputs) -> str:
    f = inputs.findings
    replicates = "".join(
        f"<li>{html.escape(r)}: seed replicate of {html.escape(o)}</li>"
        for r, o in f.replicate_of.items()
    )
    return (
        "<h2>Provenance</h2>"
        + (f"<ul>{replicates}</ul>" if replicates else "")
        + f"<pre>{html.escape(json.dumps(inputs.lineage, indent=1))}</pre>"
    )


def surface_section(records: Sequence[SurfaceRecord]) -> str:
    """HTML: each probe set's surface baselines, gain per layer and stage, top n-grams, flag."""
    if not records:
        return ""
    parts = [
        "<h2>Surface baselines (confounds)</h2>",
        "<p>Classifiers that see only the raw text, scored out of fold on the probes' own grouped "
        "folds: a word n-gram logistic regression (tf-idf, vocabulary fitted on training folds) "
        "and a length-only one (characters and words). Gain = a layer's probe AUROC minus the "
        "best baseline's, on the same examples, with a paired group-bootstrap CI. A probe set is "
        "flagged when the best baseline comes within the configured margin of a stage's best "
        "layer.</p>",
    ]
    for rec in records:
        parts.append(f"<h3>{html.escape(rec.dataset)} ({html.escape(rec.concept)})</h3>")
        if rec.flagged_stages:
            parts.append(
                f"<p><b>Flagged</b> at {html.escape(', '.join(rec.flagged_stages))}: the "
                f"{html.escape(rec.best_baseline.name)} baseline is within {rec.margin:.2f} "
                "AUROC of the best layer.</p>"
            )
        level = f"{rec.ci:.0%} CI"
        parts.append(
            _table(
                ["baseline", "AUROC", level],
                [
                    [b.name, f"{b.auroc:.3f}", f"[{b.auroc_lo:.3f}, {b.auroc_hi:.3f}]"]
                    for b in rec.baselines
                ],
            )
        )
        rows = [
            [
                st.stage,
                layer,
                f"{st.probe_auroc[i]:.3f}",
                f"{st.gain[i]:+.3f} [{st.gain_lo[i]:+.3f}, {st.gain_hi[i]:+.3f}]",
            ]
            for st in rec.stages
            for i, layer in enumerate(st.layers)
        ]
        parts.append(_table(["stage", "layer", "probe AUROC", f"gain ({level})"], rows))
        parts.append(
            _table(
                ["n-gram", "weight (+ toward label 1)"],
                [[f.ngram, f"{f.weight:+.3f}"] for f in rec.features],
            )
        )
    return "\n".join(parts)


def _html_surface(inputs: ReportInputs) -> str:
    return surface_section(inputs.surface)


HTML_SECTIONS: list[Callable[[ReportInputs], str]] = [
    _html_answer,
    _html_behaviour,
    _html_generations,
    _html_surface,
    _html_concepts,
    _html_concentration,
    _html_projection,
    _html_causal,
    _html_extra_figures,
    _html_provenance,
]

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#111}h1{font-size:1.6em}table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
td,th{border:1px solid #999;padding:2px 6px;text-align:right}th{background:#eee}
figure{margin:1em 0}img{max-width:100%}.answer{background:#f4f4f4;border-left:4px solid #333;
padding:.6em 1em}figcaption{font-size:.8em;color:#444}"""


def render_html(inputs: ReportInputs, out: Path) -> Path:
    """Write one self-contained HTML report (figures embedded as base64 PNGs)."""
    body = "".join(section(inputs) for section in HTML_SECTIONS)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>valuetrace report</title>"
        f"<style>{CSS}</style></head><body>{body}</body></html>"
    )
    out.write_text(page)
    return out


def lineage_summary(records: Sequence[StageRecord]) -> dict[str, Any]:
    """Plain per-stage provenance for the report (parent, checkpoint, hashes, metrics)."""
    return {
        r.name: {
            "parent": r.parent,
            "checkpoint": r.checkpoint,
            "weights_hash": r.weights_hash,
            "data_hash": r.data_hash,
            "metrics": r.metrics,
        }
        for r in records
    }
