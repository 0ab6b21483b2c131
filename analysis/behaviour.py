"""Behavioural scores per stage, from the model's own log-probabilities.

Compassion preference: the share of eval items where the model gives the compassionate
continuation a higher mean per-token log-probability than the dismissive one. Helpfulness: the
mean per-token loss on held-out helpfulness responses (lower is better). Both come with
bootstrap CIs over items.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from valuetrace.activations.pooling import collate, encode

from valuetrace.errors import DataError, MissingStepError


@dataclass(frozen=True)
class Score:
    """A point estimate with its bootstrap confidence interval."""

    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class BehaviourResult:
    """One stage's behavioural scores and the per-item numbers behind them."""

    compassion: Score
    helpfulness_loss: Score
    preference: list[float]
    item_ids: list[str]

    def save(self, path: Path) -> None:
        """Write the result as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> BehaviourResult:
        """Read a result written by `save`."""
        if not path.is_file():
            raise MissingStepError(
                f"no behaviour scores at {path}; run `valuetrace evaluate` first."
            )
        raw = json.loads(path.read_text())
        return cls(
            compassion=Score(**raw["compassion"]),
            helpfulness_loss=Score(**raw["helpfulness_loss"]),
            preference=raw["preference"],
            item_ids=raw["item_ids"],
        )


@torch.inference_mode()
def continuation_logprob(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int = 256,
    chat: bool = False,
) -> Float[np.ndarray, " n"]:
    """Mean log-probability per continuation token, given its prompt.

    `prompts` are raw prompts ("" for none); `chat` renders them with the chat template. The ids
    and the continuation's tokens are those SFT trained on (`valuetrace.prompts.token_spans`).
    """
    encoded = encode(tokenizer, prompts, continuations, max_length, chat=chat)
    device = next(model.parameters()).device
    out = np.empty(len(encoded))
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        batch = collate(chunk, tokenizer.pad_token_id, tokenizer.bos_token_id, "response")
        logits = model(
            input_ids=batch.input_ids.to(device),
            attention_mask=batch.attention_mask.to(device),
            position_ids=batch.position_ids.to(device),
        ).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        target = batch.input_ids[:, 1:].to(device)
        token_lp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        mask = (batch.weights[:, 1:] > 0).to(device).float()
        out[start : start + len(chunk)] = ((token_lp * mask).sum(-1) / mask.sum(-1)).cpu().numpy()
    return out


def bootstrap_mean(values: np.ndarray, n_boot: int, seed: int, ci: float = 0.95) -> Score:
    """Mean of `values` with a percentile bootstrap interval over items."""
    if values.size == 0:
        raise DataError("no items to score; the eval set is empty.")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    means = values[idx].mean(axis=1)
    alpha = (1 - ci) / 2
    return Score(
        float(values.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))
    )


def behaviour_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    eval_ids: Sequence[str],
    eval_prompts: Sequence[str],
    compassionate: Sequence[str],
    dismissive: Sequence[str],
    help_prompts: Sequence[str],
    help_responses: Sequence[str],
    chat: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 16,
    max_length: int = 256,
) -> BehaviourResult:
    """Compassion preference and helpfulness loss of one checkpoint.

    `chat` formats prompts with the chat template; `max_length` caps each example's tokens (the
    response's end is cut; see `continuation_logprob`).
    """
    kwargs = {"batch_size": batch_size, "chat": chat, "max_length": max_length}
    lp_c = continuation_logprob(model, tokenizer, eval_prompts, compassionate, **kwargs)
    lp_d = continuation_logprob(model, tokenizer, eval_prompts, dismissive, **kwargs)
    preference = lp_c - lp_d
    help_loss = -continuation_logprob(model, tokenizer, help_prompts, help_responses, **kwargs)
    return BehaviourResult(
        compassion=bootstrap_mean((preference > 0).astype(float), n_boot, seed),
        helpfulness_loss=bootstrap_mean(help_loss, n_boot, seed),
        preference=preference.tolist(),
        item_ids=list(eval_ids),
    )
