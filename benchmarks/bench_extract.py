"""Extraction speed and memory: valuetrace's hooks vs a bare forward, transformer-lens and HF.

How to read the output. One table, one row per way of getting every layer's pooled vectors for
the same sequences (random token ids, all the same length, fixed seed) from a randomly
initialised GPT-2-small-sized Llama (hidden 768, 12 layers, 12 heads, MLP 3072, vocab 32000):

    (a) bare forward of the decoder body (`model.model`, no LM head): the floor, nothing pooled
    (b) valuetrace `extract_to_cache`: tokenise, forward with pooling hooks, mean-pool all 13
        layers, write the HDF5 cache
    (c) transformer-lens `run_with_cache` with a names filter (full-sequence cache + LM head)
    (d) HF `output_hidden_states=True` (full model forward with logits, as users usually do)
    (e) nnsight 0.8 `trace`, saving the embeddings' and every block's `.output` (the whole
        forward with the LM head; on a copy of the model, since nnsight replaces each module's
        `forward` for good); only where nnsight is installed (`pip install -e .[bench]`)

Each method runs once per round, the methods in turn (each round starting one method later), for
`--rounds` rounds (default 2); the table gives each one's fastest round and lists every round,
so a slow spell of a shared machine shows. `seconds` is wall time, `ms/seq` per sequence,
`cpu s` the CPU time of all this process's threads, `max |diff| vs (b)` the largest difference
of the pooled vectors from the cache (b) wrote (HF's last layer is after the final norm, so (d)
is compared on layers 0..11 only). The ratio line gives (b)/(a), the overhead valuetrace adds
to a plain forward (goal <= 1.05), and (c)/(b), (d)/(b), (e)/(b), how much slower the
alternatives are.
The header gives the load average: timings on a shared machine vary by 10% or more, so compare
ratios from one run, not across runs.

The memory lines give, for (b) on 1x, 4x and 16x the sequences, each in a fresh process, the
peak RSS during (b) (VmHWM, reset just before it) with the RSS before it (model and data loaded)
in parentheses, and the ratios of the 4x and 16x peaks to the 1x one (goal <= 1.10: memory must
not grow with the data set). `--memory` prints these lines alone.
They are measured twice. With glibc's default malloc, freed forward-pass buffers stay in the
heap and the peak of the same workload varies by about 15% from run to run (more batches, more
chances of a high draw), whatever the data size. With `MALLOC_TRIM_THRESHOLD_=0`, glibc hands
freed memory back at once, so RSS follows live memory: that line is the streaming check. (That
setting slows the CPU forward by about 40%, so valuetrace does not set it.)

On this 2-core machine the same forward can take 36 s in one round and 52 s in the next, so a
single (b)/(a) can land anywhere from 0.85 to 1.25. `--alternate K` measures that ratio alone
and more tightly: (a) and (b) in turn K times each on 64 sequences (order swapped every other
time), printing every time and the ratio of the medians.

    python benchmarks/bench_extract.py              # 256 x 128 tokens, batch 16 (~15 minutes)
    python benchmarks/bench_extract.py --quick      # 32 x 128 tokens, a smoke run
    python benchmarks/bench_extract.py --alternate 6  # (b)/(a) only, paired (~2 minutes)
    python benchmarks/bench_extract.py --memory --quick  # peak RSS at 32/128/512 seqs only
    python benchmarks/bench_extract.py --quick --no-memory  # the timing table only
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from valuetrace.activations.examples import LabelledExamples
from valuetrace.activations.extract import extract_to_cache
from valuetrace.activations.pooling import Batch, collate, encode
from valuetrace.activations.store import read_activations
from valuetrace.activations.tl_backend import boot_bridge, pooled_hidden_states_tl

VOCAB, SEQ_LEN, BATCH, THREADS, SEED = 32000, 128, 16, 2, 0
PROVENANCE: dict[str, str | int] = {
    "model_hash": "random-llama-768",
    "tokenizer_hash": "wordlevel-32000",
    "dataset_hash": "random-ids",
    "pooling": "mean",
    "dtype": "float32",
    "max_length": SEQ_LEN,
    "prompt_format": "plain",
}


def build_model() -> LlamaForCausalLM:
    """A randomly initialised GPT-2-small-sized Llama in eval mode (no download)."""
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
        intermediate_size=3072,
        max_position_embeddings=2 * SEQ_LEN,
        pad_token_id=0,
    )
    torch.manual_seed(SEED)
    return LlamaForCausalLM(config).eval()


def build_tokenizer(size: int = VOCAB) -> PreTrainedTokenizerFast:
    """A word-level tokenizer where the text `t17 t5` is exactly the ids [17, 5] (0 = pad)."""
    vocab = {"<pad>": 0, **{f"t{i}": i for i in range(1, size)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>")


def build_data(n: int) -> tuple[LabelledExamples, np.ndarray]:
    """`n` texts of SEQ_LEN random token ids (fixed seed), and the ids themselves."""
    ids = np.random.default_rng(SEED).integers(1, VOCAB, size=(n, SEQ_LEN))
    texts = [" ".join(f"t{i}" for i in row) for row in ids]
    data = LabelledExamples(
        ids=[f"s{i}" for i in range(n)],
        prompts=[""] * n,
        responses=texts,
        labels=np.arange(n) % 2,
        groups=[f"g{i}" for i in range(n)],
    )
    return data, ids


def run_b(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    data: LabelledExamples,
    path: Path,
) -> None:
    """(b): valuetrace extraction of every layer, mean pooling, written to an HDF5 cache."""
    extract_to_cache(
        model,
        tokenizer,
        data,
        path,
        provenance=PROVENANCE,
        pooling="mean",
        batch_size=BATCH,
        max_length=SEQ_LEN,
        overwrite=True,
        progress=False,
    )


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Wall and CPU seconds (all threads of this process) of one call, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


@torch.inference_mode()
def body_forward(model: LlamaForCausalLM, batches: list[Batch]) -> None:
    """(a): the decoder body only, every block, nothing kept."""
    for b in batches:
        model.model(
            input_ids=b.input_ids,
            attention_mask=b.attention_mask,
            position_ids=b.position_ids,
            use_cache=False,
        )


@torch.inference_mode()
def hf_hidden_states(model: LlamaForCausalLM, batches: list[Batch]) -> torch.Tensor:
    """(d): full forward with logits and `output_hidden_states`, pooled like (b)."""
    parts = []
    for b in batches:
        states = model(
            input_ids=b.input_ids,
            attention_mask=b.attention_mask,
            position_ids=b.position_ids,
            output_hidden_states=True,
            use_cache=False,
        ).hidden_states
        parts.append(torch.stack([torch.einsum("bt,btd->bd", b.weights, h) for h in states]))
    return torch.cat(parts, dim=1)


def wrap_nnsight(model: LlamaForCausalLM) -> Any:
    """nnsight's wrapper around a copy of `model` (it replaces every module's `forward`)."""
    from nnsight import NNsight

    return NNsight(copy.deepcopy(model))


@torch.inference_mode()
def nnsight_hidden_states(wrapped: Any, batches: list[Batch]) -> torch.Tensor:
    """(e): nnsight's `trace`, saving the embeddings' and each block's output, pooled like (b).

    nnsight 0.8 runs the `with` body beside the forward; a value leaves the body only through
    `.save()`, so the list is saved and filled with the modules' outputs (its documented way
    of collecting many). A block's output is its `[batch, seq, d]` hidden state.
    """
    import nnsight

    parts = []
    for b in batches:
        with wrapped.trace(
            input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids
        ):
            saved = nnsight.save([])
            saved.append(wrapped.model.embed_tokens.output)
            for layer in wrapped.model.layers:
                saved.append(layer.output)
        parts.append(torch.stack([torch.einsum("bt,btd->bd", b.weights, h) for h in saved]))
    return torch.cat(parts, dim=1)


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def rss_mb(n: int, live: bool) -> tuple[float, float]:
    """(RSS before, peak RSS during) (b) on `n` sequences, in a fresh process, in MB.

    `live`: glibc returns freed memory at once, so RSS follows live memory.
    """
    env = {**os.environ, **({"MALLOC_TRIM_THRESHOLD_": "0"} if live else {})}
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(n)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    before, peak = out.stdout.split()[-2:]
    return float(before), float(peak)


def rss_child(n: int) -> None:
    """Build the model and data, run (b) on `n` sequences, print RSS before and peak during it.

    The peak is VmHWM reset just before (b) (`clear_refs`), not `ru_maxrss`: that one survives
    exec, so a child of a big parent would report the parent's size.
    """
    model = build_model()
    data, _ = build_data(n)
    tokenizer = build_tokenizer()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current RSS
    before = _status_mb("VmRSS")
    with tempfile.TemporaryDirectory() as tmp:
        run_b(model, tokenizer, data, Path(tmp) / "rss.h5")
    print(f"{before:.1f} {_status_mb('VmHWM'):.1f}")


def setup(
    n: int,
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast, LabelledExamples, list[Batch]]:
    """Model, tokenizer, `n` sequences and their batches, after one warm-up forward."""
    model, tokenizer = build_model(), build_tokenizer()
    data, ids = build_data(n)
    encoded = encode(tokenizer, data.prompts, data.responses, SEQ_LEN)
    assert [e.ids for e in encoded] == ids.tolist(), "the tokenizer must reproduce the ids"
    batches = [collate(encoded[i : i + BATCH], 0, None, "mean") for i in range(0, n, BATCH)]
    body_forward(model, batches[:1])  # warm up allocator and kernels
    return model, tokenizer, data, batches


def alternate(pairs: int) -> None:
    """(a) and (b) in turn `pairs` times each on 64 sequences; print the ratio of the medians."""
    n = 64
    model, tokenizer, data, batches = setup(n)
    runs: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
    with tempfile.TemporaryDirectory() as tmp:
        methods: dict[str, Callable[[], object]] = {
            "a": lambda: body_forward(model, batches),
            "b": lambda: run_b(model, tokenizer, data, Path(tmp) / "alt.h5"),
        }
        for i in range(pairs):
            for key in "ab" if i % 2 == 0 else "ba":
                wall, cpu, _ = timed(methods[key])
                runs[key].append((wall, cpu))
    print(f"{n} sequences x {SEQ_LEN} tokens, batch {BATCH}, (a) and (b) alternated {pairs} times")
    for key in "ab":
        print(f"({key}) wall/cpu s: " + "  ".join(f"{w:.2f}/{c:.2f}" for w, c in runs[key]))
    wall_a, wall_b = (float(np.median([w for w, _ in runs[k]])) for k in "ab")
    cpu_a, cpu_b = (float(np.median([c for _, c in runs[k]])) for k in "ab")
    print(f"median (b)/(a): wall {wall_b / wall_a:.3f}, cpu {cpu_b / cpu_a:.3f} (goal <= 1.05)")


def main() -> None:
    """Time (a)-(d) side by side, then the peak RSS of (b) at 1x, 4x and 16x the data."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 sequences: a smoke run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds")
    parser.add_argument("--alternate", type=int, default=None, help="(b)/(a) only, K pairs")
    parser.add_argument("--memory", action="store_true", help="the peak RSS lines only")
    parser.add_argument("--no-memory", action="store_true", help="the timing table only")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(THREADS)
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return
    if args.alternate is not None:
        alternate(args.alternate)
        return
    n = 32 if args.quick else 256
    if args.memory:
        print_memory(n)
        return
    model, tokenizer, data, batches = setup(n)
    bridge = boot_bridge(model)
    layers = list(range(13))
    pooled_hidden_states_tl(bridge, batches[0], layers)  # warm up the bridge

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "bench.h5"
        methods: dict[str, Callable[[], object]] = {
            "a": lambda: body_forward(model, batches),
            "b": lambda: run_b(model, tokenizer, data, cache),
            "c": lambda: torch.cat(
                [pooled_hidden_states_tl(bridge, b, layers) for b in batches], 1
            ),
            "d": lambda: hf_hidden_states(model, batches),
        }
        if importlib.util.find_spec("nnsight") is not None:
            wrapped = wrap_nnsight(model)
            nnsight_hidden_states(wrapped, batches[:1])  # warm up
            methods["e"] = lambda: nnsight_hidden_states(wrapped, batches)
        runs: dict[str, list[tuple[float, float]]] = {key: [] for key in methods}
        out: dict[str, object] = {}
        for r in range(args.rounds):
            k = r % len(methods)
            keys = list(methods)[k:] + list(methods)[:k]  # each round starts one later
            for key in keys:
                wall, cpu, out[key] = timed(methods[key])
                runs[key].append((wall, cpu))
        ours = torch.from_numpy(read_activations(cache).acts)
    (t_a, c_a), (t_b, c_b), (t_c, c_c), (t_d, c_d) = (min(runs[k]) for k in "abcd")
    tl, hf = out["c"], out["d"]
    assert isinstance(tl, torch.Tensor) and isinstance(hf, torch.Tensor)
    rows = [
        ("(a) bare decoder body forward (model.model)", t_a, c_a, "-"),
        ("(b) valuetrace extract_to_cache (13 layers, mean, HDF5)", t_b, c_b, "0"),
        (
            "(c) transformer-lens run_with_cache (names filter)",
            t_c,
            c_c,
            f"{(tl - ours).abs().max().item():.1e}",
        ),
        (
            "(d) HF output_hidden_states (full forward + logits)",
            t_d,
            c_d,
            f"{(hf[:12] - ours[:12]).abs().max().item():.1e}",
        ),
    ]
    if "e" in runs:
        t_e, c_e = min(runs["e"])
        nn = out["e"]
        assert isinstance(nn, torch.Tensor)
        diff = f"{(nn - ours).abs().max().item():.1e}"
        rows.append(("(e) nnsight trace, .output of each block (+ logits)", t_e, c_e, diff))
    print(
        f"load average {os.getloadavg()[0]:.1f} | "
        f"{n} sequences x {SEQ_LEN} tokens, batch {BATCH}, {torch.get_num_threads()} threads, "
        f"best of {args.rounds} interleaved rounds, "
        f"Llama 768/12L/12H/MLP 3072/vocab {VOCAB}, fp32, torch {torch.__version__}"
    )
    print(
        f"{'method':<58}{'seconds':>9}{'ms/seq':>9}{'cpu s':>9}{'max |diff| vs (b)':>19}"
        "   every round (s)"
    )
    for (name, seconds, cpu, diff), key in zip(rows, runs, strict=True):
        every = " ".join(f"{wall:.1f}" for wall, _ in runs[key])
        print(f"{name:<58}{seconds:>9.2f}{1000 * seconds / n:>9.1f}{cpu:>9.2f}{diff:>19}   {every}")
    if "e" not in runs:
        print("(e) nnsight: not installed here (`pip install -e .[bench]`); skipped")
    nn_ratio = f"(e)/(b) = {min(runs['e'])[0] / t_b:.2f}   " if "e" in runs else ""
    print(
        f"ratios (wall): (b)/(a) = {t_b / t_a:.3f} (goal <= 1.05)   (c)/(b) = {t_c / t_b:.2f}   "
        f"(d)/(b) = {t_d / t_b:.2f}   {nn_ratio}| (cpu): (b)/(a) = {c_b / c_a:.3f}"
    )
    if not args.no_memory:
        print_memory(n)


def print_memory(n: int) -> None:
    """Peak RSS of (b) at `n`, 4n and 16n sequences, and the ratios to the first, per malloc."""
    print(
        f"load average {os.getloadavg()[0]:.1f} | peak RSS during (b), fresh process each "
        "(RSS with model and data loaded before it), ratio to the 1x peak (goal <= 1.10):"
    )
    for live, label in (
        (False, "default malloc"),
        (True, "MALLOC_TRIM_THRESHOLD_=0 (live)"),
    ):
        cells = []
        one = 0.0
        for scale in (1, 4, 16):
            before, peak = rss_mb(scale * n, live)
            one = one or peak
            ratio = "" if scale == 1 else f" {peak / one:.3f}x"
            cells.append(f"{scale * n} seqs {peak:.0f} MB (before {before:.0f}){ratio}")
        print(f"  {label:<32} " + "   ".join(cells))


if __name__ == "__main__":
    main()
