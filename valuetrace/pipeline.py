"""One function per pipeline step; each reads only what earlier steps wrote to the run folder.

prepare → train → extract → evaluate → probe → analyze → report. Every step can be rerun
alone, and finished work (a trained stage, a complete cache) is reused, never overwritten
unless asked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.examples import LabelledExamples, load_labelled
from valuetrace.activations.extract import cache_provenance, extract_to_cache
from valuetrace.analysis.behaviour import BehaviourResult, behaviour_scores
from valuetrace.config import (
    DataSource,
    RunConfig,
    StageConfig,
    config_to_dict,
    resolve_data_path,
)
from valuetrace.errors import DataError, MissingStepError
from valuetrace.models import load_model, load_tokenizer, weights_hash
from valuetrace.prompts import format_prompts
from valuetrace.training.datasets import (
    Document,
    PromptResponse,
    load_records,
    records_hash,
)
from valuetrace.training.grpo import GrpoSettings, KeywordReward, train_grpo_stage
from valuetrace.training.launch import launch_stage, spec_for
from valuetrace.training.lineage import Lineage, StageRecord, stage_hash
from valuetrace.training.scratch import build_scratch_model, train_tokenizer
from valuetrace.training.stages import StageResult, TrainSettings, train_stage

log = logging.getLogger(__name__)


def prepare(config: RunConfig, *, overwrite: bool = False) -> None:
    """Create the run folder, refusing one that holds a different run; write demo data."""
    paths = config.paths
    paths.root.mkdir(parents=True, exist_ok=True)
    as_yaml = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    if paths.config.is_file() and paths.config.read_text() != as_yaml and not overwrite:
        raise DataError(
            f"{paths.root} already holds a run with a different config ({paths.config}). "
            "Nothing was changed; choose another --run-dir, or pass --overwrite to start over "
            "in this folder."
        )
    paths.config.write_text(as_yaml)
    if config.demo_data:
        from valuetrace.demo_data import write_demo_data

        write_demo_data(paths.data, seed=config.seed)
    if config.real_data_dir:
        from valuetrace.real_data import write_real_data

        write_real_data(Path(config.real_data_dir), paths.data, seed=config.seed)


def _load_options(config: RunConfig, data: DataSource) -> dict[str, Any]:
    """`load_records` keyword arguments of a configured data source (a capped one is shuffled)."""
    return {
        "schema": data.schema,
        "split": data.split,
        "limit": data.limit,
        "where": data.where,
        "drop_empty": data.drop_empty,
        "seed": config.seed,
        "shuffle": data.limit is not None,
    }


def _records(config: RunConfig, stage: StageConfig) -> list[Document] | list[PromptResponse]:
    assert stage.data is not None
    return load_records(
        resolve_data_path(stage.data.source, config), **_load_options(config, stage.data)
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


def _settings(config: RunConfig, stage: StageConfig) -> TrainSettings:
    lora = stage.lora
    extra = (
        {
            "lora_r": lora.r,
            "lora_alpha": lora.alpha,
            "lora_dropout": lora.dropout,
            "lora_targets": tuple(lora.target_modules),
            "lora_merge": lora.merge,
        }
        if lora is not None
        else {}
    )
    return TrainSettings(
        format=stage.format,
        method=stage.method,
        epochs=stage.epochs,
        max_steps=stage.max_steps,
        learning_rate=stage.learning_rate,
        batch_size=stage.batch_size,
        grad_accum=stage.grad_accum,
        max_length=stage.max_length,
        warmup_ratio=stage.warmup_ratio,
        weight_decay=stage.weight_decay,
        seed=config.seed if stage.seed is None else stage.seed,
        chat=config.model.chat_template,
        packing=stage.packing,
        gradient_checkpointing=stage.gradient_checkpointing,
        bf16=config.model.dtype == "bfloat16",
        **extra,
    )


def _lineage(config: RunConfig) -> Lineage:
    path = config.paths.lineage
    return Lineage.load(path) if path.is_file() else Lineage()


def train(config: RunConfig, *, stages: list[str] | None = None, progress: bool = True) -> Lineage:
    """Train the configured stages in order (skipping finished ones) and record their lineage."""
    paths = config.paths
    lineage = _lineage(config)
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
    return lineage


def _existing_checkpoint(config: RunConfig, stage: StageConfig) -> StageRecord:
    """A stage trained elsewhere (or the configured model as is), recorded without training."""
    checkpoint = stage.checkpoint or config.model.name_or_path
    if checkpoint is None:
        raise DataError(
            f"stage '{stage.name}' has no data, no checkpoint, and the model is from scratch; "
            "give it data to train on."
        )
    record = StageRecord(
        name=stage.name,
        checkpoint=checkpoint,
        parent=stage.parent,
        adapter=stage.adapter,
        revision=stage.revision or (None if stage.checkpoint else config.model.revision),
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
        spec_for(
            model_path,
            config.model.name_or_path or str(config.paths.tokenizer),
            resolve_data_path(data.source, config),
            _settings(config, stage),
            out,
            dtype=config.model.dtype,
            **_load_options(config, data),
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
    settings = _settings(config, stage)
    use_cpu = not torch.cuda.is_available()
    torch.manual_seed(config.seed)
    if config.accelerate_config is not None and stage.format != "grpo":
        result = _launch(config, stage, lineage, tokenizer, progress)
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
            GrpoSettings(
                settings,
                num_generations=grpo.num_generations,
                max_completion_length=grpo.max_completion_length,
                temperature=grpo.temperature,
                beta=grpo.beta,
            ),
            out,
            use_cpu=use_cpu,
            progress=progress,
        )
    else:
        result = train_stage(
            _initial_model(config, stage, lineage, tokenizer),
            tokenizer,
            records,
            settings,
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


def _stage_model(config: RunConfig, record: StageRecord):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_model(
        record.checkpoint,
        adapter=record.adapter,
        revision=record.revision,
        dtype=config.model.dtype,
        device=device,
    )


def _stage_tokenizer(record: StageRecord) -> PreTrainedTokenizerBase:
    source = record.adapter if record.adapter else record.checkpoint
    return load_tokenizer(source, record.revision)


def extract(config: RunConfig, *, overwrite: bool = False, progress: bool = True) -> None:
    """Cache pooled activations of every probe set under every recorded stage."""
    lineage = Lineage.load(config.paths.lineage)
    lineage.verify()
    lineage.save(config.paths.lineage)
    sets = {p.name: load_labelled(resolve_data_path(p.source, config)) for p in config.probes}
    sets[BEHAVIOUR_SET] = behaviour_examples(config)
    for record in lineage.records:
        model = _stage_model(config, record)
        tokenizer = _stage_tokenizer(record)
        for name, examples in sets.items():
            prompts = format_prompts(examples.prompts, tokenizer, chat=config.model.chat_template)
            provenance = {
                "stage": record.name,
                **cache_provenance(
                    model=record.checkpoint,
                    model_hash=record.weights_hash or record.checkpoint,
                    tokenizer=tokenizer,
                    examples=examples,
                    dataset=name,
                    pooling=config.extract.pooling,
                    dtype=config.extract.dtype,
                    max_length=config.extract.max_length,
                    chat=config.model.chat_template,
                ),
            }
            extract_to_cache(
                model,
                tokenizer,
                examples,
                prompts,
                config.paths.activations(name, record.name),
                provenance=provenance,
                pooling=config.extract.pooling,
                batch_size=config.extract.batch_size,
                max_length=config.extract.max_length,
                layers=config.extract.layers,
                overwrite=overwrite,
                progress=progress,
            )


def evaluate(config: RunConfig) -> dict[str, BehaviourResult]:
    """Behavioural compassion preference and helpfulness loss for every recorded stage."""
    lineage = Lineage.load(config.paths.lineage)
    items = _behaviour_items(config)
    help_cfg = config.behaviour.helpfulness_eval
    help_records = load_records(  # the first `limit` items, in file order
        resolve_data_path(help_cfg.source, config),
        **{**_load_options(config, help_cfg), "shuffle": False},
    )
    if not all(isinstance(r, PromptResponse) for r in help_records):
        raise DataError("behaviour.helpfulness_eval must be prompt/response data.")
    results = {}
    for record in lineage.records:
        model = _stage_model(config, record)
        tokenizer = _stage_tokenizer(record)

        result = behaviour_scores(
            model,
            tokenizer,
            eval_ids=[str(i["id"]) for i in items],
            eval_prompts=format_prompts(
                [i["prompt"] for i in items], tokenizer, chat=config.model.chat_template
            ),
            compassionate=[i["compassionate"] for i in items],
            dismissive=[i["dismissive"] for i in items],
            help_prompts=format_prompts(
                [r.prompt for r in help_records], tokenizer, chat=config.model.chat_template
            ),
            help_responses=[r.response for r in help_records],
            n_boot=config.behaviour.n_bootstrap,
            seed=config.seed,
            batch_size=config.extract.batch_size,
        )
        result.save(config.paths.behaviour(record.name))
        results[record.name] = result
    return results


def set_threads() -> None:
    """Use the machine's cores for torch unless the user chose a number."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def _behaviour_items(config: RunConfig) -> list[dict[str, str]]:
    path = Path(resolve_data_path(config.behaviour.compassion_eval, config))
    if not path.is_file():
        raise DataError(f"behaviour eval file {path} does not exist; check the config.")
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not items:
        raise DataError(f"{path} holds no eval items.")
    return items


BEHAVIOUR_SET = "behaviour_items"


def behaviour_examples(config: RunConfig) -> LabelledExamples:
    """The eval items as labelled pairs (compassionate = 1), to project them per item."""
    items = _behaviour_items(config)
    ids, prompts, responses, labels, groups = [], [], [], [], []
    for item in items:
        for label, key in ((1, "compassionate"), (0, "dismissive")):
            ids.append(f"{item['id']}-{label}")
            prompts.append(item["prompt"])
            responses.append(item[key])
            labels.append(label)
            groups.append(str(item["id"]))
    return LabelledExamples(ids, prompts, responses, np.asarray(labels), groups)


def localised_band(drops: dict[str, list]) -> list[int]:
    """Layer indices whose drop is significant and at least half the largest drop."""
    top = max(drops["drop"])
    return [
        i
        for i, (sig, drop) in enumerate(zip(drops["significant"], drops["drop"], strict=True))
        if sig and drop >= top / 2
    ]


def causal(config: RunConfig) -> list[dict[str, object]]:
    """Ablate the parent stage's compassion direction over the localised band of layers, and add
    its class gap back (at the band's first layer) into the post-trained model; write how the
    behavioural compassion score moves."""
    from valuetrace.activations.store import read_activations
    from valuetrace.analysis.causal import causal_effect
    from valuetrace.analysis.findings import pair_key
    from valuetrace.probing import load_results

    paths = config.paths
    metrics_path = paths.analysis / "metrics.json"
    if not metrics_path.is_file():
        raise MissingStepError(f"no {metrics_path}; run `valuetrace analyze` first.")
    metrics = json.loads(metrics_path.read_text())
    dataset = metrics["primary"]["dataset"]
    a, b = metrics["primary"]["pair"]
    concept = metrics["concepts"][dataset]
    loc = concept["localization"][pair_key(a, b)]
    drops = loc[loc["metric"]]
    layers = localised_band(drops) or [drops["largest_drop"]["layer"]]
    layers = [concept["layers"][i] for i in layers]
    cache = read_activations(paths.activations(dataset, a), layers=layers)
    direction = load_results(paths.probes(dataset, a)).mean_direction.vectors
    rows = [concept["layers"].index(layer) for layer in layers]
    units = {
        layer: direction[r] / np.linalg.norm(direction[r])
        for layer, r in zip(layers, rows, strict=True)
    }
    gap = {
        layer: float(
            (cache.acts[i][cache.labels == 1] @ units[layer]).mean()
            - (cache.acts[i][cache.labels == 0] @ units[layer]).mean()
        )
        for i, layer in enumerate(layers)
    }
    items = _behaviour_items(config)
    lineage = Lineage.load(paths.lineage)
    results = []
    interventions = (
        (a, "ablate", layers, f"remove {a}'s direction from {a} at layers {layers}"),
        (b, "add", layers[:1], f"add {a}'s class gap along it into {b} at layer {layers[0]}"),
    )
    for stage, mode, where, label in interventions:
        record = lineage.get(stage)
        tokenizer = _stage_tokenizer(record)
        prompts = format_prompts(
            [i["prompt"] for i in items], tokenizer, chat=config.model.chat_template
        )
        result = causal_effect(
            _stage_model(config, record),
            tokenizer,
            prompts,
            [i["compassionate"] for i in items],
            [i["dismissive"] for i in items],
            {layer: units[layer] for layer in where},
            mode,
            scale={layer: gap[layer] for layer in where},
            n_boot=config.behaviour.n_bootstrap,
            seed=config.seed,
            batch_size=config.extract.batch_size,
        ).to_dict()
        results.append({"label": label, "stage": stage, **result})
    (paths.analysis / "causal.json").write_text(json.dumps(results, indent=1))
    return results
