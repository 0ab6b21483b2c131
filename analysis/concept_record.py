"""The multi-source concept's analysis section, read from a run folder and saved as a record.

`concept_section` reads every source's caches and saved probes per stage, computes their
agreement (`valuetrace.analysis.concept_sources`), notes the verdicts that sit on
source-specific layers, and writes `analysis/concept_sources.json`. It does nothing when the
config has no `concept_sources`.
"""

from __future__ import annotations

import numpy as np

from valuetrace.activations.examples import load_labelled
from valuetrace.activations.store import read_activations
from valuetrace.analysis.concept_sources import (
    ConceptSourcesRecord,
    SourceAgreement,
    SourceData,
    scope_notes,
    source_agreement,
)
from valuetrace.analysis.findings import Concentration
from valuetrace.analysis.stage_comparison import StageComparison
from valuetrace.config import RunConfig, resolve_data_path
from valuetrace.errors import CacheError
from valuetrace.probing import load_results
from valuetrace.probing.surface import example_texts
from valuetrace.records import save_record


def concept_section(
    config: RunConfig,
    stages: list[str],
    comparisons: list[StageComparison],
    concentration: list[Concentration],
) -> ConceptSourcesRecord | None:
    """The section's data: each stage's source agreement and the scope notes; saved too.

    `stages` are the stages to judge (the findings' main stages), `comparisons` the primary
    concept's stage-pair comparisons and `concentration` its indices, whose verdicts on
    source-specific layers get a note. Every source's cached activations and saved probes are
    read, not refitted. None when the config has no `concept_sources`.

    Raises:
        MissingStepError / CacheError: a source's activations or probes are missing or stale.
    """
    concept = config.concept_sources
    if concept is None:
        return None
    sets = {p.name: p for p in config.probes}
    primary = config.probes[0].name
    agreements: dict[str, SourceAgreement] = {}
    for stage in stages:
        sources = {}
        layers: list[int] = []
        for name in concept.sources:
            cache = read_activations(config.paths.activations(name, stage))
            examples = load_labelled(resolve_data_path(sets[name].source, config))
            if examples.ids != cache.ids:
                raise CacheError(
                    f"probe set '{name}': {sets[name].source} no longer holds the examples its "
                    f"activations under '{stage}' were extracted from; rerun `valuetrace "
                    "extract --overwrite`."
                )
            layers = list(cache.layers)
            sources[name] = SourceData(
                cache.acts,
                cache.labels,
                np.asarray(cache.groups),
                example_texts(examples.prompts, examples.responses),
            )
        fitted = {name: load_results(config.paths.probes(name, stage)) for name in sources}
        agreements[stage] = source_agreement(
            sources,
            primary,
            concept,
            config.probing,
            layers=layers,
            stage=stage,
            seed=config.seed,
            fitted=fitted,
        )
    record = ConceptSourcesRecord(
        stages=list(agreements.values()),
        notes=scope_notes(agreements, comparisons, concentration),
    )
    save_record(record, config.paths.concept_sources)
    return record
