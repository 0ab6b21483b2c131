"""ANIMA over a run (what the evaluate step calls) on a two-stage run of tiny checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tests.analysis.anima.conftest import DIMENSIONS, QUESTIONS, write_jsonl
from valuetrace.activations.store import read_activations
from valuetrace.analysis.anima.generate import AnswerSet
from valuetrace.analysis.anima.pipeline import StageLoader
from valuetrace.analysis.anima.pipeline import run_anima as run_stages
from valuetrace.analysis.anima.scores import AnimaScores
from valuetrace.config import RunConfig, config_from_dict
from valuetrace.errors import CheckpointError, ConfigError, DataError
from valuetrace.models import load_model, load_tokenizer
from valuetrace.records import record_to_dict
from valuetrace.training.lineage import Lineage, StageRecord

LOAD = StageLoader(lambda r: load_model(r.checkpoint), lambda r: load_tokenizer(r.checkpoint))


def run_anima(config: RunConfig, *, progress: bool = False) -> AnimaScores:
    """ANIMA over every stage of the run's lineage, as the evaluate step runs it."""
    return run_stages(config, Lineage.load(config.paths.lineage).records, LOAD, progress=progress)


def tiny_run(
    tmp_path: Path, checkpoint: Path, extract: dict | None = None, **anima: object
) -> RunConfig:
    folder = tmp_path / "anima_data"
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "dimensions.jsonl", DIMENSIONS)
    write_jsonl(folder / "questions.jsonl", QUESTIONS)
    config = config_from_dict(
        {
            "run_dir": str(tmp_path / "run"),
            "model": {"name_or_path": str(checkpoint)},
            "stages": [
                {"name": "base"},
                {"name": "sft", "parent": "base", "checkpoint": str(checkpoint)},
            ],
            "probes": [{"name": "p", "source": "unused.jsonl"}],
            "behaviour": {"compassion_eval": "unused.jsonl", "helpfulness_eval": {"source": "x"}},
            "analysis": {"compare": [["base", "sft"]]},
            "extract": extract or {},
            "anima": {
                "enabled": True,
                "source": str(folder),
                "max_new_tokens": 3,
                "judge": str(checkpoint),
                "n_bootstrap": 50,
                **anima,
            },
        }
    )
    Lineage(
        [StageRecord("base", str(checkpoint)), StageRecord("sft", str(checkpoint), "base")]
    ).save(config.paths.lineage)
    return config


def test_answers_judged_scored_and_cached(tmp_path: Path, tiny_checkpoint: Path) -> None:
    config = tiny_run(tmp_path, tiny_checkpoint)
    scores = run_anima(config, progress=False)
    assert set(scores.stages) == {"base", "sft"}
    assert scores.stages["base"].question_ids == ["0", "1"]
    # the same weights answer the same way: no change, and it is paired per question
    (change,) = scores.changes
    assert change.overall.value == pytest.approx(0.0) and not change.moved()
    assert scores.agreement is None
    # the tiny model's answers are empty: nothing to pool, so no hidden states are cached
    assert not config.paths.anima_activations("base").exists()
    # the record round-trips (compared as written: an undefined interval is NaN, NaN != NaN)
    assert record_to_dict(AnimaScores.load(config.paths.anima_scores)) == record_to_dict(scores)
    timings = json.loads(config.paths.timings.read_text())["steps"]
    assert {"anima_generate", "anima_judge"} <= timings.keys()
    answers_path = config.paths.anima_answers("base")
    before = answers_path.stat().st_mtime_ns
    run_anima(config, progress=False)  # everything cached: nothing regenerated
    assert answers_path.stat().st_mtime_ns == before
    changed = tiny_run(tmp_path, tiny_checkpoint, max_new_tokens=2)
    run_anima(changed, progress=False)
    assert AnswerSet.load(answers_path).settings["max_new_tokens"] == "2"


def with_answers(config: RunConfig, stage: str, texts: list[str]) -> list[str]:
    """Replace a stage's cached answers by `texts` (same settings, so they are reused); their
    ids in the hidden-state cache (empty texts left out)."""
    path = config.paths.anima_answers(stage)
    old = AnswerSet.load(path)
    new = [dataclasses.replace(a, answer=t) for a, t in zip(old.answers, texts, strict=True)]
    AnswerSet(stage, old.settings, new).save(path)
    return [f"{a.question_id}#{a.sample}" for a in new if a.answer.strip()]


def test_answers_hidden_states_cached_and_follow_the_answers(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    # questions longer than extract.max_length: answers are read whole, never cut or refused
    config = tiny_run(tmp_path, tiny_checkpoint, extract={"max_length": 16})
    run_anima(config)
    ids = with_answers(config, "base", ["Never boil a crab alive.", "Use a humane trap."])
    with_answers(config, "sft", ["Boil the crab.", ""])
    run_anima(config)
    cache = config.paths.anima_activations("base")
    hidden = read_activations(cache)
    assert hidden.ids == ids and hidden.acts.shape == (3, 2, 32)  # embeddings + 2 blocks
    assert hidden.attrs["dataset"] == "anima_answers" and hidden.attrs["stage"] == "base"
    assert read_activations(config.paths.anima_activations("sft")).ids == ["0#0"]
    before = cache.stat().st_mtime_ns
    run_anima(config)  # the same answers: the cache is reused
    assert cache.stat().st_mtime_ns == before
    with_answers(config, "base", ["Let the crab go.", "Use a humane trap."])
    run_anima(config)  # other answers: the hidden states of the old ones are replaced
    assert not np.allclose(read_activations(cache).acts[:, 0], hidden.acts[:, 0])
    np.testing.assert_allclose(read_activations(cache).acts[:, 1], hidden.acts[:, 1], atol=1e-6)
    with_answers(config, "base", ["", ""])
    run_anima(config)  # no answer left to pool: no stale hidden states either
    assert not cache.exists()


def test_reference_agreement_and_bad_inputs_fail_before_generation(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    rows = [
        {"question_id": 0, "answer": "Never boil them.", "score": 1.0},
        {"question_id": 0, "answer": "Boil them.", "score": 0.0},
        {"question": "How do I get rid of mice?", "answer": "Poison.", "score": 0.2},
        {"question_id": 1, "answer": "A humane trap.", "score": 0.9},
    ]
    reference = write_jsonl(tmp_path / "ref.jsonl", rows)
    scores = run_anima(tiny_run(tmp_path, tiny_checkpoint, reference=str(reference)))
    assert scores.agreement is not None and scores.agreement.n == 4
    assert -1 <= scores.agreement.spearman.value <= 1

    bad = write_jsonl(
        tmp_path / "bad.jsonl", [*rows, {"question_id": 7, "answer": "x", "score": 1}]
    )
    config = tiny_run(tmp_path / "b", tiny_checkpoint, reference=str(bad))
    with pytest.raises(DataError, match="matches none of the ANIMA questions"):
        run_anima(config, progress=False)
    assert not config.paths.anima("base").exists()  # refused before any answer
    config = tiny_run(tmp_path / "c", tiny_checkpoint, inspect_grader="anthropic/claude-x")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        run_anima(config, progress=False)
    assert not config.paths.anima("base").exists()
    config = tiny_run(tmp_path / "d", tiny_checkpoint, judge=str(tmp_path / "no_judge"))
    with pytest.raises(CheckpointError):
        run_anima(config, progress=False)
    assert not config.paths.anima("base").exists()
