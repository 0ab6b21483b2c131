"""valuetrace.architecture: residual sites, the post-head transform each family's config implies,
and the one-row check that refuses logits scoring cannot reproduce."""

from __future__ import annotations

import pytest
import torch
from transformers import MptConfig, MptForCausalLM

from tests.architectures import FAMILIES, family_model
from valuetrace.architecture import (
    LogitTransform,
    check_logits,
    decoder_layers,
    logit_transform,
    residual_hooks,
    residual_site,
)
from valuetrace.errors import ConfigError

# What each family's *ForCausalLM.forward does after its head, with the tiny configs' values.
TRANSFORMS = {
    "cohere": LogitTransform(scale=0.0625),
    "granite": LogitTransform(scale=1 / 8),
    "minicpm3": LogitTransform(scale=1 / 4),  # hidden / logits_scaling, logits_scaling = 32 / 8
    "hyperclovax": LogitTransform(scale=4.0),  # MuP: multiplies by `logits_scaling`
    "falcon_h1": LogitTransform(scale=4.0),
    "gemma2": LogitTransform(softcap=0.5),
    "gemma3_text": LogitTransform(softcap=0.5),
}


def test_layer_0_is_the_first_blocks_input_and_layer_l_block_l_minus_1s_output():
    assert [residual_site(layer) for layer in range(4)] == [
        (0, True),
        (0, False),
        (1, False),
        (2, False),
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_transform_comes_from_the_config(family, tiny_tokenizer):
    # that it reproduces each family's forward is checked by scoring (tests/analysis/test_logprob)
    assert logit_transform(family_model(family, tiny_tokenizer)) == TRANSFORMS.get(
        family, LogitTransform()
    )


def test_a_field_of_the_same_name_counts_only_for_the_families_that_apply_it():
    # MPT's config has a `logit_scale`, but transformers' MPT forward never applies it.
    mpt = MptForCausalLM(
        MptConfig(
            d_model=32, n_heads=2, n_layers=2, max_seq_len=64, vocab_size=100, logit_scale=4.0
        )
    ).eval()
    assert logit_transform(mpt) == LogitTransform()
    check_logits(mpt, torch.arange(10))


def test_a_transform_that_does_not_reproduce_the_logits_is_refused(tiny_tokenizer, monkeypatch):
    cohere = family_model("cohere", tiny_tokenizer)
    monkeypatch.setattr("valuetrace.architecture._LOGIT_SCALES", ())  # as if Cohere were unknown
    with pytest.raises(ConfigError, match=r"CohereForCausalLM \(model_type 'cohere'\).*differs"):
        check_logits(cohere, torch.arange(12))


def test_edits_registered_first_run_before_readers_and_every_hook_is_removed(tiny_model):
    seen: list[torch.Tensor] = []
    blocks = decoder_layers(tiny_model)
    before = [len(b._forward_hooks) + len(b._forward_pre_hooks) for b in blocks]
    with (
        residual_hooks(tiny_model, {0: seen.append, 2: seen.append}),
        residual_hooks(tiny_model, dict.fromkeys((0, 2), torch.zeros_like), first=True),
        torch.inference_mode(),
    ):
        tiny_model(torch.arange(6)[None])
    assert len(seen) == 2 and all(not h.any() for h in seen)
    assert [len(b._forward_hooks) + len(b._forward_pre_hooks) for b in blocks] == before
