"""Load the models valuetrace reads, hash their files, and find their decoder blocks.

A foundation module: any Hugging Face causal LM by hub id or local path, optionally with a PEFT
adapter on top; the content hashes that cache provenance and lineage record.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from valuetrace.errors import CheckpointError

WEIGHT_SUFFIXES = (".safetensors", ".bin")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _check_local_or_hub(name_or_path: str) -> None:
    """Fail fast on a path that does not exist, instead of a long hub retry."""
    path = Path(name_or_path)
    looks_local = (
        name_or_path.startswith((".", "/", "~"))
        or path.suffix != ""
        or (name_or_path.count("/") != 1)
    )
    if looks_local and not path.exists():
        raise CheckpointError(
            f"model path {name_or_path} does not exist; pass a folder written by "
            "save_pretrained or a hub id such as meta-llama/Llama-3.1-8B."
        )
    markers = ("config.json", "adapter_config.json", "tokenizer_config.json")
    if path.is_dir() and not any((path / name).is_file() for name in markers):
        raise CheckpointError(
            f"{name_or_path} holds no config.json: it is not a Hugging Face model or tokenizer "
            "folder."
        )


def load_tokenizer(name_or_path: str, revision: str | None = None) -> PreTrainedTokenizerFast:
    """Load a tokenizer and make sure it can pad (reusing EOS as PAD, as Llama users do)."""
    _check_local_or_hub(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"could not load a tokenizer from {name_or_path}: {err}") from err
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise CheckpointError(
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
        raise CheckpointError(f"could not read a model config from {name_or_path}: {err}") from err
    if not any(a.endswith("ForCausalLM") for a in (config.architectures or [])):
        raise CheckpointError(
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
        raise CheckpointError(
            f"adapter {adapter} does not fit base model {model.config.name_or_path} "
            f"(hidden size {model.config.hidden_size}): {err}. Load it on the base it was "
            "trained from."
        ) from err


def tokenizer_hash(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 of what decides a tokenizer's ids: the tokenizer hash in cache provenance.

    Covers the full tokenizer definition (vocabulary, merges, normalizer, added tokens,
    post-processor), the chat template and the special-token roles (bos, eos, pad, unk …), so a
    changed template or special token invalidates caches made with the old one.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    definition = (
        backend.to_str()
        if backend is not None
        else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    )
    text = json.dumps(
        {
            "tokenizer": definition,
            "chat_template": tokenizer.chat_template,
            "special_tokens": {k: str(v) for k, v in tokenizer.special_tokens_map.items()},
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The transformer blocks of a decoder-only HF model (Llama, Mistral, Qwen, GPT-2 …)."""
    body = model.base_model
    for attr in ("layers", "h", "blocks"):
        layers = getattr(body, attr, None)
        if isinstance(layers, torch.nn.ModuleList):
            return layers
    raise CheckpointError(
        f"cannot find the decoder layers of {type(model).__name__}; expected "
        "model.model.layers (Llama-style) or model.transformer.h (GPT-2 style)."
    )


def weights_hash(checkpoint: str | Path) -> str:
    """sha256 over the weight files of a checkpoint folder (names and bytes, sorted)."""
    folder = Path(checkpoint)
    files = sorted(p for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise CheckpointError(
            f"{folder} holds no weight files (*.safetensors / *.bin); is it a checkpoint folder?"
        )
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
