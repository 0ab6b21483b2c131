"""The plain-text summary the CLI prints and writes to `summary.txt` (lines ≤ 100 columns).

One function per section, each returning its lines; add a section by writing another and
listing it in `SUMMARY_SECTIONS`. The words come from `valuetrace.analysis.report_words`, the
numbers from the findings (formatted by `valuetrace.analysis.report_model`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence

from valuetrace.analysis.anima.section import anima_section
from valuetrace.analysis.behaviour import NOT_JUDGE
from valuetrace.analysis.report_evidence import (
    concept_sources_lines,
    floor_sentences,
    trajectory_sentences,
)
from valuetrace.analysis.report_model import fmt_interval, signed
from valuetrace.analysis.report_text import render_text
from valuetrace.analysis.report_words import (
    ReportInputs,
    answer,
    behaviour_verdict,
    causal_flags,
    pct,
    transplant_sentences,
    verdict_sentence,
)
from valuetrace.probing.surface import SurfaceRecord
from valuetrace.stats import Interval

WIDTH = 100


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
                out += _wrap(f"undefined at layer {cmp.layers[i]}: {reason}", "    ")
    return [*out, ""]


def _summary_behaviour(inputs: ReportInputs) -> list[str]:
    """Share, mean margin and helpfulness loss per stage; paired changes; not the LLM judge."""
    f = inputs.findings
    first = next(iter(inputs.behaviour.values()), None)
    source = f" {len(first.item_ids)} eval items from {first.eval_source}," if first else ""
    out = _wrap(
        f"Behaviour per stage ({pct(f)},{source} share of items preferring the compassionate "
        "continuation, mean log-prob margin in nats/token, helpfulness loss in nats/token):"
    )
    width = max(len(s) for s in f.stages)
    for stage in f.stages:
        beh = f.behaviour[stage]
        out.append(
            f"  {stage:<{width}}  {fmt_interval(beh.compassion)}   "
            f"{signed(beh.margin, 4)}   {fmt_interval(beh.helpfulness_loss)}"
        )
    for key, ch in f.behaviour_changes.items():
        out += _wrap(
            f"{key}: Δ mean margin {signed(ch.margin, 4)} ({behaviour_verdict(ch)}), "
            f"Δ share {signed(ch.compassion)}, "
            f"Δ helpfulness loss {signed(ch.helpfulness_loss)} (paired over {ch.n_items} items)",
            "  ",
        )
    return [*out, *_wrap(NOT_JUDGE, "  "), ""]


def _summary_anima(inputs: ReportInputs) -> list[str]:
    """The ANIMA section as text (the same `Section` the HTML report shows), when it ran."""
    section = anima_section(inputs.anima)
    return [] if section is None else [*render_text(section, width=WIDTH), ""]


def _summary_causal(inputs: ReportInputs) -> list[str]:
    """The dose-response's slopes and ablation, when `valuetrace causal` has run."""
    rec = inputs.causal
    if rec is None:
        return []
    text = (
        f"Causal dose-response ({rec.stage}, {rec.parent}'s direction at layer {rec.add_layer}, "
        f"alpha in class gaps of {rec.scale:.3g}): margin slope "
        f"{signed(rec.margin_slope, 4)} nats/token per alpha, share slope "
        f"{signed(rec.compassion_slope)} per alpha ({round(100 * rec.ci)}% CI, {rec.n_items} "
        f"items); ablating it at layers {rec.ablate_layers} moves the margin by "
        f"{signed(rec.ablation.margin_change, 4)}."
    )
    return [*_wrap(text), *[line for flag in causal_flags(rec) for line in _wrap(flag, "  ")], ""]


def _summary_transplant(inputs: ReportInputs) -> list[str]:
    """Each causal transplant's recovery beside its control, when `valuetrace causal` ran."""
    rec = inputs.transplant
    if rec is None:
        return []
    out = _wrap(
        f"Causal transplant (the child's component along the parent's {rec.dataset} direction "
        f"set to the parent's at every position; {round(100 * rec.ci)}% CI, item bootstrap):"
    )
    return [*out, *[line for s in transplant_sentences(rec) for line in _wrap(s, "  ")], ""]


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
            f"{b.name} {fmt_interval(Interval(b.auroc, b.auroc_lo, b.auroc_hi))}"
            for b in rec.baselines
        )
        text = f"Surface baselines — {rec.dataset} (raw-text AUROC, probes' folds): {scores}."
        for st in rec.stages:
            i = st.layers.index(st.best_layer)
            text += (
                f" {st.stage}: best layer L{st.best_layer} {st.best_auroc:.3f}, gain over "
                f"{base.name} {signed(Interval(st.gain[i], st.gain_lo[i], st.gain_hi[i]))}"
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


def _summary_floor(inputs: ReportInputs) -> list[str]:
    """Which verdicts survive the neutral-arm floor, per pair (none without a neutral arm)."""
    head, *pairs = floor_sentences(inputs) or [""]
    if not head:
        return []
    return [*_wrap(head), *[line for s in pairs for line in _wrap(s, "  ")], ""]


def _summary_trajectories(inputs: ReportInputs) -> list[str]:
    """Per trajectory: the first step of each verdict, then each saved step."""
    record = inputs.trajectories
    if record is None:
        return []
    out: list[str] = []
    for t in record.trajectories:
        head, *steps = trajectory_sentences(t)
        out += [*_wrap(f"Trajectory {head}"), *[ln for s in steps for ln in _wrap(s, "  ")], ""]
    return out


def _summary_concept_sources(inputs: ReportInputs) -> list[str]:
    """Where the concept's direction transfers across its sources, and the scope notes."""
    lines = concept_sources_lines(inputs)
    if not lines:
        return []
    head, *rest = lines
    return [
        *_wrap(f"A concept from several sources. {head}"),
        *[ln for s in rest for ln in _wrap(s, "  ")],
        "",
    ]


SUMMARY_SECTIONS: list[Callable[[ReportInputs], list[str]]] = [
    _summary_answer,
    _summary_verdicts,
    _summary_floor,
    _summary_behaviour,
    _summary_anima,
    _summary_probes,
    _summary_surface,
    _summary_concept_sources,
    _summary_trajectories,
    _summary_causal,
    _summary_transplant,
]


def summary_text(inputs: ReportInputs) -> str:
    """The plain-language summary the CLI prints at the end of a run (lines ≤ 100 columns)."""
    rule = "=" * 72
    lines = ["", rule, "valuetrace summary", rule]
    for section in SUMMARY_SECTIONS:
        lines += section(inputs)
    lines.append(rule)
    return "\n".join(lines)
