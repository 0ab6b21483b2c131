"""The researcher-facing outputs: a plain-text summary and one self-contained HTML report.

Both are rendered from the `Findings` record the analysis wrote (plus the lineage and, when
present, the behaviour, causal and surface records), so the report computes nothing itself and
every number in it can be traced. The parts:

- `report_model`: typed sections (title, paragraphs, tables, figures) and number formatting;
- `report_words`: the report's inputs and the sentences both renderings share;
- `summary`: the text summary (`summary_text`);
- `report_sections`: the HTML report's sections, built once from the inputs;
- `report_html`: renders sections through the Jinja2 template `templates/report.html.j2`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from valuetrace.analysis.report_html import render_page
from valuetrace.analysis.report_sections import build_sections
from valuetrace.analysis.report_words import ReportInputs, answer
from valuetrace.analysis.summary import summary_text
from valuetrace.training.lineage import StageRecord

__all__ = ["ReportInputs", "lineage_summary", "render_html", "summary_text"]


def render_html(inputs: ReportInputs, out: Path) -> Path:
    """Write one self-contained HTML report (figures embedded as base64 PNGs) to `out`.

    Raises:
        OSError: a figure file cannot be read or `out` cannot be written.
    """
    return render_page("valuetrace report", answer(inputs), build_sections(inputs), out)


def lineage_summary(records: Sequence[StageRecord]) -> dict[str, Any]:
    """Plain per-stage provenance for the report (parent, checkpoint, hashes, metrics)."""
    return {
        r.name: {
            "parent": r.parent,
            "checkpoint": r.checkpoint,
            "weights_hash": r.weights_hash,
            "data_hash": r.data_hash,
            "metrics": r.metrics,
        }
        for r in records
    }
