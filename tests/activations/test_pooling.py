"""Pooling: the three modes, padding independence, response spans and truncation."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from valuetrace.activations.extract import pooled_hidden_states
from valuetrace.activations.pooling import Encoded, collate, encode, pool, pooling_weights
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


def test_mean_pooling_bf16_ones_over_three_tokens_is_exactly_one_in_fp32():
    attn = torch.ones(1, 3, dtype=torch.long)
    weights = pooling_weights(attn, attn.bool(), attn.bool(), "mean")
    ones = torch.ones(1, 3, 4, dtype=torch.bfloat16)
    step = torch.tensor([[1.0], [1.0], [1.0 + 2**-7]], dtype=torch.bfloat16)  # bf16-exact rows
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast must not reach the pooling
        pooled, uneven = pool(ones, weights), pool(step.expand(3, 4)[None], weights)
    assert pooled.dtype == torch.float32 and (pooled == 1).all()
    # 1 + 2^-7/3 has no bf16 value (bf16 gives 1.0); fp32 holds it to 1 ulp
    assert torch.allclose(uneven, torch.full_like(uneven, 1 + 2**-7 / 3), rtol=2**-23, atol=0)


def test_a_bf16_model_is_pooled_in_fp32(tiny_model, tiny_tokenizer):
    model = copy.deepcopy(tiny_model).to(torch.bfloat16)
    encoded = encode(tiny_tokenizer, PROMPTS, RESPONSES, max_length=64)
    pad, bos = tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id
    pooled = pooled_hidden_states(model, collate(encoded, pad, bos, "mean"), [0])[0]
    table = model.get_input_embeddings().weight.double()  # layer 0 = the embeddings, bf16-exact
    expected = torch.stack([table[e.ids[1:]].mean(0) for e in encoded]).float()  # BOS excluded
    assert pooled.dtype == torch.float32
    torch.testing.assert_close(pooled, expected, rtol=1e-6, atol=1e-7)


def test_mean_pooling_drops_only_a_leading_bos() -> None:
    """A chat template's turn markers can share the BOS id (ChatML); only position 0 is dropped."""
    bos = 7
    encoded = [Encoded(ids=[bos, 5, bos, 6], response=[False, False, True, True])]
    batch = collate(encoded, pad_id=0, bos_id=bos, mode="mean", padding_side="left")
    torch.testing.assert_close(batch.weights[0], torch.tensor([0.0, 1 / 3, 1 / 3, 1 / 3]))


def test_every_configurable_pooling_has_a_weight_function_and_the_cli_defaults_to_the_config():
    from typing import get_args

    from valuetrace.activations.__main__ import _parser
    from valuetrace.activations.pooling import POOLINGS
    from valuetrace.config import ExtractConfig, Pooling

    assert set(POOLINGS) == set(get_args(Pooling))
    action = next(a for a in _parser()._actions if a.dest == "pooling")
    assert action.default == ExtractConfig().pooling and set(action.choices) == set(POOLINGS)
