"""Shared prefixes: run tokens that several rows begin with once, and each row's rest on top.

Rows that start with the same tokens (an eval item's answers after their prompt, or every row of
a probe set under a chat template's system turn) need those tokens' keys and values only once.
The prefixes run in one forward that leaves them in a `transformers.DynamicCache`; the cache is
copied to every row that continues a prefix (`batch_select_indices`) and the rows' own tokens
run on top with their own position ids and an attention mask over prefix + own tokens, as
batched generation does after a left-padded prompt. This is the prefix reuse of
lm-evaluation-harness's multiple-choice scoring and vLLM's prefix caching; the hidden states of
the own tokens equal a full forward's up to float rounding. Scoring (`analysis.logprob`) and
extraction (`activations.extract`) both run their shared prefixes through here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer, LinearAttentionCacheLayerMixin

from valuetrace.activations.pooling import pad_ids


def reuses_prefixes(model: PreTrainedModel) -> bool:
    """Whether a prefix's cache can be copied to rows that continue it: every layer of the
    model's cache holds attention keys and values only.

    Layers with recurrent state (state-space and linear-attention blocks of hybrid models such
    as Falcon-H1, whose cache layers are `LinearAttentionCacheLayerMixin`) are left out: their
    state is not copied row by row, so such a model runs every row whole.
    """
    layers = DynamicCache(config=model.config).layers
    return all(
        isinstance(layer, DynamicLayer) and not isinstance(layer, LinearAttentionCacheLayerMixin)
        for layer in layers
    )


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """How many leading token ids all `rows` have in common (the shortest row's length at most)."""
    return next(
        (i for i, tokens in enumerate(zip(*rows, strict=False)) if len(set(tokens)) > 1),
        min(map(len, rows)),
    )


@dataclass(frozen=True)
class SharedPrefixes:
    """Prefixes to run once, and which of them each row of a batch continues.

    `ids`/`mask` hold the prefixes left-padded to one width; row `i` continues prefix `owner[i]`
    when `used[i]`, and otherwise starts from nothing (its prefix columns are masked out).
    """

    ids: Int[torch.Tensor, "p s"]
    mask: Int[torch.Tensor, "p s"]
    owner: Int[torch.Tensor, " b"]
    used: Bool[torch.Tensor, " b"]

    @classmethod
    def pad(
        cls,
        prefixes: Sequence[Sequence[int]],
        owner: Sequence[int],
        used: Sequence[bool],
        pad_id: int,
    ) -> SharedPrefixes:
        """Prefixes given as token-id lists, left-padded with `pad_id` (empty ones excluded)."""
        ids, mask = pad_ids(prefixes, pad_id, "left")
        return cls(ids, mask, torch.tensor(list(owner)), torch.tensor(list(used)))

    @classmethod
    def one(cls, ids: Sequence[int], rows: int) -> SharedPrefixes:
        """One prefix that all `rows` rows continue."""
        return cls(
            torch.tensor([list(ids)]),
            torch.ones(1, len(ids), dtype=torch.long),
            torch.zeros(rows, dtype=torch.long),
            torch.ones(rows, dtype=torch.bool),
        )

    def attention_mask(self, own_mask: Int[torch.Tensor, "b t"]) -> Int[torch.Tensor, "b s+t"]:
        """The own pass's attention mask: each row's prefix columns, then its own tokens."""
        return torch.cat([self.mask[self.owner] * self.used[:, None], own_mask], dim=1)

    def cache(
        self, model: PreTrainedModel, stop: tuple[type[BaseException], ...] = ()
    ) -> DynamicCache:
        """Run the prefixes through the decoder body once; their cache, copied to every row.

        `stop` names exceptions a forward hook raises to end the forward early (extraction
        stops after its last requested layer): the cache then holds the layers before it,
        which is all a later pass that stops at the same hook reads.
        """
        device = next(model.parameters()).device
        cache = DynamicCache(config=model.config)
        with contextlib.suppress(*stop):
            model.base_model(
                input_ids=self.ids.to(device),
                attention_mask=self.mask.to(device),
                position_ids=(self.mask.cumsum(-1) - 1).clamp(min=0).to(device),
                cache=cache,
                use_cache=True,
            )
        cache.batch_select_indices(self.owner.to(device))
        return cache
