"""The neutral floor, the trajectories and the multi-source concept reach the summary and the
HTML report (typed sections, the heatmap embedded), and leave no trace when absent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.analysis.test_concept_sources import PROBING, _sources
from tests.analysis.test_report import _findings
from valuetrace.analysis.concept_sources import ConceptSourcesRecord, source_agreement
from valuetrace.analysis.figures import trajectory_figures
from valuetrace.analysis.neutral_floor import NeutralFloor
from valuetrace.analysis.report import ReportInputs, render_html, summary_text
from valuetrace.analysis.report_model import fmt_layers
from valuetrace.analysis.trajectory import TrajectoryRecord, analyse_trajectory
from valuetrace.config import ConceptSourcesConfig
from valuetrace.paths import RunPaths
from valuetrace.probing.folds import grouped_folds

N_LAYERS, N_PAIRS, D, LAYER = 3, 40, 8, 1


@pytest.fixture(scope="module")
def trajectories() -> TrajectoryRecord:
    """A counter arm whose signal at LAYER is gone from step 20 on."""
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], N_PAIRS)
    groups = np.repeat(np.arange(N_PAIRS), 2)
    parent = rng.normal(size=(N_LAYERS, 2 * N_PAIRS, D))
    parent[:, :, 0] += 1.5 * labels
    acts = {"mid": parent}
    for step, keep in ((10, 1.0), (20, 0.1)):
        for name, seed in ((f"sft-step{step}", step), (f"sft~seed1-step{step}", step + 1)):
            x = parent + 0.05 * np.random.default_rng(seed).normal(size=parent.shape)
            x[LAYER, :, 0] -= (1 - keep) * 1.5 * labels
            acts[name] = x
    folds = grouped_folds(groups, 3, seed=0, labels=labels)
    t, _ = analyse_trajectory(
        "sft",
        "mid",
        [(10, "sft-step10"), (20, "sft-step20")],
        acts,
        labels,
        groups,
        folds,
        dataset="c",
        replicate_points={s: [f"sft~seed1-step{s}"] for s in (10, 20)},
        n_boot=200,
    )
    return TrajectoryRecord([t], 0.05, 0.95)


@pytest.fixture(scope="module")
def concept() -> ConceptSourcesRecord:
    sources = _sources()
    rule = ConceptSourcesConfig(sources=list(sources), min_sources=1)
    agreement = source_agreement(sources, "pairs", rule, PROBING, layers=[0, 1], stage="mid")
    note = "mid→sft: source-specific at layer(s) 1 (weakening): there pairs' direction does not"
    return ConceptSourcesRecord([agreement], [note])


def _floors() -> list[NeutralFloor]:
    drop = [0.1, 0.2, 0.3, 0.4]
    same = dict(dataset="c", neutral="neu", neutral_parent="mid")
    return [
        NeutralFloor(
            pair="mid→sft",
            comparable=True,
            fired=[2, 3],
            value_specific=[3],
            within_floor=[2],
            floor_drop=drop,
            floor_rotation=drop,
            note="1 of 2 fired layer verdicts beyond the neutral arm",
            not_encoded=[0],
            **same,
        ),
        NeutralFloor(
            pair="base→mid",
            comparable=False,
            fired=[1],
            value_specific=[],
            within_floor=[],
            floor_drop=[],
            floor_rotation=[],
            note="the neutral arm 'neu' branches from 'mid', not 'base': its change is no floor",
            **same,
        ),
    ]


def test_layer_runs_are_written_as_ranges():
    assert fmt_layers([11, 3, 4, 5, 6, 24, 25]) == "3–6, 11, 24–25"
    assert fmt_layers([]) == "none"


def test_the_three_records_reach_summary_and_report(tmp_path, trajectories, concept):
    findings = dataclasses.replace(_findings(keep=0.2), neutral_floor=_floors())
    paths = RunPaths(tmp_path)
    figures = [
        dataclasses.replace(f, path=str(tmp_path / f.path))
        for f in trajectory_figures(trajectories, paths)
    ]
    assert paths.figure(trajectories.trajectories[0].figure_name).is_file()
    inputs = ReportInputs(
        findings, figures=figures, trajectories=trajectories, concept_sources=concept
    )
    summary = summary_text(inputs)
    flat = " ".join(summary.split())
    assert max(len(line) for line in summary.splitlines()) <= 100
    assert "c mid→sft: 1 of 2 fired layer verdicts survive the neutral floor" in flat
    assert "(value-specific at layers: 3); within it: 2." in flat
    assert "Not judged at layer 0: mid does not encode the concept there (its probe's" in flat
    assert "c base→mid: the neutral arm 'neu' branches from 'mid', not 'base'" in flat
    assert f"weakening at step 20 (layer {LAYER}); rotation never" in flat
    assert "step 10 (sft-step10): behaviour not scored; no layer verdict" in flat
    assert f"step 20 (sft-step20): behaviour not scored; weakening at layer {LAYER}" in flat
    assert "(cross-source) at layers 0; source-specific at 1" in flat
    assert "cosine of pairs's direction with minimal" in flat
    assert "source-specific at layer(s) 1 (weakening)" in flat
    page = render_html(inputs, tmp_path / "report.html").read_text()
    for title in (
        "Value-specific verdicts: the neutral-arm floor",
        "Trajectories: where and when",
        "c: mid → sft",
        "A concept from several sources",
        "AUROC on minimal",
    ):
        assert title in page
    assert page.count("data:image/png;base64,") == 1  # the heatmap


def test_without_the_records_there_is_no_section(tmp_path):
    inputs = ReportInputs(_findings(keep=0.2))
    summary = summary_text(inputs)
    page = render_html(inputs, tmp_path / "report.html").read_text()
    for text in ("neutral floor", "Trajectory", "several sources"):
        assert text not in summary and text not in page
