"""Aggregation as the benchmark publishes it, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from valuetrace.analysis.anima.judge import JudgedAnswer
from valuetrace.analysis.anima.questions import Dimension
from valuetrace.analysis.anima.scores import replicate_floor, score_change, stage_score
from valuetrace.errors import DataError

DIMS = {
    "A": Dimension("A", "?", "", "", weight=1.0),
    "B": Dimension("B", "?", "", "", weight=3.0),
}
BOOT = {"n_boot": 500, "seed": 0, "ci": 0.95}


def verdicts(a0: float, b0: float, a1: float) -> list[JudgedAnswer]:
    return [
        JudgedAnswer("q0", 0, "A", a0),
        JudgedAnswer("q0", 0, "B", b0),
        JudgedAnswer("q1", 0, "A", a1),
    ]


def test_stage_score_by_hand() -> None:
    score = stage_score("s", verdicts(0.2, 0.6, 0.9), DIMS, **BOOT)
    q0 = (0.2 * 1 + 0.6 * 3) / 4  # weighted mean over the answer's dimensions
    assert score.per_question == pytest.approx([q0, 0.9])
    assert score.overall.value == pytest.approx((q0 + 0.9) / 2)
    assert score.dimensions["A"].value == pytest.approx(0.55)
    assert score.dimensions["B"].value == pytest.approx(0.6)
    assert np.isnan(score.dimensions["B"].lo)  # one question: no interval, not a zero-width one
    assert score.dimension_normalized == pytest.approx((0.55 + 3 * 0.6) / 4)
    assert score.overall.lo <= score.overall.value <= score.overall.hi


def test_samples_are_averaged_within_a_question() -> None:
    rows = [
        JudgedAnswer("q0", 0, "A", 0.0),
        JudgedAnswer("q0", 1, "A", 1.0),
        JudgedAnswer("q1", 0, "A", 1.0),
    ]
    assert stage_score("s", rows, DIMS, **BOOT).per_question == [0.5, 1.0]


def test_paired_change_and_floor() -> None:
    a = stage_score("a", verdicts(0.2, 0.2, 0.2), DIMS, **BOOT)
    b = stage_score("b", verdicts(0.8, 0.8, 0.9), DIMS, **BOOT)
    twin = stage_score("b~seed1", verdicts(0.7, 0.8, 0.9), DIMS, **BOOT)
    floor = replicate_floor(b, [twin])
    assert floor == pytest.approx(abs(twin.overall.value - b.overall.value))
    change = score_change(a, b, floor=floor, **BOOT)
    assert change.overall.value == pytest.approx(
        np.mean(np.subtract(b.per_question, a.per_question))
    )
    assert change.moved()
    assert not score_change(a, b, floor=1.0, **BOOT).moved()
    other = stage_score("c", [JudgedAnswer("q9", 0, "A", 0.5)], DIMS, **BOOT)
    with pytest.raises(DataError, match="different ANIMA questions"):
        score_change(a, other, **BOOT)
