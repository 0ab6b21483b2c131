"""Behaviour scores: margins, shares, paired changes, the random-direction null and the typed
record."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.analysis.texts import CONTS, PROMPTS
from valuetrace.analysis.behaviour import (
    BehaviourResult,
    ScoringSet,
    behaviour_change,
    behaviour_scores,
    greedy_answers,
    mean_score,
    random_direction_band,
    replicate_drift,
)
from valuetrace.analysis.logprob import continuation_logprob
from valuetrace.analysis.report_words import behaviour_verdict
from valuetrace.errors import CacheError, DataError, MissingStepError
from valuetrace.prompts import format_prompt
from valuetrace.records import record_to_dict
from valuetrace.stats import Interval


def _scores(model, tokenizer, dismissive, stage="s", n_boot=200):
    return behaviour_scores(
        model,
        tokenizer,
        ScoringSet(PROMPTS, CONTS, dismissive, PROMPTS[:2], CONTS[:2]),
        stage=stage,
        eval_source="items.jsonl",
        eval_ids=[f"i{k}" for k in range(len(PROMPTS))],
        generation_prompts=[("everyday", "the cat"), ("animal_welfare", "a dog")],
        max_new_tokens=5,
        n_boot=n_boot,
        ci=0.9,
    )


def test_scores_are_the_share_and_mean_of_per_item_margins(tiny_model, tiny_tokenizer, tmp_path):
    result = _scores(tiny_model, tiny_tokenizer, CONTS[::-1])
    lp_c = continuation_logprob(tiny_model, tiny_tokenizer, PROMPTS, CONTS)
    lp_d = continuation_logprob(tiny_model, tiny_tokenizer, PROMPTS, CONTS[::-1])
    np.testing.assert_allclose(result.preference, lp_c - lp_d, atol=1e-6)
    assert result.compassion.value == pytest.approx(np.mean(lp_c - lp_d > 0))
    assert result.margin.value == pytest.approx(np.mean(lp_c - lp_d), abs=1e-6)
    assert result.margin.lo <= result.margin.value <= result.margin.hi
    help_lp = continuation_logprob(tiny_model, tiny_tokenizer, PROMPTS[:2], CONTS[:2])
    np.testing.assert_allclose(result.help_losses, -help_lp, atol=1e-6)
    assert [g.kind for g in result.generations] == ["everyday", "animal_welfare"]
    assert [g.prompt for g in result.generations] == ["the cat", "a dog"]
    assert result.ci == 0.9
    path = result.save(tmp_path / "behaviour" / "s.json")
    assert json.loads(path.read_text())["schema"] == "valuetrace.behaviour"
    assert BehaviourResult.load(path) == result
    with pytest.raises(MissingStepError, match="valuetrace evaluate"):
        BehaviourResult.load(tmp_path / "none.json")
    path.write_text(json.dumps({**record_to_dict(result), "schema": "other"}))
    with pytest.raises(CacheError, match="'other' record"):
        BehaviourResult.load(path)


def test_greedy_answers_continue_each_prompt_with_its_argmax(tiny_model, tiny_tokenizer):
    prompts = ["The cat rested near the", "The dog"]
    answers = greedy_answers(tiny_model, tiny_tokenizer, prompts, max_new_tokens=4)
    ids = torch.tensor(
        [tiny_tokenizer(format_prompt(prompts[1], tiny_tokenizer, chat=False)).input_ids]
    )
    with torch.no_grad():
        for _ in range(4):
            ids = torch.cat([ids, tiny_model(ids).logits[:, -1:].argmax(-1)], dim=1)
    want = tiny_tokenizer.decode(ids[0, -4:], skip_special_tokens=True).strip()
    assert answers[1] == want  # the left-padded batch row equals the unpadded greedy loop


def test_paired_change_sees_a_shift_the_shares_cannot(tiny_model, tiny_tokenizer):
    a = _scores(tiny_model, tiny_tokenizer, CONTS[::-1], stage="a")
    margins = np.asarray(a.preference)
    shifted = margins + 0.5 * np.abs(margins)  # every item moves up, none changes sign
    b = BehaviourResult(**{**a.__dict__, "stage": "b", "preference": shifted.tolist()})
    change = behaviour_change(a, b, n_boot=300, seed=0, ci=0.95)
    assert change.compassion.value == 0 and change.compassion.lo == change.compassion.hi == 0
    assert change.margin.lo > 0  # paired: every item moved up
    assert change.helpfulness_loss.value == 0 and (change.a, change.b) == ("a", "b")
    other = BehaviourResult(**{**b.__dict__, "item_ids": [*b.item_ids[:-1], "zz"]})
    with pytest.raises(DataError, match="different eval items"):
        behaviour_change(a, other, n_boot=10, seed=0, ci=0.95)


def test_a_change_within_the_seed_replicate_drift_is_no_meaningful_change(
    tiny_model, tiny_tokenizer
):
    a = _scores(tiny_model, tiny_tokenizer, CONTS[::-1], stage="a")
    margins = np.asarray(a.preference)
    b = BehaviourResult(**{**a.__dict__, "stage": "b", "preference": (margins - 0.2).tolist()})
    near = BehaviourResult(**{**b.__dict__, "stage": "b~seed1", "margin": Interval(9.0, 8.0, 10.0)})
    far = replicate_drift(b, [near])
    assert far.replicates == ["b~seed1"] and far.margin == pytest.approx(9.0 - b.margin.value)
    assert far.compassion == 0 and far.helpfulness_loss == 0
    within = behaviour_change(a, b, n_boot=300, seed=0, ci=0.95, floor=far)
    assert not within.margin.covers_zero() and not within.margin_moved()
    assert "within the seed-replicate drift of b" in behaviour_verdict(within)
    tight = replicate_drift(b, [BehaviourResult(**{**b.__dict__, "stage": "b~seed1"})])
    beyond = behaviour_change(a, b, n_boot=300, seed=0, ci=0.95, floor=tight)
    assert beyond.margin_moved() and "beyond the seed-replicate drift" in behaviour_verdict(beyond)
    bare = behaviour_change(a, b, n_boot=300, seed=0, ci=0.95)
    assert bare.margin_moved() and "no noise floor" in behaviour_verdict(bare)
    with pytest.raises(DataError, match="no seed replicate"):
        replicate_drift(b, [])
    other = BehaviourResult(**{**near.__dict__, "item_ids": [*b.item_ids[:-1], "zz"]})
    with pytest.raises(DataError, match="different eval items"):
        replicate_drift(b, [other])


def test_mean_score_brackets_the_mean_and_refuses_no_items():
    values = np.random.default_rng(0).normal(size=400)
    score = mean_score(values, 500, seed=0, ci=0.95)
    assert score.lo < score.value < score.hi and score.hi - score.lo < 0.3
    narrower = mean_score(values, 500, seed=0, ci=0.5)
    assert score.lo < narrower.lo < narrower.hi < score.hi
    with pytest.raises(DataError, match="eval set is empty"):
        mean_score(np.array([]), 10, seed=0, ci=0.95)


def test_random_direction_band_shrinks_with_items_and_a_planted_direction_beats_it():
    rng = np.random.default_rng(0)
    bands = {}
    for n in (12, 400):  # preference unrelated to the activations: the band is chance |r|
        gaps = rng.normal(size=(n, 64))
        bands[n] = random_direction_band(
            gaps, rng.normal(size=n), n_directions=500, seed=1, ci=0.95
        )
    assert bands[12] > 0.4 and 0.05 < bands[400] < 0.2  # about 2 / sqrt(n)
    gaps = rng.normal(size=(100, 64))
    preference = gaps[:, 0] + 0.1 * rng.normal(size=100)
    band = random_direction_band(gaps, preference, n_directions=500, seed=1, ci=0.95)
    assert np.corrcoef(gaps[:, 0], preference)[0, 1] > 0.9 > band
    with pytest.raises(DataError, match="3 items have activations but 2"):
        random_direction_band(np.ones((3, 4)), [1.0, 2.0], n_directions=5, seed=0, ci=0.95)


def test_a_scoring_set_refuses_lists_of_other_lengths():
    with pytest.raises(DataError, match="equal length"):
        ScoringSet(PROMPTS, CONTS, CONTS[:-1])
    with pytest.raises(DataError, match="one response per prompt"):
        ScoringSet(PROMPTS, CONTS, CONTS, PROMPTS[:2], CONTS[:1])
