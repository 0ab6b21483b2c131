"""What several steps share: the lineage, a stage's model and tokenizer, the multi-source
concept's generated data, the behaviour items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from valuetrace.activations.examples import LabelledExamples, read_jsonl
from valuetrace.analysis.behaviour import ScoringSet
from valuetrace.config import (
    RunConfig,
    resolve_data_path,
)
from valuetrace.errors import CacheError, ConfigError, DataError
from valuetrace.models import load_model, load_tokenizer
from valuetrace.training.datasets import PromptResponse, load_options, load_records
from valuetrace.training.lineage import Lineage, StageRecord


def run_lineage(config: RunConfig) -> Lineage:
    path = config.paths.lineage
    return Lineage.load(path) if path.is_file() else Lineage()


def stage_model(config: RunConfig, record: StageRecord):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_model(
        record.checkpoint,
        adapter=record.adapter,
        revision=record.revision,
        dtype=config.model.dtype,
        device=device,
    )


def stage_tokenizer(record: StageRecord) -> PreTrainedTokenizerBase:
    source = record.adapter if record.adapter else record.checkpoint
    return load_tokenizer(source, record.revision)


def _shared_dir(config: RunConfig) -> Path:
    if config.real_data_dir is None:
        raise ConfigError(
            "concept_sources builds its sources from the shared data folder; set real_data_dir "
            "in the config (e.g. ${config_dir}/../../../shared/data)."
        )
    return Path(config.real_data_dir)


def concept_data(config: RunConfig) -> None:
    """Write the data-made concept sources into the run's data folder (at `prepare`); nothing
    when the config has no `concept_sources`.

    Raises:
        ConfigError: `concept_sources` is set but `real_data_dir` is not.
    """
    if config.concept_sources is None:
        return
    from valuetrace.concept_data import write_concept_data

    write_concept_data(
        _shared_dir(config),
        config.paths.data,
        config.concept_sources,
        config.seed,
        config.real_data_sizes,
    )


def persona_source(config: RunConfig, lineage: Lineage) -> None:
    """Generate the ANIMA persona source with the first stage's model, once (at `extract`);
    nothing when the config asks for no ANIMA questions.

    Raises:
        ConfigError: `concept_sources` is set but `real_data_dir` is not.
    """
    concept = config.concept_sources
    if concept is None or concept.anima_questions == 0:
        return
    from valuetrace.concept_data import PERSONA_FILE, write_persona_data

    if (config.paths.data / PERSONA_FILE).is_file():
        return
    record = lineage.records[0]
    write_persona_data(
        stage_model(config, record),
        stage_tokenizer(record),
        _shared_dir(config),
        config.paths.data,
        concept,
        chat=config.model.chat_template,
        chat_date=config.model.chat_date,
    )


def require_current(record: StageRecord, found: object, path: Path, step: str) -> None:
    """Refuse a derived file (cache, probes) made from an earlier version of its stage: the stage
    fingerprint it recorded must be the lineage's. Files from before fingerprints (none
    recorded) pass, as do stages recorded by hand without one.

    Raises:
        CacheError: `found` differs from the stage's fingerprint; rerunning `step` fixes it.
    """
    if record.fingerprint and found and str(found) != record.fingerprint:
        raise CacheError(
            f"{path} was made from an earlier version of stage '{record.name}' (its settings, "
            f"data or parent changed since); run `valuetrace {step} --overwrite` to redo it."
        )


EVAL_FIELDS = ("id", "prompt", "compassionate", "dismissive")


def behaviour_items(config: RunConfig) -> list[dict[str, str]]:
    """The compassion eval items (`behaviour.compassion_eval`), each with `EVAL_FIELDS`.

    Raises:
        DataError: the file is missing or empty, or a line is not UTF-8, not a JSON object, or
            lacks a field; the file and line are named.
    """
    path = Path(resolve_data_path(config.behaviour.compassion_eval, config))
    if not path.is_file():
        raise DataError(
            f"behaviour.compassion_eval: {path} does not exist; point it at a JSONL file of "
            "{id, prompt, compassionate, dismissive} items."
        )
    items = read_jsonl(path)
    for n, item in items:
        missing = [k for k in EVAL_FIELDS if k not in item]
        if missing:
            raise DataError(
                f"{path} line {n}: the eval item lacks {missing}; each line needs "
                f"{list(EVAL_FIELDS)}. Fix that line."
            )
    if not items:
        raise DataError(
            f"behaviour.compassion_eval: {path} holds no eval items; it needs one JSON object "
            "per line."
        )
    return [item for _, item in items]


def behaviour_examples(config: RunConfig) -> LabelledExamples:
    """The eval items as labelled pairs (compassionate = 1), to project them per item."""
    items = behaviour_items(config)
    ids, prompts, responses, labels, groups = [], [], [], [], []
    for item in items:
        for label, key in ((1, "compassionate"), (0, "dismissive")):
            ids.append(f"{item['id']}-{label}")
            prompts.append(item["prompt"])
            responses.append(item[key])
            labels.append(label)
            groups.append(str(item["id"]))
    return LabelledExamples(ids, prompts, responses, np.asarray(labels), groups)


def helpfulness_items(config: RunConfig) -> list[PromptResponse]:
    """The held-out helpfulness prompt/response pairs (the first `limit`, in file order).

    Raises:
        ConfigError: the configured source is not prompt/response data.
    """
    help_cfg = config.behaviour.helpfulness_eval
    records = load_records(
        resolve_data_path(help_cfg.source, config),
        **{**load_options(config, help_cfg), "shuffle": False},
    )
    if not all(isinstance(r, PromptResponse) for r in records):
        raise ConfigError(
            f"behaviour.helpfulness_eval: {help_cfg.source} holds plain documents; give it "
            "prompt/response data (schema dolly, alpaca or messages)."
        )
    return records


def scoring_set(
    config: RunConfig, items: list[dict[str, str]], help_records: list[PromptResponse]
) -> ScoringSet:
    """The eval items and helpfulness pairs that `behaviour_scores` and `dose_response` score
    (chat template as configured, rows capped at extract.max_length)."""
    return ScoringSet(
        eval_prompts=[i["prompt"] for i in items],
        compassionate=[i["compassionate"] for i in items],
        dismissive=[i["dismissive"] for i in items],
        help_prompts=[r.prompt for r in help_records],
        help_responses=[r.response for r in help_records],
        chat=config.model.chat_template,
        chat_date=config.model.chat_date,
        batch_size=config.extract.batch_size,
        max_length=config.extract.max_length,
    )
