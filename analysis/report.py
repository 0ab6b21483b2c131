"""The researcher-facing outputs: a plain-text summary and one self-contained HTML report.

Both are rendered from `metrics.json` (every number the analysis produced) and the figure
files, so the report never computes anything itself and every number in it can be traced.
"""

from __future__ import annotations

import base64
import html
import json
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from valuetrace.analysis.behaviour import NOT_JUDGE, BehaviourChange, BehaviourResult, Score
from valuetrace.analysis.causal import CausalRecord
from valuetrace.analysis.findings import pair_key
from valuetrace.probing.surface import SurfaceRecord

from valuetrace.records import from_plain, record_from_dict

FMT = "{:.3f}"


def _f(x: float | None) -> str:
    return "n/a" if x is None else FMT.format(x)


def _ci(score: dict[str, float]) -> str:
    return f"{score['value']:.3f} [{score['lo']:.3f}, {score['hi']:.3f}]"


def _cell(table: dict[str, list[float]], metric: str, i: int) -> str:
    """'value [lo, hi]' of one per-layer metric at layer index i."""
    return (
        f"{table[metric][i]:.3f} [{table[metric + '_lo'][i]:.3f}, {table[metric + '_hi'][i]:.3f}]"
    )


def _loc_phrase(loc: dict[str, Any]) -> tuple[str, bool]:
    """One clause on where a stage pair's probe AUROC dropped, and whether any drop is real."""
    drops = loc[loc["metric"]]
    largest = drops["largest_drop"]
    first = drops["first_significant"]
    layer = largest["layer"]
    drop = drops["drop"][layer] if layer is not None else None
    if first["layer"] is None:
        return (
            f"no layer's drop is significant after Holm correction (largest drop "
            f"{_f(drop)} at layer {layer})",
            False,
        )
    return (
        f"it weakened first at layer {first['layer']} (bootstrap range {first['lo']}–"
        f"{first['hi']}) and most at layer {layer} (drop {_f(drop)}, 95% CI "
        f"[{_f(drops['lo'][layer])}, {_f(drops['hi'][layer])}])",
        True,
    )


def answer(metrics: dict[str, Any]) -> list[str]:
    """The report's opening: where compassion weakened, how sure we are, whether it is specific."""
    primary = metrics["primary"]
    concept = metrics["concepts"][primary["dataset"]]
    a, b = primary["pair"]
    loc = concept["localization"][pair_key(a, b)]
    where, real = _loc_phrase(loc)
    metric_name = "probe AUROC" if loc["metric"] == "auroc" else "class separation"
    first = f"From {a} to {b}, the compassion representation ({metric_name}): {where}."
    beh = metrics["behaviour"]
    n_sig = sum(loc[loc["metric"]]["significant"])
    second = (
        f"{n_sig} of {len(loc[loc['metric']]['significant'])} layers drop significantly "
        f"(paired group bootstrap, {loc['n_boot']} resamples over {loc['n_groups']} pairs, "
        f"Holm α={loc['alpha']}); behaviourally the compassion preference went from "
        f"{_ci(beh[a]['compassion'])} to {_ci(beh[b]['compassion'])}."
    )
    third = metrics.get("concentration", {}).get("sentence", "")
    if not real and not third:
        third = "With no significant weakening, there is nothing to attribute to one domain."
    return [first, second, third]


def summary_text(metrics: dict[str, Any], surface: Sequence[SurfaceRecord] = ()) -> str:
    """The plain-language summary the CLI prints at the end of a run."""
    lines = ["", "=" * 72, "valuetrace summary", "=" * 72]
    lines += [" ".join(answer(metrics)), ""]
    lines += behaviour_summary_lines(metrics)
    lines += causal_summary_lines(metrics)
    for name, concept in metrics["concepts"].items():
        lines.append("")
        lines.append(
            f"Probe quality per layer — {name} ({concept['concept']}), held-out accuracy / AUROC:"
        )
        layers = concept["layers"]
        lines.append("  " + " " * 10 + "".join(f"  L{layer:<10}" for layer in layers))
        for stage in metrics["stages"]:
            probe = concept["probes"][stage]
            cells = "".join(
                f"  {probe['accuracy'][i]:.2f}/{probe['auroc'][i]:.2f}  "
                for i in range(len(layers))
            )
            lines.append(f"  {stage:<10}{cells}")
        for key, loc in concept["localization"].items():
            clause, _ = _loc_phrase(loc)
            lines.append(f"  {key}: {clause}")
    lines += surface_summary(surface)
    lines.append("=" * 72)
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


def _concept_section(
    name: str, concept: dict[str, Any], stages: list[str], figures: dict[str, Path]
) -> str:
    layers = concept["layers"]
    parts = [f"<h2>Probes: {html.escape(name)} ({html.escape(concept['concept'])})</h2>"]
    rows = []
    for stage in stages:
        p = concept["probes"][stage]
        for i, layer in enumerate(layers):
            rows.append(
                [
                    stage,
                    layer,
                    _cell(p, "accuracy", i),
                    _cell(p, "auroc", i),
                    f"{p['control_accuracy'][i]:.3f}",
                    _cell(p, "selectivity", i),
                ]
            )
    for key in (f"{name}_drop", f"{name}_accuracy", f"{name}_selectivity"):
        if key in figures:
            parts.append(_img(figures[key], key.replace("_", " ")))
    parts.append(
        "<details><summary>Per-layer table (95% CIs, group bootstrap)</summary>"
        + _table(["stage", "layer", "accuracy", "AUROC", "control acc.", "selectivity"], rows)
        + "</details>"
    )
    parts.append("<h3>Direction similarity and CKA</h3>")
    null = concept["cosine_null"]
    parts.append(
        f"<p>Cosine between stages' compassion directions per layer (sign kept: negative means "
        f"flipped). Random directions of this width fall within [{null[0]:.3f}, {null[1]:.3f}] "
        "95% of the time.</p>"
    )
    cos_rows = [
        [key, kind, *[f"{v:.3f}" for v in vals]]
        for key, by_kind in concept["cosine"].items()
        for kind, vals in by_kind.items()
    ]
    parts.append(_table(["stages", "direction", *[f"L{layer}" for layer in layers]], cos_rows))
    cka_rows = [[key, *[f"{v:.3f}" for v in vals]] for key, vals in concept["cka"].items()]
    parts.append("<p>Debiased linear CKA between stages on the same examples:</p>")
    parts.append(_table(["stages", *[f"L{layer}" for layer in layers]], cka_rows))
    for key in (f"{name}_cosine", f"{name}_cka", f"{name}_transfer"):
        if key in figures:
            parts.append(_img(figures[key], key.replace("_", " ")))
    parts.append("<h3>Localisation</h3>")
    loc_rows = []
    for key, loc in concept["localization"].items():
        for metric in ("auroc", "separation"):
            d = loc[metric]
            sig = [layers[i] for i, s in enumerate(d["significant"]) if s]
            loc_rows.append(
                [
                    key,
                    metric,
                    sig or "none",
                    d["first_significant"]["layer"],
                    d["largest_drop"]["layer"],
                    max(d["drop"]),
                ]
            )
    parts.append(
        _table(
            ["stages", "metric", "significant layers", "first", "largest drop", "max drop"],
            loc_rows,
        )
    )
    return "\n".join(parts)


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


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#111}h1{font-size:1.6em}table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
td,th{border:1px solid #999;padding:2px 6px;text-align:right}th{background:#eee}
figure{margin:1em 0}img{max-width:100%}.answer{background:#f4f4f4;border-left:4px solid #333;
padding:.6em 1em}figcaption{font-size:.8em;color:#444}"""


def render_html(
    metrics: dict[str, Any],
    figures: dict[str, Path],
    out: Path,
    surface: Sequence[SurfaceRecord] = (),
) -> Path:
    """Write one self-contained HTML report (figures embedded as base64 PNGs)."""
    stages = metrics["stages"]
    sections = [
        "<h1>valuetrace report</h1>",
        '<div class="answer">'
        + "".join(f"<p>{html.escape(s)}</p>" for s in answer(metrics))
        + "</div>",
        behaviour_section(metrics),
    ]
    if "behaviour" in figures:
        sections.append(_img(figures["behaviour"], "behaviour per stage"))
    sections.append(generations_section(metrics))
    for name, concept in metrics["concepts"].items():
        sections.append(_concept_section(name, concept, stages, figures))
    sections.append(surface_section(surface))
    extra = [k for k in figures if k.startswith(("umap", "projection_vs_behaviour"))]
    sections.append(behaviour_vs_projection_section(metrics))
    sections.append(causal_section(metrics, figures))
    for key in extra:
        sections.append(_img(figures[key], key.replace("_", " ")))
    sections.append("<h2>Provenance</h2>")
    sections.append(f"<pre>{html.escape(json.dumps(metrics['lineage'], indent=1))}</pre>")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>valuetrace report</title>"
        f"<style>{CSS}</style></head><body>{''.join(sections)}</body></html>"
    )
    out.write_text(page)
    return out


# ---- behaviour and causal sections -----------------------------------------------------------

WIDTH = 100


def _records(metrics: dict[str, Any]) -> dict[str, BehaviourResult]:
    """The per-stage behaviour records analyze copied into metrics, typed again."""
    return {
        s: record_from_dict(BehaviourResult, metrics["behaviour"][s], f"metrics.behaviour.{s}")
        for s in metrics["stages"]
    }


def _changes(metrics: dict[str, Any]) -> list[BehaviourChange]:
    return [
        from_plain(BehaviourChange, c, "metrics.behaviour_changes")
        for c in metrics.get("behaviour_changes", [])
    ]


def _sc(score: Score, signed: bool = False, digits: int = 3) -> str:
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{fmt.format(score.value)} [{fmt.format(score.lo)}, {fmt.format(score.hi)}]"


def _excludes_zero(score: Score) -> bool:
    return score.lo > 0 or score.hi < 0


def _wrap(text: str, indent: str = "  ") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ")


def behaviour_summary_lines(metrics: dict[str, Any]) -> list[str]:
    """Summary lines: share, mean margin and helpfulness loss per stage; paired margin changes."""
    records = _records(metrics)
    first = next(iter(records.values()))
    pct = round(100 * first.ci)
    lines = _wrap(
        f"Behaviour per stage ({pct}% CI, {len(first.item_ids)} eval items from "
        f"{first.eval_source}): share of items preferring the compassionate continuation, mean "
        "log-prob margin (nats/token), helpfulness loss (nats/token):",
        "",
    )
    for stage, rec in records.items():
        lines.append(
            f"  {stage:<10} {_sc(rec.compassion)}   {_sc(rec.margin, True, 4)}   "
            f"{_sc(rec.helpfulness_loss)}"
        )
    for change in _changes(metrics):
        moved = "CI excludes 0" if _excludes_zero(change.margin) else "CI covers 0"
        lines += _wrap(
            f"{change.b} - {change.a}: margin {_sc(change.margin, True, 4)} ({moved}), share "
            f"{_sc(change.compassion, True)}, helpfulness loss "
            f"{_sc(change.helpfulness_loss, True)} (paired over {change.n_items} items)"
        )
    lines += _wrap(NOT_JUDGE)
    return [*lines, ""]


def causal_summary_lines(metrics: dict[str, Any]) -> list[str]:
    """Summary lines of the dose-response, when `valuetrace causal` has run."""
    if not metrics.get("causal"):
        return []
    rec = record_from_dict(CausalRecord, metrics["causal"], "analysis/causal.json")
    pct = round(100 * rec.ci)
    ablated = rec.ablation.margin_change
    text = (
        f"Causal dose-response ({rec.stage}, {rec.parent}'s direction at layer {rec.add_layer}, "
        f"alpha in class gaps of {rec.scale:.3g}): margin slope {_sc(rec.margin_slope, True, 4)} "
        f"nats/token per alpha, share slope {_sc(rec.compassion_slope, True)} per alpha "
        f"({pct}% CI, {rec.n_items} items); ablating it at layers {rec.ablate_layers} moves the "
        f"margin by {_sc(ablated, True, 4)}."
    )
    return [*_wrap(text, ""), ""]


def behaviour_section(metrics: dict[str, Any]) -> str:
    """HTML: per-stage share, mean margin and helpfulness loss, and the paired changes."""
    records = _records(metrics)
    first = next(iter(records.values()))
    pct = round(100 * first.ci)
    parts = [
        "<h2>Behaviour per stage</h2>",
        f"<p>On {len(first.item_ids)} held-out eval items ({html.escape(first.eval_source)}): "
        "the <em>margin</em> of an item is the mean per-token log-probability of its "
        "compassionate continuation minus that of its dismissive one (nats/token); the "
        "<em>share</em> is the fraction of items with a positive margin. Helpfulness loss: mean "
        "per-token loss on held-out helpfulness responses (lower is better). "
        f"{pct}% percentile item-bootstrap CIs ({first.n_boot} resamples). "
        f"<strong>{html.escape(NOT_JUDGE)}</strong></p>",
        _table(
            ["stage", "share preferring compassionate", "mean margin", "helpfulness loss"],
            [
                [s, _sc(r.compassion), _sc(r.margin, True, 4), _sc(r.helpfulness_loss)]
                for s, r in records.items()
            ],
        ),
    ]
    changes = _changes(metrics)
    if changes:
        parts.append(
            f"<p>Paired changes between compared stages (later minus earlier, same items, "
            f"{pct}% CI):</p>"
        )
        parts.append(
            _table(
                ["stages", "margin change", "share change", "helpfulness loss change"],
                [
                    [
                        f"{c.a} → {c.b}",
                        _sc(c.margin, True, 4),
                        _sc(c.compassion, True),
                        _sc(c.helpfulness_loss, True),
                    ]
                    for c in changes
                ],
            )
        )
    return "\n".join(parts)


def generations_section(metrics: dict[str, Any]) -> str:
    """HTML: each stage's greedy answers to the fixed prompts, side by side per prompt."""
    records = _records(metrics)
    stages = list(records)
    first = records[stages[0]]
    if not first.generations:
        return ""
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


def behaviour_vs_projection_section(metrics: dict[str, Any]) -> str:
    """HTML: per-item projection gap vs margin (Pearson r) beside the random-direction null."""
    rows = metrics.get("behaviour_vs_projection")
    if not rows:
        return ""
    body = [
        [
            s,
            v["layer"],
            _f(v["r"]),
            f"[{_f(v['lo'])}, {_f(v['hi'])}]",
            _f(v.get("null_abs_r")),
            "yes" if abs(v["r"]) > v.get("null_abs_r", math.inf) else "no",
            v["n"],
        ]
        for s, v in rows.items()
    ]
    return (
        "<h2>Behaviour vs representation</h2><p>Per eval item: the gap between its compassionate "
        "and dismissive continuations projected on the stage's compassion direction, against "
        "its log-prob margin. The null: |r| reached by random unit directions on the same data "
        "(its upper quantile at the CI level); a direction's r means something only above it.</p>"
        + _table(
            ["stage", "layer", "Pearson r", "CI", "null |r| band", "beats null", "items"], body
        )
    )


def causal_section(metrics: dict[str, Any], figures: dict[str, Path]) -> str:
    """HTML: the dose-response table, slopes and figure, when `valuetrace causal` has run."""
    if not metrics.get("causal"):
        return ""
    rec = record_from_dict(CausalRecord, metrics["causal"], "analysis/causal.json")
    pct = round(100 * rec.ci)
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
    parts = [
        "<h2>Causal dose-response</h2>",
        f"<p>{html.escape(rec.stage)} with alpha × {html.escape(rec.parent)}'s compassion "
        f"direction ({html.escape(rec.dataset)}, unit mean-difference direction scaled by its "
        f"class gap {rec.scale:.3g}) added at layer {rec.add_layer}, and with that direction "
        f"ablated at layers {rec.ablate_layers}. {rec.n_items} eval items, {rec.n_help_items} "
        f"helpfulness items, {pct}% item-bootstrap CIs. Slope of the mean margin: "
        f"{_sc(rec.margin_slope, True, 4)} nats/token per alpha; of the share: "
        f"{_sc(rec.compassion_slope, True)} per alpha.</p>",
        _table(
            ["alpha", "share", "mean margin", "margin change vs alpha 0", "helpfulness loss"], rows
        ),
    ]
    if "causal_dose_response" in figures:
        parts.append(_img(figures["causal_dose_response"], "causal dose-response"))
    return "\n".join(parts)
