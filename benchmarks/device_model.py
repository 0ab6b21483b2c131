"""The device check's model and clocks (`benchmarks/device_check.py`): the shapes it measures
(Llama-3.1-8B's and a tiny one), a randomly initialised Llama of a shape built directly on the
device, random token rows, and wall times and peak GPU memory that include the device's queue."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM


@dataclass(frozen=True)
class Shape:
    """A model shape and the sizes of each measurement."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    dtype: str
    rows: int  # extraction rows
    min_len: int
    max_len: int
    extract_batch: int
    train_batch: int
    train_len: int
    train_steps: int  # timed steps, after one warm-up step
    full_layers: int
    gen_batch: int
    gen_prompt: int
    gen_new: int


SHAPES = {
    # Llama-3.1-8B's config (hidden 4096, 32 blocks, GQA 32/8, MLP 14336, vocab 128256); probe
    # rows of 64-320 tokens (SmolLM2's probe rows under a chat template: ~60-128)
    "8b": Shape(
        4096, 32, 32, 8, 14336, 128256, "bfloat16", 512, 64, 320, 16, 4, 512, 3, 8, 16, 128, 64
    ),
    "tiny": Shape(32, 2, 4, 2, 64, 512, "float32", 24, 8, 32, 8, 2, 32, 2, 2, 4, 8, 4),
}


def build_model(shape: Shape, device: torch.device, layers: int | None = None) -> LlamaForCausalLM:
    """A randomly initialised Llama of `shape`, created on `device` in its dtype (no CPU copy)."""
    config = LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=layers or shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        intermediate_size=shape.intermediate,
        max_position_embeddings=4 * max(shape.max_len, shape.train_len),
        rope_theta=500000.0,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=getattr(torch, shape.dtype))
    return model.eval()


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so wall times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict[str, Any]) -> Iterator[None]:
    """Record the peak GPU memory (GB) of the block in `out["peak_gb"]` (None on the CPU)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    yield
    out["peak_gb"] = (
        round(torch.cuda.max_memory_allocated(device) / 1e9, 2) if device.type == "cuda" else None
    )


def timed(device: torch.device, fn: Callable[[], object]) -> float:
    """Wall seconds of one call, the device's queue included."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def random_rows(shape: Shape, rng: np.random.Generator) -> list[list[int]]:
    """Token-id rows of random lengths in [min_len, max_len] (ids >= 2: 0 pads, 1 ends)."""
    lengths = rng.integers(shape.min_len, shape.max_len + 1, size=shape.rows)
    return [rng.integers(2, shape.vocab, size=n).tolist() for n in lengths]


def as_text(ids: Sequence[int]) -> str:
    """The text the word-level tokenizer reads back as exactly `ids`."""
    return " ".join(f"t{i}" for i in ids)
