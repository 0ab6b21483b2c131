"""Train one configured stage: its data, the model it starts from, and the run itself, in this
process (`train_stage`, `train_grpo_stage`) or in child processes (`launch_stage`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.config import RunConfig, StageConfig, resolve_data_path
from valuetrace.errors import ConfigError
from valuetrace.models import load_model, weights_hash
from valuetrace.paths import remove_inside
from valuetrace.runtime import record_timing, seed_everything
from valuetrace.training.datasets import Document, PromptResponse, load_options, load_records
from valuetrace.training.grpo import KeywordReward, train_grpo_stage
from valuetrace.training.launch import StageSpec, launch_stage
from valuetrace.training.lineage import Lineage, StageRecord
from valuetrace.training.scratch import build_scratch_model
from valuetrace.training.stage_records import point_record, stage_run
from valuetrace.training.stages import StageResult, StageRun, train_stage


def stage_records(config: RunConfig, stage: StageConfig) -> list[Document] | list[PromptResponse]:
    """The stage's training records, read from its configured data source (`load_options`).

    Raises:
        DataError / ConfigError: the source cannot be read as configured.
    """
    assert stage.data is not None
    return load_records(
        resolve_data_path(stage.data.source, config), **load_options(config, stage.data)
    )


def initial_model(
    config: RunConfig, stage: StageConfig, lineage: Lineage, tokenizer: PreTrainedTokenizerBase
) -> PreTrainedModel:
    """The model a stage starts from: its parent checkpoint, or a fresh from-scratch model.

    Raises:
        ConfigError: a first stage with data while the model is not from scratch.
    """
    if stage.parent is not None:
        parent = lineage.get(stage.parent)
        return load_model(
            parent.checkpoint,
            adapter=parent.adapter,
            revision=parent.revision,
            dtype=config.model.dtype,
        )
    scratch = config.model.scratch
    if scratch is None:
        raise ConfigError(
            f"stage '{stage.name}' has no parent and the model is not from scratch; set its "
            "parent, or give it no data to use the model as it is."
        )
    return build_scratch_model(
        tokenizer,
        hidden_size=scratch.hidden_size,
        num_layers=scratch.num_layers,
        num_heads=scratch.num_heads,
        intermediate_size=scratch.intermediate_size,
        max_position_embeddings=scratch.max_position_embeddings,
        seed=config.seed,
    )


def _launch(
    config: RunConfig,
    stage: StageConfig,
    lineage: Lineage,
    tokenizer: PreTrainedTokenizerBase,
    run: StageRun,
    progress: bool,
) -> StageResult:
    """Train a stage in child processes: under `accelerate launch` (DDP, FSDP or DeepSpeed) with
    an accelerate config, else under torchrun with `train_processes` processes (DDP)."""
    assert stage.data is not None
    out = config.paths.checkpoint(stage.name)
    parent = lineage.get(stage.parent) if stage.parent else None
    start: Path | None = None
    if parent is not None and parent.adapter is None and parent.revision is None:
        model_path = parent.checkpoint  # the children load it themselves
    else:
        start = out.parent / f".{stage.name}.init"
        initial_model(config, stage, lineage, tokenizer).save_pretrained(start)
        model_path = str(start)
    data = stage.data
    result = launch_stage(
        StageSpec(
            model=model_path,
            tokenizer=config.model.name_or_path or str(config.paths.tokenizer),
            data=resolve_data_path(data.source, config),
            out_dir=str(out),
            stage=stage,
            run=run,
            data_options=load_options(config, data),
            dtype=config.model.dtype,
        ),
        num_processes=config.train_processes,
        accelerate_config=None
        if config.accelerate_config is None
        else Path(config.accelerate_config),
        progress=progress,
    )
    if start is not None:
        remove_inside(start, config.paths.root)
    return result


def train_one(
    config: RunConfig,
    stage: StageConfig,
    lineage: Lineage,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Document] | list[PromptResponse],
    wanted: StageRecord,
    progress: bool,
) -> list[StageRecord]:
    """Run one stage in this process (or under accelerate) and describe its checkpoint, after
    those of its `save_at` points; its wall time goes to timings.json, not to the lineage
    (which must not differ between reruns).

    Raises:
        ConfigError: a prompt/response stage wants a chat template the tokenizer lacks.
    """
    out = config.paths.checkpoint(stage.name)
    if stage.format != "documents" and config.model.chat_template and not tokenizer.chat_template:
        raise ConfigError(
            f"stage '{stage.name}' wants a chat template but the tokenizer has none; set "
            "model.chat_template: false (plain '### Instruction' format) or use a tokenizer "
            "with a chat template (e.g. the -Instruct model's)."
        )
    run = stage_run(config, stage)
    use_cpu = not torch.cuda.is_available()
    seed_everything(run.seed)
    launched = config.accelerate_config is not None or config.train_processes > 1
    if launched and stage.format != "grpo":
        result = _launch(config, stage, lineage, tokenizer, run, progress)
    elif stage.format == "grpo":
        assert stage.grpo is not None
        grpo = stage.grpo
        reward = KeywordReward(tuple(grpo.reward_words)) if grpo.reward_words else KeywordReward()
        prompts = [r.prompt if isinstance(r, PromptResponse) else r.text for r in records]
        result = train_grpo_stage(
            initial_model(config, stage, lineage, tokenizer),
            tokenizer,
            prompts,
            reward,
            stage,
            run,
            out,
            use_cpu=use_cpu,
            progress=progress,
        )
    else:
        result = train_stage(
            initial_model(config, stage, lineage, tokenizer),
            tokenizer,
            records,
            stage,
            run,
            out,
            use_cpu=use_cpu,
            progress=progress,
        )
    record_timing(
        config.paths.timings,
        stage={
            "name": stage.name,
            "train_seconds": result.train_seconds,
            "tokens_per_second": result.tokens_per_second,
        },
    )
    points = [point_record(wanted, step, folder) for step, folder in result.saved]
    return [
        *points,
        dataclasses.replace(
            wanted,
            weights_hash=weights_hash(out),
            metrics={
                "tokens_seen": result.tokens_seen,
                "final_loss": result.final_loss,
                "steps": result.steps,
            },
        ),
    ]
