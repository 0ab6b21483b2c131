"""The ANIMA section: built once from the records, shown in the HTML report and, as text, in
the summary; scores, changes against the floor, dimensions, projection, agreement, examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.analysis.test_report import _findings
from valuetrace.analysis.anima.generate import Answer, AnswerSet
from valuetrace.analysis.anima.judge import JudgedAnswer
from valuetrace.analysis.anima.projection import AnimaProjection, AnswerProjection
from valuetrace.analysis.anima.questions import Dimension
from valuetrace.analysis.anima.scores import Agreement, AnimaScores, score_change, stage_score
from valuetrace.analysis.anima.section import (
    UNMEASURED,
    AnimaReport,
    anima_section,
    example_answers,
)
from valuetrace.analysis.report import ReportInputs, render_html, summary_text
from valuetrace.analysis.report_model import Table
from valuetrace.stats import Interval

DIMS = {"Moral Consideration": Dimension("Moral Consideration", "?", "", "")}
BOOT = {"n_boot": 200, "seed": 0, "ci": 0.9}
QUESTIONS = {f"q{i}": f"Question number {i}?" for i in range(5)}


def _scores(grades: dict[str, list[float]], agreement: Agreement | None = None) -> AnimaScores:
    stages = {
        s: stage_score(
            s,
            [JudgedAnswer(f"q{i}", 0, "Moral Consideration", g) for i, g in enumerate(v)],
            DIMS,
            **BOOT,
        )
        for s, v in grades.items()
    }
    floor = abs(stages["sft~seed1"].overall.value - stages["sft"].overall.value)
    change = score_change(stages["mid"], stages["sft"], floor=floor, **BOOT)
    return AnimaScores("judge-x", 0.9, 200, stages, [change], agreement, {})


def _report(agreement: Agreement | None = None) -> AnimaReport:
    scores = _scores(
        {
            "mid": [0.9, 0.8, 0.9, 0.7, 0.8],
            "sft": [0.2, 0.8, 0.3, 0.7, 0.1],  # q0, q2, q4 moved most
            "sft~seed1": [0.25, 0.8, 0.3, 0.7, 0.1],
        },
        agreement,
    )
    answers = {
        s: AnswerSet(s, {}, [Answer(q, 0, f"{s} answers {q}") for q in QUESTIONS])
        for s in ("mid", "sft")
    }
    r = Interval(0.6, 0.3, 0.8)
    projection = AnimaProjection(
        "c",
        2,
        0.9,
        {
            "mid": AnswerProjection("mid", "mid", 5, r, 0.4),
            "sft": AnswerProjection("sft", "mid", 5, Interval(0.1, -0.5, 0.6), 0.4),
        },
    )
    examples = example_answers(scores, answers, QUESTIONS, ["mid", "sft"])
    return AnimaReport(scores, ["mid", "sft"], examples, projection)


def test_examples_are_the_questions_that_moved_most_side_by_side() -> None:
    report = _report()
    assert [e.question for e in report.examples] == [QUESTIONS[q] for q in ("q0", "q2", "q4")]
    assert report.examples[0].answers == {"mid": "mid answers q0", "sft": "sft answers q0"}


def test_the_section_holds_scores_changes_dimensions_projection_and_examples() -> None:
    assert anima_section(None) is None
    section = anima_section(_report())
    assert section is not None and section.emphasis == [UNMEASURED]
    overall, changes, dims, projection, examples = section.blocks
    assert isinstance(overall, Table) and [r[0] for r in overall.rows] == [
        "mid",
        "sft",
        "sft~seed1",
    ]
    assert isinstance(changes, Table)
    (row,) = changes.rows
    assert row[0] == "mid → sft" and row[2] == "0.010" and row[3] == "moved"
    assert isinstance(dims, Table) and list(dims.header) == ["dimension", "mid", "sft"]
    assert isinstance(projection, Table) and "layer 2" in str(projection.caption)
    assert [r[1] for r in projection.rows] == ["mid", "mid"]
    assert [r[5] for r in projection.rows] == ["yes", "no"]
    assert isinstance(examples, Table) and examples.collapsed is not None


def test_a_measured_agreement_replaces_the_unmeasured_statement() -> None:
    report = _report(Agreement("ref.jsonl", 12, Interval(0.55, 0.2, 0.8)))
    section = anima_section(report)
    assert section is not None
    assert section.emphasis == [
        "Judge agreement with ref.jsonl (12 graded answers): Spearman rho 0.550 [0.200, 0.800]."
    ]


def test_both_renderers_show_the_section_and_nothing_changes_without_it(tmp_path: Path) -> None:
    findings = _findings(keep=0.2)
    without = summary_text(ReportInputs(findings))
    assert "ANIMA" not in without
    inputs = ReportInputs(findings, anima=_report())
    summary = summary_text(inputs)
    assert max(len(line) for line in summary.splitlines()) <= 100
    text = " ".join(summary.split())
    assert "ANIMA: judged compassion per stage" in text and "unmeasured" in text
    assert "mid → sft -0.400 [" in text and "moved" in text
    assert "(Example answers: the 3 questions" in text and "in report.html)" in text
    assert "sft answers q0" not in summary  # the examples stay in the HTML report
    # the rest of the summary is as it was, the ANIMA block after the behaviour block
    assert summary.replace("\n".join(_anima_lines(summary)) + "\n", "") == without
    page = render_html(inputs, tmp_path / "report.html").read_text()
    assert "ANIMA: judged compassion per stage" in page and "<details>" in page
    assert "sft answers q0" in page and "Projection vs judged score" in page
    assert page.index("Behaviour per stage") < page.index("ANIMA: judged")


def _anima_lines(summary: str) -> list[str]:
    lines = summary.splitlines()
    start = lines.index("ANIMA: judged compassion per stage")
    end = lines.index("", start)
    return lines[start : end + 1]


def test_nan_free_numbers() -> None:
    section = anima_section(_report())
    assert section is not None
    cells = [c for b in section.blocks if isinstance(b, Table) for r in b.rows for c in r]
    assert not any(isinstance(c, float) and np.isnan(c) for c in cells)
