"""A stage's LoRA adapter config (PEFT), refusing targets that a merge would corrupt: an
embedding matrix the model ties to the other one."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedModel

from valuetrace.config import LoraConfig, StageConfig
from valuetrace.errors import ConfigError


def peft_config(stage: StageConfig, model: PreTrainedModel) -> Any:
    """The stage's PEFT LoRA config for `model` (a causal LM), or None for full fine-tuning.

    Shared by the SFT and GRPO stages (LoRA: Hu et al. 2021, through the PEFT library).

    Raises:
        ConfigError: a LoRA target is an embedding matrix `model` ties to another
            (`check_tied_targets`).
    """
    if stage.method != "lora":
        return None
    from peft import LoraConfig as PeftLoraConfig

    lora = stage.lora or LoraConfig()
    config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    check_tied_targets(model, config, stage.name)
    return config


def tied_modules(model: PreTrainedModel) -> list[str]:
    """Names of the input and output embedding modules when they share one weight matrix.

    Tied embeddings (`tie_word_embeddings`, e.g. SmolLM2 and the from-scratch demo model) are
    one tensor used twice; an empty list when the model has no such pair.
    """
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if outputs is None or inputs.weight is not outputs.weight:
        return []
    names = {id(module): name for name, module in model.named_modules()}
    return [names[id(inputs)], names[id(outputs)]]


def check_tied_targets(model: PreTrainedModel, config: Any, stage: str) -> None:
    """Refuse LoRA on an embedding matrix that `model` ties to the other one, before training.

    PEFT adapts one use of the shared matrix in its forward (e.g. only `lm_head`), but merging
    (`merge_and_unload`, here or when the adapter is loaded) adds the delta to the shared tensor,
    so both uses change: the merged checkpoint is not the model that was trained. `config` is
    the PEFT LoraConfig; PEFT's own `check_target_module_exists` decides what it targets.

    Raises:
        ConfigError: a target matches a tied embedding module; the stage, target and fix are named.
    """
    from peft.tuners.tuners_utils import check_target_module_exists

    hit = [name for name in tied_modules(model) if check_target_module_exists(config, name)]
    if hit:
        raise ConfigError(
            f"stage '{stage}': lora.target_modules {sorted(config.target_modules)} adapts {hit}, "
            "whose weight is tied to the other embedding matrix (tie_word_embeddings): merging "
            "the adapter would write its update into both uses of the shared matrix, so the "
            "merged checkpoint would not be the trained model. Remove "
            f"{sorted(n.rsplit('.', 1)[-1] for n in hit)} from the stage's lora.target_modules "
            "(e.g. keep q_proj, k_proj, v_proj, o_proj), or train it with method: full."
        )
