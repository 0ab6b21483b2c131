"""Answers on the compassion direction against their judged score: the correlation, its
interval, the random-direction null, and the run-level choice of layer and direction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.analysis.anima.conftest import DIMENSIONS, QUESTIONS, write_jsonl
from tests.analysis.test_report import LAYERS, _findings
from valuetrace.activations.store import Examples
from valuetrace.activations.writer import CacheWriter
from valuetrace.analysis.anima.generate import Answer, AnswerSet
from valuetrace.analysis.anima.judge import JudgedAnswer, JudgedAnswers
from valuetrace.analysis.anima.projection import (
    AnimaProjection,
    matched,
    project_answers,
    project_run_answers,
)
from valuetrace.analysis.study import focus_index
from valuetrace.config import config_from_dict
from valuetrace.errors import DataError, MissingStepError

BOOT = {"n_boot": 300, "seed": 0, "ci": 0.95, "n_null": 300}


def test_a_direction_that_carries_the_grade_beats_the_random_null() -> None:
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(80, 16))
    direction = np.zeros(16)
    direction[0] = 3.0  # not unit: the projection is on the unit direction
    scores = 1 / (1 + np.exp(-hidden[:, 0])) + 0.05 * rng.normal(size=80)
    found = project_answers("sft", "mid", hidden, scores, direction, **BOOT)
    assert found.r.value == pytest.approx(np.corrcoef(hidden[:, 0], scores)[0, 1])
    assert found.r.lo > 0.8 and found.r.lo < found.r.value < found.r.hi and found.beats_null
    assert found.n == 80 and found.direction_of == "mid"
    assert 0 < found.null_abs_r < 0.5  # random directions of 16 reach far less
    flipped = project_answers("sft", "mid", hidden, scores, -direction, **BOOT)
    assert flipped.r.value == pytest.approx(-found.r.value) and flipped.beats_null
    unrelated = project_answers("sft", "mid", hidden, rng.uniform(size=80), direction, **BOOT)
    assert unrelated.r.covers_zero() and not unrelated.beats_null


def test_too_few_answers_or_no_direction_is_undefined_and_shapes_must_agree() -> None:
    hidden = np.eye(4)
    few = project_answers("s", "s", hidden[:2], np.array([0.1, 0.9]), np.ones(4), **BOOT)
    assert np.isnan(few.r.value) and not few.beats_null
    flat = project_answers("s", "s", hidden, np.arange(4.0), np.zeros(4), **BOOT)
    assert np.isnan(flat.r.value)
    with pytest.raises(DataError, match="rerun `valuetrace evaluate`"):
        project_answers("s", "s", hidden, np.arange(3.0), np.ones(4), **BOOT)
    with pytest.raises(DataError, match="width"):
        project_answers("s", "s", hidden, np.arange(4.0), np.ones(5), **BOOT)


def test_matched_keeps_answers_with_a_grade_in_cache_order() -> None:
    hidden = np.arange(6.0).reshape(3, 2)
    kept, scores = matched(["a", "b", "c"], hidden, {"c": 0.3, "a": 0.1, "z": 1.0})
    np.testing.assert_array_equal(kept, hidden[[0, 2]])
    np.testing.assert_array_equal(scores, [0.1, 0.3])
    with pytest.raises(DataError, match="no ANIMA answer has both"):
        matched(["a"], hidden[:1], {"z": 1.0})


def test_a_run_projects_each_stage_on_its_parents_direction_at_the_localised_layer(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "anima_data"
    folder.mkdir()
    write_jsonl(folder / "dimensions.jsonl", DIMENSIONS)
    write_jsonl(folder / "questions.jsonl", QUESTIONS)
    config = config_from_dict(
        {
            "run_dir": str(tmp_path / "run"),
            "model": {"name_or_path": "unused"},
            "stages": [{"name": "mid"}, {"name": "sft", "parent": "mid", "checkpoint": "x"}],
            "probes": [{"name": "c", "source": "unused.jsonl"}],
            "behaviour": {"compassion_eval": "unused.jsonl", "helpfulness_eval": {"source": "x"}},
            "analysis": {"compare": [["mid", "sft"]]},
            "anima": {"enabled": True, "source": str(folder), "n_bootstrap": 200},
        }
    )
    findings = _findings(keep=0.2)  # weakening at layers 2-3
    focus = focus_index(findings.primary)
    d = 8
    directions = {"mid": np.zeros((LAYERS, d)), "sft": np.zeros((LAYERS, d))}
    directions["mid"][:, 0] = 1.0  # the parent's direction
    directions["sft"][:, 1] = 1.0  # sft's own, which must not be used for sft
    rng = np.random.default_rng(1)
    ids = [(q, s) for s in range(15) for q in ("0", "1")]  # the two English questions
    for stage in ("mid", "sft"):
        hidden = rng.normal(size=(LAYERS, len(ids), d)).astype(np.float32)
        grade = 1 / (1 + np.exp(-hidden[focus, :, 0]))  # carried by mid's direction at focus
        names = [f"{q}#{s}" for q, s in ids]
        writer = CacheWriter.open(
            config.paths.anima_activations(stage),
            provenance={"dtype": "float32", "dataset": "anima_answers"},
            layers=list(range(LAYERS)),
            d_model=d,
            examples=Examples(names, None, [q for q, _ in ids]),
        )
        writer.write(0, hidden)
        writer.finish()
        tags = {"0": ["Moral Consideration", "Harm Minimization"], "1": ["Moral Consideration"]}
        grades = [
            JudgedAnswer(q, s, dim, float(g))
            for (q, s), g in zip(ids, grade, strict=True)
            for dim in tags[q]
        ]
        JudgedAnswers(stage, {}, grades).save(config.paths.anima_judged(stage))
        answers = [Answer(q, s, "an answer") for q, s in ids]
        AnswerSet(stage, {}, answers).save(config.paths.anima_answers(stage))
    found = project_run_answers(config, findings, directions, {"mid": None, "sft": "mid"})
    assert found.layer == findings.concepts["c"].layers[focus] and found.dataset == "c"
    assert [p.direction_of for p in found.stages.values()] == ["mid", "mid"]
    for p in found.stages.values():
        assert p.n == len(ids) and p.r.value > 0.9 and p.beats_null
    found.save(tmp_path / "p.json")
    assert AnimaProjection.load(tmp_path / "p.json") == found
    config.paths.anima_activations("sft").unlink()
    with pytest.raises(MissingStepError, match="rerun `valuetrace evaluate`"):
        project_run_answers(config, findings, directions, {"mid": None, "sft": "mid"})
    # a stage whose answers are all empty has nothing to project: undefined, not an error
    AnswerSet("sft", {}, [Answer("0", 0, " ")]).save(config.paths.anima_answers("sft"))
    empty = project_run_answers(config, findings, directions, {"mid": None, "sft": "mid"})
    assert empty.stages["sft"].n == 0 and np.isnan(empty.stages["sft"].r.value)
