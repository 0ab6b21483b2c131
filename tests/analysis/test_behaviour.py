"""Behaviour scores: log-probs match a direct computation; the preference score and its CI."""

from __future__ import annotations

import copy

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
from valuetrace.prompts import plain_prompt

PROMPTS = ["Q: the cat limped near the barn? A:", "Q: a dog? A:"]
CONTS = [" the vet listened.", " the farmer watched while the child helped."]


@pytest.mark.parametrize("chat", [False, True])
def test_continuation_logprob_matches_a_direct_sum(tiny_model, tiny_tokenizer, chat):
    tokenizer = copy.deepcopy(tiny_tokenizer)  # the fixture is shared: give the copy a template
    tokenizer.chat_template = (
        "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    got = continuation_logprob(tiny_model, tokenizer, PROMPTS, CONTS, batch_size=2, chat=chat)
    for value, prompt, cont in zip(got, PROMPTS, CONTS, strict=True):
        if chat:  # the ids TRL's SFT builds for a conversational prompt/completion
            user = [{"role": "user", "content": prompt}]
            head = tokenizer.apply_chat_template(user, add_generation_prompt=True)["input_ids"]
            reply = [*user, {"role": "assistant", "content": cont}]
            full = tokenizer.apply_chat_template(reply)["input_ids"][:-2]  # drop EOS, "\n"
        else:
            head = tokenizer(plain_prompt(prompt, None)).input_ids
            full = tokenizer(plain_prompt(prompt, None) + cont).input_ids
        assert full.count(tokenizer.bos_token_id) == 1
        pairs = enumerate(zip(head, full, strict=False))
        n_prompt = next((i for i, (a, b) in pairs if a != b), len(head))
        ids = torch.tensor([full])
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
