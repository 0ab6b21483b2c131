"""Batched answer generation on a tiny real model, and the per-stage answer cache."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from valuetrace.analysis.anima.generate import (
    Answer,
    cached_answers,
    generate_answers,
    generation_settings,
)
from valuetrace.analysis.anima.questions import load_anima
from valuetrace.errors import ConfigError


def talkative(tokenizer) -> list[int]:
    """Tokens to suppress so the random tiny model neither stops nor only writes newlines."""
    return [*tokenizer.all_special_ids, tokenizer.convert_tokens_to_ids("Ċ")]


OPTIONS = {"max_new_tokens": 4, "seed": 0, "chat": False}


def test_greedy_answers_do_not_depend_on_batching(tiny_model, tiny_tokenizer, anima_dir) -> None:
    _, questions = load_anima(anima_dir, languages=None)
    tiny_model = copy.deepcopy(tiny_model)
    tiny_model.generation_config.suppress_tokens = talkative(tiny_tokenizer)
    one = generate_answers(
        tiny_model, tiny_tokenizer, questions, samples=1, temperature=0, batch_size=1, **OPTIONS
    )
    three = generate_answers(
        tiny_model, tiny_tokenizer, questions, samples=1, temperature=0, batch_size=3, **OPTIONS
    )
    assert [a.question_id for a in one] == ["0", "1", "2"]
    assert one == three
    assert all(a.answer for a in one)


def test_seeded_samples(tiny_model, tiny_tokenizer, anima_dir) -> None:
    _, questions = load_anima(anima_dir)
    tiny_model = copy.deepcopy(tiny_model)
    tiny_model.generation_config.suppress_tokens = talkative(tiny_tokenizer)
    run = [
        generate_answers(
            tiny_model,
            tiny_tokenizer,
            questions,
            samples=3,
            temperature=1.0,
            batch_size=4,
            **OPTIONS,
        )
        for _ in range(2)
    ]
    assert run[0] == run[1]
    assert [(a.question_id, a.sample) for a in run[0]] == [(q, s) for q in "01" for s in range(3)]
    assert len({a.answer for a in run[0]}) > 1  # sampled, not six copies of one answer
    with pytest.raises(ConfigError, match="temperature"):
        generate_answers(
            tiny_model,
            tiny_tokenizer,
            questions,
            samples=2,
            temperature=0,
            batch_size=2,
            **OPTIONS,
        )


def test_cache_reused_until_a_setting_changes(tmp_path: Path, anima_dir) -> None:
    _, questions = load_anima(anima_dir)
    calls = []

    def produce() -> list[Answer]:
        calls.append(1)
        return [Answer(q.id, 0, f"answer {len(calls)}") for q in questions]

    def settings(max_new_tokens: int, chat_date: str = "26 Jul 2024") -> dict[str, str]:
        return generation_settings(
            questions,
            backend="transformers",
            samples=1,
            temperature=0.0,
            max_new_tokens=max_new_tokens,
            seed=0,
            chat=True,
            chat_date=chat_date,
            batch_size=2,
            checkpoint="ckpt",
            fingerprint=None,
        )

    path = tmp_path / "anima" / "base" / "answers.json"
    first = cached_answers(path, "base", settings(8), produce)
    again = cached_answers(path, "base", settings(8), produce)
    assert again == first and len(calls) == 1
    changed = cached_answers(path, "base", settings(16), produce)
    assert len(calls) == 2 and changed.answers[0].answer == "answer 2"
    assert changed.settings["max_new_tokens"] == "16"
    cached_answers(path, "base", settings(16, "01 Dec 2026"), produce)  # another rendered date
    assert len(calls) == 3
