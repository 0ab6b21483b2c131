"""What the lineage records of a stage: the record the current config wants (settings, context,
data hash, fingerprint), a checkpoint saved along a run, a checkpoint taken from elsewhere, and
what happened to a trained checkpoint since it was recorded."""

from __future__ import annotations

import dataclasses

from transformers import PreTrainedTokenizerBase

from valuetrace.config import RunConfig, StageConfig, trajectory_name
from valuetrace.errors import CheckpointError, ConfigError
from valuetrace.model_sources import resolve_model
from valuetrace.models import tokenizer_hash, weights_hash
from valuetrace.prompts import chat_render_hash
from valuetrace.training.datasets import Document, PromptResponse, records_hash
from valuetrace.training.lineage import Lineage, StageRecord, stage_fingerprint, stage_hash
from valuetrace.training.stages import StageRun


def stage_run(config: RunConfig, stage: StageConfig) -> StageRun:
    """The run-level values a stage trains with: its seed, prompt format and precision."""
    return StageRun(
        seed=config.seed if stage.seed is None else stage.seed,
        chat=config.model.chat_template,
        chat_date=config.model.chat_date,
        bf16=config.model.dtype == "bfloat16",
    )


def wanted_record(
    config: RunConfig,
    stage: StageConfig,
    records: list[Document] | list[PromptResponse] | None,
    tokenizer: PreTrainedTokenizerBase,
    parent: StageRecord | None,
) -> StageRecord:
    """The record a stage would get from the current config (no checkpoint hash yet): its
    settings, the run-level settings it depends on, its data hash and its fingerprint.

    With the chat template on, the context holds the pinned `model.chat_date` and `chat_render`,
    the hash of what the template renders on that date (`valuetrace.prompts.chat_render_hash`),
    so a changed date or a template that renders differently makes the stage stale. A run in
    the plain format renders no template and records neither."""
    settings = dataclasses.asdict(stage)
    model = dataclasses.asdict(config.model)
    context = {
        "seed": stage_run(config, stage).seed,
        "model": model,
        "tokenizer_hash": tokenizer_hash(tokenizer),
    }
    if config.model.chat_template and tokenizer.chat_template:
        context["chat_render"] = chat_render_hash(tokenizer, config.model.chat_date)
    else:
        del model["chat_date"]
    data_hash = records_hash(records) if records is not None else None
    return StageRecord(
        name=stage.name,
        checkpoint=str(config.paths.checkpoint(stage.name)),
        parent=stage.parent,
        data_hash=data_hash,
        config=settings,
        context=context,
        fingerprint=stage_fingerprint(
            settings, context, data_hash, parent.fingerprint if parent else None
        ),
        trajectory_of=stage.trajectory_of,
        step=stage.trajectory_step,
    )


def saved_points(config: RunConfig, lineage: Lineage, stage: str) -> list[str]:
    """The `save_at` checkpoints recorded for `stage` (its points not listed in the config)."""
    listed = {s.name for s in config.stages}
    return [r.name for r in lineage.records if r.trajectory_of == stage and r.name not in listed]


def point_record(stage: StageRecord, step: int, folder: str) -> StageRecord:
    """The lineage record of the checkpoint saved at `step` of the run that trained `stage`."""
    return dataclasses.replace(
        stage,
        name=trajectory_name(stage.name, step),
        checkpoint=folder,
        weights_hash=weights_hash(folder),
        fingerprint=stage_fingerprint({"step": step}, {}, None, stage.fingerprint),
        metrics={"steps": step},
        trajectory_of=stage.name,
        step=step,
    )


def checkpoint_damage(config: RunConfig, stage: StageConfig, old: StageRecord) -> str | None:
    """What happened to a trained stage's checkpoint since it was recorded: None when intact
    (or not trained here), "files are missing" or "weight files changed"."""
    if stage.data is None:
        return None  # taken from elsewhere: extraction checks it against the lineage
    checkpoint = config.paths.checkpoint(stage.name)
    if not (checkpoint / "config.json").is_file():
        return "files are missing"
    try:
        current = weights_hash(checkpoint)
    except CheckpointError:
        return "weight files are missing"
    if old.weights_hash is not None and current != old.weights_hash:
        return "weight files changed"
    return None


def existing_checkpoint(config: RunConfig, stage: StageConfig, wanted: StageRecord) -> StageRecord:
    """A stage trained elsewhere (or the configured model as is), recorded without training.

    Raises:
        ConfigError: the stage has no data and no checkpoint and the model is from scratch.
        CheckpointError: its checkpoint cannot be resolved (`resolve_model`).
    """
    checkpoint = stage.checkpoint or config.model.name_or_path
    if checkpoint is None:
        raise ConfigError(
            f"stage '{stage.name}' has no data, no checkpoint, and the model is from scratch; "
            "give it data to train on."
        )
    resolved = resolve_model(checkpoint)
    record = dataclasses.replace(
        wanted,
        checkpoint=resolved.path,
        adapter=stage.adapter,
        revision=stage.revision or (None if stage.checkpoint else config.model.revision),
        source=resolved.source,
    )
    record.weights_hash = stage_hash(record)
    return record
