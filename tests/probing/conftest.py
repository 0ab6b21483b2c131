"""Probe-test fixtures: a tiny random Llama's activations on contrastive token pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def llama_acts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean-pooled hidden states (embeddings + 3 blocks) of a tiny random Llama on token pairs.

    Each pair shares a random 12-token sequence; one position holds a marker token drawn from
    one of two disjoint sets (label 1 or 0), so the classes differ by one token per sequence.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=32,
    )
    model = LlamaForCausalLM(config).eval()
    rng = np.random.default_rng(0)
    n_pairs, length = 160, 12
    base = rng.integers(50, 300, size=(n_pairs, length))
    position = rng.integers(0, length, size=n_pairs)
    ids = base.repeat(2, axis=0)
    labels = np.tile([0, 1], n_pairs)
    markers = np.where(
        labels == 1, rng.integers(3, 25, 2 * n_pairs), rng.integers(25, 47, 2 * n_pairs)
    )
    ids[np.arange(2 * n_pairs), position.repeat(2)] = markers
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), output_hidden_states=True)
    acts = torch.stack(out.hidden_states).mean(2).numpy()  # [4, n, 64]
    return acts.astype(np.float32), labels, np.repeat(np.arange(n_pairs), 2)
