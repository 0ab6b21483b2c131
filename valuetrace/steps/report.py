"""Step `report`: render report.html and summary.txt from the analysis record."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from valuetrace.analysis.findings import Findings
from valuetrace.analysis.report import ReportInputs, lineage_summary, render_html, summary_text
from valuetrace.config import RunConfig
from valuetrace.probing.surface import SurfaceRecord
from valuetrace.records import load_record
from valuetrace.training.lineage import Lineage


def _causal(path: Path) -> list[dict[str, Any]] | None:
    """The causal step's entries, if it ran (read as plain data; the report checks fields)."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else data.get("entries")


def wrap_summary(text: str, width: int = 100) -> str:
    """Wrap the summary's prose at `width` columns; shorter lines (its tables) stay as they are."""
    lines = [
        textwrap.fill(line, width, subsequent_indent=" " * (len(line) - len(line.lstrip())))
        if len(line) > width
        else line
        for line in text.splitlines()
    ]
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def report(config: RunConfig) -> Path:
    """Render report.html and summary.txt from analysis/findings.json and its figures."""
    paths = config.paths
    findings = load_record(Findings, paths.findings, step="analyze")
    inputs = ReportInputs(
        findings=findings,
        figures={k: paths.root / v for k, v in findings.figures.items()},
        lineage=lineage_summary(Lineage.load(paths.lineage).records),
        causal=_causal(paths.analysis / "causal.json"),
        surface=[
            load_record(SurfaceRecord, paths.surface(p.name), step="probe")
            for p in config.probes
            if paths.surface(p.name).is_file()
        ],
    )
    paths.summary.write_text(summary_text(inputs))
    return render_html(inputs, paths.report)
