"""Step `evaluate`: behavioural compassion margin/share, helpfulness loss and greedy answers."""

from __future__ import annotations

from typing import Any

from valuetrace.analysis.behaviour import GENERATION_PROMPTS, BehaviourResult, behaviour_scores
from valuetrace.config import RunConfig, resolve_data_path
from valuetrace.console import progress_bar
from valuetrace.errors import ConfigError
from valuetrace.steps.anima import run_anima
from valuetrace.steps.common import behaviour_items, load_options, stage_model, stage_tokenizer
from valuetrace.training.datasets import PromptResponse, load_records
from valuetrace.training.lineage import Lineage


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


def scored_rows(
    config: RunConfig, items: list[dict[str, str]], help_records: list[PromptResponse]
) -> dict[str, Any]:
    """The raw prompts, continuations and formatting settings that `behaviour_scores` and
    `dose_response` score (chat template as configured, rows capped at extract.max_length)."""
    return {
        "eval_prompts": [i["prompt"] for i in items],
        "compassionate": [i["compassionate"] for i in items],
        "dismissive": [i["dismissive"] for i in items],
        "help_prompts": [r.prompt for r in help_records],
        "help_responses": [r.response for r in help_records],
        "chat": config.model.chat_template,
        "chat_date": config.model.chat_date,
        "batch_size": config.extract.batch_size,
        "max_length": config.extract.max_length,
    }


def evaluate(config: RunConfig, *, progress: bool = True) -> dict[str, BehaviourResult]:
    """Score every recorded stage on the held-out eval items and write `behaviour/<stage>.json`.

    Prompts (eval, helpfulness and the fixed generation prompts) are formatted with each stage's
    chat template when the config uses one, so they match what SFT trained on. One progress bar
    over the stages when `progress`.
    """
    lineage = Lineage.load(config.paths.lineage)
    items = behaviour_items(config)
    help_records = helpfulness_items(config)
    beh = config.behaviour
    results = {}
    for record in progress_bar(lineage.records, "evaluate", enabled=progress):
        model = stage_model(config, record)
        tokenizer = stage_tokenizer(record)
        result = behaviour_scores(
            model,
            tokenizer,
            stage=record.name,
            eval_source=beh.compassion_eval,
            eval_ids=[str(i["id"]) for i in items],
            **scored_rows(config, items, help_records),
            generation_prompts=GENERATION_PROMPTS if beh.max_new_tokens > 0 else (),
            max_new_tokens=beh.max_new_tokens,
            n_boot=beh.n_bootstrap,
            ci=config.probing.ci,
            seed=config.seed,
        )
        result.save(config.paths.behaviour(record.name))
        results[record.name] = result
    if config.anima.enabled:
        run_anima(config, progress=progress)
    return results
