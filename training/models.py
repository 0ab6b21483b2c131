"""Build, load and save the models valuetrace trains and reads.

Two ways in: a from-scratch Llama-architecture model with a byte-level BPE tokenizer trained on
the project's own corpus (the offline demo), or any Hugging Face causal LM by hub id or local
path, optionally with a PEFT adapter on top.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from valuetrace.errors import ValuetraceError

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts` (no hub), with BOS/EOS/PAD tokens."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = SPECIAL_TOKENS["bos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def build_scratch_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    intermediate_size: int,
    max_position_embeddings: int,
    seed: int,
) -> LlamaForCausalLM:
    """A randomly initialised Llama sized to the tokenizer (its BPE may stop below the target)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def _check_local_or_hub(name_or_path: str) -> None:
    """Fail fast on a path that does not exist, instead of a long hub retry."""
    path = Path(name_or_path)
    looks_local = (
        name_or_path.startswith((".", "/", "~"))
        or path.suffix != ""
        or (name_or_path.count("/") != 1)
    )
    if looks_local and not path.exists():
        raise ValuetraceError(
            f"model path {name_or_path} does not exist; pass a folder written by "
            "save_pretrained or a hub id such as meta-llama/Llama-3.1-8B."
        )
    markers = ("config.json", "adapter_config.json", "tokenizer_config.json")
    if path.is_dir() and not any((path / name).is_file() for name in markers):
        raise ValuetraceError(
            f"{name_or_path} holds no config.json: it is not a Hugging Face model or tokenizer "
            "folder."
        )


def load_tokenizer(name_or_path: str, revision: str | None = None) -> PreTrainedTokenizerFast:
    """Load a tokenizer and make sure it can pad (reusing EOS as PAD, as Llama users do)."""
    _check_local_or_hub(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision)
    except (OSError, ValueError) as err:
        raise ValuetraceError(f"could not load a tokenizer from {name_or_path}: {err}") from err
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValuetraceError(
                f"tokenizer of {name_or_path} has neither a pad nor an eos token; add a pad "
                "token (tokenizer.add_special_tokens({'pad_token': '<pad>'})) and save it."
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    name_or_path: str,
    *,
    adapter: str | None = None,
    revision: str | None = None,
    dtype: str = "float32",
    device: str | torch.device = "cpu",
) -> PreTrainedModel:
    """Load a causal LM (and an optional PEFT adapter, merged) in eval mode."""
    _check_local_or_hub(name_or_path)
    adapter_cfg = Path(name_or_path) / "adapter_config.json"
    if adapter is None and adapter_cfg.is_file():
        adapter = name_or_path
        name_or_path = json.loads(adapter_cfg.read_text())["base_model_name_or_path"]
    try:
        config = AutoConfig.from_pretrained(name_or_path, revision=revision)
    except (OSError, ValueError) as err:
        raise ValuetraceError(f"could not read a model config from {name_or_path}: {err}") from err
    if not any(a.endswith("ForCausalLM") for a in (config.architectures or [])):
        raise ValuetraceError(
            f"{name_or_path} is a {config.architectures} model, not a causal LM; "
            "valuetrace needs an *ForCausalLM checkpoint."
        )
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, revision=revision, dtype=DTYPES[dtype]
    )
    if adapter is not None:
        model = _apply_adapter(model, adapter)
    return model.to(device).eval()


def _apply_adapter(model: PreTrainedModel, adapter: str) -> PreTrainedModel:
    """Load a PEFT adapter onto `model` and merge it, with a clear error if it does not fit."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except (RuntimeError, ValueError, KeyError) as err:
        raise ValuetraceError(
            f"adapter {adapter} does not fit base model {model.config.name_or_path} "
            f"(hidden size {model.config.hidden_size}): {err}. Load it on the base it was "
            "trained from."
        ) from err


def tokenizer_hash(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 of a tokenizer's full definition: the tokenizer hash in cache provenance."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = (
        backend.to_str()
        if backend is not None
        else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    )
    return hashlib.sha256(text.encode()).hexdigest()


def decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The transformer blocks of a decoder-only HF model (Llama, Mistral, Qwen, GPT-2 …)."""
    body = model.base_model
    for attr in ("layers", "h", "blocks"):
        layers = getattr(body, attr, None)
        if isinstance(layers, torch.nn.ModuleList):
            return layers
    raise ValuetraceError(
        f"cannot find the decoder layers of {type(model).__name__}; expected "
        "model.model.layers (Llama-style) or model.transformer.h (GPT-2 style)."
    )
