"""The ANIMA section of the report and the summary, as one typed `Section`.

Built once from the records (`AnimaScores` of the evaluate step, the answers, and the
`AnimaProjection` of the analyze step when it ran) and rendered by both renderers: the HTML
report (`report_html`) and the text summary (`report_text`). It holds the per-stage scores
with their intervals, the paired stage changes against the seed-replicate floor, the
per-dimension table, each stage's answers projected on the compassion direction against their
judged score (with the random-direction null), the judge's agreement (or the plain statement
that it is unmeasured), the Inspect logs, and a few answers per stage side by side (folded away
in the HTML, left out of the text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from valuetrace.analysis.anima.generate import AnswerSet
from valuetrace.analysis.anima.projection import AnimaProjection
from valuetrace.analysis.anima.scores import AnimaScores, ScoreChange
from valuetrace.analysis.report_model import Section, Table, fmt, fmt_bounds, fmt_interval, signed

UNMEASURED = (
    "The judge's agreement with trusted grades is unmeasured (no anima.reference file): the "
    "scores show the mechanics, not a validated compassion grade."
)


@dataclass(frozen=True)
class Example:
    """One question and each shown stage's first answer to it."""

    question: str
    answers: dict[str, str]


@dataclass(frozen=True)
class AnimaReport:
    """What the ANIMA section shows: the scores record, the stages shown side by side (the
    run's main stages), example answers, and the projection record (None before `analyze`)."""

    scores: AnimaScores
    stages: list[str]
    examples: list[Example]
    projection: AnimaProjection | None = None


def example_answers(
    scores: AnimaScores,
    answers: Mapping[str, AnswerSet],
    questions: Mapping[str, str],
    stages: Sequence[str],
    n: int = 3,
) -> list[Example]:
    """The `n` questions whose judged score differs most between `stages` (first sample of
    each stage's answers; question order breaks ties), so the examples show what moved."""
    shown = [s for s in stages if s in answers and s in scores.stages]
    if not shown:
        return []
    ids = scores.stages[shown[0]].question_ids
    per_stage = np.array([scores.stages[s].per_question for s in shown])  # [stages, questions]
    spread = np.ptp(per_stage, axis=0) if len(ids) else np.array([])
    chosen = sorted(sorted(range(len(ids)), key=lambda i: -spread[i])[:n])
    first = {
        s: {a.question_id: a.answer for a in answers[s].answers if a.sample == 0} for s in shown
    }
    return [
        Example(questions.get(ids[i], ids[i]), {s: first[s].get(ids[i], "") for s in shown})
        for i in chosen
    ]


def agreement_sentence(scores: AnimaScores) -> str:
    """The judge's Spearman agreement with its CI, or the statement that it is unmeasured."""
    a = scores.agreement
    if a is None:
        return UNMEASURED
    return (
        f"Judge agreement with {a.reference} ({a.n} graded answers): Spearman rho "
        f"{fmt_interval(a.spearman)}."
    )


def change_verdict(change: ScoreChange) -> str:
    """Whether a paired change moved beyond its CI and the seed-replicate floor, in words."""
    if change.moved():
        return "moved"
    if change.overall.covers_zero():
        return "no change (CI covers 0)"
    return "within the replicate floor: no meaningful change"


def _projection_block(report: AnimaReport, pct: str) -> Table | str:
    proj = report.projection
    if proj is None:
        return "Projection on the compassion direction vs judged score: run `valuetrace analyze`."
    rows = [
        [
            s,
            p.direction_of,
            fmt(p.r.value),
            fmt_bounds(p.r),
            fmt(p.null_abs_r),
            "yes" if p.beats_null else "no",
            p.n,
        ]
        for s, p in proj.stages.items()
    ]
    return Table(
        ["stage", "direction of", "Pearson r", pct, "null |r|", "beats null", "answers"],
        rows,
        caption=(
            f"Projection vs judged score, per answer: each answer's pooled response hidden state "
            f"at layer {proj.layer} (the headline pair's largest weakening) projected on the "
            f"unit {proj.dataset} direction of the stage's parent, against the answer's overall "
            "judged score. Null: the |r| random unit directions reach on the same answers; r "
            "means something only above it."
        ),
    )


def anima_section(report: AnimaReport | None) -> Section | None:
    """The ANIMA section (None when ANIMA did not run)."""
    if report is None:
        return None
    scores = report.scores
    pct = f"{round(100 * scores.ci)}% CI"
    n_questions = len(next(iter(scores.stages.values())).question_ids) if scores.stages else 0
    dims = list(dict.fromkeys(d for s in scores.stages.values() for d in s.dimensions))
    shown = [s for s in report.stages if s in scores.stages]
    blocks: list[Table | str] = [
        Table(
            ["stage", f"overall ({pct})", "dimension-normalised", "questions"],
            [
                [s, fmt_interval(v.overall), fmt(v.dimension_normalized), len(v.question_ids)]
                for s, v in scores.stages.items()
            ],
        ),
        Table(
            ["stages", "Δ overall (B − A)", "replicate floor", "verdict"],
            [
                [
                    f"{c.a} → {c.b}",
                    signed(c.overall),
                    "none (no seed twin)" if c.floor is None else fmt(c.floor),
                    change_verdict(c),
                ]
                for c in scores.changes
            ],
            caption="Paired changes (same questions, paired question bootstrap); a change counts "
            "when its CI excludes 0 and it exceeds the seed-replicate floor (the largest overall "
            "difference between a stage and its seed twins):",
        ),
        Table(
            ["dimension", *shown],
            [
                [
                    d,
                    *(
                        fmt_interval(scores.stages[s].dimensions[d])
                        if d in scores.stages[s].dimensions
                        else "—"
                        for s in shown
                    ),
                ]
                for d in dims
            ],
            caption=f"Per dimension (mean over the questions tagged with it, {pct}):",
        ),
        _projection_block(report, pct),
    ]
    if report.examples:
        blocks.append(
            Table(
                ["question", *report.examples[0].answers],
                [[e.question, *e.answers.values()] for e in report.examples],
                collapsed=f"Example answers: the {len(report.examples)} questions whose judged "
                "score differs most between stages (first sample)",
            )
        )
    if scores.inspect_logs:
        blocks.append(
            Table(
                ["stage", "Inspect log (inspect view)"],
                list(map(list, scores.inspect_logs.items())),
            )
        )
    return Section(
        "ANIMA: judged compassion per stage",
        [
            f"Each stage answered {n_questions} ANIMA (Animal Harm Benchmark 2.x) questions, "
            "formatted as the run formats prompts (its chat template when on). Judge "
            f"{scores.judge}: its probability of 'yes' to each tagged "
            "dimension's guiding question (0–1, higher = more compassionate by the judge). "
            "Overall: the mean over questions of each answer's weight-averaged dimension scores; "
            "dimension-normalised: the weight-averaged mean of the per-dimension means (as "
            f"inspect_evals.anima aggregates). {pct}s: percentile bootstrap over questions."
        ],
        blocks=blocks,
        emphasis=[agreement_sentence(scores)],
    )
