"""Split one extraction across processes (GPUs, or CPU processes) and join the parts.

Rank r of n takes a contiguous shard of the examples (sizes differ by at most one) and streams
it into its own cache `<out stem>.rank{r}-of-{n}.h5` with `extract_to_cache`, so each shard
resumes on its own after a crash. When every rank is done, rank 0 copies the shards' rows, in
order, into the final cache at `out` (itself resumable), reads them back to verify them, marks
the cache complete and only then deletes the shard files. A rerun of a finished request does
nothing. The command line (`python -m valuetrace.activations`, see `activations/__main__.py`)
launches this under `torchrun`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.examples import LabelledExamples
from valuetrace.activations.extract import batching_provenance, check_layers, extract_to_cache
from valuetrace.activations.merge import copy_rows, verify_rows
from valuetrace.activations.store import Examples, is_complete
from valuetrace.activations.writer import CacheWriter


def shard_range(n_examples: int, rank: int, world: int) -> tuple[int, int]:
    """The contiguous rows [start, stop) rank `rank` of `world` extracts."""
    base, extra = divmod(n_examples, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def shard_path(out: Path, rank: int, world: int) -> Path:
    """Where rank `rank` of `world` writes its shard of the cache `out`."""
    return out.with_name(f"{out.stem}.rank{rank}-of-{world}{out.suffix}")


def _subset(examples: LabelledExamples, start: int, stop: int) -> LabelledExamples:
    """Rows [start, stop) of `examples`."""
    return LabelledExamples(
        ids=examples.ids[start:stop],
        prompts=examples.prompts[start:stop],
        responses=examples.responses[start:stop],
        labels=None if examples.labels is None else examples.labels[start:stop],
        groups=examples.groups[start:stop],
        scores=None if examples.scores is None else examples.scores[start:stop],
    )


def join_shards(
    out: Path,
    world: int,
    examples: LabelledExamples,
    *,
    provenance: dict[str, str | int],
    layers: Sequence[int],
    d_model: int,
) -> Path:
    """Copy the complete shard files into `out`, verify every row, then delete the shards."""
    writer = CacheWriter.open(
        out,
        provenance=provenance,
        layers=layers,
        d_model=d_model,
        examples=Examples(examples.ids, examples.labels, examples.groups, examples.scores),
    )
    ranges = [shard_range(len(examples), rank, world) for rank in range(world)]
    parts = [
        (shard_path(out, rank, world), start)
        for rank, (start, stop) in enumerate(ranges)
        if stop > start
    ]
    try:
        if not writer.complete:
            for part, offset in parts:
                copy_rows(part, writer, offset)
            for part, offset in parts:
                verify_rows(part, writer, offset)
            writer.finish()
    finally:
        writer.close()
    for part, _ in parts:
        part.unlink(missing_ok=True)
    return out


def extract_sharded(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: LabelledExamples,
    out: Path,
    *,
    rank: int,
    world: int,
    barrier: Callable[[], None],
    provenance: dict[str, str | int],
    batch_size: int,
    max_batch_tokens: int | None = None,
    share_prefixes: bool = True,
    layers: Sequence[int] | None = None,
    overwrite: bool = False,
    **extract_kwargs: Any,
) -> Path:
    """This rank's part of `extract_to_cache`; with `world` > 1 rank 0 also joins the parts.

    Every rank must call it with the same arguments; `barrier` waits for all ranks. The joined
    cache records the batching as each shard does.
    """
    out = Path(out)
    chosen = check_layers(model, layers)
    common = {
        "provenance": provenance,
        "layers": chosen,
        "batch_size": batch_size,
        "max_batch_tokens": max_batch_tokens,
        "share_prefixes": share_prefixes,
        **extract_kwargs,
    }
    if world == 1:
        return extract_to_cache(model, tokenizer, examples, out, **common, overwrite=overwrite)
    if rank == 0 and overwrite:
        for path in [out, *(shard_path(out, r, world) for r in range(world))]:
            path.unlink(missing_ok=True)
    barrier()
    d_model = model.config.hidden_size
    recorded = {**provenance, **batching_provenance(batch_size, max_batch_tokens, share_prefixes)}
    request = {"provenance": recorded, "layers": chosen, "d_model": d_model}
    if not is_complete(out, **request, n_examples=len(examples)):
        start, stop = shard_range(len(examples), rank, world)
        if stop > start:
            extract_to_cache(
                model,
                tokenizer,
                _subset(examples, start, stop),
                shard_path(out, rank, world),
                **common,
            )
    barrier()
    if rank == 0:
        join_shards(out, world, examples, **request)
    return out
