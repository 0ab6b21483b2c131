"""`valuetrace run` on a tiny known-answer config (counter-value and neutral arms): the causal
step writes a transplant for each arm at the counter arm's localised layers, and the summary
and report show them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.valuetrace.test_calibrate import _tiny_known_answer
from valuetrace.analysis.findings import Findings
from valuetrace.analysis.transplant import TransplantRecord
from valuetrace.analysis.transplant_plan import COUNTER, NEUTRAL, PRIMARY, plan_transplants
from valuetrace.cli import main
from valuetrace.records import load_record

pytestmark = pytest.mark.slow


def test_causal_transplants_both_arms_of_a_known_answer_run(
    tmp_path: Path, shared_data: Path, tiny_checkpoint: Path
):
    config = _tiny_known_answer(tmp_path, shared_data)
    data = yaml.safe_load(config.read_text())
    data["model"]["name_or_path"] = str(tiny_checkpoint)
    data["run_dir"] = str(tmp_path / "run")
    data["causal"] = {"max_items": 6, "alphas": [-1.0, 0.0, 1.0], "transplant_controls": 2}
    config.write_text(yaml.safe_dump(data))
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    record = TransplantRecord.load(run / "analysis" / "transplant.json")
    assert record.dataset == "compassion" and not record.skipped
    # base → counter is the primary pair and the counter-value arm: one transplant, two roles
    by_child = {r.child: r for r in record.results}
    assert set(by_child) == {"counter", "neutral"}
    counter, neutral = by_child["counter"], by_child["neutral"]
    assert counter.roles == [PRIMARY, COUNTER] and neutral.roles == [NEUTRAL]
    assert counter.parent == neutral.parent == "base"
    assert counter.layers == neutral.layers and counter.layers
    for result in record.results:
        assert result.n_items == 6 and result.n_controls == 2
        assert (result.recovery is None) == result.change.covers_zero()
    findings = load_record(Findings, run / "analysis" / "findings.json")
    planned, skipped = plan_transplants(findings, None, "neutral")  # arms the config lacks
    assert [p.roles for p in planned] == [[PRIMARY]]
    assert [s.reason for s in skipped] == [
        "no counter-value arm was compared (analysis.counter_arm), so no layers."
    ]
    _, skipped = plan_transplants(findings, "base", None)
    assert "'base' is the second stage of no pair in analysis.compare" in skipped[0].reason
    summary = (run / "summary.txt").read_text()
    assert "Causal transplant" in summary and "Transplant base → neutral (neutral arm)" in summary
    assert "Causal transplant" in (run / "report.html").read_text()
