"""The train step's launch paths: a stage under torchrun (2 CPU processes, gloo) equals one
process with the same global batch, and a launch config that would save no weights is refused
before anything trains."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import CORPUS
from tests.valuetrace.test_prompts import DATED_TEMPLATE
from valuetrace.config import DEFAULT_CHAT_DATE, RunConfig, config_from_dict
from valuetrace.errors import ConfigError, LineageError
from valuetrace.prompts import chat_render_hash
from valuetrace.steps.train import train
from valuetrace.training.lineage import Lineage

STEPS = 6
B = 4  # per-process batch of the two-process run; the one-process run takes 2 * B


def run_config(run_dir: Path, checkpoint: Path, docs: Path, **top: Any) -> RunConfig:
    """The tiny checkpoint as `base` and one merged LoRA stage trained on `docs` under it.

    `top` sets run-level fields; `batch_size` there is the stage's per-process batch.
    """
    batch = top.pop("batch_size", 2 * B)
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    unused = str(run_dir / "unused.jsonl")  # read by later steps only
    return config_from_dict(
        {
            "run_dir": str(run_dir),
            "model": {"name_or_path": str(checkpoint)},
            "stages": [
                {"name": "base"},
                {
                    "name": "lora",
                    "parent": "base",
                    "data": {"source": str(docs), "schema": "documents"},
                    "method": "lora",
                    "lora": lora,
                    "max_steps": STEPS,
                    "batch_size": batch,
                    "max_length": 64,
                    "learning_rate": 3e-3,
                    "warmup_ratio": 0.0,
                },
            ],
            "probes": [{"name": "set", "source": unused}],
            "behaviour": {"compassion_eval": unused, "helpfulness_eval": {"source": unused}},
            "analysis": {"compare": [["base", "lora"]]},
            **top,
        }
    )


@pytest.fixture
def docs(tmp_path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in CORPUS))
    return path


def test_a_launch_config_that_saves_no_weights_is_refused_before_training(
    tmp_path, tiny_checkpoint, docs
):
    accelerate = tmp_path / "fsdp2.yaml"
    accelerate.write_text(
        yaml.safe_dump({"distributed_type": "FSDP", "fsdp_config": {"fsdp_version": 2}})
    )
    config = run_config(tmp_path / "run", tiny_checkpoint, docs, accelerate_config=str(accelerate))
    with pytest.raises(ConfigError, match=r"fsdp_config\.fsdp_state_dict_type: FULL_STATE_DICT"):
        train(config, progress=False)
    assert not (tmp_path / "run").exists()


def test_train_processes_with_an_accelerate_config_is_refused(tmp_path, tiny_checkpoint, docs):
    with pytest.raises(ConfigError, match="train_processes is 2 and accelerate_config is set"):
        run_config(tmp_path, tiny_checkpoint, docs, accelerate_config="a.yaml", train_processes=2)


@pytest.mark.slow
def test_a_lora_stage_under_torchrun_equals_one_process_with_the_same_global_batch(
    tmp_path, monkeypatch, tiny_checkpoint, docs
):
    one = run_config(tmp_path / "one", tiny_checkpoint, docs, batch_size=2 * B)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two ranks on two cores
    two = run_config(tmp_path / "two", tiny_checkpoint, docs, batch_size=B, train_processes=2)
    lineages = [train(one, progress=False), train(two, progress=False)]
    for lineage, config in zip(lineages, (one, two), strict=True):
        assert lineage.names() == ["base", "lora"]  # one record per stage, whatever the ranks
        assert Lineage.load(config.paths.lineage).names() == ["base", "lora"]
        assert lineage.get("lora").metrics["steps"] == STEPS
    assert (
        json.loads((two.paths.checkpoint("lora") / "train_result.json").read_text())["processes"]
        == 2
    )
    saved = [sorted(p.name for p in c.paths.checkpoint("lora").iterdir()) for c in (one, two)]
    assert "model.safetensors" in saved[1] and "adapter_config.json" not in saved[1]
    assert not any(
        p.name.startswith(".lora") for p in two.paths.checkpoint("lora").parent.iterdir()
    )
    single, launched = (
        load_file(str(c.paths.checkpoint("lora") / "model.safetensors")) for c in (one, two)
    )
    base = load_file(str(tiny_checkpoint / "model.safetensors"))
    assert not torch.equal(
        single["model.layers.0.self_attn.q_proj.weight"],
        base["model.layers.0.self_attn.q_proj.weight"],
    )
    assert single.keys() == launched.keys()
    for name, tensor in single.items():  # merged LoRA updates agree to float32 reduction order
        torch.testing.assert_close(launched[name], tensor, rtol=0, atol=1e-5, msg=name)


def test_the_lineage_records_the_chat_date_and_what_the_template_renders(
    tmp_path, tiny_model, tiny_tokenizer
):
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = DATED_TEMPLATE
    checkpoint = tmp_path / "dated"
    tiny_model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)

    def config(chat_date: str) -> RunConfig:
        unused = str(tmp_path / "unused.jsonl")
        model = {"name_or_path": str(checkpoint), "chat_template": True, "chat_date": chat_date}
        return config_from_dict(
            {
                "run_dir": str(tmp_path / "run"),
                "model": model,
                "stages": [{"name": "base"}],  # the model as it is: recorded, not trained
                "probes": [{"name": "set", "source": unused}],
                "behaviour": {"compassion_eval": unused, "helpfulness_eval": {"source": unused}},
                "analysis": {"compare": [["base", "base"]]},
            }
        )

    context = train(config(DEFAULT_CHAT_DATE), progress=False).get("base").context
    assert context["model"]["chat_date"] == DEFAULT_CHAT_DATE
    assert context["chat_render"] == chat_render_hash(tokenizer, DEFAULT_CHAT_DATE)
    with pytest.raises(LineageError, match=r"chat_render: .*chat_date"):
        train(config("01 Dec 2026"), progress=False)
