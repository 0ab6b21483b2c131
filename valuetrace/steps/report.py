"""Step `report`: render report.html and summary.txt from the analysis record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from valuetrace.analysis.anima.generate import AnswerSet
from valuetrace.analysis.anima.projection import AnimaProjection
from valuetrace.analysis.anima.questions import run_questions
from valuetrace.analysis.anima.scores import AnimaScores
from valuetrace.analysis.anima.section import AnimaReport, example_answers
from valuetrace.analysis.behaviour import BehaviourResult
from valuetrace.analysis.causal import CausalRecord
from valuetrace.analysis.concept_sources import ConceptSourcesRecord
from valuetrace.analysis.figures import trajectory_figure
from valuetrace.analysis.findings import Figure, Findings
from valuetrace.analysis.report import ReportInputs, lineage_summary, render_html, summary_text
from valuetrace.analysis.trajectory import TrajectoryRecord
from valuetrace.analysis.transplant import TransplantRecord
from valuetrace.config import RunConfig
from valuetrace.probing.surface import SurfaceRecord
from valuetrace.records import load_record
from valuetrace.steps.common import known_answer
from valuetrace.training.lineage import Lineage


def report(config: RunConfig) -> Path:
    """Render report.html and summary.txt from the records earlier steps wrote.

    Reads `analysis/findings.json`, each stage's behaviour record, and the causal
    dose-response, transplants, surface baselines, trajectories, multi-source concept and ANIMA
    records when those steps ran.

    Raises:
        MissingStepError: `valuetrace analyze` (or `evaluate`) has not run.
        CacheError: a record is of another schema or a newer version.
    """
    paths = config.paths
    findings = load_record(Findings, paths.findings, step="analyze")
    figures = [dataclasses.replace(f, path=paths.resolved(f.path)) for f in findings.figures]
    causal = load_record(CausalRecord, paths.causal) if paths.causal.is_file() else None
    if causal is not None and paths.causal_figure.is_file():
        figures.append(Figure("causal_dose_response", "causal", None, str(paths.causal_figure)))
    trajectories = None
    if paths.trajectories.is_file():
        trajectories = load_record(TrajectoryRecord, paths.trajectories)
        for t in trajectories.trajectories:
            fig = trajectory_figure(t, paths)
            if paths.figure(fig.name).is_file():
                figures.append(dataclasses.replace(fig, path=paths.resolved(fig.path)))
    concept = paths.concept_sources
    inputs = ReportInputs(
        findings=findings,
        figures=figures,
        lineage=lineage_summary(Lineage.load(paths.lineage).records),
        behaviour={s: BehaviourResult.load(paths.behaviour(s)) for s in findings.stages},
        causal=causal,
        transplant=TransplantRecord.load(paths.transplant) if paths.transplant.is_file() else None,
        surface=[
            load_record(SurfaceRecord, paths.surface(p.name), step="probe")
            for p in config.probes
            if paths.surface(p.name).is_file()
        ],
        trajectories=trajectories,
        concept_sources=load_record(ConceptSourcesRecord, concept) if concept.is_file() else None,
        anima=anima_report(config, findings.stages),
        known_answer=None if trajectories is None else known_answer(config, trajectories),
    )
    summary, out = summary_text(inputs), render_html(inputs, paths.report)
    paths.summary.write_text(summary)
    return out


def anima_report(config: RunConfig, stages: list[str]) -> AnimaReport | None:
    """The ANIMA section's records (None when ANIMA has not run): scores, the projection when
    `analyze` wrote it, and example answers of `stages` (the main stages)."""
    paths = config.paths
    if not paths.anima_scores.is_file():
        return None
    scores = AnimaScores.load(paths.anima_scores)
    answers = {s: AnswerSet.load(paths.anima_answers(s)) for s in stages if s in scores.stages}
    _, questions = run_questions(config)
    projection = (
        AnimaProjection.load(paths.anima_projection) if paths.anima_projection.is_file() else None
    )
    texts = {q.id: q.question for q in questions}
    examples = example_answers(scores, answers, texts, stages)
    return AnimaReport(scores, list(answers), examples, projection)
