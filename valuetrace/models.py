"""Load the models valuetrace reads and hash their files.

A foundation module: any Hugging Face causal LM by hub id or local path, optionally with a PEFT
adapter on top; the content hashes that cache provenance and lineage record.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from valuetrace.errors import CheckpointError
from valuetrace.model_sources import resolve_model

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
    """Load a tokenizer and make sure it can pad (reusing EOS as PAD, as Llama users do).

    `name_or_path` may also be a GGUF file or a built-in model name (see `model_sources`).
    """
    name_or_path = resolve_model(name_or_path).path
    _check_local_or_hub(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision)
    except (OSError, ValueError) as err:
        raise CheckpointError(_unloadable(name_or_path, "a tokenizer", err)) from err
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise CheckpointError(
                f"tokenizer of {name_or_path} has neither a pad nor an eos token; add a pad "
                "token (tokenizer.add_special_tokens({'pad_token': '<pad>'})) and save it."
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _unloadable(name_or_path: str, what: str, err: Exception) -> str:
    """The message for a folder or hub id that `from_pretrained` could not read."""
    if Path(name_or_path).exists():
        return f"could not load {what} from {name_or_path}: {err}"
    return (
        f"could not load {what} from the hub id {name_or_path} ({err}). With no network and no "
        "cached copy it cannot be had: connect and unset HF_HUB_OFFLINE once to cache it, pass "
        "a local folder or GGUF file instead, or use the built-in 'smollm2-135m-instruct'."
    )


def load_model(
    name_or_path: str,
    *,
    adapter: str | None = None,
    revision: str | None = None,
    dtype: str = "float32",
    device: str | torch.device = "cpu",
) -> PreTrainedModel:
    """Load a causal LM (and an optional PEFT adapter, merged) in eval mode.

    `name_or_path` may be a folder, hub id, GGUF file or built-in name (`model_sources`). With
    an adapter the base is loaded in float32, merged there and cast to `dtype` once; a base that
    is itself an adapter (a chain of unmerged LoRA stages) is merged in float32 first, so the
    chain rounds once. Raises CheckpointError for a missing, unreadable (truncated weight
    files included) or non-causal model or an adapter that does not fit.
    """
    name_or_path = resolve_model(name_or_path).path
    _check_local_or_hub(name_or_path)
    adapter_cfg = Path(name_or_path) / "adapter_config.json"
    if adapter is None and adapter_cfg.is_file():
        adapter = name_or_path
        name_or_path = json.loads(adapter_cfg.read_text())["base_model_name_or_path"]
    if adapter is not None:
        base = load_model(name_or_path, revision=revision, dtype="float32")
        return _apply_adapter(base, adapter, DTYPES[dtype]).to(device).eval()
    try:
        config = AutoConfig.from_pretrained(name_or_path, revision=revision)
    except (OSError, ValueError) as err:
        raise CheckpointError(_unloadable(name_or_path, "a model config", err)) from err
    if not any(a.endswith("ForCausalLM") for a in (config.architectures or [])):
        raise CheckpointError(
            f"{name_or_path} is a {config.architectures} model, not a causal LM; "
            "valuetrace needs an *ForCausalLM checkpoint."
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            name_or_path, revision=revision, dtype=DTYPES[dtype]
        )
    except SafetensorError as err:
        raise CheckpointError(
            f"a weight file of {name_or_path} cannot be read ({err}): it is truncated or "
            "damaged. For a stage of a run, rerun `valuetrace train` on the run folder (a stage "
            "whose weights went missing or changed is retrained, with --overwrite for a changed "
            "one); for a checkpoint from elsewhere, download or save it again."
        ) from err
    return model.to(device).eval()


def _apply_adapter(model: PreTrainedModel, adapter: str, dtype: torch.dtype) -> PreTrainedModel:
    """Load a PEFT adapter onto a float32 `model`, merge it in float32, then cast to `dtype`.

    The merged model's `name_or_path` (config and attribute) becomes the adapter folder, so a
    stage trained on top of it records that folder (not the adapter's own base) as its base.
    """
    from peft import PeftModel

    check_adapter_fits(model, adapter)
    try:
        peft_model = PeftModel.from_pretrained(model, adapter)
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"adapter {adapter} does not fit base model {model.config.name_or_path} "
            f"(hidden size {model.config.hidden_size}): {err}. Load it on the base it was "
            "trained from."
        ) from err
    merged = merge_in_float32(peft_model, dtype)
    merged.name_or_path = merged.config.name_or_path = adapter  # PEFT records `name_or_path`
    return merged


def merge_in_float32(peft_model: torch.nn.Module, dtype: torch.dtype) -> PreTrainedModel:
    """Fold a PEFT LoRA model's adapters into its weights in float32, then cast once to `dtype`.

    W = W0 + (alpha / r) * B @ A is computed with W0, A and B all in float32 (a bf16 W0 widens
    exactly), so the only rounding is the final cast: a bf16 stage rounds its weights once,
    not once for the delta and again for the sum (Hu et al. 2021, LoRA; PEFT merge_and_unload).
    """
    merged = peft_model.float().merge_and_unload()
    return merged.to(dtype)


def _same_base(recorded: str, base: str) -> bool:
    """Whether an adapter's recorded base names the same model as `base` (paths compared
    resolved, hub ids as text)."""
    if Path(recorded).exists() and Path(base).exists():
        return Path(recorded).resolve() == Path(base).resolve()
    return recorded.rstrip("/") == base.rstrip("/")


def check_adapter_fits(model: PreTrainedModel, adapter: str) -> None:
    """Refuse an adapter recorded for another base model, or whose LoRA shapes do not match.

    PEFT itself only warns when `base_model_name_or_path` differs, and loads mismatched
    shapes only to fail later; this checks both before loading. Raises CheckpointError naming
    the adapter's recorded base and the stage's base (or the first mismatched module).
    """
    from safetensors import safe_open

    folder = Path(adapter)
    cfg_path = folder / "adapter_config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{adapter} holds no adapter_config.json: it is not a PEFT adapter.")
    recorded = json.loads(cfg_path.read_text()).get("base_model_name_or_path")
    base = str(getattr(model, "name_or_path", "") or model.config.name_or_path)
    if recorded and base and not _same_base(recorded, base):
        raise CheckpointError(
            f"adapter {adapter} was trained on base model {recorded}, but the stage's base is "
            f"{base}; load it on {recorded}, or set the stage's checkpoint to the base it was "
            "trained from."
        )
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        return
    modules = dict(model.named_modules())
    with safe_open(str(weights), framework="pt") as fh:
        for key in fh.keys():  # noqa: SIM118 (safe_open has no __iter__)
            for part, axis, attr in (
                (".lora_A.", 1, "in_features"),
                (".lora_B.", 0, "out_features"),
            ):
                if part not in key:
                    continue
                name = key.split(part)[0].removeprefix("base_model.model.")
                module = modules.get(name)
                shape = fh.get_slice(key).get_shape()
                expected = getattr(module, attr, None)
                if module is None or shape[axis] != expected:
                    raise CheckpointError(
                        f"adapter {adapter} does not fit base model {base}: its {key} has shape "
                        f"{tuple(shape)}, but the base's {name} "
                        + ("does not exist" if module is None else f"has {attr} {expected}")
                        + f" (hidden size {model.config.hidden_size}). Load it on the base it "
                        "was trained from."
                    )


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
