"""The report renders the Findings record: verdict bands, floors, undefined layers, causal flags,
and a summary whose lines fit in 100 columns."""

from __future__ import annotations

import dataclasses

import numpy as np

from valuetrace.analysis.behaviour import BehaviourChange
from valuetrace.analysis.causal import CausalRecord, DosePoint
from valuetrace.analysis.findings import (
    ConceptFindings,
    Findings,
    Interval,
    ProbeTable,
    StageBehaviour,
    concentration_index,
)
from valuetrace.analysis.localize import compare_stages
from valuetrace.analysis.report import ReportInputs, render_html, summary_text
from valuetrace.probing.folds import grouped_folds

N_PAIRS, LAYERS, D = 40, 4, 8


def _findings(keep: float, parent_auroc: list[Interval] | None = None) -> Findings:
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], N_PAIRS)
    groups = np.repeat(np.arange(N_PAIRS), 2)
    a = rng.normal(size=(LAYERS, 2 * N_PAIRS, D))
    a[:, :, 0] += 2.0 * labels
    a[0] = 0.5  # a constant layer
    b = a.copy()
    b[2:, :, 0] -= (1 - keep) * 2.0 * labels
    folds = grouped_folds(groups, 5, seed=0, labels=labels)
    main = compare_stages(
        a,
        b,
        labels,
        groups,
        folds,
        stage_a="mid",
        stage_b="sft",
        n_boot=200,
        parent_auroc=parent_auroc,
    )
    same = compare_stages(a, a, labels, groups, folds, stage_a="mid", stage_b="sft", n_boot=200)
    index = concentration_index(
        "concept", "c − g (mid→sft)", "mid→sft", ("c", *main), ("g", *same), 0.9
    )
    row = [0.5] * LAYERS
    table = ProbeTable(row, row, row, row, row, row, None, None, None, None)
    score = Interval(0.5, 0.4, 0.6)
    return Findings(
        stages=["mid", "sft"],
        replicate_of={},
        primary_dataset="c",
        primary_pair=["mid", "sft"],
        ci=0.9,
        behaviour={s: StageBehaviour(score, score, score) for s in ("mid", "sft")},
        behaviour_changes={
            "mid→sft": BehaviourChange("mid", "sft", 40, Interval(0.1, 0.0, 0.2), score, score)
        },
        concepts={
            "c": ConceptFindings(
                "c",
                "compassion",
                list(range(LAYERS)),
                80,
                {"mid": table, "sft": table},
                [[[0.5] * LAYERS] * 2] * 2,
                {"mid→sft": main[0]},
            )
        },
        concentration=[index],
        projection={},
        figures=[],
    )


def test_summary_names_verdict_bands_undefined_layers_and_concentration():
    findings = _findings(keep=0.2)
    summary = summary_text(ReportInputs(findings))
    assert max(len(line) for line in summary.splitlines()) <= 100
    assert (
        "mid → sft: layer 0: undefined; layer 1: no meaningful change; layers 2–3: weakening"
        in (" ".join(summary.split()))
    )
    assert "undefined at layer 0: mid: constant layer" in " ".join(summary.split())
    assert "domain-concentrated" in summary
    assert "relative weakening averaged over the judged layers 1–3:" in " ".join(summary.split())
    assert "no seed replicate, so no noise floor" in " ".join(summary.split())
    assert (
        "no stage of this pair has a seed replicate, so a change needs significance alone"
        in " ".join(summary.split())
    )


def test_layers_the_parent_does_not_encode_are_said_so_in_summary_and_report(tmp_path):
    read, chance = Interval(0.9, 0.8, 1.0), Interval(0.55, 0.44, 0.66)
    findings = _findings(keep=0.2, parent_auroc=[read, read, chance, chance])
    summary = " ".join(summary_text(ReportInputs(findings)).split())
    assert (
        "mid → sft: layer 0: undefined; layer 1: no meaningful change; layers 2–3: not encoded "
        "in mid (its probe's held-out AUROC interval does not lie above 0.5), so no change can "
        "be judged" in summary
    )
    assert "largest drop at layer 2" not in summary and "largest rise at layer 2" not in summary
    assert "a change is judged only at layers where the parent encodes the concept" in summary
    page = render_html(ReportInputs(findings), tmp_path / "report.html").read_text()
    assert "A&#39;s AUROC" in page or "A's AUROC" in page
    assert "0.55 [0.44, 0.66]" in page and "not encoded in the parent" in page
    nowhere = _findings(keep=0.2, parent_auroc=[chance] * LAYERS)
    words = " ".join(summary_text(ReportInputs(nowhere)).split())
    assert "No largest change is named: mid encodes the concept at no defined layer" in words
    assert "relative weakening averaged over the judged layer 1:" in summary
    assert "c − g (mid→sft): no layer where both comparisons could be judged" in words


def test_domain_concentrated_is_not_said_when_the_interval_covers_zero():
    findings = _findings(keep=1.0)
    summary = summary_text(ReportInputs(findings))
    assert "domain-concentrated" not in summary and "covers 0" in summary


def test_domain_concentrated_needs_a_weakening_of_the_first_concept_itself():
    """A positive index also comes from a smaller rise of c than of g; then c did not weaken."""
    findings = _findings(keep=0.2)
    assert "domain-concentrated: c weakened more than g" in summary_text(ReportInputs(findings))
    cmp = findings.concepts["c"].comparisons["mid→sft"]
    unfound = dataclasses.replace(
        cmp, encoded=dataclasses.replace(cmp.encoded, drop_found=[False] * LAYERS)
    )
    concept = dataclasses.replace(findings.concepts["c"], comparisons={"mid→sft": unfound})
    words = " ".join(
        summary_text(ReportInputs(dataclasses.replace(findings, concepts={"c": concept}))).split()
    )
    assert "domain-concentrated:" not in words
    assert "c itself shows no significant weakening: not domain-concentrated" in words


def _dose(alpha: float, change: Interval) -> DosePoint:
    score = Interval(0.6, 0.5, 0.7)
    return DosePoint(alpha, score, score, change, Interval(2.0, 1.9, 2.1), [0.1, 0.2])


def test_a_causal_result_against_the_claimed_direction_is_flagged(tmp_path):
    findings = _findings(keep=0.2)
    zero = Interval(0.0, 0.0, 0.0)
    causal = CausalRecord(
        stage="sft",
        parent="mid",
        dataset="c",
        add_layer=2,
        ablate_layers=[2],
        scale=1.5,
        ci=0.9,
        n_boot=100,
        n_items=40,
        n_help_items=10,
        points=[_dose(-1.0, zero), _dose(0.0, zero), _dose(1.0, zero)],
        ablation=_dose(float("nan"), Interval(0.11, 0.04, 0.19)),
        margin_slope=Interval(-0.05, -0.08, -0.02),
        compassion_slope=Interval(0.0, -0.01, 0.01),
    )
    summary = " ".join(summary_text(ReportInputs(findings, causal=causal)).split())
    assert "Contradiction: ablating mid's direction in sft at layers [2] raised" in summary
    assert "Contradiction: adding mid's direction to sft lowered" in summary
    page = render_html(ReportInputs(findings, causal=causal), tmp_path / "report.html").read_text()
    assert "Contradiction" in page and "Causal dose-response" in page
    fine = CausalRecord(**{**vars(causal), "ablation": _dose(float("nan"), zero)})
    fine = CausalRecord(**{**vars(fine), "margin_slope": Interval(0.05, 0.02, 0.08)})
    assert "Contradiction" not in summary_text(ReportInputs(findings, causal=fine))
