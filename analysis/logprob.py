"""Mean log-probability of fixed continuations given their prompts, at the cost of one forward.

Scoring takes the care extraction takes (`activations.extract`): rows sorted by length and
batched so padding stays small, `torch.inference_mode`, and no full LM head: the decoder body
runs once and the head is applied only at the positions that predict a continuation token.

Continuations that share a prompt (an eval item's compassionate and dismissive answers, or one
item under several steering strengths) share its forward: the prompt's tokens run once and
leave their keys and values in a cache, and each continuation runs on top of it with its own
position ids (`activations.prefix`, which extraction uses too); the hidden states equal a full
forward's up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.pooling import Encoded, encode, pad_ids
from valuetrace.activations.prefix import SharedPrefixes, reuses_prefixes, shared_prefix_length
from valuetrace.architecture import check_logits, lm_logits
from valuetrace.config import DEFAULT_CHAT_DATE
from valuetrace.errors import DataError


@dataclass(frozen=True)
class PromptGroup:
    """Rows that share their first ``shared`` tokens; ``shared`` 0: a row scored on its own."""

    rows: list[int]
    shared: int
    own: int  # tokens of the longest row after the shared part


def prompt_groups(
    encoded: Sequence[Encoded],
    prompts: Sequence[str],
    max_rows: int,
    max_tokens: int | None = None,
    *,
    share: bool = True,
) -> list[PromptGroup]:
    """Rows grouped by prompt, in pieces of similar length that fit one batch.

    A group shares its tokens up to one before the first continuation token of any of its rows
    (and before the rows' first differing token), so every position that predicts a
    continuation token lies in a row's own part. A prompt's rows are sorted by length and cut
    into pieces of at most ``max_rows`` rows and ``max_tokens`` padded tokens; each piece runs
    its shared part once. A row alone (or without a shared part), and every row when not
    `share` (a model whose cache cannot be copied row by row, `reuses_prefixes`), is its own
    group.
    """
    by_prompt: dict[str, list[int]] = {}
    for row, prompt in enumerate(prompts):
        by_prompt.setdefault(prompt, []).append(row)
    groups = []
    for rows in by_prompt.values():
        shared = _shared_length(encoded, rows) if share else 0
        if shared <= 0:
            groups.extend(PromptGroup([r], 0, len(encoded[r].ids)) for r in rows)
            continue
        piece: list[int] = []
        for row in sorted(rows, key=lambda r: len(encoded[r].ids)):
            width = len(encoded[row].ids)  # rows come shortest first: the piece's longest
            full = len(piece) == max_rows or (
                max_tokens is not None and (len(piece) + 1) * width > max_tokens
            )
            if piece and full:
                groups.append(_piece(encoded, piece, shared))
                piece = []
            piece.append(row)
        groups.append(_piece(encoded, piece, shared))
    return groups


def _shared_length(encoded: Sequence[Encoded], rows: list[int]) -> int:
    """Tokens the rows can share: their common prefix, stopping before the last prompt token."""
    if len(rows) == 1:
        return 0
    first_scored = min(encoded[r].response.index(True) for r in rows)
    return min(first_scored, shared_prefix_length([encoded[r].ids for r in rows])) - 1


def _piece(encoded: Sequence[Encoded], rows: list[int], shared: int) -> PromptGroup:
    """A group of rows sharing ``shared`` tokens; a piece of one row runs whole."""
    longest = max(len(encoded[r].ids) for r in rows)
    if len(rows) == 1:
        return PromptGroup(rows, 0, longest)
    return PromptGroup(rows, shared, longest - shared)


def group_batches(
    groups: Sequence[PromptGroup], batch_size: int, max_batch_tokens: int | None = None
) -> list[list[PromptGroup]]:
    """Groups cut into batches of at most ``batch_size`` rows, sorted so padding stays small.

    Groups are sorted by their rows' own length (each row runs its own part, a group its shared
    part once, so the own parts weigh more), then by the shared length. With
    ``max_batch_tokens``, a batch also holds at most that many padded tokens (rows × the longest
    shared part + the longest own part); a group (a piece from `prompt_groups`) larger than
    either budget gets a batch of its own.
    """
    batches: list[list[PromptGroup]] = []
    current: list[PromptGroup] = []
    rows = shared = 0
    for group in sorted(groups, key=lambda g: (g.own, g.shared)):
        size, width = rows + len(group.rows), max(shared, group.shared) + group.own
        full = size > batch_size or (
            max_batch_tokens is not None and size * width > max_batch_tokens
        )
        if current and full:
            batches.append(current)
            current, rows, shared = [], 0, 0
        current.append(group)
        rows += len(group.rows)
        shared = max(shared, group.shared)
    if current:
        batches.append(current)
    return batches


@torch.inference_mode()
def continuation_logprob(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int = 256,
    max_batch_tokens: int | None = None,
    chat: bool = False,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> Float[np.ndarray, " n"]:
    """Mean log-probability per continuation token (nats/token), given its prompt.

    `prompts` are raw prompts ("" for none); `chat` renders them with the chat template (on
    `chat_date`). The ids
    and the continuation's tokens are those SFT trained on (`valuetrace.prompts.token_spans`).

    Equal to a full-logits forward (`log_softmax(model(ids).logits)` gathered at the
    continuation's tokens) up to float rounding, but cheaper: rows are length-sorted and batched
    like extraction, a prompt shared by several rows runs once, the decoder body
    (`model.base_model`, final norm included) runs once per token, and the LM head runs only at
    the positions whose next token belongs to the continuation, followed by the transform the
    model's forward applies to its logits (`valuetrace.architecture.lm_logits`: scales,
    soft-caps), checked on the first row against a full forward (`check_logits`) before
    scoring. `batch_size` and `max_batch_tokens` bound the rows and padded tokens of one
    forward. Hooks on the decoder blocks (e.g. `analysis.causal.direction_hooks`) apply to
    every token.

    Raises:
        DataError: a continuation has no scored token (empty, or its only token opens the text).
        ConfigError: the model's forward transforms its logits in a way valuetrace does not
            reproduce (`check_logits`), so its log-probabilities would not be the model's.
    """
    encoded = encode(tokenizer, prompts, continuations, max_length, chat=chat, chat_date=chat_date)
    bad = [i for i, e in enumerate(encoded) if not any(e.response[1:])]
    if bad:
        raise DataError(
            f"continuation(s) {bad} have no token to score (empty, or the only token of a text "
            "without BOS); give every item a non-empty continuation after its prompt."
        )
    check_logits(model, torch.tensor(encoded[0].ids))
    out = np.empty(len(encoded))
    groups = prompt_groups(
        encoded, prompts, batch_size, max_batch_tokens, share=reuses_prefixes(model)
    )
    for batch in group_batches(groups, batch_size, max_batch_tokens):
        rows = [r for g in batch for r in g.rows]
        out[rows] = _score_batch(model, tokenizer.pad_token_id, encoded, batch)
    return out


def _score_batch(
    model: PreTrainedModel, pad_id: int, encoded: Sequence[Encoded], batch: list[PromptGroup]
) -> Float[np.ndarray, " rows"]:
    """Mean continuation log-prob of each row of ``batch``'s groups, in their order."""
    device = next(model.parameters()).device
    shared = [g.shared for g in batch for _ in g.rows]
    rows = [r for g in batch for r in g.rows]
    own, own_mask = pad_ids([encoded[r].ids[s:] for r, s in zip(rows, shared, strict=True)], pad_id)
    positions = own_mask.cumsum(-1) - 1 + torch.tensor(shared)[:, None]  # right-padded: >= 0
    attention_mask, cache = own_mask, None
    with_prefix = [g for g in batch if g.shared]
    if with_prefix:
        slot = {id(g): i for i, g in enumerate(with_prefix)}
        prefixes = SharedPrefixes.pad(
            [encoded[g.rows[0]].ids[: g.shared] for g in with_prefix],
            owner=[slot.get(id(g), 0) for g in batch for _ in g.rows],
            used=[bool(g.shared) for g in batch for _ in g.rows],
            pad_id=pad_id,
        )
        cache = prefixes.cache(model)
        attention_mask = prefixes.attention_mask(own_mask)
    hidden = model.base_model(
        input_ids=own.to(device),
        attention_mask=attention_mask.to(device),
        position_ids=positions.to(device),
        cache=cache,
        use_cache=cache is not None,
    ).last_hidden_state
    scored = torch.zeros(own.shape, dtype=torch.bool)
    for i, (r, s) in enumerate(zip(rows, shared, strict=True)):
        flags = encoded[r].response[s + 1 :]  # position t predicts token t + 1
        scored[i, : len(flags)] = torch.tensor(flags)
    return _mean_token_logprob(model, hidden, own.to(device), scored.to(device))


def _mean_token_logprob(
    model: PreTrainedModel,
    hidden: Float[torch.Tensor, "b t h"],
    ids: Int[torch.Tensor, "b t"],
    scored: torch.Tensor,
) -> Float[np.ndarray, " b"]:
    """Mean log-prob of the tokens each row predicts at its ``scored`` positions (head there only).

    ``logsumexp`` rather than ``log_softmax``: one read of the logits, no second ``[k, vocab]``.
    """
    row, col = scored.nonzero(as_tuple=True)
    logits = lm_logits(model, hidden[row, col])  # [k, vocab]
    target = logits.gather(-1, ids[row, col + 1, None])[:, 0]
    token_lp = target - torch.logsumexp(logits, dim=-1)
    sums = torch.zeros(len(ids), device=ids.device).index_add_(0, row, token_lp)
    counts = torch.bincount(row, minlength=len(ids))
    return (sums / counts).cpu().numpy()
