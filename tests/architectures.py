"""Tiny randomly initialised models of many transformers 5 architecture families, built offline.

The architecture tests (`tests/activations/test_architectures.py`, `tests/analysis/
test_logprob.py`, `tests/analysis/test_causal.py`) run on each: 2 blocks, hidden 32, sized to
the tiny tokenizer's vocabulary. Families whose forward changes the residual stream before the
first block (GPT-2's learned positions, Granite's and MiniCPM3's embedding multipliers, Gemma's
sqrt(d) scale) or the logits after the head (Granite's and MiniCPM3's divisors, Cohere's
multiplier, Gemma 2/3's soft-cap, set low enough here to bind on a random model's logits) are
among them on purpose.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import transformers
from transformers import PretrainedConfig, PreTrainedModel

HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 32, 2, 4, 64, 128
LLAMA_LIKE = {
    "hidden_size": HIDDEN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "num_key_value_heads": 2,
    "intermediate_size": FFN,
    "max_position_embeddings": POSITIONS,
}

# family -> (config class, model class, config fields beyond LLAMA_LIKE; None: replace it)
_FAMILIES: dict[str, tuple[str, str, dict[str, object] | None]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": 8}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 8}),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {"head_dim": 8}),
    "gemma2": (
        "Gemma2Config",
        "Gemma2ForCausalLM",
        {"head_dim": 8, "final_logit_softcapping": 0.5, "sliding_window": 8},
    ),
    "gemma3_text": (
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        {"head_dim": 8, "final_logit_softcapping": 0.5, "sliding_window": 8},
    ),
    "phi": ("PhiConfig", "PhiForCausalLM", {}),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {}),
    "olmo": ("OlmoConfig", "OlmoForCausalLM", {}),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", {}),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", None),
    "granite": (
        "GraniteConfig",
        "GraniteForCausalLM",
        {"embedding_multiplier": 12.0, "logits_scaling": 8.0, "residual_multiplier": 0.22},
    ),
    "cohere": ("CohereConfig", "CohereForCausalLM", {"logit_scale": 0.0625}),
    "hyperclovax": (
        "HyperCLOVAXConfig",
        "HyperCLOVAXForCausalLM",
        {"embedding_multiplier": 4.0, "logits_scaling": 4.0, "residual_multiplier": 0.5},
    ),
    "falcon_h1": (
        "FalconH1Config",
        "FalconH1ForCausalLM",
        {
            "embedding_multiplier": 4.0,
            "lm_head_multiplier": 4.0,
            "mamba_d_ssm": 32,
            "mamba_n_heads": 4,
            "mamba_d_state": 8,
            "mamba_chunk_size": 8,
        },
    ),
    "minicpm3": (
        "MiniCPM3Config",
        "MiniCPM3ForCausalLM",
        {
            "num_key_value_heads": HEADS,
            "q_lora_rank": 16,
            "kv_lora_rank": 16,
            "qk_nope_head_dim": 8,
            "qk_rope_head_dim": 8,
            "v_head_dim": 8,
            "scale_emb": 12,
            "dim_model_base": 8,  # logits_scaling = hidden / dim_model_base = 4
        },
    ),
}
FAMILIES = sorted(_FAMILIES)


GPT2_FIELDS = {
    "n_embd": HIDDEN,
    "n_layer": LAYERS,
    "n_head": HEADS,
    "n_inner": FFN,
    "n_positions": POSITIONS,
}


@functools.cache
def tiny_family_model(
    family: str, vocab_size: int, bos: int, eos: int, pad: int
) -> PreTrainedModel:
    """A random 2-block `family` model in float32 eval mode, eager attention (seed 0)."""
    config_name, model_name, extra = _FAMILIES[family]
    config_cls: Callable[..., PretrainedConfig] = getattr(transformers, config_name)
    fields = GPT2_FIELDS if extra is None else {**LLAMA_LIKE, **extra}
    config = config_cls(
        **fields,
        vocab_size=vocab_size,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    return getattr(transformers, model_name)(config).eval()


def family_model(family: str, tokenizer) -> PreTrainedModel:
    """`tiny_family_model` sized to `tokenizer` (its vocabulary and special tokens)."""
    return tiny_family_model(
        family,
        len(tokenizer),
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
