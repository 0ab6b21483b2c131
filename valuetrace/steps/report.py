"""Step `report`: render report.html and summary.txt from the analysis."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from valuetrace.analysis.report import render_html, summary_text
from valuetrace.config import (
    RunConfig,
)
from valuetrace.errors import MissingStepError


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
    """Render report.html and summary.txt from analysis/metrics.json and its figures."""
    paths = config.paths
    metrics_path = paths.analysis / "metrics.json"
    if not metrics_path.is_file():
        raise MissingStepError(f"no {metrics_path}; run `valuetrace analyze` first.")
    metrics = json.loads(metrics_path.read_text())
    causal_path = paths.analysis / "causal.json"
    if causal_path.is_file():
        metrics["causal"] = json.loads(causal_path.read_text())
    figures = {k: paths.root / v for k, v in metrics["figures"].items()}
    paths.summary.write_text(wrap_summary(summary_text(metrics)))
    return render_html(metrics, figures, paths.report)
