"""Grading cached answers through Inspect with the `hf/` provider on a tiny local checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from valuetrace.analysis.anima.generate import Answer, AnswerSet
from valuetrace.analysis.anima.inspect_task import check_grader, grade_with_inspect
from valuetrace.analysis.anima.questions import load_anima
from valuetrace.errors import ConfigError


def test_hf_grader_writes_a_readable_eval_log(
    tiny_checkpoint: Path, anima_dir, tmp_path, caplog
) -> None:
    from inspect_ai.log import read_eval_log
    from inspect_ai.model import GenerateConfig, get_model

    dims, questions = load_anima(anima_dir)
    answers = AnswerSet(
        "base",
        {"max_new_tokens": "4"},
        [Answer("0", 0, "Do not boil them."), Answer("1", 0, "Use a humane trap.")],
    )
    grader = get_model(
        f"hf/{tiny_checkpoint}",
        config=GenerateConfig(max_tokens=4, seed=0),
        device="cpu",
        do_sample=False,
    )
    path = grade_with_inspect(answers, questions, dims, grader, tmp_path / "inspect")
    assert path.parent == tmp_path / "inspect" and path.suffix == ".eval"
    log = read_eval_log(str(path))
    assert log.status == "success"
    assert [s.id for s in log.samples] == ["0-0", "1-0"]
    assert [s.output.completion for s in log.samples] == [a.answer for a in answers.answers]
    graded = [next(iter(s.scores.values())) for s in log.samples]
    # every tagged dimension and variable combination went to the grader: 2 + 1 and 1
    assert [g.metadata["grades_attempted"] for g in graded] == [3, 1]
    assert log.eval.metadata["stage"] == "base"
    # a random tiny grader follows no grading format: every answer is left ungraded, and said so
    assert all(g.metadata["grader_failure_mode"] == "grader_parse_failure" for g in graded)
    assert "no parseable grade for 2 of 2 answers of stage 'base'" in caplog.text


def test_missing_provider_key_is_refused(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        check_grader("openai/gpt-4o")
    with pytest.raises(ConfigError, match="does not exist"):
        check_grader("hf/./no/such/checkpoint")
    with pytest.raises(ConfigError, match="provider"):
        check_grader("gpt-4o")
