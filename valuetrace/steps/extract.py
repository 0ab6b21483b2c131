"""Step `extract`: cache pooled activations of every probe set under every recorded stage."""

from __future__ import annotations

from collections.abc import Collection

from valuetrace.activations.examples import load_labelled
from valuetrace.activations.extract import cache_provenance, extract_to_cache
from valuetrace.analysis.eval_items import behaviour_examples
from valuetrace.config import (
    RunConfig,
    resolve_data_path,
)
from valuetrace.console import progress_bar
from valuetrace.corpora.concept_data import write_persona_source
from valuetrace.errors import ConfigError
from valuetrace.steps.common import chosen_probe_sets, stage_model, stage_tokenizer
from valuetrace.training.lineage import Lineage


def extract(
    config: RunConfig,
    *,
    overwrite: bool = False,
    progress: bool = True,
    probe_sets: Collection[str] | None = None,
) -> None:
    """Cache pooled activations of every probe set (or those in `probe_sets`) and the behaviour
    items under every recorded stage (one bar per stage, over its sets). A cache records the
    stage's fingerprint and its checkpoint as the run folder stores it (relative), so a moved
    folder keeps its caches valid.

    Raises:
        ConfigError: a probe set is named as the behaviour items' cache, or `probe_sets` names
            a set the config lacks.
    """
    lineage = Lineage.load(config.paths.lineage)
    lineage.verify()
    lineage.save(config.paths.lineage)
    behaviour_set = config.paths.behaviour_set
    if behaviour_set in {p.name for p in config.probes}:
        raise ConfigError(
            f"probes: a probe set is named '{behaviour_set}', the name under which the "
            "behaviour eval items are cached; rename that probe set."
        )
    write_persona_source(config, lineage)  # the multi-source concept's generated source, if any
    sets = {
        p.name: load_labelled(resolve_data_path(p.source, config))
        for p in chosen_probe_sets(config, probe_sets)
    }
    sets[behaviour_set] = behaviour_examples(config)
    for record in lineage.records:
        model = stage_model(config, record)
        tokenizer = stage_tokenizer(record)
        for name, examples in progress_bar(
            sets.items(),
            f"extract {record.name}",
            enabled=progress,
            total=len(sets),
            unit="set",
        ):
            provenance = {
                "stage": record.name,
                "stage_fingerprint": record.fingerprint or "",
                **cache_provenance(
                    model=config.paths.stored(record.checkpoint),
                    model_hash=record.weights_hash or record.checkpoint,
                    tokenizer=tokenizer,
                    examples=examples,
                    dataset=name,
                    pooling=config.extract.pooling,
                    dtype=config.extract.dtype,
                    max_length=config.extract.max_length,
                    chat=config.model.chat_template,
                    chat_date=config.model.chat_date,
                ),
            }
            extract_to_cache(
                model,
                tokenizer,
                examples,
                config.paths.activations(name, record.name),
                chat=config.model.chat_template,
                chat_date=config.model.chat_date,
                provenance=provenance,
                pooling=config.extract.pooling,
                batch_size=config.extract.batch_size,
                max_length=config.extract.max_length,
                layers=config.extract.layers,
                share_prefixes=config.extract.share_prefixes,
                overwrite=overwrite,
                progress=False,
            )
