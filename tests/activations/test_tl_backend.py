"""The transformer-lens backend agrees with the hook backend and HF `output_hidden_states`."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from tests.activations.test_extract import PROVENANCE, _examples
from tests.architectures import family_model
from tests.conftest import hf_pooled_hidden_states
from valuetrace.activations.extract import extract_to_cache, pooled_hidden_states
from valuetrace.activations.pooling import collate, encode
from valuetrace.activations.store import read_activations
from valuetrace.activations.tl_backend import boot_bridge, pooled_hidden_states_tl
from valuetrace.errors import ValuetraceError

PROMPTS = ["Q: the cat rested near the barn? A:", "Q: a dog? A:", "Q: the hen? A:"]
RESPONSES = [" the vet listened.", " the farmer watched while the child helped.", " it slept."]


@pytest.fixture(scope="module")
def bridge(tiny_model):
    """One bridge for the module (booting imports transformer-lens, about a second)."""
    return boot_bridge(tiny_model)


@pytest.mark.parametrize("mode", ["last", "mean", "response"])
def test_hooks_tl_and_hf_hidden_states_pool_to_the_same_vectors(
    mode, bridge, tiny_model, tiny_tokenizer
):
    encoded = encode(tiny_tokenizer, PROMPTS, RESPONSES, 64)  # unequal lengths: padding
    batch = collate(encoded, tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id, mode)
    hooks = pooled_hidden_states(tiny_model, batch, [0, 1, 2])
    tl = pooled_hidden_states_tl(bridge, batch, [0, 1, 2])
    hf = hf_pooled_hidden_states(tiny_model, batch)
    assert hooks.shape == tl.shape == (3, 3, 32)
    torch.testing.assert_close(tl, hooks, atol=1e-4, rtol=0)
    # HF's last hidden state is after the final norm, so it is compared on layers 0..n-1 only.
    torch.testing.assert_close(hf[:2], hooks[:2], atol=1e-4, rtol=0)
    torch.testing.assert_close(hf[:2], tl[:2], atol=1e-4, rtol=0)
    early = pooled_hidden_states_tl(bridge, batch, [0, 1])  # stops before block 1
    torch.testing.assert_close(early, hooks[:2], atol=1e-4, rtol=0)


def test_layer_0_is_the_first_blocks_input_with_learned_positions(tiny_tokenizer):
    gpt2 = family_model("gpt2", tiny_tokenizer)  # adds position embeddings before block 0
    encoded = encode(tiny_tokenizer, PROMPTS, RESPONSES, 64)
    batch = collate(encoded, tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id, "mean")
    gpt2_bridge = boot_bridge(gpt2)
    tl = pooled_hidden_states_tl(gpt2_bridge, batch, [0, 1])
    hf = hf_pooled_hidden_states(gpt2, batch)
    torch.testing.assert_close(tl, hf[:2], atol=1e-5, rtol=0)
    only_0 = pooled_hidden_states_tl(gpt2_bridge, batch, [0])  # stops after block 0's input
    torch.testing.assert_close(only_0, hf[:1], atol=1e-5, rtol=0)


def test_the_callers_model_and_logging_are_left_as_they_were(tiny_model):
    before = (tiny_model.config._attn_implementation, type(tiny_model.model.layers[0]))
    level = logging.getLogger("transformers").level
    boot_bridge(tiny_model)
    after = (tiny_model.config._attn_implementation, type(tiny_model.model.layers[0]))
    assert after == before
    assert logging.getLogger("transformers").level == level


def test_extract_to_cache_with_the_tl_backend_matches_hooks(tmp_path, tiny_model, tiny_tokenizer):
    data = _examples(40)
    caches = {}
    for backend in ("hooks", "transformer_lens"):
        path = extract_to_cache(
            tiny_model,
            tiny_tokenizer,
            data,
            tmp_path / f"{backend}.h5",
            provenance=PROVENANCE,
            pooling="mean",
            batch_size=8,
            max_length=64,
            progress=False,
            backend=backend,
        )
        caches[backend] = read_activations(path)
    assert caches["hooks"].ids == caches["transformer_lens"].ids
    np.testing.assert_allclose(caches["transformer_lens"].acts, caches["hooks"].acts, atol=1e-4)


def test_an_unknown_backend_is_refused_before_any_file_is_made(
    tmp_path, tiny_model, tiny_tokenizer
):
    data = _examples(4)
    with pytest.raises(ValuetraceError, match="unknown backend 'nnsight'"):
        extract_to_cache(
            tiny_model,
            tiny_tokenizer,
            data,
            tmp_path / "x.h5",
            provenance=PROVENANCE,
            pooling="mean",
            batch_size=4,
            max_length=64,
            backend="nnsight",
        )
    assert not (tmp_path / "x.h5").exists()
