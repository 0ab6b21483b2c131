"""Extract pooled hidden states of every requested layer with hooks on the decoder blocks.

The model's body (`model.base_model`) runs without the LM head, which extraction never needs,
and stops right after the last requested layer. Hooks (`valuetrace.architecture.residual_hooks`:
layer 0 is the input of the first block, layer l the output of block l-1) pool each layer as it
is made, so only `[batch, d_model]` per layer is kept. Blocks of rows are sorted by length to cut
padding, cut into batches of at most `batch_size` rows (and, with `max_batch_tokens`, at most
that many padded tokens), and written by a background thread while the next block runs. Tokens
that every row of a batch starts with (a chat template's system turn) run once, and the rows'
own tokens on top of their cached keys and values (`activations.prefix`). On CUDA the pooled
vectors come back through pinned memory without a sync per batch.
`backend="transformer_lens"` reads the same layers from transformer-lens instead
(`activations.tl_backend`), for cross-checks.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from jaxtyping import Float
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.examples import LabelledExamples
from valuetrace.activations.pooling import (
    Batch,
    Encoded,
    Pooling,
    collate,
    pool,
    tokenise,
    warn_truncated,
)
from valuetrace.activations.prefix import SharedPrefixes, reuses_prefixes, shared_prefix_length
from valuetrace.activations.store import CHUNK_ROWS, Examples
from valuetrace.activations.tl_backend import boot_bridge, pooled_hidden_states_tl
from valuetrace.activations.writer import CacheWriter
from valuetrace.architecture import decoder_layers, residual_hooks
from valuetrace.config import DEFAULT_CHAT_DATE
from valuetrace.console import show_bars
from valuetrace.errors import ConfigError, DataError
from valuetrace.models import tokenizer_hash
from valuetrace.prompts import chat_render_hash

Backend = Literal["hooks", "transformer_lens"]
PoolFn = Callable[[Batch, list[int]], torch.Tensor]
# A batch's common first tokens run once only from this many on: below it the second forward
# and the copies of the cache cost more than they save (a BOS alone, or a plain-format header).
MIN_SHARED_TOKENS = 8


class _StopForward(Exception):
    """Raised by the last hook so the layers after it (and the LM head) never run."""


def n_layers(model: PreTrainedModel) -> int:
    """Number of hidden-state layers: embeddings (the first block's input) plus one per block."""
    return len(decoder_layers(model)) + 1


def check_layers(model: PreTrainedModel, layers: Sequence[int] | None) -> list[int]:
    """The requested layers, sorted, or all of them (`None`).

    Raises `ConfigError` naming the valid range for a layer the model does not have, or for an
    empty list.
    """
    total = n_layers(model)
    chosen = sorted(set(range(total) if layers is None else layers))
    setting = "`extract.layers` in the config, `--layers` on the command line"
    if not chosen:
        raise ConfigError(
            f"no layers requested ({setting}); list some of 0..{total - 1}, or leave it unset "
            "for all of them."
        )
    bad = [layer for layer in chosen if not 0 <= layer < total]
    if bad:
        raise ConfigError(
            f"layer(s) {bad} do not exist ({setting}): this model has {total - 1} blocks, so "
            f"layers are 0 (embeddings) to {total - 1}."
        )
    return chosen


def _pooling_fns(
    layers: list[int], weights: torch.Tensor, out: dict[int, torch.Tensor]
) -> dict[int, Callable[[torch.Tensor], None]]:
    """Per layer, a reader that pools the residual stream into `out` (the last one stops)."""

    def reader(layer: int) -> Callable[[torch.Tensor], None]:
        def read(hidden: torch.Tensor) -> None:
            out[layer] = pool(hidden, weights)
            if layer == layers[-1]:
                raise _StopForward

        return read

    return {layer: reader(layer) for layer in layers}


def shared_length(batch: Batch) -> int:
    """How many first tokens all rows of a batch share and can run once.

    Only leading columns that are real tokens in every row count (a left-padded batch of
    unequal rows shares nothing); every row keeps at least one token of its own, and a prefix
    shorter than `MIN_SHARED_TOKENS` (or a batch of one row) gives 0: the batch runs whole.
    """
    if len(batch.input_ids) < 2:
        return 0
    real = int(batch.attention_mask.all(0).long().cumprod(0).sum())  # leading all-real columns
    shared = min(shared_prefix_length(batch.input_ids[:, :real].tolist()), real - 1)
    return shared if shared >= MIN_SHARED_TOKENS else 0


@torch.inference_mode()
def pooled_hidden_states(
    model: PreTrainedModel, batch: Batch, layers: list[int], *, share: bool | None = None
) -> Float[torch.Tensor, "l b d"]:
    """Pooled hidden states of `layers` for one batch (fp32, on the model's device).

    Layer 0 is the input of the first decoder block, layer l the output of block l-1
    (`valuetrace.architecture.residual_site`); the body stops after the last requested layer.
    The first `shared_length(batch)` tokens, the same in every row, run once (batch 1) and are
    pooled into every row with that row's weights on them; the rows' own tokens run on top of
    the prefix's cached keys and values (`activations.prefix.SharedPrefixes`). Pooling is a
    weighted sum, so the two parts add up to the whole row's pooled vector. `share` says
    whether the model's cache can hold a shared prefix (`reuses_prefixes`); None asks the model
    (a caller pooling many batches asks once and passes the answer).
    """
    device = next(model.parameters()).device
    if share is None:
        share = reuses_prefixes(model)
    shared = shared_length(batch) if share else 0
    pooled: dict[int, torch.Tensor] = {}
    prefix: dict[int, torch.Tensor] = {}
    cache = None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    # non_blocking: a copy from pageable memory is staged at once and does not wait for the
    # device, so the host prepares the next batch while this one runs (a no-op on the CPU)
    to = functools.partial(torch.Tensor.to, device=device, non_blocking=True)
    if shared:
        prefixes = SharedPrefixes.one(batch.input_ids[0, :shared].tolist(), len(batch.weights))
        weights = to(batch.weights[:, :shared])  # hidden [1, shared, d]
        with residual_hooks(model, _pooling_fns(layers, weights, prefix)), autocast:
            cache = prefixes.cache(model, stop=(_StopForward,))
    readers = _pooling_fns(layers, to(batch.weights[:, shared:]), pooled)
    with residual_hooks(model, readers), contextlib.suppress(_StopForward), autocast:
        model.base_model(
            input_ids=to(batch.input_ids[:, shared:]),
            attention_mask=to(batch.attention_mask),
            position_ids=to(batch.position_ids[:, shared:]),
            cache=cache,
            use_cache=cache is not None,
        )
    return torch.stack(
        [pooled[layer] + prefix[layer] if prefix else pooled[layer] for layer in layers]
    )


def length_batches(
    lengths: Sequence[int], batch_size: int, max_batch_tokens: int | None = None
) -> list[list[int]]:
    """Row indices sorted by length, cut into batches that keep padding and memory bounded.

    A batch holds at most `batch_size` rows and, when `max_batch_tokens` is set, at most that many
    padded tokens (rows x its longest row); a single row longer than the budget gets a batch of
    its own.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[i]  # rows come shortest first, so the newest row sets the padded width
        full = len(current) == batch_size or (
            max_batch_tokens is not None and (len(current) + 1) * width > max_batch_tokens
        )
        if current and full:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _to_host(pooled: torch.Tensor) -> torch.Tensor:
    """Copy to the CPU; from CUDA into pinned memory without waiting (sync before reading)."""
    if pooled.device.type != "cuda":
        return pooled.cpu()
    host = torch.empty(pooled.shape, dtype=pooled.dtype, pin_memory=True)
    return host.copy_(pooled, non_blocking=True)


def _block_activations(
    pool: PoolFn,
    encoded: list[Encoded],
    layers: list[int],
    pooling: Pooling,
    batch_size: int,
    max_batch_tokens: int | None,
    pad_id: int,
    bos_id: int | None,
) -> Float[np.ndarray, "l n d"]:
    """Pooled activations of one block of rows, batched by similar length, in row order.

    Each batch lands in its rows of one preallocated block as it comes (CPU), so the block is
    held once, not also as a list of parts, their concatenation and its reordering.
    """
    batches = length_batches([len(e.ids) for e in encoded], batch_size, max_batch_tokens)
    block: torch.Tensor | None = None
    parts: list[tuple[list[int], torch.Tensor]] = []  # CUDA only: copies still in flight
    device = torch.device("cpu")
    for idx in batches:
        pooled = pool(collate([encoded[i] for i in idx], pad_id, bos_id, pooling), layers)
        if block is None:
            block = torch.empty(pooled.shape[0], len(encoded), pooled.shape[2], dtype=pooled.dtype)
        device = pooled.device
        if device.type == "cuda":
            parts.append((idx, _to_host(pooled)))
        else:
            block[:, idx] = pooled
    if parts:
        torch.cuda.synchronize(device)  # the copies into pinned memory have landed
        for idx, host in parts:
            block[:, idx] = host
    assert block is not None  # encoded is never empty
    return block.numpy()


def _pool_fn(model: PreTrainedModel, backend: Backend, share_prefixes: bool) -> PoolFn:
    """The per-batch pooling function of the chosen backend (whether the model reuses shared
    prefixes is asked here, once per extraction; `share_prefixes` False runs every row whole)."""
    if backend == "transformer_lens":
        return functools.partial(pooled_hidden_states_tl, boot_bridge(model))
    share = share_prefixes and reuses_prefixes(model)
    return functools.partial(pooled_hidden_states, model, share=share)


def batching_provenance(
    batch_size: int, max_batch_tokens: int | None, share_prefixes: bool = True
) -> dict[str, str | int]:
    """The batching a cache is extracted with, recorded so a resumed cache never mixes two.

    Pooled vectors depend (by float rounding only: batch 1 and 16 agree to 1e-5 in fp32, more
    loosely in bf16) on which rows share a batch, so a resume with other settings would break
    the guarantee that a resumed cache equals an uninterrupted one. Running shared prefixes once
    moves them by rounding too, so the `share_prefixes` setting is recorded as well (for a given
    model and backend it decides whether they run; a cache written before it was recorded reads
    as "on", `store.LATER_KEYS`).
    """
    return {
        "batch_size": batch_size,
        "max_batch_tokens": "none" if max_batch_tokens is None else max_batch_tokens,
        "shared_prefixes": "on" if share_prefixes else "off",
    }


def cache_provenance(
    *,
    model: str,
    model_hash: str,
    tokenizer: PreTrainedTokenizerBase,
    examples: LabelledExamples,
    dataset: str,
    pooling: Pooling,
    dtype: str,
    max_length: int,
    chat: bool,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> dict[str, str | int]:
    """The provenance a cache records, and which a resumed cache must match.

    With `chat`, the pinned `chat_date` and `chat_render` (the hash of what the template renders
    on that date, `valuetrace.prompts.chat_render_hash`) are recorded, so a cache is never
    resumed with another date's prompts; both are "none" in the plain format.

    The batching entries (`batching_provenance`) are added by `extract_to_cache` itself, from
    the settings it actually runs with.
    """
    return {
        "model": model,
        "dataset": dataset,
        "model_hash": model_hash,
        "tokenizer_hash": tokenizer_hash(tokenizer),
        "dataset_hash": examples.content_hash(),
        "pooling": pooling,
        "dtype": dtype,
        "max_length": max_length,
        "prompt_format": "chat" if chat else "plain",
        "chat_date": chat_date if chat else "none",
        "chat_render": chat_render_hash(tokenizer, chat_date) if chat else "none",
    }


def extract_to_cache(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: LabelledExamples,
    path: Path,
    *,
    chat: bool = False,
    chat_date: str = DEFAULT_CHAT_DATE,
    provenance: dict[str, str | int],
    pooling: Pooling,
    batch_size: int,
    max_length: int,
    layers: Sequence[int] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    backend: Backend = "hooks",
    max_batch_tokens: int | None = None,
    share_prefixes: bool = True,
    progress_callback: Callable[[int], None] | None = None,
) -> Path:
    """Stream pooled activations of `examples` into an HDF5 cache.

    `chat` formats the examples with the tokenizer's chat template (`valuetrace.prompts`: the
    token ids SFT trained on, and its rule for texts without a prompt), rendered on `chat_date`.
    Resumes a half-written cache with the same provenance (batch size and token budget
    included, see `batching_provenance`); a complete one is left as is.
    `backend` picks hooks on the decoder body (fast) or transformer-lens (a cross-check);
    `max_batch_tokens` caps a batch's padded tokens; `share_prefixes` False runs every row
    whole instead of running the tokens all rows of a batch share once (`pooled_hidden_states`;
    the same vectors to float rounding, more tokens through the decoder under a chat template);
    `progress_callback(rows_done)` runs on the writer thread after each block is on disk.
    """
    if backend not in get_args(Backend):
        raise ConfigError(f"unknown backend {backend!r}; use one of {get_args(Backend)}.")
    if len(examples) == 0:
        raise DataError("the probe set is empty: nothing to extract.")
    if tokenizer.pad_token_id is None:
        raise DataError(
            "the tokenizer has no pad token; set tokenizer.pad_token = tokenizer.eos_token "
            "(valuetrace.load_tokenizer does this) and try again."
        )
    chosen = check_layers(model, layers)
    writer = CacheWriter.open(
        path,
        provenance={
            **provenance,
            **batching_provenance(batch_size, max_batch_tokens, share_prefixes),
        },
        layers=chosen,
        d_model=model.config.hidden_size,
        examples=Examples(examples.ids, examples.labels, examples.groups, examples.scores),
        overwrite=overwrite,
    )
    if writer.complete:
        writer.close()
        return path
    pool = _pool_fn(model, backend, share_prefixes)
    start = writer.rows_done
    bar = tqdm(
        total=len(examples),
        initial=start,
        desc=f"extract {path.stem}",
        disable=not show_bars(progress),  # bars on a terminal only, never in a log file
        unit="ex",
    )

    def write(begin: int, block: np.ndarray) -> None:
        writer.write(begin, block)
        if progress_callback is not None:
            progress_callback(begin + block.shape[1])

    pending: Future[None] | None = None
    truncated = warned = 0
    try:
        with ThreadPoolExecutor(max_workers=1) as background:
            for begin in range(start, len(examples), CHUNK_ROWS):
                # tokenised a block at a time: memory stays flat however large the set
                rows = slice(begin, begin + CHUNK_ROWS)
                encoded, cut = tokenise(
                    tokenizer,
                    examples.prompts[rows],
                    examples.responses[rows],
                    max_length,
                    chat=chat,
                    chat_date=chat_date,
                )
                truncated += cut
                if truncated and not warned:  # say so at once, not only after a long run
                    warn_truncated(cut, len(encoded), max_length)
                    warned = truncated
                block = _block_activations(
                    pool,
                    encoded,
                    chosen,
                    pooling,
                    batch_size,
                    max_batch_tokens,
                    tokenizer.pad_token_id,
                    tokenizer.bos_token_id,
                )
                if pending is not None:
                    pending.result()
                pending = background.submit(write, begin, block)
                bar.update(block.shape[1])
            if pending is not None:
                pending.result()
        writer.finish()
        if truncated > warned:  # the total, when more were cut after the first warning
            warn_truncated(truncated, len(examples) - start, max_length)
    finally:
        bar.close()
        writer.close()
    return path
