"""ANIMA through the CLI steps on two tiny checkpoints: evaluate answers, grades and hidden
states; analyze projects the answers on the parent's direction; report and summary show it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.analysis.anima.conftest import DIMENSIONS, QUESTIONS, write_jsonl
from tests.analysis.anima.test_pipeline import with_answers
from tests.valuetrace.test_byo_checkpoints import _config, _long_copy, _perturbed_copy
from valuetrace.analysis.anima.generate import AnswerSet
from valuetrace.analysis.anima.projection import AnimaProjection
from valuetrace.cli import main
from valuetrace.config import load_config

pytestmark = pytest.mark.slow


def test_anima_runs_through_evaluate_analyze_and_report(tmp_path: Path, tiny_checkpoint) -> None:
    base = _long_copy(tiny_checkpoint, tmp_path / "base")
    tuned = _perturbed_copy(base, tmp_path / "tuned")
    path = _config(tmp_path, base, tuned)
    folder = tmp_path / "anima_data"
    folder.mkdir()
    write_jsonl(folder / "dimensions.jsonl", DIMENSIONS)
    write_jsonl(folder / "questions.jsonl", QUESTIONS)
    data = yaml.safe_load(path.read_text())
    data["anima"] = {
        "enabled": True,
        "source": str(folder),
        "languages": None,  # all three questions
        "max_new_tokens": 3,
        "judge": str(base),
        "n_bootstrap": 100,
    }
    path.write_text(yaml.safe_dump(data))
    for step in ("train", "extract", "evaluate", "probe", "analyze", "report"):  # no causal
        assert main([step, "--config", str(path), "--no-progress"]) == 0
    config = load_config(path)
    # the tiny models' answers are partly empty: only those with text are projected
    first = AnimaProjection.load(config.paths.anima_projection)
    assert {s: p.n for s, p in first.stages.items()} == {
        s: sum(
            bool(a.answer.strip()) for a in AnswerSet.load(config.paths.anima_answers(s)).answers
        )
        for s in ("base", "tuned")
    }
    # answers with text (the same settings, so reused): hidden states, grades, projection
    texts = ["Never boil a crab alive.", "Use a humane trap.", "Fishing can hurt fish."]
    with_answers(config, "base", texts)
    with_answers(config, "tuned", texts[::-1])
    for step in ("evaluate", "analyze", "report"):
        assert main([step, "--config", str(path), "--no-progress"]) == 0
    found = AnimaProjection.load(config.paths.anima_projection)
    assert found.dataset == "compassion" and found.layer in range(3)
    assert [(p.direction_of, p.n) for p in found.stages.values()] == [("base", 3), ("base", 3)]
    page = config.paths.report.read_text()
    assert "ANIMA: judged compassion per stage" in page and "Projection vs judged score" in page
    assert "Never boil a crab alive." in page  # the example answers, side by side
    summary = config.paths.summary.read_text()
    assert "ANIMA: judged compassion per stage" in summary and "unmeasured" in summary
    assert "Never boil a crab alive." not in summary
    timings = json.loads(config.paths.timings.read_text())["steps"]
    assert {"anima_generate", "anima_judge"} <= timings.keys()
