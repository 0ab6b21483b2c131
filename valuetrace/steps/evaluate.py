"""Step `evaluate`: behavioural compassion margin/share, helpfulness loss and greedy answers."""

from __future__ import annotations

from valuetrace.analysis.anima.pipeline import StageLoader, run_anima
from valuetrace.analysis.behaviour import GENERATION_PROMPTS, BehaviourResult, behaviour_scores
from valuetrace.analysis.eval_items import behaviour_items, helpfulness_items, scoring_set
from valuetrace.config import RunConfig
from valuetrace.console import progress_bar
from valuetrace.steps.common import stage_model, stage_tokenizer
from valuetrace.training.lineage import Lineage


def evaluate(config: RunConfig, *, progress: bool = True) -> dict[str, BehaviourResult]:
    """Score every recorded stage on the held-out eval items and write `behaviour/<stage>.json`.

    Prompts (eval, helpfulness and the fixed generation prompts) are formatted with each stage's
    chat template when the config uses one, so they match what SFT trained on. One progress bar
    over the stages when `progress`.
    """
    lineage = Lineage.load(config.paths.lineage)
    items = behaviour_items(config)
    rows = scoring_set(config, items, helpfulness_items(config))
    beh = config.behaviour
    results = {}
    for record in progress_bar(lineage.records, "evaluate", enabled=progress):
        model = stage_model(config, record)
        tokenizer = stage_tokenizer(record)
        result = behaviour_scores(
            model,
            tokenizer,
            rows,
            stage=record.name,
            eval_source=beh.compassion_eval,
            eval_ids=[str(i["id"]) for i in items],
            generation_prompts=GENERATION_PROMPTS if beh.max_new_tokens > 0 else (),
            max_new_tokens=beh.max_new_tokens,
            n_boot=beh.n_bootstrap,
            ci=config.probing.ci,
            seed=config.seed,
        )
        result.save(config.paths.behaviour(record.name))
        results[record.name] = result
    if config.anima.enabled:
        load = StageLoader(lambda record: stage_model(config, record), stage_tokenizer)
        run_anima(config, lineage.records, load, progress=progress)
    return results
