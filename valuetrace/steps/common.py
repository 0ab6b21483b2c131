"""What several steps share: the lineage, a stage's model and tokenizer, the behaviour items."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from valuetrace.activations.examples import LabelledExamples
from valuetrace.config import (
    DataSource,
    RunConfig,
    resolve_data_path,
)
from valuetrace.errors import DataError
from valuetrace.models import load_model, load_tokenizer
from valuetrace.training.lineage import Lineage, StageRecord


def load_options(config: RunConfig, data: DataSource) -> dict[str, Any]:
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


def set_threads() -> None:
    """Use the machine's cores for torch unless the user chose a number."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def behaviour_items(config: RunConfig) -> list[dict[str, str]]:
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


def primary_pair(compare: list[tuple[str, str]]) -> tuple[str, str]:
    """The pair the headline is about: the first pair whose first stage is another's second."""
    seconds = {b for _, b in compare}
    for a, b in compare:
        if a in seconds:
            return a, b
    return compare[0]
