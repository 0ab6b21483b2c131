"""Extract pooled activations of a probe set from one checkpoint into an HDF5 cache.

One process (one GPU, or the CPU):

    python -m valuetrace.activations --checkpoint runs/demo/sft \
        --examples probes.jsonl --out acts.h5

Several processes: the same flags under a launcher. Each rank extracts a contiguous shard into
`acts.rank{r}-of-{n}.h5`, then rank 0 joins them into `acts.h5`, verifies it and deletes the
shards (see `activations.shard`). Rank r uses GPU `LOCAL_RANK` when CUDA is present.

    torchrun --standalone --nproc_per_node 4 -m valuetrace.activations \
        --checkpoint ... --out acts.h5
        (on the CPU too; torchrun gives each process OMP_NUM_THREADS=1 unless it is set)
    accelerate launch --multi_gpu --num_processes 4 -m valuetrace.activations \
        --checkpoint ... (GPUs only:
        accelerate's --cpu starts a single process unless given an MPI hostfile; use torchrun)

Rerunning the same command resumes a killed run (each shard and the join resume on their own);
a finished cache is left as is, and a cache made for another request is refused unless
`--overwrite`. `--log-blocks` prints `rows_done=N` to stdout each time a block is on disk.
Bad input or state (a `ValuetraceError`) ends the run with one line, `... error: <what and the
fix>`, on stderr and exit status 2, as argparse does for bad flags.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import get_args

import torch

from valuetrace.activations.examples import load_examples
from valuetrace.activations.extract import cache_provenance
from valuetrace.activations.shard import extract_sharded
from valuetrace.config import DEFAULT_CHAT_DATE, ExtractConfig, Pooling
from valuetrace.errors import ValuetraceError
from valuetrace.models import load_model, load_tokenizer, weights_hash
from valuetrace.prompts import check_chat_template


def _parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = argparse.ArgumentParser(
        prog="python -m valuetrace.activations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="model folder or hub id")
    parser.add_argument(
        "--examples",
        required=True,
        type=Path,
        help="example set (.jsonl/.csv): id, response/text; optional prompt, pair_id, label, score",
    )
    parser.add_argument("--out", required=True, type=Path, help="the HDF5 cache to write")
    parser.add_argument(
        "--pooling", choices=get_args(Pooling), default=ExtractConfig.pooling, help="token pooling"
    )
    parser.add_argument("--layers", type=int, nargs="*", default=None, help="default: all")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="padded tokens/batch")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument(
        "--dtype",
        choices=["float32", "float16"],
        default="float32",
        help="dtype stored in the cache",
    )
    parser.add_argument(
        "--model-dtype", choices=["float32", "bfloat16", "float16"], default="float32"
    )
    parser.add_argument("--chat", action="store_true", help="format prompts with the chat template")
    parser.add_argument(
        "--chat-date",
        default=DEFAULT_CHAT_DATE,
        help=f"the date the chat template renders, e.g. '{DEFAULT_CHAT_DATE}' (the default)",
    )
    parser.add_argument("--backend", choices=["hooks", "transformer_lens"], default="hooks")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--log-blocks", action="store_true", help="print rows_done=N per block")
    return parser


def _distributed() -> tuple[int, int, Callable[[], None]]:
    """(rank, world size, barrier) from the launcher's environment; one process without one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, lambda: None
    # gloo runs on every machine; the barrier's wait is the ranks' imbalance, not the run time.
    torch.distributed.init_process_group("gloo", timeout=timedelta(hours=24))
    return torch.distributed.get_rank(), world, torch.distributed.barrier


def main(argv: list[str] | None = None) -> int:
    """Parse flags and run; a `ValuetraceError` becomes one line on stderr and exit status 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _run(args)
    except ValuetraceError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace) -> None:
    """Load the model on this rank's device and run (this rank's part of) the extraction."""
    rank, world, barrier = _distributed()
    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)  # pinned buffers and syncs then use this rank's GPU only
    # input first (labels and scores optional), so a bad file fails before any model loads
    examples = load_examples(args.examples)
    tokenizer = load_tokenizer(args.checkpoint)
    if args.chat:
        check_chat_template(tokenizer)
    model = load_model(args.checkpoint, dtype=args.model_dtype, device=device)
    local = Path(args.checkpoint).is_dir()
    provenance = cache_provenance(
        model=args.checkpoint,
        model_hash=weights_hash(args.checkpoint) if local else args.checkpoint,
        tokenizer=tokenizer,
        examples=examples,
        dataset=str(args.examples),
        pooling=args.pooling,
        dtype=args.dtype,
        max_length=args.max_length,
        chat=args.chat,
        chat_date=args.chat_date,
    )

    def log_block(rows_done: int) -> None:
        print(f"rows_done={rows_done}", flush=True)

    try:
        extract_sharded(
            model,
            tokenizer,
            examples,
            args.out,
            chat=args.chat,
            chat_date=args.chat_date,
            rank=rank,
            world=world,
            barrier=barrier,
            provenance=provenance,
            layers=args.layers,
            overwrite=args.overwrite,
            pooling=args.pooling,
            batch_size=args.batch_size,
            max_batch_tokens=args.max_batch_tokens,
            max_length=args.max_length,
            backend=args.backend,
            progress=rank == 0 and not args.log_blocks,
            progress_callback=log_block if args.log_blocks else None,
        )
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
