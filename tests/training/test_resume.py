"""Resume: a stage killed by SIGKILL after a checkpoint resumes to an unbroken run's weights."""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import CORPUS
from tests.training.helpers import tiny_stage
from valuetrace.training.datasets import Document
from valuetrace.training.launch import StageSpec, launch_command
from valuetrace.training.stages import StageRun, last_checkpoint, train_stage, work_dir_of

STEPS = 24
STAGE = tiny_stage(epochs=3.0, max_steps=STEPS, warmup_ratio=0.1, weight_decay=0.01)
RUN = StageRun(seed=3, save_steps=4, logging_steps=4)


def _weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_last_checkpoint_skips_one_cut_short(tmp_path):
    for step, complete in [(4, True), (8, True), (12, False)]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-8"
    assert last_checkpoint(tmp_path / "none") is None


@pytest.mark.slow
def test_killed_stage_resumes_to_the_same_weights(
    tmp_path, caplog, tiny_checkpoint, tiny_model, tiny_tokenizer
):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in CORPUS))
    records = [Document(t) for t in CORPUS]
    whole = tmp_path / "whole"
    train_stage(
        copy.deepcopy(tiny_model).train(),
        tiny_tokenizer,
        records,
        STAGE,
        RUN,
        whole,
        use_cpu=True,
        progress=False,
    )
    assert not work_dir_of(whole).exists()

    out = tmp_path / "killed"
    spec = StageSpec(
        model=str(tiny_checkpoint),
        tokenizer=str(tiny_checkpoint),
        data=str(docs),
        out_dir=str(out),
        stage=STAGE,
        run=RUN,
        data_options={"schema": "documents"},
    )
    spec_path = tmp_path / "spec.json"
    spec.save(spec_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        launch_command(spec_path, progress=False),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while last_checkpoint(work_dir_of(out)) is None and child.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared within 60 s"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = last_checkpoint(work_dir_of(out))
    assert killed_at is not None and not out.exists(), "the child finished before the kill"

    with caplog.at_level(logging.INFO, logger="valuetrace.training.stages"):
        result = train_stage(
            copy.deepcopy(tiny_model).train(),
            tiny_tokenizer,
            records,
            STAGE,
            RUN,
            out,
            use_cpu=True,
            progress=False,
        )
    assert f"resuming stage from trainer checkpoint {killed_at}" in caplog.text
    assert result.steps == STEPS
    assert not work_dir_of(out).exists()
    expected, resumed = _weights(whole), _weights(out)
    assert expected.keys() == resumed.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)
