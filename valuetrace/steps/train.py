"""Step `train`: train the configured stages in order and record each checkpoint in the lineage."""

from __future__ import annotations

import dataclasses
import gc
import logging
import shutil
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.config import (
    RunConfig,
    StageConfig,
    resolve_data_path,
)
from valuetrace.errors import DataError
from valuetrace.model_sources import resolve_model
from valuetrace.models import load_model, load_tokenizer, weights_hash
from valuetrace.steps.common import load_options, run_lineage
from valuetrace.training.datasets import (
    Document,
    PromptResponse,
    load_records,
    records_hash,
)
from valuetrace.training.grpo import KeywordReward, train_grpo_stage
from valuetrace.training.launch import StageSpec, launch_stage
from valuetrace.training.lineage import Lineage, StageRecord, stage_hash
from valuetrace.training.scratch import build_scratch_model, train_tokenizer
from valuetrace.training.stages import StageResult, StageRun, train_stage

log = logging.getLogger(__name__)


def _records(config: RunConfig, stage: StageConfig) -> list[Document] | list[PromptResponse]:
    assert stage.data is not None
    return load_records(
        resolve_data_path(stage.data.source, config), **load_options(config, stage.data)
    )


def _tokenizer(config: RunConfig) -> PreTrainedTokenizerBase:
    """The run's tokenizer: trained once on the configured corpora, or the model's own."""
    paths = config.paths
    if config.model.name_or_path is not None:
        return load_tokenizer(config.model.name_or_path, config.model.revision)
    if paths.tokenizer.is_dir():
        return load_tokenizer(str(paths.tokenizer))
    if not config.tokenizer_corpora:
        raise DataError(
            "a from-scratch model needs 'tokenizer_corpora' (text files to train its BPE on)."
        )
    texts: list[str] = []
    for source in config.tokenizer_corpora:
        for record in load_records(resolve_data_path(source, config)):
            texts.extend(
                [record.text] if isinstance(record, Document) else [record.prompt, record.response]
            )
    assert config.model.scratch is not None
    tokenizer = train_tokenizer(texts, config.model.scratch.vocab_size)
    tokenizer.save_pretrained(paths.tokenizer)
    return tokenizer


def _stage_run(config: RunConfig, stage: StageConfig) -> StageRun:
    """The run-level values a stage trains with: its seed, prompt format and precision."""
    return StageRun(
        seed=config.seed if stage.seed is None else stage.seed,
        chat=config.model.chat_template,
        bf16=config.model.dtype == "bfloat16",
    )


def train(config: RunConfig, *, stages: list[str] | None = None, progress: bool = True) -> Lineage:
    """Train the configured stages in order (skipping finished ones) and record their lineage."""
    paths = config.paths
    lineage = run_lineage(config)
    tokenizer = _tokenizer(config)
    for stage in config.stages:
        if stages is not None and stage.name not in stages:
            continue
        out = paths.checkpoint(stage.name)
        if stage.name in lineage.names() and (out / "config.json").is_file():
            log.info("stage %s already trained: %s", stage.name, out)
            continue
        if stage.data is None:
            lineage.put(_existing_checkpoint(config, stage))
        else:
            lineage.put(_train_one(config, stage, lineage, tokenizer, progress))
        lineage.save(paths.lineage)
        gc.collect()  # the finished Trainer holds its model and optimizer in reference cycles
    return lineage


def _existing_checkpoint(config: RunConfig, stage: StageConfig) -> StageRecord:
    """A stage trained elsewhere (or the configured model as is), recorded without training."""
    checkpoint = stage.checkpoint or config.model.name_or_path
    if checkpoint is None:
        raise DataError(
            f"stage '{stage.name}' has no data, no checkpoint, and the model is from scratch; "
            "give it data to train on."
        )
    resolved = resolve_model(checkpoint)
    record = StageRecord(
        name=stage.name,
        checkpoint=resolved.path,
        parent=stage.parent,
        adapter=stage.adapter,
        revision=stage.revision or (None if stage.checkpoint else config.model.revision),
        source=resolved.source,
    )
    record.weights_hash = stage_hash(record)
    return record


def _initial_model(
    config: RunConfig, stage: StageConfig, lineage: Lineage, tokenizer: PreTrainedTokenizerBase
) -> PreTrainedModel:
    """The model a stage starts from: its parent checkpoint, or a fresh from-scratch model."""
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
        raise DataError(
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
    """Train a stage in child processes under `accelerate launch` (DDP, FSDP or DeepSpeed)."""
    assert stage.data is not None and config.accelerate_config is not None
    out = config.paths.checkpoint(stage.name)
    parent = lineage.get(stage.parent) if stage.parent else None
    start: Path | None = None
    if parent is not None and parent.adapter is None and parent.revision is None:
        model_path = parent.checkpoint  # the children load it themselves
    else:
        start = out.parent / f".{stage.name}.init"
        _initial_model(config, stage, lineage, tokenizer).save_pretrained(start)
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
        accelerate_config=Path(config.accelerate_config),
        progress=progress,
    )
    if start is not None:
        shutil.rmtree(start)
    return result


def _train_one(
    config: RunConfig,
    stage: StageConfig,
    lineage: Lineage,
    tokenizer: PreTrainedTokenizerBase,
    progress: bool,
) -> StageRecord:
    """Run one stage in this process (or under accelerate) and describe its checkpoint."""
    out = config.paths.checkpoint(stage.name)
    records = _records(config, stage)
    if stage.format != "documents" and config.model.chat_template and not tokenizer.chat_template:
        raise DataError(
            f"stage '{stage.name}' wants a chat template but the tokenizer has none; set "
            "model.chat_template: false (plain '### Instruction' format) or use a tokenizer "
            "with a chat template (e.g. the -Instruct model's)."
        )
    run = _stage_run(config, stage)
    use_cpu = not torch.cuda.is_available()
    torch.manual_seed(config.seed)
    if config.accelerate_config is not None and stage.format != "grpo":
        result = _launch(config, stage, lineage, tokenizer, run, progress)
    elif stage.format == "grpo":
        assert stage.grpo is not None
        grpo = stage.grpo
        reward = KeywordReward(tuple(grpo.reward_words)) if grpo.reward_words else KeywordReward()
        prompts = [r.prompt if isinstance(r, PromptResponse) else r.text for r in records]
        result = train_grpo_stage(
            _initial_model(config, stage, lineage, tokenizer),
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
            _initial_model(config, stage, lineage, tokenizer),
            tokenizer,
            records,
            stage,
            run,
            out,
            use_cpu=use_cpu,
            progress=progress,
        )
    return StageRecord(
        name=stage.name,
        checkpoint=str(out),
        parent=stage.parent,
        weights_hash=weights_hash(out),
        data_hash=records_hash(records),
        config=dataclasses.asdict(stage),
        metrics={
            "train_seconds": result.train_seconds,
            "tokens_seen": result.tokens_seen,
            "tokens_per_second": result.tokens_per_second,
            "final_loss": result.final_loss,
            "steps": result.steps,
        },
    )
