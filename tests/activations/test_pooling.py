"""Pooling: the three modes, padding independence, response spans and truncation."""

from __future__ import annotations

import logging

import pytest
import torch
from valuetrace.activations.extract import pooled_hidden_states
from valuetrace.activations.pooling import collate, encode

from valuetrace.errors import ValuetraceError

PROMPTS = ["The cat rested near the barn.", ""]  # the second: a text without a prompt
RESPONSES = ["The vet listened.", " The farmer watched while the child helped near the river."]


def _reference(model, encoded, mode: str) -> torch.Tensor:
    """Pool `output_hidden_states` one unpadded example at a time."""
    rows = []
    for e in encoded:
        with torch.no_grad():
            hidden = model(torch.tensor([e.ids]), output_hidden_states=True).hidden_states
        n = len(e.ids)
        if mode == "last":
            w = torch.nn.functional.one_hot(torch.tensor(n - 1), n).float()
        elif mode == "mean":
            w = torch.ones(n)
            w[0] = 0  # BOS
        else:
            w = torch.tensor(e.response, dtype=torch.float)
        w = w / w.sum()
        rows.append(torch.stack([(w[:, None] * h[0]).sum(0) for h in hidden[:-1]]))
    return torch.stack(rows, dim=1)


@pytest.mark.parametrize("mode", ["last", "mean", "response"])
def test_left_and_right_padding_match_unpadded_reference(tiny_model, tiny_tokenizer, mode):
    encoded = encode(tiny_tokenizer, PROMPTS, RESPONSES, max_length=64)
    layers = list(range(len(tiny_model.model.layers)))  # all but the last (post-norm in HF)
    pad, bos = tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id
    right = pooled_hidden_states(tiny_model, collate(encoded, pad, bos, mode, "right"), layers)
    left = pooled_hidden_states(tiny_model, collate(encoded, pad, bos, mode, "left"), layers)
    reference = _reference(tiny_model, encoded, mode)
    assert torch.allclose(right, left, atol=1e-5)
    assert torch.allclose(right, reference, atol=1e-4)


def test_response_span_covers_exactly_the_response_tokens(tiny_tokenizer):
    encoded = encode(tiny_tokenizer, PROMPTS, RESPONSES, max_length=64)
    for e, response in zip(encoded, RESPONSES, strict=True):
        span = [tid for tid, flag in zip(e.ids, e.response, strict=True) if flag]
        assert tiny_tokenizer.decode(span).strip() == response.strip()
        assert not e.response[0]  # BOS never pooled
        assert e.ids.count(tiny_tokenizer.bos_token_id) == 1


def test_truncation_keeps_the_prompt_cuts_the_response_end_and_warns(tiny_tokenizer, caplog):
    full = encode(tiny_tokenizer, PROMPTS, RESPONSES, max_length=512)
    for prompt, response, whole in zip(PROMPTS, RESPONSES, full, strict=True):
        limit = len(whole.ids) - 2
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            (cut,) = encode(tiny_tokenizer, [prompt], [response], max_length=limit)
        assert f"1 of 1 examples are longer than {limit} tokens" in caplog.text
        assert cut.ids == whole.ids[:limit]  # the start (BOS, prompt) kept, the end cut
        assert cut.response == whole.response[:limit]
        assert any(cut.response)


def test_a_prompt_longer_than_max_length_is_a_clear_error(tiny_tokenizer):
    with pytest.raises(ValuetraceError, match=r"1 of 2 examples have a prompt .* leaving no room"):
        encode(tiny_tokenizer, PROMPTS, RESPONSES, max_length=8)


def test_empty_response_span_is_a_clear_error(tiny_tokenizer):
    encoded = encode(tiny_tokenizer, ["only a prompt"], [""], max_length=128)
    with pytest.raises(ValuetraceError, match="no response tokens"):
        collate(encoded, tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id, "response")
