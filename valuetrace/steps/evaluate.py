"""Step `evaluate`: behavioural compassion preference and helpfulness loss per stage."""

from __future__ import annotations

from valuetrace.analysis.behaviour import BehaviourResult, behaviour_scores
from valuetrace.config import (
    RunConfig,
    resolve_data_path,
)
from valuetrace.console import progress_bar
from valuetrace.errors import ConfigError
from valuetrace.steps.common import behaviour_items, load_options, stage_model, stage_tokenizer
from valuetrace.training.datasets import (
    PromptResponse,
    load_records,
)
from valuetrace.training.lineage import Lineage


def evaluate(config: RunConfig, *, progress: bool = True) -> dict[str, BehaviourResult]:
    """Behavioural compassion preference and helpfulness loss for every recorded stage (one
    progress bar over the stages when `progress`)."""
    lineage = Lineage.load(config.paths.lineage)
    items = behaviour_items(config)
    help_cfg = config.behaviour.helpfulness_eval
    help_records = load_records(  # the first `limit` items, in file order
        resolve_data_path(help_cfg.source, config),
        **{**load_options(config, help_cfg), "shuffle": False},
    )
    if not all(isinstance(r, PromptResponse) for r in help_records):
        raise ConfigError(
            f"behaviour.helpfulness_eval: {help_cfg.source} holds plain documents; give it "
            "prompt/response data (schema dolly, alpaca or messages)."
        )
    results = {}
    for record in progress_bar(lineage.records, "evaluate", enabled=progress):
        model = stage_model(config, record)
        tokenizer = stage_tokenizer(record)

        result = behaviour_scores(
            model,
            tokenizer,
            eval_ids=[str(i["id"]) for i in items],
            eval_prompts=[i["prompt"] for i in items],
            compassionate=[i["compassionate"] for i in items],
            dismissive=[i["dismissive"] for i in items],
            help_prompts=[r.prompt for r in help_records],
            help_responses=[r.response for r in help_records],
            chat=config.model.chat_template,
            n_boot=config.behaviour.n_bootstrap,
            seed=config.seed,
            batch_size=config.extract.batch_size,
            max_length=config.extract.max_length,
        )
        result.save(config.paths.behaviour(record.name))
        results[record.name] = result
    return results
