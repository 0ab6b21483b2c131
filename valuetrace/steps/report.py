"""Step `report`: render report.html and summary.txt from the analysis record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from valuetrace.analysis.anima.section import html_section, summary_lines
from valuetrace.analysis.behaviour import BehaviourResult
from valuetrace.analysis.causal import CausalRecord
from valuetrace.analysis.findings import Figure, Findings
from valuetrace.analysis.report import ReportInputs, lineage_summary, render_html, summary_text
from valuetrace.analysis.transplant import TransplantRecord
from valuetrace.config import RunConfig
from valuetrace.probing.surface import SurfaceRecord
from valuetrace.records import load_record
from valuetrace.training.lineage import Lineage


def report(config: RunConfig) -> Path:
    """Render report.html and summary.txt from the records earlier steps wrote.

    Reads `analysis/findings.json`, each stage's behaviour record, the causal dose-response and
    transplants, and the surface baselines when those steps ran.

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
    )
    summary, out = summary_text(inputs), render_html(inputs, paths.report)
    if paths.anima_scores.is_file():  # ANIMA's own section; place it in the report as it grows
        summary, page = anima_report(config, summary, out.read_text())
        out.write_text(page)
    paths.summary.write_text(summary)
    return out


def anima_report(config: RunConfig, summary: str, page: str) -> tuple[str, str]:
    """The summary and report page with the ANIMA block and section added."""
    from valuetrace.analysis.anima.generate import AnswerSet
    from valuetrace.analysis.anima.questions import load_anima
    from valuetrace.analysis.anima.scores import AnimaScores
    from valuetrace.steps.anima import anima_folder

    paths = config.paths
    scores = AnimaScores.load(paths.anima_scores)
    answers = {
        s: AnswerSet.load(paths.anima_answers(s))
        for s in scores.stages
        if paths.anima_answers(s).is_file()
    }
    _, questions = load_anima(
        anima_folder(config), languages=config.anima.languages, limit=config.anima.limit
    )
    section = html_section(scores, answers, {q.id: q.question for q in questions})
    text = summary.rstrip("\n") + "\n\n" + "\n".join(summary_lines(scores)) + "\n"
    return text, page.replace("</body>", section + "</body>", 1)
