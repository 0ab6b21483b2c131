"""The ANIMA content of the summary and the report, as text lines and one HTML section.

Kept apart from `analysis.report` so the report can place it where it wants: the per-stage
scores with CIs, the per-dimension table, the paired stage changes against the replicate
floor, the judge's agreement (or the plain statement that it is unmeasured), the Inspect logs,
and a few answers per stage side by side.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from valuetrace.analysis.anima.generate import AnswerSet
from valuetrace.analysis.anima.scores import AnimaScores
from valuetrace.stats import Interval

UNMEASURED = (
    "The judge's agreement with trusted grades is unmeasured (no anima.reference file): the "
    "scores show the mechanics, not a validated compassion grade."
)


def _ci(v: Interval) -> str:
    return f"{v.value:.3f} [{v.lo:.3f}, {v.hi:.3f}]"


def agreement_sentence(scores: AnimaScores) -> str:
    """The judge's Spearman agreement with its CI, or the statement that it is unmeasured."""
    a = scores.agreement
    if a is None:
        return UNMEASURED
    return (
        f"Judge agreement with {a.reference} ({a.n} graded answers): Spearman rho "
        f"{_ci(a.spearman)}."
    )


def summary_lines(scores: AnimaScores) -> list[str]:
    """The summary's ANIMA block: scores per stage, paired changes and the agreement."""
    lines = [
        f"ANIMA (judge {scores.judge}; P(yes) per dimension, {scores.ci:.0%} question-bootstrap "
        "CIs):"
    ]
    for stage, s in scores.stages.items():
        lines.append(
            f"  {stage}: overall {_ci(s.overall)}, dimension-normalised "
            f"{s.dimension_normalized:.3f} ({len(s.question_ids)} questions)"
        )
    for c in scores.changes:
        floor = "no replicate floor" if c.floor is None else f"replicate floor {c.floor:.3f}"
        verdict = "moved" if c.moved() else "no meaningful change"
        lines.append(f"  {c.a} -> {c.b}: {_ci(c.overall)} ({floor}): {verdict}")
    lines.append("  " + agreement_sentence(scores))
    for stage, log in scores.inspect_logs.items():
        lines.append(f"  Inspect log of {stage}: {log}")
    return lines


def html_section(
    scores: AnimaScores, answers: dict[str, AnswerSet], questions: dict[str, str], n: int = 3
) -> str:
    """The report's ANIMA section: tables of scores, dimensions, changes and example answers.

    `questions` maps question ids to their text; `n` example questions are shown.
    """
    stages = list(scores.stages)
    dims = list(dict.fromkeys(d for s in scores.stages.values() for d in s.dimensions))

    def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    overall = table(
        ["stage", "overall [CI]", "dimension-normalised"],
        [[s, _ci(v.overall), f"{v.dimension_normalized:.3f}"] for s, v in scores.stages.items()],
    )
    per_dim = table(
        ["dimension", *stages],
        [
            [
                d,
                *(
                    _ci(scores.stages[s].dimensions[d]) if d in scores.stages[s].dimensions else ""
                    for s in stages
                ),
            ]
            for d in dims
        ],
    )
    changes = table(
        ["change", "overall [CI]", "replicate floor", "verdict"],
        [
            [
                f"{c.a} -> {c.b}",
                _ci(c.overall),
                "-" if c.floor is None else f"{c.floor:.3f}",
                "moved" if c.moved() else "no meaningful change",
            ]
            for c in scores.changes
        ],
    )
    shown = list(questions)[:n]
    by_stage = {
        s: {a.question_id: a.answer for a in answers[s].answers if a.sample == 0}
        for s in stages
        if s in answers
    }
    examples = table(
        ["question", *by_stage],
        [[questions[q], *(by_stage[s].get(q, "") for s in by_stage)] for q in shown],
    )
    logs = "".join(
        f"<li>{html.escape(s)}: <code>{html.escape(p)}</code></li>"
        for s, p in scores.inspect_logs.items()
    )
    return (
        '<section id="anima"><h2>ANIMA (Animal Harm Benchmark) per stage</h2>'
        f"<p>Judge: {html.escape(scores.judge)}. {html.escape(agreement_sentence(scores))}</p>"
        f"{overall}<h3>Per dimension</h3>{per_dim}<h3>Paired changes</h3>{changes}"
        f"<h3>Example answers</h3>{examples}"
        + (f"<h3>Inspect logs</h3><ul>{logs}</ul>" if logs else "")
        + "</section>"
    )
