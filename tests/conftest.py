"""Shared fixtures: a tiny real Llama and tokenizer built offline, and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(2)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

CORPUS = [
    f"The {animal} {verb} near the {place} while the {person} {act}."
    for animal in ["cat", "dog", "pig", "cow", "hen", "fox", "crow", "goat"]
    for verb in ["rested", "waited", "limped", "slept"]
    for place in ["barn", "river", "road"]
    for person, act in [("farmer", "watched"), ("child", "helped"), ("vet", "listened")]
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data beside the repo, or a skip that says why."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (see README, 'Real data')")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE trained on a small corpus (no hub)."""
    from valuetrace.training.scratch import train_tokenizer

    return train_tokenizer(CORPUS, vocab_size=400)


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    """A randomly initialised 2-block Llama (hidden 32) in eval mode."""
    from valuetrace.training.scratch import build_scratch_model

    model = build_scratch_model(
        tiny_tokenizer,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        seed=0,
    )
    return model.eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model, tiny_tokenizer) -> Path:
    """The tiny model and tokenizer saved with save_pretrained."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    tiny_model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def smollm2_checkpoint() -> Path:
    """SmolLM2-135M-Instruct from the user cache (a cached hub copy, or the converted GGUF).

    Never downloads: `.ci/run` fetches it first (`valuetrace models fetch
    smollm2-135m-instruct`); without it the real-model tests skip and say so.
    """
    from valuetrace.model_sources import BUILTINS, cache_root, cached_builtin

    found = cached_builtin(BUILTINS["smollm2-135m-instruct"])
    if found is None:
        pytest.skip(
            f"SmolLM2-135M-Instruct is not cached under {cache_root()} or the hub cache; run "
            "`valuetrace models fetch smollm2-135m-instruct` (as .ci/run does) to run the "
            "real-model tests"
        )
    return Path(found.path)


def assert_layers_close(got: torch.Tensor, want: torch.Tensor, tol: float = 1e-4) -> None:
    """Per layer (dim 0): max |got - want| <= tol * max(1, max |want| of that layer).

    A real model's residual stream carries massive activations (SmolLM2: |x| up to ~600 in a
    few dimensions), where float32 spacing alone is 6e-5 and two correct kernels (eager vs SDPA
    attention, merged vs unmerged LoRA) differ by a few 1e-4; scaled by the layer's magnitude,
    they agree to ~1e-6.
    """
    for layer, (g, w) in enumerate(zip(got, want, strict=True)):
        scale = max(1.0, w.abs().max().item())
        diff = (g - w).abs().max().item()
        assert diff <= tol * scale, f"layer {layer}: max |diff| {diff:.2e} > {tol} x {scale:.1f}"


@torch.inference_mode()
def hf_hidden_states(model, batch) -> tuple[torch.Tensor, ...]:
    """HF `output_hidden_states` of a collated batch: (layers + 1) tensors [batch, tokens, d],
    the reference the hook-based readings are checked against."""
    return model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        output_hidden_states=True,
    ).hidden_states


def hf_pooled_hidden_states(model, batch) -> torch.Tensor:
    """`hf_hidden_states` pooled with the batch's weights: (layers + 1, batch, d)."""
    states = hf_hidden_states(model, batch)
    return torch.stack([torch.einsum("bt,btd->bd", batch.weights, h) for h in states])
