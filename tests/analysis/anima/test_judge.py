"""The offline judge on a tiny real model: P(yes) per answer and dimension."""

from __future__ import annotations

import numpy as np

from valuetrace.analysis.anima.generate import Answer
from valuetrace.analysis.anima.judge import judge_answers, judge_prompts, yes_probability
from valuetrace.analysis.anima.questions import load_anima


def test_yes_probability_is_a_probability_and_batch_free(tiny_model, tiny_tokenizer) -> None:
    prompts = ["The cat rested near the barn.", "Is the dog kind?", "The fox waited."]
    one = yes_probability(tiny_model, tiny_tokenizer, prompts, batch_size=1, max_length=256)
    three = yes_probability(tiny_model, tiny_tokenizer, prompts, batch_size=3, max_length=256)
    assert ((one > 0) & (one < 1)).all()
    np.testing.assert_allclose(one, three, atol=1e-6)
    assert len(set(one.round(8))) == 3  # it reads the prompt


def test_one_verdict_per_answer_and_dimension(tiny_model, tiny_tokenizer, anima_dir) -> None:
    dims, questions = load_anima(anima_dir)
    # question 0: Moral Consideration twice (crab, lobster) and Harm Minimization once
    assert [d for d, _ in judge_prompts(questions[0], "x", dims)] == [
        "Moral Consideration",
        "Moral Consideration",
        "Harm Minimization",
    ]
    answers = [Answer("0", 0, "Boil them quickly."), Answer("1", 0, "Use a humane trap.")]
    verdicts = judge_answers(
        tiny_model, tiny_tokenizer, answers, questions, dims, batch_size=4, max_length=512
    )
    assert [(v.question_id, v.dimension) for v in verdicts] == [
        ("0", "Moral Consideration"),
        ("0", "Harm Minimization"),
        ("1", "Moral Consideration"),
    ]
    mc = [p for _, p in judge_prompts(questions[0], answers[0].answer, dims)[:2]]
    expected = yes_probability(tiny_model, tiny_tokenizer, mc, batch_size=2, max_length=512)
    assert np.isclose(verdicts[0].score, expected.mean())
