"""Behaviour scores: log-probs match a direct computation; the preference score and its CI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from valuetrace.analysis.behaviour import (
    BehaviourResult,
    behaviour_scores,
    bootstrap_mean,
    continuation_logprob,
)

from valuetrace.errors import ValuetraceError

PROMPTS = ["Q: the cat limped near the barn? A:", "Q: a dog? A:"]
CONTS = [" the vet listened.", " the farmer watched while the child helped."]


def test_continuation_logprob_matches_a_direct_sum(tiny_model, tiny_tokenizer):
    got = continuation_logprob(tiny_model, tiny_tokenizer, PROMPTS, CONTS, batch_size=2)
    for value, prompt, cont in zip(got, PROMPTS, CONTS, strict=True):
        n_prompt = len(tiny_tokenizer(prompt).input_ids)
        ids = torch.tensor([tiny_tokenizer(prompt + cont).input_ids])
        with torch.no_grad():
            logp = torch.log_softmax(tiny_model(ids).logits[0, :-1], dim=-1)
        token_lp = logp.gather(-1, ids[0, 1:, None]).squeeze(-1)[n_prompt - 1 :]
        assert value == pytest.approx(token_lp.mean().item(), abs=1e-4)


def test_preference_is_the_share_of_items_won(tiny_model, tiny_tokenizer, tmp_path):
    result = behaviour_scores(
        tiny_model,
        tiny_tokenizer,
        eval_ids=["a", "b"],
        eval_prompts=PROMPTS,
        compassionate=CONTS,
        dismissive=CONTS[::-1],
        help_prompts=PROMPTS,
        help_responses=CONTS,
        n_boot=200,
    )
    wins = np.asarray(result.preference) > 0
    assert result.compassion.value == pytest.approx(wins.mean())
    assert result.helpfulness_loss.value > 0
    result.save(tmp_path / "b.json")
    assert BehaviourResult.load(tmp_path / "b.json") == result


def test_bootstrap_interval_brackets_the_mean_and_empty_is_refused():
    values = np.random.default_rng(0).normal(size=400)
    score = bootstrap_mean(values, 500, seed=0)
    assert score.lo < score.value < score.hi and score.hi - score.lo < 0.3
    with pytest.raises(ValuetraceError, match="eval set is empty"):
        bootstrap_mean(np.array([]), 10, seed=0)
