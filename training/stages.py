"""Run one training stage with TRL's SFTTrainer: documents (next-token loss) or prompt/response
SFT (loss on the response only), full fine-tuning or LoRA, seeded and resumable.

A stage runs the same in one process or under `torchrun` / `accelerate launch` (DDP, FSDP,
DeepSpeed ZeRO-3): only the main process writes the result, and a stage killed mid-way resumes
from its last complete Trainer checkpoint when run again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
)
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import TrainOutput
from trl import SFTConfig, SFTTrainer

from valuetrace.config import (
    DEFAULT_CHAT_DATE,
    Format,
    LoraConfig,
    LossHead,
    StageConfig,
    check_ranges,
)
from valuetrace.console import show_bars
from valuetrace.errors import CheckpointError, ConfigError, DataError
from valuetrace.paths import remove_inside, trainer_dir
from valuetrace.prompts import chat_template_kwargs
from valuetrace.training.callbacks import SaveAt, StageProgress, save_trained
from valuetrace.training.datasets import (
    Document,
    PromptResponse,
    sft_conversational,
    sft_prompt_completion,
)
from valuetrace.training.lora import peft_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageRun:
    """What a stage needs from the run beside its own `StageConfig`.

    `seed` seeds the Trainer and its data order (the stage's own `seed`, else the run's); `chat`
    formats SFT prompts with the tokenizer's chat template, rendered on `chat_date`
    (`model.chat_date`); `bf16` trains in bfloat16 mixed
    precision; `save_steps` / `logging_steps` set how often a Trainer checkpoint is written
    (what a killed stage resumes from) and the loss is logged.
    """

    seed: int
    chat: bool = False
    chat_date: str = DEFAULT_CHAT_DATE
    bf16: bool = False
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
    saved: tuple[tuple[int, str], ...] = ()  # (optimizer step, folder) of each `save_at` point


def to_dataset(
    records: list[Document] | list[PromptResponse],
    loss_format: Format,
    *,
    chat: bool = False,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> Dataset:
    """Turn records into the dataset shape SFTTrainer expects for the stage's loss format.

    Documents become `{"text"}` rows (next-token loss on every token); prompt/response records
    become prompt/completion rows, or conversational ones with `chat` (loss on the response),
    each carrying the `chat_template_kwargs` TRL renders it with (the pinned `chat_date`, as
    `valuetrace.prompts` renders it for extraction and scoring).

    Raises:
        DataError: the records do not fit `loss_format`.
    """
    if loss_format == "documents":
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
    if chat:
        kwargs = chat_template_kwargs(chat_date)
        rows = [{**row, "chat_template_kwargs": kwargs} for row in sft_conversational(records)]
        return Dataset.from_list(rows)
    return Dataset.from_list(sft_prompt_completion(records))


def work_dir_of(out_dir: Path) -> Path:
    """The Trainer's checkpoint folder of a stage, beside its output folder."""
    return trainer_dir(out_dir)


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
    stage: StageConfig,
    progress: bool = True,
) -> tuple[TrainOutput, float, tuple[tuple[int, str], ...]]:
    """Train (resuming if a checkpoint exists), save on the main process, then drop `work_dir`.

    A LoRA stage's adapter is merged into the weights when its `lora.merge` says so. With the
    stage's `save_at`, checkpoints along the run are saved too (`SaveAt`); returns the Trainer's
    output, the wall seconds and the (step, folder) of each saved point. The Trainer's progress
    bar and printed loss dicts are replaced by `StageProgress`: a bar when the arguments do not
    disable tqdm, else one line at the end when `progress`.

    Raises:
        ConfigError: a LoRA stage asks to be merged while FSDP/DeepSpeed shards the weights, or
            asks for `save_at` points then, or a `save_at` step lies beyond the run.
        CheckpointError: the save wrote no weights (`check_weights_written`); `work_dir` is kept.
    """
    lora = stage.method == "lora"
    merge = (stage.lora or LoraConfig()).merge
    sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled
    if sharded and lora and merge:
        raise ConfigError(
            "a LoRA stage cannot be merged while FSDP/DeepSpeed shards the weights; set the "
            "stage's lora.merge to false (the adapter is saved and merged when loaded), or "
            "train LoRA with plain data parallelism (an 8B model with LoRA fits one 80 GB GPU)."
        )
    trainer.remove_callback(PrinterCallback)  # it prints every loss dict to stdout
    trainer.remove_callback(ProgressCallback)
    bar = not trainer.args.disable_tqdm
    trainer.add_callback(StageProgress(out_dir.name, enabled=bar, line=progress and not bar))
    saver = None
    if stage.save_at:
        if sharded:
            raise ConfigError(
                f"stage '{stage.name}': save_at needs unsharded weights, but FSDP/DeepSpeed "
                "shards them; train it with plain data parallelism, or save Trainer checkpoints "
                "and list them under 'trajectory'."
            )
        saver = SaveAt(stage.save_at, out_dir, tokenizer, stage)
        trainer.add_callback(saver)
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
    elif main:  # a LoRA model is merged in float32, then cast once to the stage's dtype
        save_trained(trainer.model, tokenizer, out_dir, stage)
    trainer.accelerator.wait_for_everyone()
    if main:
        check_weights_written(out_dir, work_dir)  # the Trainer checkpoints go only after this
        remove_inside(work_dir, out_dir.parent)
    return output, seconds, tuple(saver.saved) if saver is not None else ()


def check_weights_written(out_dir: Path, work_dir: Path) -> None:
    """Refuse to call a stage saved unless `out_dir` holds weight files with tensors in them.

    A save can write nothing and raise nothing (the Trainer under FSDP with a sharded state
    dict, or DeepSpeed ZeRO-3 without gathered weights); the stage's Trainer checkpoints in
    `work_dir` are then the only copy of the trained weights, so they must not be deleted.

    Raises:
        CheckpointError: no safetensors / bin file with at least one tensor in `out_dir`.
    """
    from safetensors import safe_open

    tensors = 0
    for path in sorted(out_dir.glob("*.safetensors")) if out_dir.is_dir() else []:
        with safe_open(str(path), framework="pt") as fh:
            tensors += len(list(fh.keys()))
    if tensors == 0 and not any(out_dir.glob("*.bin")):
        raise CheckpointError(
            f"training stage {out_dir.name} finished but no model weights were written to "
            f"{out_dir}; its Trainer checkpoints, the only copy of the trained weights, were "
            f"kept in {work_dir}. Under FSDP set `fsdp_config.fsdp_state_dict_type: "
            "FULL_STATE_DICT` in the accelerate config (under DeepSpeed ZeRO-3 "
            "`deepspeed_config.zero3_save_16bit_model: true`) and rerun the stage."
        )


def trainer_arguments(
    stage: StageConfig, run: StageRun, work_dir: Path, *, use_cpu: bool, progress: bool
) -> dict[str, Any]:
    """The Trainer arguments SFT and GRPO stages share (schedule, seeds, checkpoints, logging).

    Raises:
        ConfigError: a setting of `stage` is out of range (the field is named), so a bad value
            fails here rather than inside torch.
    """
    check_ranges(stage, f"stage '{stage.name}'")
    return {
        "output_dir": str(work_dir),
        "num_train_epochs": stage.epochs,
        "max_steps": stage.max_steps,
        "learning_rate": stage.learning_rate,
        "per_device_train_batch_size": stage.batch_size,
        "gradient_accumulation_steps": stage.grad_accum,
        "warmup_steps": stage.warmup_ratio,  # a value < 1 is a fraction of the steps
        "weight_decay": stage.weight_decay,
        "lr_scheduler_type": "cosine",
        "train_sampling_strategy": (
            "group_by_length" if stage.group_by_length and stage.format == "sft" else "random"
        ),
        "seed": run.seed,
        "data_seed": run.seed,
        "bf16": run.bf16,
        "use_cpu": use_cpu,
        "report_to": [],
        "logging_steps": run.logging_steps,
        "save_strategy": "steps",
        "save_steps": run.save_steps,
        "save_total_limit": 1,
        "disable_tqdm": not show_bars(progress),  # a bar in a log file is a line per step
        # transformers 5 renamed it; the old name warns (and TRL's default for it is True)
        "activation_checkpointing": stage.gradient_checkpointing,
    }


_LOGITS_BUDGET = 2**26  # elements: 256 MB of float32 logits per batch


class LogitsSFTTrainer(SFTTrainer):
    """SFTTrainer whose loss comes from the model's full logits (`Trainer.compute_loss`) instead
    of TRL's fused, tiled LM head; the same mean over label tokens (TRL's `nll`).

    Why: the fused head saves memory on large vocabularies, but on CPU its tiles cost time; on
    the demo stages it made training 1.2x (packed documents) to 1.8x (SFT) slower, with equal
    losses (profile in `benchmarks/README.md`; `tests/training/test_stages.py` checks loss and
    gradient against TRL's on one batch). TRL's docs point to overriding `compute_loss`.
    The per-token entropy / accuracy metrics of TRL's fused path are not logged.
    """

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        """The model's own causal-LM loss over the label tokens (shifted inside the model)."""
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)


def loss_head(stage: StageConfig, vocab_size: int, *, use_cpu: bool) -> LossHead:
    """The stage's LM-head loss path, "auto" resolved: full logits on CPU when one batch's
    logits fit 2^26 elements (256 MB in float32), TRL's fused head otherwise (GPU, or a vocabulary
    too large to hold: SmolLM2's 49,152 x 8 x 256 tokens is 100 M elements)."""
    if stage.loss_head != "auto":
        return stage.loss_head
    small = stage.batch_size * stage.max_length * vocab_size <= _LOGITS_BUDGET
    return "logits" if use_cpu and small else "fused"


def sft_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Document] | list[PromptResponse],
    stage: StageConfig,
    run: StageRun,
    work_dir: Path,
    *,
    use_cpu: bool,
    progress: bool = True,
) -> SFTTrainer:
    """The stage's SFTTrainer, its dataset tokenised and labelled by TRL, ready to train.

    TRL builds the labels while preparing the dataset: for prompt/completion rows only the
    completion carries loss (`completion_only_loss`), and a plain completion gets the EOS token
    appended. A chat completion is everything the template renders after the generation prompt,
    which for ChatML templates is the response, the end-of-turn token (EOS) and a newline;
    the loss is cut after the completion's first EOS, so the tokens that carry loss are exactly
    the response and EOS in both formats (the model is never trained on template text it does
    not generate). Documents carry loss on every token.

    Raises:
        DataError: the records do not fit the stage's format.
    """
    args = SFTConfig(
        **trainer_arguments(stage, run, work_dir, use_cpu=use_cpu, progress=progress),
        max_length=stage.max_length,
        save_only_model=False,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        packing=stage.packing and stage.format == "documents",
        packing_strategy=stage.packing_strategy,
    )
    head = loss_head(stage, model.config.get_text_config().vocab_size, use_cpu=use_cpu)
    trainer = (LogitsSFTTrainer if head == "logits" else SFTTrainer)(
        model=model,
        args=args,
        train_dataset=to_dataset(records, stage.format, chat=run.chat, chat_date=run.chat_date),
        processing_class=tokenizer,
        peft_config=peft_config(stage, model),
    )
    if stage.format == "sft":
        trainer.train_dataset = trainer.train_dataset.map(
            _loss_ends_at_eos,
            fn_kwargs={"eos_id": tokenizer.eos_token_id},
            desc="Ending the loss at EOS",
        )
    return trainer


def _loss_ends_at_eos(example: dict[str, list[int]], eos_id: int) -> dict[str, list[int]]:
    """Labels with every token after the completion's first EOS masked (-100)."""
    labels = example["labels"]
    if eos_id not in labels:  # cut off by max_length: nothing follows it
        return {"labels": labels}
    end = labels.index(eos_id) + 1
    return {"labels": labels[:end] + [-100] * (len(labels) - end)}


def train_stage(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Document] | list[PromptResponse],
    stage: StageConfig,
    run: StageRun,
    out_dir: Path,
    *,
    use_cpu: bool,
    progress: bool = True,
) -> StageResult:
    """Train `model` on `records` as `stage` says and save the result (merged if LoRA) to `out_dir`.

    Raises:
        ConfigError: a setting of `stage` is out of range, or a sharded LoRA stage is merged.
        DataError: the records do not fit the stage's format.
    """
    work_dir = work_dir_of(out_dir)
    trainer = sft_trainer(
        model, tokenizer, records, stage, run, work_dir, use_cpu=use_cpu, progress=progress
    )
    output, seconds, saved = fit_and_save(
        trainer, tokenizer, work_dir, out_dir, stage=stage, progress=progress
    )
    return stage_result(trainer, output, seconds, saved)


def stage_result(
    trainer: Trainer,
    output: TrainOutput,
    seconds: float,
    saved: tuple[tuple[int, str], ...] = (),
) -> StageResult:
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
        saved=saved,
    )
