"""How far a judge agrees with graded answers a user trusts (humans, or a capable grader).

A reference file is JSONL, one graded answer per line: `question_id` (an ANIMA id) or
`question` (its exact text), `answer` (the graded text) and `score` (the reference's overall
score for that answer, on any scale: only ranks are compared). The judge grades each reference
answer on the question's dimensions exactly as it grades a stage's answers, and its agreement is
Spearman's rank correlation between its overall scores and the reference's, with an
item-bootstrap interval (`valuetrace.stats.spearman_ci`).

The file is read and matched to the questions when the step starts, before any generation, so
a bad reference costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from valuetrace.analysis.anima.generate import Answer
from valuetrace.analysis.anima.questions import Question
from valuetrace.errors import DataError
from valuetrace.jsonl import read_jsonl


@dataclass(frozen=True)
class ReferenceItem:
    """One graded answer of a reference file, matched to its ANIMA question."""

    question_id: str
    answer: str
    score: float


def load_reference(path: str | Path, questions: list[Question]) -> list[ReferenceItem]:
    """The graded answers of a reference file, each matched to one of `questions`.

    Raises:
        DataError: the file is missing or not JSONL, a line lacks `answer`, `score` or a
            question, a question matches none of `questions`, or fewer than 3 answers remain.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"anima.reference {path} does not exist; give a JSONL file of graded answers "
            "(question_id or question, answer, score) or leave it out."
        )
    by_id = {q.id: q for q in questions}
    by_text = {q.question.strip(): q for q in questions}
    items = []
    for number, row in read_jsonl(path):
        where = f"{path}:{number}"
        score = row.get("score")
        if "answer" not in row or not isinstance(score, int | float):
            raise DataError(
                f"{where} needs 'answer' and a numeric 'score' (and 'question_id' or 'question')."
            )
        question = by_id.get(str(row.get("question_id"))) or by_text.get(
            str(row.get("question", "")).strip()
        )
        if question is None:
            raise DataError(
                f"{where}: its question ({row.get('question_id') or row.get('question')!r}) "
                "matches none of the ANIMA questions in use; check the id or text, or the "
                "anima.languages / anima.limit filter."
            )
        items.append(ReferenceItem(question.id, str(row["answer"]), float(score)))
    if len(items) < 3:
        raise DataError(
            f"anima.reference {path} holds {len(items)} graded answers; a rank correlation "
            "needs at least 3."
        )
    return items


def reference_answers(items: list[ReferenceItem]) -> list[Answer]:
    """The reference's answers in the form the judge grades (sample = row index)."""
    return [Answer(item.question_id, i, item.answer) for i, item in enumerate(items)]
