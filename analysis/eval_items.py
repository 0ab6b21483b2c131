"""The behaviour evaluation's items, read from the config's files: the compassion eval items
(`behaviour.compassion_eval`), the same items as labelled pairs to project them, the held-out
helpfulness pairs, and the `ScoringSet` that behaviour scoring and the causal checks score."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from valuetrace.activations.examples import LabelledExamples
from valuetrace.analysis.behaviour import ScoringSet
from valuetrace.config import RunConfig, resolve_data_path
from valuetrace.errors import ConfigError, DataError
from valuetrace.jsonl import read_jsonl
from valuetrace.training.datasets import PromptResponse, load_options, load_records

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
