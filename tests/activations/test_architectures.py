"""Every pooled layer is the residual stream HF reports, on every architecture family valuetrace
accepts (`tests.architectures`), and an architecture without a block list is refused.

Convention: layer 0 is the input of the first decoder block (HF `hidden_states[0]`), layer l the
output of block l-1 (HF `hidden_states[l]`) for l < L; HF's last hidden state is after the final
norm, valuetrace's layer L is before it, so the comparison with HF covers layers 0..L-1.
"""

from __future__ import annotations

import pytest
import torch
from transformers import OPTConfig, OPTForCausalLM

from tests.architectures import FAMILIES, family_model
from tests.conftest import hf_pooled_hidden_states
from valuetrace.activations.extract import n_layers, pooled_hidden_states
from valuetrace.activations.pooling import collate, encode
from valuetrace.errors import ConfigError

PROMPTS = ["Q: the cat rested near the barn? A:", "Q: a dog? A:", "Q: the hen? A:"]
RESPONSES = [" the vet listened.", " the farmer watched while the child helped.", " it slept."]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_pooled_layer_equals_hf_hidden_states(family, tiny_tokenizer):
    model = family_model(family, tiny_tokenizer)
    encoded = encode(tiny_tokenizer, PROMPTS, RESPONSES, 64)  # unequal lengths: padding
    batch = collate(encoded, tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id, "mean")
    layers = list(range(n_layers(model)))
    pooled = pooled_hidden_states(model, batch, layers)
    want = hf_pooled_hidden_states(model, batch)
    assert len(want) == len(layers) == 3
    want = want[:-1]
    torch.testing.assert_close(pooled[:-1], want, rtol=1e-5, atol=1e-6)
    early = pooled_hidden_states(model, batch, [0])  # stops before the first block runs
    torch.testing.assert_close(early[0], want[0], rtol=1e-5, atol=1e-6)


def test_an_architecture_without_a_block_list_is_refused_by_name(tiny_tokenizer):
    opt = OPTForCausalLM(
        OPTConfig(
            vocab_size=len(tiny_tokenizer),
            hidden_size=16,
            num_hidden_layers=1,
            ffn_dim=32,
            num_attention_heads=2,
            word_embed_proj_dim=16,
        )
    )
    with pytest.raises(ConfigError, match=r"cannot map OPTForCausalLM \(model_type 'opt'\)"):
        n_layers(opt)
