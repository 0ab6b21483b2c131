"""GRPO stage: a real TRL GRPOTrainer run on the tiny model with a pluggable reward."""

from __future__ import annotations

import copy

from tests.training.helpers import tiny_stage
from valuetrace.config import GrpoConfig
from valuetrace.models import load_model
from valuetrace.training.grpo import KeywordReward, train_grpo_stage
from valuetrace.training.stages import StageRun


def count_e(completions: list[str], **_: object) -> list[float]:
    """A reward that varies even for a random model's text, so advantages are non-zero."""
    return [float(c.count("e")) for c in completions]


def test_keyword_reward_counts_distinct_words_once():
    reward = KeywordReward(("care", "sorry"))
    texts = ["I care, I care, I CARE", "Sorry; take care.", "careless", ""]
    assert reward(texts) == [1.0, 2.0, 0.0, 0.0]
    chat = [[{"role": "assistant", "content": "so sorry"}]]
    assert reward(chat, prompts=["x"]) == [1.0]


def test_grpo_stage_trains_saves_and_changes_weights(tmp_path, tiny_model, tiny_tokenizer):
    stage = tiny_stage(
        format="grpo",
        max_steps=2,
        learning_rate=1e-2,
        batch_size=4,
        grpo=GrpoConfig(num_generations=4, max_completion_length=8),
    )
    prompts = ["Where did the cat rest?", "Who helped the dog?"]
    out = tmp_path / "grpo"
    result = train_grpo_stage(
        copy.deepcopy(tiny_model).train(),
        tiny_tokenizer,
        prompts,
        count_e,
        stage,
        StageRun(seed=0, logging_steps=1),
        out,
        use_cpu=True,
        progress=False,
    )
    assert result.steps == 2 and len(result.losses) == 2 and result.tokens_seen > 0
    assert not (tmp_path / ".grpo.trainer").exists()
    trained = load_model(str(out)).state_dict()
    moved = max((trained[k] - v).abs().max().item() for k, v in tiny_model.state_dict().items())
    assert moved > 1e-4
