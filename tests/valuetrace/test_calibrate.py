"""`valuetrace calibrate` end to end on a tiny local checkpoint with tiny doses: the known-answer
arms trained with save_at, extracted, scored, probed, and the table written as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from valuetrace.analysis.findings import Findings
from valuetrace.analysis.neutral_floor import value_specific
from valuetrace.analysis.trajectory import TrajectoryRecord
from valuetrace.analysis.verdict import Verdict
from valuetrace.cli import main
from valuetrace.errors import ConfigError
from valuetrace.records import load_record
from valuetrace.steps.calibrate import calibration_config, known_answer_config_path

pytestmark = pytest.mark.slow
PAIRS = ("base→counter", "base→neutral")


def _tiny_known_answer(tmp_path: Path, shared_data: Path) -> Path:
    data = yaml.safe_load(known_answer_config_path().read_text())
    data["real_data_dir"] = str(shared_data)
    data["real_data_sizes"] = {
        "probe_pairs": 24,
        "control_pairs": 24,
        "behaviour_pairs": 12,
        "helpfulness_eval": 8,
    }
    data["known_answer_documents"] = 24
    # The random tiny checkpoint answers ANIMA questions with empty text: no persona source here.
    data["probes"] = [p for p in data["probes"] if p["name"] != "anima_persona"]
    data["concept_sources"].update(
        sources=["compassion", "minimal_pairs", "empathy"], empathy_rows=24, anima_questions=0
    )
    data["model"]["chat_template"] = False
    for stage in data["stages"][1:]:  # no replicates here: 2 runs, 5 checkpoints
        stage.update(
            max_steps=4, save_at=[0.5], batch_size=4, grad_accum=1, max_length=32, replicates=0
        )
    data["extract"].update(max_length=128, batch_size=16)
    data["probing"].update(n_folds=3, n_bootstrap=100)
    data["behaviour"].update(n_bootstrap=100)
    data["behaviour"]["helpfulness_eval"]["limit"] = 8
    path = tmp_path / "known.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_calibrate_runs_the_arms_and_writes_the_table(
    tmp_path, shared_data, tiny_checkpoint, capsys
):
    config = _tiny_known_answer(tmp_path, shared_data)
    out = tmp_path / "out.json"
    run = tmp_path / "run"
    calibrate = ["calibrate", "--config", str(config), "--model", str(tiny_checkpoint)]
    code = main([*calibrate, "--run-dir", str(run), "--json", str(out), "--no-progress"])
    assert code == 0
    rows = json.loads(out.read_text())
    assert [(r["arm"], r["step"]) for r in rows] == [
        ("counter", 2),
        ("neutral", 2),
        ("counter", 4),
        ("neutral", 4),
    ]
    for row in rows:
        assert isinstance(row["behaviour_changed"], bool)
        assert row["first_layer"] is None or row["first_layer"] in (0, 1, 2)
        assert Verdict(row["verdict"]).fired == (row["first_layer"] is not None)
        assert isinstance(row["value_specific"], bool)
        assert row["false_positives"] >= 0
        judged = 3 - len(row["not_encoded"])  # layers the parent does not encode are not tests
        assert row["false_positives_allowed"] == pytest.approx(0.05 * 3 * judged)
    shown = capsys.readouterr().out
    print(shown)
    assert "calibration of" in shown and (
        "Known answer on probe set 'compassion' (concept compassion): the counter-value arm "
        "'counter'" in shown
    )
    assert "The neutral arm 'neutral' (same dose" in shown and "expected by chance" in shown
    assert (run / "checkpoints" / "counter-step2" / "config.json").is_file()
    assert (run / "checkpoints" / "neutral-step2" / "config.json").is_file()
    assert (run / "analysis" / "figures" / "compassion_counter_trajectory.png").is_file()
    texts = (run / "data" / "counter_docs.jsonl").read_text()
    held = (run / "data" / "probe_pairs.jsonl").read_text()
    assert texts and not any(json.loads(line)["response"] in texts for line in held.splitlines())
    # calibrate extracts and probes only the primary set, the one its table reads
    extracted = sorted(p.name for p in (run / "activations").iterdir())
    assert extracted == ["behaviour_items", "compassion"]
    assert sorted(p.name for p in (run / "probes").iterdir()) == ["compassion"]
    # the study on the same run: every pair judged against the neutral arm, and the report
    # renders the neutral floor, the trajectories and their heatmaps
    for step in ("extract", "probe", "analyze"):  # the other sets, then analyze + trajectory
        assert main([step, "--run-dir", str(run), "--no-progress"]) == 0
    every = {
        (t.dataset, t.stage)
        for t in load_record(TrajectoryRecord, run / "analysis" / "trajectories.json").trajectories
    }
    sets = ("compassion", "ethics_cm", "minimal_pairs", "empathy")
    assert {d for d, _ in every} == set(sets)
    full = load_record(TrajectoryRecord, run / "analysis" / "trajectories.json")

    def checked(record: TrajectoryRecord) -> dict[tuple[str, str], list[str]]:
        return {(t.dataset, t.stage): t.drift_controls for t in record.trajectories}

    # only the primary set is checked for global drift, against the control concept alone
    # (minimal_pairs and empathy are sources of the primary concept, not controls)
    assert checked(full) == {(d, s): ["ethics_cm"] if d == "compassion" else [] for d, s in every}
    assert {(g.dataset, g.step) for g in full.neutral_gaps} == {
        (d, step) for d in sets for step in (2, 4)
    }
    # calibrate again on the full run folder: the other sets' trajectories are kept, and the
    # primary's are checked against the control concept's caches, as `run` checked them
    assert main([*calibrate, "--run-dir", str(run), "--no-progress"]) == 0
    again = load_record(TrajectoryRecord, run / "analysis" / "trajectories.json")
    assert {(t.dataset, t.stage) for t in again.trajectories} == every
    assert checked(again) == checked(full)
    assert repr(again.neutral_gaps) == repr(full.neutral_gaps)  # NaN where a layer is unjudged
    assert main(["report", "--run-dir", str(run), "--no-progress"]) == 0
    findings = load_record(Findings, run / "analysis" / "findings.json")
    floors = {(f.dataset, f.pair): f for f in findings.neutral_floor}
    assert set(floors) == {(p, k) for p in sets for k in PAIRS}
    assert (run / "analysis" / "concept_sources.json").is_file()  # the multi-source concept
    counter = floors["compassion", "base→counter"]
    cmp = findings.concepts["compassion"].comparisons["base→counter"]
    neutral = findings.concepts["compassion"].comparisons["base→neutral"]
    assert counter.comparable and counter.value_specific == list(value_specific(cmp, neutral))
    assert sorted(counter.value_specific + counter.within_floor) == counter.fired
    assert not floors["compassion", "base→neutral"].comparable
    summary = (run / "summary.txt").read_text()
    # the known answer opens the summary, before the headline pair
    opening = summary.split("Compassion (compassion)")[0]
    assert "Known answer on probe set 'compassion' (concept compassion): the counter" in opening
    assert "The neutral arm 'neutral'" in opening
    assert "Neutral-arm floor (stage 'neutral', trained from base" in summary
    assert (
        "compassion base→counter: " in summary
        and "Trajectory compassion: base → counter" in summary
    )
    page = (run / "report.html").read_text()
    assert "Trajectories: where and when" in page and "neutral-arm floor" in page
    assert page.count("relative weakening per layer and step") >= 4  # 2 arms x 2 probe sets
    # the primary's trajectories were checked for global drift; the other sets' were not
    assert "global drift layers" in page and "not checked" in page


def test_calibrate_refuses_a_config_without_arms(tmp_path):
    data = yaml.safe_load(known_answer_config_path().read_text())
    del data["analysis"]["neutral_arm"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="neutral_arm"):
        calibration_config(path)


def test_calibrate_keeps_the_run_folder_for_the_configs_own_model():
    """`--model` naming the config's model reuses the stages `valuetrace run` cached; another
    model gets its own folder."""
    own = calibration_config(model="smollm2-135m-instruct")
    assert own.run_dir == calibration_config().run_dir
    other = calibration_config(model="/models/My Model")
    assert other.run_dir != own.run_dir and str(other.run_dir).endswith("-My_Model")
