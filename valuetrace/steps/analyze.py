"""Step `analyze`: read each stage's caches, probes and behaviour, run the study
(`valuetrace.analysis.study`), and write `Findings`, its figures and its CSV tables."""

from __future__ import annotations

import dataclasses

from valuetrace.activations.store import read_activations
from valuetrace.analysis.anima.projection import project_run_answers
from valuetrace.analysis.behaviour import BehaviourResult
from valuetrace.analysis.concept_record import concept_section
from valuetrace.analysis.figures import draw_figures
from valuetrace.analysis.findings import Findings
from valuetrace.analysis.neutral_floor import Dose
from valuetrace.analysis.study import StageData, StudyInputs, study
from valuetrace.analysis.tables import write_tables
from valuetrace.config import RunConfig
from valuetrace.errors import MissingStepError
from valuetrace.probing import load_results
from valuetrace.records import save_record
from valuetrace.steps.common import require_current
from valuetrace.training.lineage import Lineage, StageRecord


def _load_stage(config: RunConfig, dataset: str, record: StageRecord) -> StageData:
    """A stage's cache and probes for one set, refused if made from an earlier stage version.

    Raises:
        MissingStepError: the probe step has not run for this set and stage.
        CacheError: the cache or probes were made from an earlier version of the stage.
    """
    stage = record.name
    path = config.paths.probes(dataset, stage)
    if not path.is_file():
        raise MissingStepError(
            f"no probes for '{dataset}' under stage '{stage}' ({path}); run `valuetrace probe` "
            "first."
        )
    cache_path = config.paths.activations(dataset, stage)
    cache, results = read_activations(cache_path), load_results(path)
    require_current(record, cache.attrs.get("stage_fingerprint"), cache_path, "extract")
    require_current(record, results.provenance.get("stage_fingerprint"), path, "probe")
    return StageData(cache, results)


def analyze(config: RunConfig) -> Findings:
    """Compare stages per concept and write `analysis/findings.json`, CSVs and figures."""
    paths = config.paths
    lineage = Lineage.load(paths.lineage)
    # checkpoints along a run are the trajectory step's (valuetrace.steps.trajectory)
    stages = [s for s in lineage.names() if not lineage.get(s).trajectory_of]
    replicate_of = {
        s.name: s.replicate_of for s in config.stages if s.replicate_of and s.name in stages
    }
    inputs = StudyInputs(
        # behaviour first: a missing `evaluate` is named before a missing `probe`, as before
        behaviour={s: BehaviourResult.load(paths.behaviour(s)) for s in stages},
        concepts={
            p.name: (p.concept, {s: _load_stage(config, p.name, lineage.get(s)) for s in stages})
            for p in config.probes
        },
        items={
            s: read_activations(paths.activations(paths.behaviour_set, s))
            for s in stages
            if s not in replicate_of
        },
        stages=stages,
        replicate_of=replicate_of,
        doses={
            s: dose
            for s in stages
            if (dose := Dose.of(lineage.get(s).config, lineage.get(s).metrics)) is not None
        },
    )
    findings = study(config, inputs)
    paths.analysis.mkdir(parents=True, exist_ok=True)
    primary = inputs.concepts[findings.primary_dataset][1]
    findings = dataclasses.replace(findings, figures=draw_figures(config, findings, primary))
    save_record(findings, paths.findings)
    write_tables(findings, paths)
    comparisons = findings.concepts[findings.primary_dataset].comparisons
    concept_section(config, findings.stages, list(comparisons.values()), findings.concentration)
    if paths.anima_scores.is_file():  # ANIMA answers on the compassion direction
        directions = {s: data.probes.mean_direction.vectors for s, data in primary.items()}
        parents = {s: lineage.get(s).parent for s in findings.stages}
        project_run_answers(config, findings, directions, parents).save(paths.anima_projection)
    return findings
