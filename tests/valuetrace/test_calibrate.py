"""`valuetrace calibrate` end to end on a tiny local checkpoint with tiny doses: the known-answer
arms trained with save_at, extracted, scored, probed, and the table written as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import CORPUS
from valuetrace.cli import main
from valuetrace.errors import ConfigError
from valuetrace.steps.calibrate import calibration_config, known_answer_config_path
from valuetrace.training.scratch import build_scratch_model, train_tokenizer

pytestmark = pytest.mark.slow


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


def test_calibrate_runs_the_arms_and_writes_the_table(tmp_path, shared_data, capsys):
    tokenizer = train_tokenizer(CORPUS, vocab_size=400)
    model = build_scratch_model(
        tokenizer,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        seed=0,
    )
    folder = tmp_path / "tiny-model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = _tiny_known_answer(tmp_path, shared_data)
    out = tmp_path / "out.json"
    code = main(
        [
            "calibrate",
            "--config",
            str(config),
            "--model",
            str(folder),
            "--run-dir",
            str(tmp_path / "run"),
            "--json",
            str(out),
            "--no-progress",
        ]
    )
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
        assert isinstance(row["verdict"], str)
        assert row["false_positives"] >= 0
        assert row["false_positives_allowed"] == pytest.approx(0.05 * 3 * 3)
    shown = capsys.readouterr().out
    print(shown)
    assert "calibration of" in shown and "neutral arm:" in shown
    run = tmp_path / "run"
    assert (run / "checkpoints" / "counter-step2" / "config.json").is_file()
    assert (run / "checkpoints" / "neutral-step2" / "config.json").is_file()
    assert (run / "analysis" / "figures" / "compassion_counter_trajectory.png").is_file()
    texts = (run / "data" / "counter_docs.jsonl").read_text()
    held = (run / "data" / "probe_pairs.jsonl").read_text()
    assert texts and not any(json.loads(line)["response"] in texts for line in held.splitlines())


def test_calibrate_refuses_a_config_without_arms(tmp_path):
    data = yaml.safe_load(known_answer_config_path().read_text())
    del data["analysis"]["neutral_arm"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="neutral_arm"):
        calibration_config(path)
