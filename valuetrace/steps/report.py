"""Step `report`: render report.html and summary.txt from the analysis."""

from __future__ import annotations

import json
from pathlib import Path

from valuetrace.analysis.report import render_html, summary_text
from valuetrace.config import (
    RunConfig,
)
from valuetrace.errors import MissingStepError
from valuetrace.probing.surface import SurfaceRecord
from valuetrace.records import load_record


def report(config: RunConfig) -> Path:
    """Render report.html and summary.txt from analysis/metrics.json and its figures."""
    paths = config.paths
    metrics_path = paths.analysis / "metrics.json"
    if not metrics_path.is_file():
        raise MissingStepError(f"no {metrics_path}; run `valuetrace analyze` first.")
    metrics = json.loads(metrics_path.read_text())
    if paths.causal.is_file():
        metrics["causal"] = json.loads(paths.causal.read_text())
    figures = {k: paths.root / v for k, v in metrics["figures"].items()}
    if paths.causal_figure.is_file():
        figures["causal_dose_response"] = paths.causal_figure
    surface = [
        load_record(SurfaceRecord, paths.surface(p.name), step="probe")
        for p in config.probes
        if paths.surface(p.name).is_file()
    ]
    (paths.root / "summary.txt").write_text(summary_text(metrics, surface))
    return render_html(metrics, figures, paths.report, surface)
