"""The device check's training measurement (`benchmarks/device_check.py`): one LoRA or
full-parameter configuration timed with a plain PyTorch loop (forward, backward, AdamW) and with
valuetrace's stage trainer on the same model, batch and length (tokens/s, peak memory).

Imported by device_check.py after it has made valuetrace's subpackages importable."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from device_model import Shape, as_text, peak_memory, sync
from transformers import TrainerCallback

from valuetrace.config import LoraConfig, StageConfig

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class StepClock(TrainerCallback):
    """Wall time at the end of every optimizer step (device queue included)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.ends = device, []

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        if not self.ends:
            sync(self.device)
            self.ends.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs) -> None:
        sync(self.device)
        self.ends.append(time.perf_counter())


def plain_loop(model, ids: torch.Tensor, batch: int, device: torch.device) -> float:
    """Forward + backward + AdamW on fixed batches; tokens/s over the steps after the first."""
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ends = []
    for i in range(0, len(ids), batch):
        chunk = ids[i : i + batch].to(device)
        model(input_ids=chunk, labels=chunk).loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        sync(device)
        ends.append(time.perf_counter())
    del optim
    return (len(ends) - 1) * batch * ids.shape[1] / (ends[-1] - ends[0])


def stage_trainer(model, tokenizer, texts, method: str, shape: Shape, device, tmp: Path) -> float:
    """valuetrace's stage trainer (documents packed into [batch, train_len] rows): tokens/s."""
    from valuetrace.training.datasets import Document
    from valuetrace.training.stages import StageRun, sft_trainer

    stage = StageConfig(
        name=f"check_{method}",
        method=method,
        lora=LoraConfig(r=16, alpha=32, dropout=0.0, target_modules=ALL_LINEAR),
        max_steps=shape.train_steps + 1,
        learning_rate=1e-4,
        batch_size=shape.train_batch,
        max_length=shape.train_len,
        warmup_ratio=0.0,
    )
    run = StageRun(seed=0, bf16=shape.dtype == "bfloat16", save_steps=10**6, logging_steps=10**6)
    trainer = sft_trainer(
        model,
        tokenizer,
        [Document(t) for t in texts],
        stage,
        run,
        tmp / method,
        use_cpu=device.type == "cpu",
        progress=False,
    )
    clock = StepClock(device)
    trainer.add_callback(clock)
    trainer.train()
    steps = len(clock.ends) - 2  # the first interval is the warm-up step
    return steps * shape.train_batch * shape.train_len / (clock.ends[-1] - clock.ends[1])


def check_training(model, tokenizer, method: str, shape: Shape, device, tmp: Path) -> dict:
    """One training configuration: the plain loop, then valuetrace's trainer, same model."""
    from peft import get_peft_model

    from valuetrace.training.lora import peft_config

    rng = np.random.default_rng(2)
    steps = shape.train_steps + 1
    ids = torch.from_numpy(
        rng.integers(2, shape.vocab, size=(steps * shape.train_batch, shape.train_len))
    )
    out: dict[str, Any] = {
        "batch": shape.train_batch,
        "length": shape.train_len,
        "timed_steps": shape.train_steps,
    }
    loop_mem: dict[str, Any] = {}
    stage = StageConfig(
        name="plain",
        method=method,
        lora=LoraConfig(r=16, alpha=32, dropout=0.0, target_modules=ALL_LINEAR),
    )
    trained = get_peft_model(model, peft_config(stage, model)) if method == "lora" else model
    with peak_memory(device, loop_mem):
        out["plain_tokens_per_s"] = plain_loop(trained, ids, shape.train_batch, device)
    out["plain_peak_gb"] = loop_mem["peak_gb"]
    base = trained.unload() if method == "lora" else trained
    for p in base.parameters():
        p.grad = None
    if importlib.util.find_spec("trl") is None or importlib.util.find_spec("datasets") is None:
        out["valuetrace_tokens_per_s"] = None
        out["valuetrace_note"] = "skipped: trl/datasets not installed (see benchmarks/README.md)"
        return out
    # documents long enough for the packed [batch, length] rows of every step, twice over
    texts = [
        as_text(r)
        for r in rng.integers(2, shape.vocab, size=(2 * steps * shape.train_batch, shape.train_len))
    ]
    stage_mem: dict[str, Any] = {}
    with peak_memory(device, stage_mem):
        out["valuetrace_tokens_per_s"] = stage_trainer(
            base, tokenizer, texts, method, shape, device, tmp
        )
    out["valuetrace_peak_gb"] = stage_mem["peak_gb"]
    out["ratio"] = out["valuetrace_tokens_per_s"] / out["plain_tokens_per_s"]
    return out
