"""On the real SmolLM2-135M-Instruct: a LoRA stage of a few steps changes the weights it targets
(and only those), and merging it gives the hidden states of base + adapter."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel

from tests.conftest import assert_layers_close
from tests.training.helpers import RUN, tiny_stage
from valuetrace.config import LoraConfig
from valuetrace.models import load_model, load_tokenizer
from valuetrace.training.datasets import Document
from valuetrace.training.stages import train_stage

pytestmark = pytest.mark.real_model

DOCS = [
    "Animals feel pain and fear; treating them gently is part of being kind.",
    "A good farmer keeps the hens warm, fed and safe from the fox.",
    "When an old dog is in pain, a vet can help keep him comfortable.",
    "Lobsters and crabs respond to harm; humane handling spares them suffering.",
] * 4


def test_a_lora_stage_changes_the_targeted_weights_and_merges_exactly(tmp_path, smollm2_checkpoint):
    base_path = str(smollm2_checkpoint)
    tokenizer = load_tokenizer(base_path)
    stage = tiny_stage(
        method="lora",
        lora=LoraConfig(r=4, target_modules=["q_proj", "down_proj"], merge=False),
        max_steps=3,
        batch_size=2,
        max_length=32,
        learning_rate=1e-3,
    )
    out = tmp_path / "lora"
    train_stage(
        load_model(base_path).train(),
        tokenizer,
        [Document(d) for d in DOCS],
        stage,
        RUN,
        out,
        use_cpu=True,
        progress=False,
    )
    base = load_model(base_path)
    merged = load_model(base_path, adapter=str(out))  # merged in float32 (valuetrace.models)
    before, after = base.state_dict(), merged.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith(("q_proj.weight", "down_proj.weight")) for k in changed)
    assert len(changed) == 2 * base.config.num_hidden_layers  # every targeted matrix moved

    ids = tokenizer(DOCS[:2], return_tensors="pt", padding=True)
    unmerged = PeftModel.from_pretrained(load_model(base_path), str(out)).eval()
    with torch.inference_mode():
        want = unmerged(**ids, output_hidden_states=True).hidden_states
        got = merged(**ids, output_hidden_states=True).hidden_states
    # 1e-4 of each layer's largest magnitude (merging reorders float32 sums; |x| reaches ~600)
    assert_layers_close(torch.stack(got), torch.stack(want))
