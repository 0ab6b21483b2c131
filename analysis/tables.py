"""Long-format CSV tables of the `Findings` record, for other tools (pandas, R, spreadsheets).

Three tables, named by `RunPaths.table`: per-layer probe metrics per stage (`probes`), stage
comparisons per measure of `MEASURES` plus cosine, CKA and verdict (`comparisons`), and the
behavioural scores per stage (`behaviour`). Undefined values are written empty (NaN as 'nan').
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from valuetrace.analysis.findings import Findings
from valuetrace.analysis.measures import MEASURES
from valuetrace.paths import RunPaths


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def probe_rows(findings: Findings) -> list[list[object]]:
    """(dataset, stage, layer, metric, value) for every probe metric of every stage."""
    rows: list[list[object]] = []
    for name, concept in findings.concepts.items():
        for stage, table in concept.probes.items():
            for field in dataclasses.fields(table):
                values = getattr(table, field.name) or []
                for layer, value in zip(concept.layers, values, strict=False):
                    rows.append([name, stage, layer, field.name, value])
    return rows


def comparison_rows(findings: Findings) -> list[list[object]]:
    """(dataset, stages, layer, measure, value, lo, hi, floor) per layer and measure."""
    rows: list[list[object]] = []
    for name, concept in findings.concepts.items():
        for key, cmp in concept.comparisons.items():
            for i, layer in enumerate(concept.layers):
                for measure in MEASURES:
                    ch = measure.change(cmp)
                    floor = None if ch.floor is None else ch.floor[i]
                    drop = f"{measure.name}_drop"
                    rows.append([name, key, layer, drop, ch.drop[i], ch.lo[i], ch.hi[i], floor])
                c = cmp.cosine
                floor = None if c.floor is None else c.floor[i]
                rows.append([name, key, layer, "cosine", c.value[i], c.lo[i], c.hi[i], floor])
                rows.append([name, key, layer, "cka_debiased", cmp.cka[i], "", "", ""])
                rows.append([name, key, layer, "verdict", cmp.verdicts[i], "", "", ""])
    return rows


def behaviour_rows(findings: Findings) -> list[list[object]]:
    """(stage, score, value, lo, hi) per stage and behavioural score."""
    return [
        [stage, field.name, v.value, v.lo, v.hi]
        for stage, scores in findings.behaviour.items()
        for field in dataclasses.fields(scores)
        for v in [getattr(scores, field.name)]
    ]


def write_tables(findings: Findings, paths: RunPaths) -> list[Path]:
    """Write the three CSVs under the run's analysis folder; returns their paths."""
    tables = {
        "probes": (["dataset", "stage", "layer", "metric", "value"], probe_rows(findings)),
        "comparisons": (
            ["dataset", "stages", "layer", "measure", "value", "lo", "hi", "floor"],
            comparison_rows(findings),
        ),
        "behaviour": (["stage", "score", "value", "lo", "hi"], behaviour_rows(findings)),
    }
    for name, (header, rows) in tables.items():
        _write(paths.table(name), header, rows)
    return [paths.table(name) for name in tables]
