"""The study's second paradigm: reinforcement learning from a reward with TRL's GRPO.

SFT (training/stages.py) shows the model the response to imitate; GRPO (Group Relative Policy
Optimization) lets the model sample `num_generations` completions per prompt, scores them with a
reward function and raises the likelihood of the completions that beat their group's mean. A
GRPO stage sits in the lineage like any other, so the probes can ask whether a value encoded
after mid-training survives reward-driven training differently from imitation.

The reward is pluggable: any callable `(completions, **kwargs) -> list[float]` (TRL also passes
`prompts`, `completion_ids` and the dataset's extra columns as keyword arguments).
`KeywordReward` is the built-in demo reward. Resuming, saving on the main process and LoRA
merging work as in `train_stage`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import GRPOConfig, GRPOTrainer

from valuetrace.config import GrpoConfig, StageConfig
from valuetrace.errors import DataError
from valuetrace.prompts import format_prompt
from valuetrace.training.lora import peft_config
from valuetrace.training.stages import (
    StageResult,
    StageRun,
    fit_and_save,
    stage_result,
    trainer_arguments,
    work_dir_of,
)

RewardFn = Callable[..., list[float]]

COMPASSION_WORDS: tuple[str, ...] = (
    "sorry",
    "understand",
    "care",
    "gently",
    "kind",
    "comfort",
    "support",
    "feel",
    "safe",
    "suffering",
)


@dataclass(frozen=True)
class KeywordReward:
    """Reward +1 per distinct keyword a completion contains (repeating a word earns nothing)."""

    words: tuple[str, ...] = COMPASSION_WORDS

    def __call__(self, completions: Sequence[Any], **_: Any) -> list[float]:
        """Score plain-text or conversational completions."""
        patterns = [re.compile(rf"\b{re.escape(w)}\b", re.IGNORECASE) for w in self.words]
        texts = [
            c if isinstance(c, str) else " ".join(m["content"] for m in c) for c in completions
        ]
        return [float(sum(bool(p.search(text)) for p in patterns)) for text in texts]


def train_grpo_stage(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    reward_fn: RewardFn,
    stage: StageConfig,
    run: StageRun,
    out_dir: Path,
    *,
    use_cpu: bool,
    progress: bool = True,
) -> StageResult:
    """Train `model` with GRPO on `prompts` scored by `reward_fn`; save it to `out_dir`.

    The schedule and LoRA settings come from `stage` as in `train_stage`; the sampling ones
    (generations per prompt, completion length, temperature, KL weight beta) from `stage.grpo`.
    Method: GRPO (Shao et al. 2024, DeepSeekMath), as implemented by TRL's `GRPOTrainer`.

    Raises:
        ConfigError: a setting of `stage` is out of range.
        DataError: there are no prompts, or a sharded LoRA stage is merged.
    """
    if not prompts:
        raise DataError("a GRPO stage needs at least one prompt; its data has none.")
    grpo = stage.grpo or GrpoConfig()
    work_dir = work_dir_of(out_dir)
    args = GRPOConfig(
        **trainer_arguments(stage, run, work_dir, use_cpu=use_cpu, progress=progress),
        num_generations=grpo.num_generations,
        max_completion_length=grpo.max_completion_length,
        temperature=grpo.temperature,
        beta=grpo.beta,
    )
    texts = [format_prompt(p, tokenizer, chat=run.chat, chat_date=run.chat_date) for p in prompts]
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_fn,
        args=args,
        train_dataset=Dataset.from_list([{"prompt": t} for t in texts]),
        processing_class=tokenizer,
        peft_config=peft_config(stage, model),
    )
    output, seconds, saved = fit_and_save(
        trainer, tokenizer, work_dir, out_dir, stage=stage, progress=progress
    )
    return stage_result(trainer, output, seconds, saved)
