"""Tokenise prompt/response examples and pool hidden states over tokens.

Pooling is a weighted sum over positions, so every mode is one operation with its own weights:
`last` (the last real token), `mean` (all real tokens but a leading BOS) and `response` (the
response tokens only). `POOLINGS` maps each mode's name to its weight function; add a mode
with one function here, one line in `POOLINGS` and its name in `valuetrace.config.Pooling`.

Examples are tokenised by `valuetrace.prompts.token_spans`, so the ids and the response span
are those SFT trained on, in the plain format or with the chat template; an example is fed up
to its response's last token. Padding side does not matter: weights come from
masks, and position ids from the attention mask. The weighted sum itself (`pool`) runs in fp32
whatever the model's dtype or autocast setting, so a bf16 or fp16 model's pooled vectors carry
no extra rounding from the pooling.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from jaxtyping import Float, Int
from transformers import PreTrainedTokenizerBase

from valuetrace.config import DEFAULT_CHAT_DATE, Pooling
from valuetrace.errors import DataError
from valuetrace.prompts import token_spans

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Encoded:
    """One tokenised example: ids and which of them belong to the response."""

    ids: list[int]
    response: list[bool]


@dataclass(frozen=True)
class Batch:
    """A padded batch ready for the model, with the pooling weights per position."""

    input_ids: Int[torch.Tensor, "b t"]
    attention_mask: Int[torch.Tensor, "b t"]
    position_ids: Int[torch.Tensor, "b t"]
    weights: Float[torch.Tensor, "b t"]


def encode(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_length: int,
    *,
    chat: bool = False,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> list[Encoded]:
    """Tokenise prompt/response examples as SFT does, marking response tokens (warns on cuts).

    `prompts` are raw prompts ("" for a text without one); `chat` renders them with the chat
    template, rendered on `chat_date`. Long examples keep their prompt and lose the response's
    end.
    """
    encoded, cut = tokenise(
        tokenizer, prompts, responses, max_length, chat=chat, chat_date=chat_date
    )
    if cut:
        warn_truncated(cut, len(encoded), max_length)
    return encoded


def tokenise(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_length: int,
    *,
    chat: bool = False,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> tuple[list[Encoded], int]:
    """`encode` without the warning: the encodings and how many examples were cut to `max_length`.

    For callers that tokenise a large set block by block and warn once for all of it. The ids and
    the response span follow `valuetrace.prompts.token_spans` (TRL's SFT tokenisation; see that
    module for the boundary, prompt-less and truncation rules). Raises DataError when a prompt
    leaves no room for its response within `max_length`.
    """
    spans = token_spans(tokenizer, prompts, responses, chat=chat, chat_date=chat_date)
    too_long = [span.start for span in spans if span.start >= max_length]
    if too_long:
        raise DataError(
            f"{len(too_long)} of {len(spans)} examples have a prompt (with its template) of "
            f"max_length={max_length} tokens or more (the longest: {max(too_long)}), leaving no "
            f"room for the response; raise max_length above {max(too_long)} (config: "
            "extract.max_length; CLI: --max-length) or shorten them."
        )
    encoded, truncated = [], 0
    for span in spans:
        truncated += len(span.ids) > max_length
        kept = span.truncated(max_length)
        flags = [kept.start <= i < kept.end for i in range(len(kept.ids))]
        encoded.append(Encoded(ids=kept.ids, response=flags))
    return encoded, truncated


def warn_truncated(cut: int, total: int, max_length: int) -> None:
    """Say how many examples were cut to `max_length` tokens, and how to keep them whole."""
    log.warning(
        "%d of %d examples are longer than %d tokens and lost the end of their response "
        "(the prompt and template are kept); raise max_length to keep them whole.",
        cut,
        total,
        max_length,
    )


@dataclass(frozen=True)
class Masks:
    """The masks a pooling's weights are built from, each [batch, tokens]."""

    attention: Int[torch.Tensor, "b t"]  # 1 on every real (unpadded) token
    response: torch.Tensor  # True on the response's tokens
    real: torch.Tensor  # True on real tokens but a leading BOS


def _share(mask: torch.Tensor, what: str) -> Float[torch.Tensor, "b t"]:
    """Equal weights over the True positions of each row.

    Raises:
        DataError: a row has no True position.
    """
    mask = mask.float()
    counts = mask.sum(-1, keepdim=True)
    if (counts == 0).any():
        rows = (counts.squeeze(-1) == 0).nonzero().flatten().tolist()
        raise DataError(
            f"rows {rows} of a batch have no {what} tokens to pool; drop empty examples or "
            "raise max_length."
        )
    return mask / counts


def last_token(masks: Masks) -> Float[torch.Tensor, "b t"]:
    """All weight on each row's last real token."""
    last = masks.attention.cumsum(-1).argmax(-1)
    return torch.nn.functional.one_hot(last, masks.attention.shape[1]).float()


def mean_tokens(masks: Masks) -> Float[torch.Tensor, "b t"]:
    """Equal weights on every real token but a leading BOS (the attention sink)."""
    return _share(masks.real, "text")


def response_tokens(masks: Masks) -> Float[torch.Tensor, "b t"]:
    """Equal weights on the response's tokens."""
    return _share(masks.response, "response")


POOLINGS: dict[str, Callable[[Masks], Float[torch.Tensor, "b t"]]] = {
    "last": last_token,
    "mean": mean_tokens,
    "response": response_tokens,
}
if set(POOLINGS) != set(get_args(Pooling)):  # the config validates names before they get here
    raise ImportError(f"POOLINGS {sorted(POOLINGS)} and config.Pooling {get_args(Pooling)} differ")


def pooling_weights(
    attention_mask: Int[torch.Tensor, "b t"],
    response_mask: torch.Tensor,
    real_mask: torch.Tensor,
    mode: Pooling,
) -> Float[torch.Tensor, "b t"]:
    """Per-position weights that sum to one per row, for the chosen pooling mode (`POOLINGS`).

    Raises:
        DataError: a row has no token the mode pools over.
    """
    return POOLINGS[mode](Masks(attention_mask, response_mask, real_mask))


def pool(
    hidden: Float[torch.Tensor, "b t d"], weights: Float[torch.Tensor, "b t"]
) -> Float[torch.Tensor, "b d"]:
    """Pooled vectors: the `weights`-weighted sum of `hidden` over positions, in fp32.

    Both operands are cast to fp32 and autocast is off for the product, so the weights (e.g. 1/3)
    are never rounded to bf16 and the sum is accumulated and returned in fp32.
    """
    with torch.autocast(hidden.device.type, enabled=False):
        return torch.einsum("bt,btd->bd", weights.float(), hidden.float())


def pad_ids(
    rows: Sequence[Sequence[int]], pad_id: int, padding_side: Literal["left", "right"] = "right"
) -> tuple[Int[torch.Tensor, "b t"], Int[torch.Tensor, "b t"]]:
    """Pad token-id rows to the longest: the ids and the attention mask (1 on real tokens)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for row, tokens in enumerate(rows):
        span = slice(width - len(tokens), width) if padding_side == "left" else slice(len(tokens))
        ids[row, span] = torch.tensor(tokens)
        attn[row, span] = 1
    return ids, attn


def collate(
    examples: Sequence[Encoded],
    pad_id: int,
    bos_id: int | None,
    mode: Pooling,
    padding_side: Literal["left", "right"] = "right",
) -> Batch:
    """Pad encoded examples into one batch and compute its pooling weights."""
    ids, attn = pad_ids([e.ids for e in examples], pad_id, padding_side)
    resp = torch.zeros(ids.shape, dtype=torch.bool)
    resp[attn.bool()] = torch.tensor([flag for e in examples for flag in e.response])
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    real = attn.bool()
    if bos_id is not None:  # only a leading BOS (the attention sink), not a chat template's
        real &= ~((positions == 0) & (ids == bos_id))  # turn markers that share its id
    return Batch(ids, attn, positions, pooling_weights(attn, resp, real, mode))
