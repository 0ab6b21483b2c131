"""Run one training stage with TRL's SFTTrainer: documents (next-token loss) or prompt/response
SFT (loss on the response only), full fine-tuning or LoRA, seeded and resumable.

A stage runs the same in one process or under `torchrun` / `accelerate launch` (DDP, FSDP,
DeepSpeed ZeRO-3): only the main process writes the result, and a stage killed mid-way resumes
from its last complete Trainer checkpoint when run again.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer
from transformers.trainer_utils import TrainOutput
from trl import SFTConfig, SFTTrainer
from valuetrace.training.datasets import (
    Document,
    PromptResponse,
    sft_conversational,
    sft_prompt_completion,
)

from valuetrace.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """The hyperparameters of one stage (a flat view of the stage config)."""

    format: str
    method: str
    epochs: float
    max_steps: int
    learning_rate: float
    batch_size: int
    grad_accum: int
    max_length: int
    warmup_ratio: float
    weight_decay: float
    seed: int
    chat: bool = False
    packing: bool = True
    gradient_checkpointing: bool = False
    bf16: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    lora_merge: bool = True
    save_steps: int = 200
    logging_steps: int = 10


@dataclass(frozen=True)
class StageResult:
    """What a stage run measured: wall time, tokens seen, the final loss and the loss curve."""

    train_seconds: float
    tokens_seen: int
    tokens_per_second: float
    final_loss: float
    steps: int
    losses: tuple[tuple[int, float], ...] = ()
    processes: int = 1


def to_dataset(records: list[Document] | list[PromptResponse], settings: TrainSettings) -> Dataset:
    """Turn records into the dataset shape SFTTrainer expects for the stage's loss format."""
    if settings.format == "documents":
        if not all(isinstance(r, Document) for r in records):
            raise DataError(
                "a 'documents' stage needs plain text records; set the stage's format to 'sft' "
                "for prompt/response data."
            )
        return Dataset.from_list([{"text": r.text} for r in records])
    if not all(isinstance(r, PromptResponse) for r in records):
        raise DataError(
            "an 'sft' stage needs prompt/response records (Dolly, Alpaca or messages schema); "
            "set the stage's format to 'documents' for plain text."
        )
    if settings.chat:
        return Dataset.from_list(sft_conversational(records))
    return Dataset.from_list(sft_prompt_completion(records))


def lora_config(r: int, alpha: int, dropout: float, targets: Sequence[str]) -> Any:
    """A PEFT LoRA config for a causal LM (shared by the SFT and GRPO stages)."""
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(targets),
        task_type="CAUSAL_LM",
    )


def work_dir_of(out_dir: Path) -> Path:
    """The Trainer's checkpoint folder of a stage, beside its output folder."""
    return out_dir.parent / f".{out_dir.name}.trainer"


def last_checkpoint(work_dir: Path) -> Path | None:
    """The newest complete Trainer checkpoint (one a kill did not cut short), or None."""
    done = [p for p in work_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def fit_and_save(
    trainer: Trainer,
    tokenizer: PreTrainedTokenizerBase,
    work_dir: Path,
    out_dir: Path,
    *,
    lora: bool,
    merge: bool,
) -> tuple[TrainOutput, float]:
    """Train (resuming if a checkpoint exists), save on the main process, then drop `work_dir`."""
    sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled
    if sharded and lora and merge:
        raise DataError(
            "a LoRA stage cannot be merged while FSDP/DeepSpeed shards the weights; set the "
            "stage's lora.merge to false (the adapter is saved and merged when loaded), or "
            "train LoRA with plain data parallelism (an 8B model with LoRA fits one 80 GB GPU)."
        )
    resume = last_checkpoint(work_dir)
    if resume is not None:
        log.info("resuming stage from trainer checkpoint %s", resume)
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    seconds = time.perf_counter() - start
    main = trainer.accelerator.is_main_process
    if sharded:  # gathering the full weights is collective: every rank calls save_model
        trainer.save_model(str(out_dir))
        if main:
            (out_dir / "training_args.bin").unlink(missing_ok=True)
    elif main:
        trained = trainer.model
        if lora and merge:
            trained = trained.merge_and_unload()
        out_dir.mkdir(parents=True, exist_ok=True)
        trained.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    trainer.accelerator.wait_for_everyone()
    if main:
        shutil.rmtree(work_dir, ignore_errors=True)
    return output, seconds


def trainer_arguments(
    settings: TrainSettings, work_dir: Path, *, use_cpu: bool, progress: bool
) -> dict[str, Any]:
    """The Trainer arguments SFT and GRPO stages share (schedule, seeds, checkpoints, logging)."""
    return {
        "output_dir": str(work_dir),
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps,
        "learning_rate": settings.learning_rate,
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.grad_accum,
        "warmup_steps": settings.warmup_ratio,
        "weight_decay": settings.weight_decay,
        "lr_scheduler_type": "cosine",
        "seed": settings.seed,
        "data_seed": settings.seed,
        "bf16": settings.bf16,
        "use_cpu": use_cpu,
        "report_to": [],
        "logging_steps": settings.logging_steps,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "save_total_limit": 1,
        "disable_tqdm": not progress,
        "gradient_checkpointing": settings.gradient_checkpointing,
    }


def train_stage(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Document] | list[PromptResponse],
    settings: TrainSettings,
    out_dir: Path,
    *,
    use_cpu: bool,
    progress: bool = True,
) -> StageResult:
    """Train `model` on `records` and save the result (merged if LoRA) to `out_dir`."""
    work_dir = work_dir_of(out_dir)
    args = SFTConfig(
        **trainer_arguments(settings, work_dir, use_cpu=use_cpu, progress=progress),
        max_length=settings.max_length,
        save_only_model=False,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        packing=settings.packing and settings.format == "documents",
    )
    peft = (
        lora_config(
            settings.lora_r, settings.lora_alpha, settings.lora_dropout, settings.lora_targets
        )
        if settings.method == "lora"
        else None
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=to_dataset(records, settings),
        processing_class=tokenizer,
        peft_config=peft,
    )
    output, seconds = fit_and_save(
        trainer,
        tokenizer,
        work_dir,
        out_dir,
        lora=settings.method == "lora",
        merge=settings.lora_merge,
    )
    return stage_result(trainer, output, seconds)


def stage_result(trainer: Trainer, output: TrainOutput, seconds: float) -> StageResult:
    """What a finished Trainer run measured, with its logged (step, loss) curve."""
    history = trainer.state.log_history
    tokens = int(trainer.state.num_input_tokens_seen or 0) or int(
        max((entry.get("num_tokens", 0) for entry in history), default=0)
    )
    return StageResult(
        train_seconds=seconds,
        tokens_seen=tokens,
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        final_loss=float(output.training_loss),
        steps=int(trainer.state.global_step),
        losses=tuple((int(e["step"]), float(e["loss"])) for e in history if "loss" in e),
        processes=int(trainer.args.world_size),
    )
