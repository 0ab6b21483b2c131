"""On the real SmolLM2-135M-Instruct: the hook and transformer-lens backends pool exactly the
hidden states HF's `output_hidden_states` returns, for all three poolings, on all 31 layers.

Hooks and HF agree to 1e-4 absolute plus 1e-6 relative: the hook path runs the chat template's
shared system turn once (`activations.prefix`), which changes float rounding (measured: one
element of 34,560 off by 1.2e-4 at |x| ~ 550, 2.2e-7 relative). transformer-lens
runs eager attention; it agrees to 1e-4 of each layer's largest magnitude (measured: <= 1e-6 of
it; in absolute terms up to 4e-4 where SmolLM2's massive activations reach |x| ~ 600)."""

from __future__ import annotations

import pytest
import torch

from tests.activations.test_tl_backend import hf_pooled_hidden_states
from tests.conftest import assert_layers_close
from valuetrace.activations.extract import pooled_hidden_states
from valuetrace.activations.pooling import collate, encode
from valuetrace.activations.tl_backend import boot_bridge, pooled_hidden_states_tl
from valuetrace.models import load_model, load_tokenizer

pytestmark = pytest.mark.real_model

PROMPTS = ["Is it okay to boil lobsters alive?", "My dog is old and in pain. What should I do?"]
RESPONSES = [
    " Lobsters can feel pain, so a quick, humane method is kinder.",
    " Talk to your vet about pain relief; keeping him comfortable matters most.",
]


@pytest.fixture(scope="module")
def smollm2(smollm2_checkpoint):
    return load_model(str(smollm2_checkpoint)), load_tokenizer(str(smollm2_checkpoint))


@pytest.mark.parametrize("mode", ["last", "mean", "response"])
def test_backends_equal_hf_hidden_states_on_smollm2(smollm2, mode):
    model, tokenizer = smollm2
    encoded = encode(tokenizer, PROMPTS, RESPONSES, 128, chat=True)
    batch = collate(encoded, tokenizer.pad_token_id, tokenizer.bos_token_id, mode)
    layers = list(range(model.config.num_hidden_layers + 1))  # 31: embeddings + 30 blocks
    hooks = pooled_hidden_states(model, batch, layers)
    tl = pooled_hidden_states_tl(boot_bridge(model), batch, layers)
    hf = hf_pooled_hidden_states(model, batch)
    assert hooks.shape == tl.shape == (31, 2, 576)
    assert_layers_close(tl, hooks)  # 1e-4 of each layer's largest magnitude (eager vs SDPA)
    # HF's last hidden state is after the final RMSNorm: blocks 0..29 compare directly ...
    torch.testing.assert_close(hf[:-1], hooks[:-1], atol=1e-4, rtol=1e-6)
    if mode == "last":  # ... and one token's pooled state can be normed after pooling
        with torch.inference_mode():
            normed = model.model.norm(hooks[-1])
        torch.testing.assert_close(hf[-1], normed, atol=1e-4, rtol=0)
