"""Loading and checking the ANIMA questions and dimensions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analysis.anima.conftest import DIMENSIONS, QUESTIONS, write_jsonl
from valuetrace.analysis.anima.questions import load_anima, load_dimensions, load_questions
from valuetrace.config import AnimaConfig, check_ranges
from valuetrace.errors import ConfigError, DataError


def test_english_filter_and_placeholders(anima_dir: Path) -> None:
    dims, questions = load_anima(anima_dir)
    assert [q.id for q in questions] == ["0", "1"]  # null and "English" are English
    assert dims["Harm Minimization"].weight == 3.0
    filled = questions[0].guiding_questions(dims)
    assert filled["Moral Consideration"] == [
        "Does it consider the interests of crabs?",
        "Does it consider the interests of lobsters?",
    ]
    # no variable given: the placeholder's own name, as inspect_evals.anima does
    assert questions[1].guiding_questions(dims)["Moral Consideration"] == [
        "Does it consider the interests of animals?"
    ]
    _, every = load_anima(anima_dir, languages=None, limit=2)
    assert [q.id for q in every] == ["0", "1"]
    assert len(load_anima(anima_dir, languages=None)[1]) == 3


def test_real_anima_data(shared_data: Path) -> None:
    dims, english = load_anima(shared_data / "anima")
    assert len(dims) == 13 and len(english) == 30
    assert all(q.language == "English" for q in english)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tags": ["Moral Consideration", "Kindness"]}, "name no known dimension"),
        ({"variables": "animal:"}, "has no value"),
        ({"variables": "animal crab"}, "has no value"),
        ({"question": "  "}, "blank"),
    ],
)
def test_bad_question_is_refused(tmp_path: Path, change: dict, message: str) -> None:
    dims = load_dimensions(write_jsonl(tmp_path / "d.jsonl", DIMENSIONS))
    path = write_jsonl(tmp_path / "q.jsonl", [QUESTIONS[1], {**QUESTIONS[0], **change}])
    with pytest.raises(DataError, match=message):
        load_questions(path, dims)


def test_missing_fields_and_files(tmp_path: Path) -> None:
    bad = {k: v for k, v in QUESTIONS[0].items() if k != "tags"}
    dims = load_dimensions(write_jsonl(tmp_path / "d.jsonl", DIMENSIONS))
    with pytest.raises(DataError, match=r"lacks the field\(s\) \['tags'\]"):
        load_questions(write_jsonl(tmp_path / "q.jsonl", [bad]), dims)
    no_question = {k: v for k, v in DIMENSIONS[0].items() if k != "guiding_question"}
    with pytest.raises(DataError, match="guiding_question"):
        load_dimensions(write_jsonl(tmp_path / "d2.jsonl", [no_question]))
    with pytest.raises(DataError, match="does not exist"):
        load_anima(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no ANIMA question is in"):
        load_questions(write_jsonl(tmp_path / "q2.jsonl", QUESTIONS), dims, languages=["Thai"])


def test_blank_tag_skips_the_question(tmp_path: Path) -> None:
    dims = load_dimensions(write_jsonl(tmp_path / "d.jsonl", DIMENSIONS))
    rows = [QUESTIONS[0], {**QUESTIONS[1], "tags": ["Moral Consideration", ""]}]
    assert [q.id for q in load_questions(write_jsonl(tmp_path / "q.jsonl", rows), dims)] == ["0"]


def test_config_section_is_range_checked() -> None:
    with pytest.raises(ConfigError, match="max_new_tokens"):
        check_ranges(AnimaConfig(max_new_tokens=0), "anima")
    with pytest.raises(ConfigError, match="temperature"):
        AnimaConfig(samples_per_question=3)
    with pytest.raises(ConfigError, match="languages"):
        AnimaConfig(languages=[])
    check_ranges(AnimaConfig(samples_per_question=3, temperature=0.7), "anima")
