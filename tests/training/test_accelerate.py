"""Data parallelism: 2 processes × batch B (torchrun, gloo on CPU) train as 1 process × 2B."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import CORPUS
from tests.training.helpers import tiny_stage
from valuetrace.config import DataSource, LoraConfig, StageConfig
from valuetrace.errors import ConfigError
from valuetrace.training.datasets import Document
from valuetrace.training.launch import RESULT_NAME, StageSpec, launch_command, launch_stage
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
