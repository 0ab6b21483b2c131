"""Data parallelism: 2 processes × batch B (torchrun, gloo on CPU) train as 1 process × 2B."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import CORPUS
from tests.training.helpers import tiny_stage
from valuetrace.config import DataSource, LoraConfig, StageConfig
from valuetrace.errors import CheckpointError, ConfigError
from valuetrace.training.datasets import Document
from valuetrace.training.launch import (
    RESULT_NAME,
    StageSpec,
    check_accelerate_config,
    launch_command,
    launch_stage,
)
from valuetrace.training.stages import StageRun, train_stage, trainer_arguments, work_dir_of

B = 4


RUN = StageRun(seed=0, logging_steps=1)


def _stage(batch_size: int) -> StageConfig:
    return tiny_stage(max_steps=6, batch_size=batch_size)


def test_launch_commands(tmp_path):
    spec = tmp_path / "s.json"
    assert launch_command(spec)[1:] == ["-m", "valuetrace.training.launch", str(spec)]
    torchrun = launch_command(spec, num_processes=2, progress=False)
    assert torchrun[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert torchrun[-1] == "--no-progress"
    accelerate = launch_command(spec, num_processes=8, accelerate_config=tmp_path / "a.yaml")
    assert accelerate[1:5] == [
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(tmp_path / "a.yaml"),
    ]


def test_spec_round_trips_through_json_with_the_stage_config(tmp_path):
    stage = tiny_stage(
        method="lora",
        lora=LoraConfig(r=4, target_modules=["q_proj"], merge=False),
        data=DataSource("docs.jsonl", schema="documents", where={"lang": "en"}),
        parent="base",
    )
    spec = StageSpec(
        model="m",
        tokenizer="t",
        data=str(tmp_path / "docs.jsonl"),
        out_dir=str(tmp_path / "out"),
        stage=stage,
        run=StageRun(seed=7, chat=True, bf16=True),
        data_options={"schema": "documents", "limit": None, "where": {"lang": "en"}},
        dtype="bfloat16",
    )
    spec.save(tmp_path / "spec.json")
    loaded = StageSpec.load(tmp_path / "spec.json")
    assert loaded == spec
    assert isinstance(loaded.stage.lora, LoraConfig) and isinstance(loaded.run, StageRun)


def test_out_of_range_stage_setting_fails_before_the_trainer(tmp_path):
    with pytest.raises(ConfigError, match=r"stage 'tiny'\.learning_rate is -1\.0; it must be > 0"):
        trainer_arguments(
            tiny_stage(learning_rate=-1.0), RUN, tmp_path, use_cpu=True, progress=False
        )


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(
    tmp_path, monkeypatch, tiny_checkpoint, tiny_model, tiny_tokenizer
):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in CORPUS))
    one = train_stage(
        copy.deepcopy(tiny_model).train(),
        tiny_tokenizer,
        [Document(t) for t in CORPUS],
        _stage(2 * B),
        RUN,
        tmp_path / "one",
        use_cpu=True,
        progress=False,
    )
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = StageSpec(
        model=str(tiny_checkpoint),
        tokenizer=str(tiny_checkpoint),
        data=str(docs),
        out_dir=str(tmp_path / "two"),
        stage=_stage(B),
        run=RUN,
        data_options={"schema": "documents"},
    )
    two = launch_stage(spec, num_processes=2, progress=False)
    assert (one.processes, two.processes) == (1, 2)
    assert [s for s, _ in one.losses] == [s for s, _ in two.losses] == list(range(1, 7))
    gap = max(abs(a - b) for (_, a), (_, b) in zip(one.losses, two.losses, strict=True))
    assert gap < 1e-4, f"loss curves differ by {gap}"
    assert one.tokens_seen == two.tokens_seen
    assert (tmp_path / "two" / RESULT_NAME).is_file() and not work_dir_of(tmp_path / "two").exists()
    expected, got = (
        load_file(str(tmp_path / "one" / "model.safetensors")),
        load_file(str(tmp_path / "two" / "model.safetensors")),
    )
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=1e-5, msg=name)


SHIPPED = sorted(
    (Path(__file__).parents[2] / "valuetrace" / "configs" / "accelerate").glob("*.yaml")
)


def _accelerate_yaml(path: Path, **sections: object) -> Path:
    path.write_text(yaml.safe_dump({"compute_environment": "LOCAL_MACHINE", **sections}))
    return path


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_accelerate_configs_save_full_weights(shipped):
    check_accelerate_config(shipped)  # fsdp_8gpu.yaml among them: FULL_STATE_DICT


@pytest.mark.parametrize(
    "fsdp_config",
    [
        {"fsdp_version": 2},  # accelerate 1.15's default for FSDP2: SHARDED_STATE_DICT
        {"fsdp_version": 2, "fsdp_state_dict_type": "SHARDED_STATE_DICT"},
        {"fsdp_version": 1, "fsdp_state_dict_type": "SHARDED_STATE_DICT"},
    ],
)
def test_fsdp_with_a_sharded_state_dict_is_refused_naming_the_field(tmp_path, fsdp_config):
    path = _accelerate_yaml(tmp_path / "a.yaml", distributed_type="FSDP", fsdp_config=fsdp_config)
    with pytest.raises(ConfigError, match=r"`fsdp_config\.fsdp_state_dict_type: FULL_STATE_DICT`"):
        check_accelerate_config(path)


def test_fsdp1_by_default_and_zero3_without_gathered_weights(tmp_path):
    check_accelerate_config(
        _accelerate_yaml(tmp_path / "a.yaml", distributed_type="FSDP", fsdp_config={})
    )
    zero3 = _accelerate_yaml(
        tmp_path / "z.yaml", distributed_type="DEEPSPEED", deepspeed_config={"zero_stage": 3}
    )
    with pytest.raises(ConfigError, match=r"`deepspeed_config\.zero3_save_16bit_model: true`"):
        check_accelerate_config(zero3)


def test_a_sharded_launch_is_refused_before_any_process_starts(tmp_path, tiny_checkpoint):
    accelerate = _accelerate_yaml(
        tmp_path / "a.yaml", distributed_type="FSDP", fsdp_config={"fsdp_version": 2}
    )
    spec = StageSpec(
        model=str(tiny_checkpoint),
        tokenizer=str(tiny_checkpoint),
        data=str(tmp_path / "docs.jsonl"),
        out_dir=str(tmp_path / "out"),
        stage=_stage(B),
        run=RUN,
    )
    with pytest.raises(ConfigError, match="fsdp_state_dict_type"):
        launch_stage(spec, accelerate_config=accelerate, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml"]


def test_a_save_that_writes_no_weights_keeps_the_trainer_checkpoints(
    tmp_path, monkeypatch, tiny_model, tiny_tokenizer
):
    # what Trainer.save_model does under FSDP with a sharded state dict: return, writing nothing
    def writes_no_weights(self, save_directory, **kwargs):
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        self.config.save_pretrained(save_directory)

    monkeypatch.setattr(type(tiny_model), "save_pretrained", writes_no_weights)
    out = tmp_path / "stage"
    with pytest.raises(CheckpointError, match=r"no model weights were written.*were kept in"):
        train_stage(
            copy.deepcopy(tiny_model).train(),
            tiny_tokenizer,
            [Document(t) for t in CORPUS],
            tiny_stage(max_steps=2),
            RUN,
            out,
            use_cpu=True,
            progress=False,
        )
    assert list(work_dir_of(out).glob("checkpoint-2/trainer_state.json"))
