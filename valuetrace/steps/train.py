"""Step `train`: train the configured stages in order and record each checkpoint in the lineage."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.config import (
    RunConfig,
    StageConfig,
    resolve_data_path,
    trajectory_name,
)
from valuetrace.errors import CheckpointError, ConfigError, LineageError
from valuetrace.model_sources import resolve_model
from valuetrace.models import load_model, load_tokenizer, tokenizer_hash, weights_hash
from valuetrace.paths import remove_inside
from valuetrace.prompts import chat_render_hash
from valuetrace.runtime import record_timing, seed_everything
from valuetrace.steps.common import load_options, remove_outputs, run_lineage
from valuetrace.training.datasets import (
    Document,
    PromptResponse,
    load_records,
    records_hash,
)
from valuetrace.training.grpo import KeywordReward, train_grpo_stage
from valuetrace.training.launch import StageSpec, check_accelerate_config, launch_stage
from valuetrace.training.lineage import (
    Lineage,
    StageRecord,
    changed_inputs,
    stage_fingerprint,
    stage_hash,
)
from valuetrace.training.scratch import build_scratch_model, train_tokenizer
from valuetrace.training.stages import StageResult, StageRun, train_stage

log = logging.getLogger(__name__)


def _records(config: RunConfig, stage: StageConfig) -> list[Document] | list[PromptResponse]:
    assert stage.data is not None
    return load_records(
        resolve_data_path(stage.data.source, config), **load_options(config, stage.data)
    )


def _tokenizer(config: RunConfig, overwrite: bool) -> PreTrainedTokenizerBase:
    """The run's tokenizer: the model's own, or a BPE trained once on the configured corpora.

    A trained tokenizer records what it was trained on (corpora, their data hashes, vocab
    size); when that changed it is retrained with `overwrite` (every stage then follows, as
    their fingerprints hold the tokenizer's hash) and refused without.

    Raises:
        ConfigError: a from-scratch model without `tokenizer_corpora`.
        LineageError: the tokenizer's inputs changed and `overwrite` is false.
    """
    paths = config.paths
    if config.model.name_or_path is not None:
        return load_tokenizer(config.model.name_or_path, config.model.revision)
    if not config.tokenizer_corpora:
        raise ConfigError(
            "tokenizer_corpora: a from-scratch model needs text files to train its BPE "
            "tokenizer on; list them under 'tokenizer_corpora'."
        )
    assert config.model.scratch is not None
    corpora = [load_records(resolve_data_path(c, config)) for c in config.tokenizer_corpora]
    inputs = {
        "corpora": list(config.tokenizer_corpora),
        "data": [records_hash(records) for records in corpora],
        "vocab_size": config.model.scratch.vocab_size,
    }
    if paths.tokenizer.is_dir():
        recorded = (
            json.loads(paths.tokenizer_inputs.read_text())
            if paths.tokenizer_inputs.is_file()
            else None
        )
        if recorded == inputs:
            return load_tokenizer(str(paths.tokenizer))
        if not overwrite:
            raise LineageError(
                f"the run's tokenizer ({paths.tokenizer}) was trained on other corpora or "
                "another vocab size than the config gives; pass --overwrite to retrain it "
                "(and every stage), or choose another --run-dir."
            )
        remove_inside(paths.tokenizer, paths.root)
    texts: list[str] = []
    for records in corpora:
        for record in records:
            texts.extend(
                [record.text] if isinstance(record, Document) else [record.prompt, record.response]
            )
    tokenizer = train_tokenizer(texts, config.model.scratch.vocab_size)
    tokenizer.save_pretrained(paths.tokenizer)
    paths.tokenizer_inputs.write_text(json.dumps(inputs, indent=1))
    return tokenizer


def _stage_run(config: RunConfig, stage: StageConfig) -> StageRun:
    """The run-level values a stage trains with: its seed, prompt format and precision."""
    return StageRun(
        seed=config.seed if stage.seed is None else stage.seed,
        chat=config.model.chat_template,
        chat_date=config.model.chat_date,
        bf16=config.model.dtype == "bfloat16",
    )


def _wanted(
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
        "seed": _stage_run(config, stage).seed,
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


def _saved_points(config: RunConfig, lineage: Lineage, stage: str) -> list[str]:
    """The `save_at` checkpoints recorded for `stage` (its points not listed in the config)."""
    listed = {s.name for s in config.stages}
    return [r.name for r in lineage.records if r.trajectory_of == stage and r.name not in listed]


def _drop_points(config: RunConfig, lineage: Lineage, stage: str) -> None:
    """Remove the `save_at` checkpoints of a stage about to be retrained, and their outputs."""
    for name in _saved_points(config, lineage, stage):
        remove_outputs(config.paths, name)
        lineage.remove(name)


def _point_record(stage: StageRecord, step: int, folder: str) -> StageRecord:
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


def train(
    config: RunConfig,
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> Lineage:
    """Train the configured stages in order and record their lineage.

    A recorded stage whose fingerprint (settings, data, parent) still matches is reused. One
    that changed is retrained with `overwrite`, after its checkpoint and every file derived from
    it or from any stage are removed; its descendants follow, as their parent changed. Without
    `overwrite` a changed stage is refused, naming what changed.

    A stage trained here whose checkpoint files went missing is retrained; one whose weight
    files changed (hash mismatch with the lineage) is retrained with `overwrite`. When the
    retrained weights differ from those recorded, its descendants are stale and follow as
    changed stages do.

    Raises:
        LineageError: a stage (or its checkpoint's weights) changed since it was trained and
            `overwrite` is false.
        DataError: a stage cannot be trained as configured.
        ConfigError: the accelerate launch config would save no weights; nothing is trained.
    """
    paths = config.paths
    if config.accelerate_config is not None and any(s.data for s in config.stages):
        check_accelerate_config(Path(config.accelerate_config))  # before anything trains
    lineage = run_lineage(config)
    _drop_unconfigured(config, lineage, overwrite)
    tokenizer = _tokenizer(config, overwrite)
    changed: set[str] = set()
    for stage in config.stages:
        records = _records(config, stage) if stage.data is not None else None
        parent = lineage.get(stage.parent) if stage.parent else None
        wanted = _wanted(config, stage, records, tokenizer, parent)
        old = lineage.find(stage.name)
        parent_changed = stage.parent in changed
        repairing = False
        if old is not None and old.fingerprint == wanted.fingerprint and not parent_changed:
            damage = _damage(config, stage, old)
            if damage is None:
                log.info("stage %s is up to date: %s", stage.name, old.checkpoint)
                continue
            if damage.endswith("changed") and not overwrite:  # missing files: nothing to lose
                raise LineageError(
                    f"the checkpoint of stage '{stage.name}' ({paths.checkpoint(stage.name)}) "
                    f"{damage} since it was trained; it was left as it is. Pass --overwrite to "
                    "retrain it (stages downstream follow if its new weights differ)."
                )
            log.warning("stage %s: its checkpoint %s; retraining it", stage.name, damage)
            remove_outputs(paths, stage.name)
            _drop_points(config, lineage, stage.name)
            repairing = True
        elif old is not None:
            changes = changed_inputs(old, wanted, parent_changed=parent_changed)
            if not overwrite:
                raise LineageError(
                    f"stage '{stage.name}' changed since it was trained ({'; '.join(changes)}); "
                    "it and its outputs were left as they are. Pass --overwrite to retrain it "
                    "(and the stages downstream of it), or choose another --run-dir."
                )
            log.warning("stage %s changed (%s): retraining it", stage.name, "; ".join(changes))
            remove_outputs(paths, stage.name)
            _drop_points(config, lineage, stage.name)
            changed.add(stage.name)
        if stage.data is None:
            lineage.put(_existing_checkpoint(config, stage, wanted))
        else:
            assert records is not None
            trained = _train_one(config, stage, lineage, tokenizer, records, wanted, progress)
            record = trained[-1]  # the stage itself, after its save_at points
            if repairing and old is not None and record.weights_hash != old.weights_hash:
                changed.add(stage.name)  # its children were trained from other weights
            for point in trained:
                lineage.put(point)
        lineage.save(paths.lineage)
        gc.collect()  # the finished Trainer holds its model and optimizer in reference cycles
    return lineage


def _damage(config: RunConfig, stage: StageConfig, old: StageRecord) -> str | None:
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


def _drop_unconfigured(config: RunConfig, lineage: Lineage, overwrite: bool) -> None:
    """Stages recorded in the lineage but no longer in the config go, with their outputs."""
    configured = {s.name for s in config.stages}
    configured |= {n for s in config.stages for n in _saved_points(config, lineage, s.name)}
    gone = [name for name in lineage.names() if name not in configured]
    if not gone:
        return
    if not overwrite:
        raise LineageError(
            f"the run folder holds stages the config no longer lists ({gone}); pass "
            "--overwrite to remove them and their outputs, or choose another --run-dir."
        )
    for name in gone:
        log.warning("stage %s is no longer configured: removing it", name)
        remove_outputs(config.paths, name)
        lineage.remove(name)
    lineage.save(config.paths.lineage)


def _existing_checkpoint(config: RunConfig, stage: StageConfig, wanted: StageRecord) -> StageRecord:
    """A stage trained elsewhere (or the configured model as is), recorded without training."""
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
        num_processes=config.train_processes,
        accelerate_config=None
        if config.accelerate_config is None
        else Path(config.accelerate_config),
        progress=progress,
    )
    if start is not None:
        remove_inside(start, config.paths.root)
    return result


def _train_one(
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
    (which must not differ between reruns)."""
    out = config.paths.checkpoint(stage.name)
    if stage.format != "documents" and config.model.chat_template and not tokenizer.chat_template:
        raise ConfigError(
            f"stage '{stage.name}' wants a chat template but the tokenizer has none; set "
            "model.chat_template: false (plain '### Instruction' format) or use a tokenizer "
            "with a chat template (e.g. the -Instruct model's)."
        )
    run = _stage_run(config, stage)
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
    record_timing(
        config.paths.timings,
        stage={
            "name": stage.name,
            "train_seconds": result.train_seconds,
            "tokens_per_second": result.tokens_per_second,
        },
    )
    points = [_point_record(wanted, step, folder) for step, folder in result.saved]
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
