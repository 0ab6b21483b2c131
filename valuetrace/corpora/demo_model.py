"""The built-in demo's data on a real model: `valuetrace demo --model NAME`.

The demo config trains a tiny Llama from scratch; on a pretrained model the base stage is the
model as it is and the later stages are LoRA fine-tunes on the same built-in data, capped so the
run stays CPU-sized (~25 optimizer steps of 8 x 128 tokens per stage, as micro-batches of 4).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from valuetrace.config import LoraConfig, RunConfig, config_to_dict

# LoraConfig's defaults, on every linear layer of the block (attention and MLP)
DEMO_MODEL_LORA = LoraConfig(
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
)
STAGE_LIMIT = 200  # examples per trained stage: ~20-25k tokens, ~3 min of LoRA on 2 CPU cores


def demo_on_model(config: RunConfig, model: str) -> dict[str, Any]:
    """The demo config rewritten for `model` (a built-in name, hub id, folder or GGUF file).

    Returns plain config data: model = `model` with its chat template, base = the model as it
    is, every other stage LoRA (r 16, all linear layers, lr 2e-4, one epoch) on at most
    `STAGE_LIMIT` of its examples, and a run folder named after the model.
    """
    plain = config_to_dict(config)
    plain["model"] = {"name_or_path": model, "dtype": "float32", "chat_template": True}
    plain["tokenizer_corpora"] = []
    plain["run_dir"] = f"{plain['run_dir']}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', model)}"
    stages = []
    for stage in plain["stages"]:
        if stage["parent"] is None:
            stages.append({"name": stage["name"]})
            continue
        stage["data"]["limit"] = min(stage["data"]["limit"] or STAGE_LIMIT, STAGE_LIMIT)
        stage.update(
            method="lora",
            lora=dataclasses.asdict(DEMO_MODEL_LORA),
            epochs=1.0,
            learning_rate=2e-4,
            batch_size=4,  # x 2 accumulation steps: an optimizer batch of 8 in half the memory
            grad_accum=2,
            max_length=128,
        )
        stages.append(stage)
    plain["stages"] = stages
    plain["extract"]["batch_size"] = 8
    return plain
