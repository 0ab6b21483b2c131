"""Continuation log-probs: head-only scoring with shared prompts equals a full-logits forward
on every architecture family valuetrace accepts (`tests.architectures`), a shared prompt runs
through the model once, and a model whose logits scoring cannot reproduce is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.analysis import texts
from tests.architectures import FAMILIES, family_model
from valuetrace.activations.pooling import encode
from valuetrace.analysis.logprob import continuation_logprob, group_batches, prompt_groups
from valuetrace.architecture import logit_transform
from valuetrace.errors import ConfigError, DataError
from valuetrace.prompts import format_prompt

# Prompts 0-2 come back as 5-7 with other continuations (two-row groups sharing the prompt),
# prompt 3 is empty (nothing to share) and prompt 4 appears once.
PROMPTS = [*texts.PROMPTS, *texts.PROMPTS[:3]]
CONTS = [*texts.CONTS, " the vet slept near the river.", " a cat.", " farmer watched."]


def full_logits_logprob(model, tokenizer, prompt: str, cont: str) -> float:
    """The straightforward computation: one unpadded row, full logits, log-softmax, gather."""
    prompt = format_prompt(prompt, tokenizer, chat=False) if prompt else ""  # as SFT formats it
    n_prompt = len(tokenizer(prompt).input_ids) if prompt else 1  # BOS alone opens the text
    ids = torch.tensor([tokenizer(prompt + cont).input_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1].double(), dim=-1)
    token_lp = logp.gather(-1, ids[0, 1:, None]).squeeze(-1)[n_prompt - 1 :]
    return token_lp.mean().item()


@pytest.mark.parametrize("batch_size", [1, 2, 3, 8])
def test_scoring_equals_the_full_logits_forward(tiny_model, tiny_tokenizer, batch_size):
    assert tiny_tokenizer("x").input_ids[0] == tiny_tokenizer.bos_token_id
    got = continuation_logprob(tiny_model, tiny_tokenizer, PROMPTS, CONTS, batch_size=batch_size)
    pairs = zip(PROMPTS, CONTS, strict=True)
    want = [full_logits_logprob(tiny_model, tiny_tokenizer, p, c) for p, c in pairs]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    capped = continuation_logprob(
        tiny_model, tiny_tokenizer, PROMPTS, CONTS, batch_size=batch_size, max_batch_tokens=30
    )
    np.testing.assert_allclose(capped, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_scores_its_own_full_forward_log_probs(family, tiny_tokenizer):
    model = family_model(family, tiny_tokenizer)  # rows share prompts (hybrids run them whole)
    got = continuation_logprob(model, tiny_tokenizer, PROMPTS, CONTS, batch_size=3)
    pairs = zip(PROMPTS, CONTS, strict=True)
    want = [full_logits_logprob(model, tiny_tokenizer, p, c) for p, c in pairs]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_logits_a_family_transforms_unknowingly_are_refused(tiny_tokenizer, monkeypatch):
    granite = family_model("granite", tiny_tokenizer)
    assert logit_transform(granite).scale == 1 / 8  # its `logits_scaling` divisor
    monkeypatch.setattr("valuetrace.architecture._LOGIT_SCALES", ())  # as if not known
    with pytest.raises(ConfigError, match=r"cannot reproduce the logits of GraniteForCausalLM"):
        continuation_logprob(granite, tiny_tokenizer, PROMPTS[:2], CONTS[:2])


def test_rows_share_their_prompt_up_to_its_last_token(tiny_tokenizer):
    encoded = encode(tiny_tokenizer, PROMPTS, CONTS, 256)
    groups = {frozenset(g.rows): g.shared for g in prompt_groups(encoded, PROMPTS, 16)}
    for a, b in [(0, 5), (1, 6), (2, 7)]:
        n_prompt = encoded[a].response.index(True)
        # the last prompt token predicts a scored token, so it runs in each row's own part
        assert groups[frozenset((a, b))] == n_prompt - 1
        assert encoded[a].ids[:n_prompt] == encoded[b].ids[:n_prompt]
    assert groups[frozenset((3,))] == 0 and groups[frozenset((4,))] == 0
    # continuations that begin alike still share only the prompt
    alike = encode(tiny_tokenizer, ["Q:", "Q:"], [" the cat slept", " the dog slept"], 64)
    first = alike[0].response.index(True)
    assert alike[0].ids[: first + 1] == alike[1].ids[: first + 1]  # " the" opens both
    groups = prompt_groups(alike, ["Q:"] * 2, 16)
    assert [g.shared for g in groups] == [alike[0].response.index(True) - 1]


def test_a_shared_prompt_runs_through_the_model_once(tiny_model, tiny_tokenizer):
    prompt, conts = PROMPTS[4], [" the vet.", " a cat slept.", " the farmer watched the road."]
    encoded = encode(tiny_tokenizer, [prompt] * 3, conts, 256)
    shared = encoded[0].response.index(True) - 1
    seen: list[tuple[int, ...]] = []
    embed = tiny_model.get_input_embeddings()
    handle = embed.register_forward_hook(lambda _m, inputs, _o: seen.append(tuple(inputs[0].shape)))
    try:
        continuation_logprob(tiny_model, tiny_tokenizer, [prompt] * 3, conts)
    finally:
        handle.remove()
    own = max(len(e.ids) for e in encoded) - shared
    # first `check_logits`' one-row full forward, then the shared prompt once, then own parts
    assert seen[0][0] == 1 and seen[1:] == [(1, shared), (3, own)]


def test_batches_hold_whole_groups_within_the_row_budget(tiny_tokenizer):
    encoded = encode(tiny_tokenizer, PROMPTS, CONTS, 256)
    batches = group_batches(prompt_groups(encoded, PROMPTS, 3), batch_size=3)
    rows = [r for batch in batches for g in batch for r in g.rows]
    assert sorted(rows) == list(range(len(PROMPTS)))
    assert all(sum(len(g.rows) for g in batch) <= 3 for batch in batches)
    one_prompt = ["Q: a dog? A:"] * 7
    encoded = encode(tiny_tokenizer, one_prompt, CONTS[:7], 256)
    pieces = prompt_groups(encoded, one_prompt, 3)
    by_length = sorted(range(7), key=lambda r: len(encoded[r].ids))
    assert [g.rows for g in pieces] == [by_length[:3], by_length[3:6], by_length[6:]]
    assert [g.shared > 0 for g in pieces] == [True, True, False]  # a lone row runs whole


def test_a_continuation_with_nothing_to_score_is_refused(tiny_model, tiny_tokenizer):
    with pytest.raises(DataError, match=r"continuation\(s\) \[1\] have no token to score"):
        continuation_logprob(tiny_model, tiny_tokenizer, ["Q: a cat?", "Q:"], [" the vet.", ""])
