"""SmolLM2-135M-Instruct: extraction and training speed of valuetrace against the plain tools.

How to read the output. Two tables, measured side by side in one run on the real model (30
blocks, hidden 576, vocab 49,152, fp32, 2 threads by default), obtained as valuetrace obtains it
(`valuetrace models fetch smollm2-135m-instruct`, or `--model PATH`).

Extraction, every hidden-state layer (31: embeddings + 30 blocks) of N sequences of exactly
SEQ_LEN tokens (real text from the demo corpora, cut to length), mean pooling:

    (a) bare forward of the decoder body (`model.model`, no LM head): the floor
    (b) valuetrace `extract_to_cache`: tokenise, hooks, pool, write the HDF5 cache
    (c) transformer-lens `run_with_cache` (names filter; it always computes the LM head)
    (d) HF `output_hidden_states=True` (full forward with logits)
    (e) nnsight 0.8 `trace`, the embeddings' and each block's `.output` (on a copy of the model:
        nnsight replaces every module's `forward`), only where it is installed (a benchmark-only
        extra: `pip install -e .[bench]`)

Ratios: (b)/(a) (goal <= 1.05), (c)/(b), (d)/(b), (e)/(b). Each method runs once per round, in a
rotated order, for --rounds rounds; the best round counts and every round is listed.

Training, tokens per second (non-padding tokens the optimizer saw / seconds inside
`trainer.train()` or the loop), same model, data, batch, length, learning rate and steps:

    (f)  plain PyTorch loop: fixed packed batches, forward + backward + AdamW: the floor
    (g)  plain TRL `SFTTrainer` as its docs show it (packing with TRL's default "bfd" strategy,
         TRL's fused chunked LM-head loss)
    (h=) valuetrace `train_stage` with TRL's settings (packing_strategy bfd, loss_head fused):
         (g)/(h=) is valuetrace's own overhead over TRL (goal <= 1.05)
    (h)  valuetrace `train_stage` with its own defaults (what `valuetrace train` runs: packed
         documents "wrapped" into [batch, length] rows, the LM-head loss chosen per device):
         (h)/(g) is the speed-up of those defaults

for LoRA (r 16, all linear layers) and full fine-tuning; (f)/(g) is the Trainer's own overhead.
`--sweep` adds the plain loop at other (batch x length) shapes of the same token count.

    python benchmarks/bench_smollm2.py            # 256 x 128 extraction, 20 steps (~30 min)
    python benchmarks/bench_smollm2.py --no-extraction --steps 12   # the training table only
    python benchmarks/bench_smollm2.py --quick    # 16 sequences, 2 steps: a smoke run
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer

from valuetrace.activations.examples import LabelledExamples
from valuetrace.activations.pooling import collate, encode
from valuetrace.activations.store import read_activations
from valuetrace.activations.tl_backend import boot_bridge, pooled_hidden_states_tl
from valuetrace.training.datasets import Document
from valuetrace.training.lora import peft_config
from valuetrace.training.stages import StageRun, train_stage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import BATCH as EXTRACT_BATCH
from bench_extract import (
    body_forward,
    hf_hidden_states,
    nnsight_hidden_states,
    run_b,
    timed,
    wrap_nnsight,
)

from valuetrace.config import LoraConfig, StageConfig
from valuetrace.corpora.demo_data import write_demo_data
from valuetrace.model_sources import BUILTINS, resolve_builtin
from valuetrace.models import load_model, load_tokenizer

SEQ_LEN, BATCH, THREADS, SEED, LR = 128, 8, 2, 0, 2e-4
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def demo_texts(folder: Path) -> list[str]:
    """The demo's compassion and general documents (written by valuetrace, fixed seed)."""
    paths = write_demo_data(folder, seed=SEED)
    rows = [json.loads(x) for p in (paths.compassion_docs, paths.general) for x in p.open()]
    return [r["text"] for r in rows]


def long_texts(tokenizer: PreTrainedTokenizerBase, texts: list[str], n: int) -> list[str]:
    """`n` texts of at least SEQ_LEN tokens each (consecutive documents joined)."""
    out, current = [], ""
    for text in texts:
        current = f"{current} {text}".strip()
        if len(tokenizer(current).input_ids) > SEQ_LEN:
            out.append(current)
            current = ""
            if len(out) == n:
                return out
    raise SystemExit(f"only {len(out)} texts of {SEQ_LEN} tokens; lower N")


def extraction(model: PreTrainedModel, tokenizer, texts: list[str], rounds: int) -> None:
    """Table 1: (a)-(e) on the same sequences."""
    n = len(texts)
    data = LabelledExamples(
        [f"s{i}" for i in range(n)], [""] * n, texts, np.arange(n) % 2, [str(i) for i in range(n)]
    )
    encoded = encode(tokenizer, data.prompts, texts, SEQ_LEN)
    assert all(len(e.ids) == SEQ_LEN for e in encoded), "every sequence must be SEQ_LEN long"
    pad, bos = tokenizer.pad_token_id, tokenizer.bos_token_id
    batches = [
        collate(encoded[i : i + EXTRACT_BATCH], pad, bos, "mean")
        for i in range(0, n, EXTRACT_BATCH)
    ]
    layers = list(range(model.config.num_hidden_layers + 1))
    bridge = boot_bridge(model)
    body_forward(model, batches[:1])
    pooled_hidden_states_tl(bridge, batches[0], layers)  # warm up
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "bench.h5"
        methods = {
            "a": lambda: body_forward(model, batches),
            "b": lambda: run_b(model, tokenizer, data, cache),
            "c": lambda: torch.cat(
                [pooled_hidden_states_tl(bridge, b, layers) for b in batches], 1
            ),
            "d": lambda: hf_hidden_states(model, batches),
        }
        nnsight = importlib.util.find_spec("nnsight") is not None
        if nnsight:
            wrapped = wrap_nnsight(model)
            nnsight_hidden_states(wrapped, batches[:1])  # warm up
            methods["e"] = lambda: nnsight_hidden_states(wrapped, batches)
        runs: dict[str, list[float]] = {k: [] for k in methods}
        out: dict[str, object] = {}
        keys = list(methods)
        for r in range(rounds):
            for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
                wall, _, out[key] = timed(methods[key])
                runs[key].append(wall)
        ours = torch.from_numpy(read_activations(cache).acts)
    best = {k: min(v) for k, v in runs.items()}
    names = {
        "a": "(a) bare decoder body forward (model.model)",
        "b": f"(b) valuetrace extract_to_cache ({len(layers)} layers, HDF5)",
        "c": "(c) transformer-lens run_with_cache",
        "d": "(d) HF output_hidden_states (+ logits)",
        "e": "(e) nnsight trace, .output of each block",
    }
    print(
        f"\nExtraction: {n} sequences x {SEQ_LEN} tokens, batch {EXTRACT_BATCH}, best of {rounds}"
    )
    print(f"{'method':<52}{'seconds':>9}{'tokens/s':>10}{'max|diff| vs (b)':>18}   rounds (s)")
    for key in methods:
        diff = "-" if key in "ab" else _diff(out[key], ours, key)
        every = " ".join(f"{w:.1f}" for w in runs[key])
        print(
            f"{names[key]:<52}{best[key]:>9.2f}{n * SEQ_LEN / best[key]:>10.0f}{diff:>18}   {every}"
        )
    if not nnsight:
        print("(e) nnsight: not installed here (`pip install -e .[bench]`); skipped")
    ratios = "   ".join(f"({k})/(b) = {best[k] / best['b']:.2f}" for k in methods if k in "cde")
    print(f"ratios: (b)/(a) = {best['b'] / best['a']:.3f} (goal <= 1.05)   {ratios}")


def _diff(other: object, ours: torch.Tensor, key: str) -> str:
    assert isinstance(other, torch.Tensor)
    upto = -1 if key == "d" else None  # HF's last hidden state is after the final norm
    return f"{(other[:upto] - ours[:upto]).abs().max().item():.1e}"


def stage_config(method: str, steps: int, **settings: str) -> StageConfig:
    """The valuetrace stage: packed documents, 8 x 128, cosine schedule, `steps` steps;
    `settings` override its packing strategy / loss head (default: valuetrace's own)."""
    return StageConfig(
        name=f"bench_{method}",
        method=method,
        lora=LoraConfig(r=16, alpha=32, dropout=0.05, target_modules=list(ALL_LINEAR)),
        max_steps=steps,
        learning_rate=LR,
        batch_size=BATCH,
        max_length=SEQ_LEN,
        warmup_ratio=0.0,
        **settings,
    )


TRL_SETTINGS = {"packing_strategy": "bfd", "loss_head": "fused"}


def plain_loop(model: PreTrainedModel, ids: torch.Tensor, method: str, batch: int) -> float:
    """(f): forward + backward + AdamW on fixed packed batches; tokens per second."""
    if method == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, peft_config(stage_config("lora", 1), model))
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    start = time.perf_counter()
    for i in range(0, len(ids), batch):
        chunk = ids[i : i + batch]
        model(input_ids=chunk, labels=chunk).loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
    return ids.numel() / (time.perf_counter() - start)


def plain_trl(model, tokenizer, texts: list[str], method: str, steps: int, tmp: Path) -> float:
    """(g): TRL SFTTrainer as its docs show it, same settings; tokens per second of train()."""
    args = SFTConfig(
        output_dir=str(tmp / "trl"),
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        learning_rate=LR,
        lr_scheduler_type="cosine",
        max_length=SEQ_LEN,
        packing=True,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=max(1, steps // 2),
        include_num_input_tokens_seen="non_padding",
        seed=SEED,
        disable_tqdm=True,
    )
    peft = peft_config(stage_config("lora", steps), model) if method == "lora" else None
    trainer = SFTTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        peft_config=peft,
        train_dataset=Dataset.from_list([{"text": t} for t in texts]),
    )
    start = time.perf_counter()
    trainer.train()
    return trainer.state.num_input_tokens_seen / (time.perf_counter() - start)


def training(model, tokenizer, texts: list[str], steps: int, sweep: bool) -> None:
    """Table 2: (f)-(h) for LoRA and full fine-tuning."""
    ids = torch.tensor(
        [tokenizer(t).input_ids[:SEQ_LEN] for t in long_texts(tokenizer, texts, steps * BATCH)]
    )
    print(
        f"\nTraining: {steps} steps of {BATCH} x {SEQ_LEN} tokens, lr {LR}, fp32, packed documents"
    )
    print(
        "tokens/s: (f) plain loop, (g) plain TRL (its defaults: bfd packing, fused LM head), "
        "(h=) valuetrace stage with TRL's settings, (h) valuetrace stage with its own "
        "(wrapped packing, LM-head loss chosen per device)"
    )
    print(
        f"{'method':<7}{'(f)':>9}{'(g)':>9}{'(h=)':>12}{'(h)':>11}{'(g)/(h=)':>11}{'(h)/(g)':>9}"
        f"{'(f)/(g)':>9}   (h) prepare + save / train s"
    )
    for method in ("lora", "full"):
        loop = plain_loop(copy.deepcopy(model), ids, method, BATCH)
        with tempfile.TemporaryDirectory() as tmp:
            trl = plain_trl(copy.deepcopy(model), tokenizer, texts, method, steps, Path(tmp))
            runs = {}
            for name, settings in (("same", TRL_SETTINGS), ("own", {})):
                t0 = time.perf_counter()
                result = train_stage(
                    copy.deepcopy(model),
                    tokenizer,
                    [Document(t) for t in texts],
                    stage_config(method, steps, **settings),
                    StageRun(seed=SEED, save_steps=10_000, logging_steps=max(1, steps // 2)),
                    Path(tmp) / name,
                    use_cpu=True,
                    progress=False,
                )
                runs[name] = (result, time.perf_counter() - t0)
        same, own = runs["same"][0].tokens_per_second, runs["own"][0].tokens_per_second
        result, total = runs["own"]
        print(
            f"{method:<7}{loop:>9.0f}{trl:>9.0f}{same:>12.0f}{own:>11.0f}"
            f"{trl / same:>11.3f}{own / trl:>9.3f}{loop / trl:>9.3f}"
            f"   {total - result.train_seconds:.1f} / {result.train_seconds:.1f}"
        )
    if sweep:
        print("\nplain LoRA loop on the same tokens, other batch x length shapes (tokens/s):")
        flat = ids.flatten()
        for batch, length in ((16, 64), (8, 128), (4, 128), (4, 256)):
            shaped = flat[: (len(flat) // length) * length].view(-1, length)
            speed = plain_loop(copy.deepcopy(model), shaped, "lora", batch)
            print(f"  {batch:>3} x {length:<4} {speed:>8.0f}")


def main() -> None:
    """Load SmolLM2, then print the extraction table and the training table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 sequences, 2 steps: smoke run")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: built-in)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--sweep", action="store_true", help="plain loop at other shapes")
    parser.add_argument("--steps", type=int, default=20, help="training steps per measurement")
    parser.add_argument("--no-extraction", action="store_true", help="the training table only")
    parser.add_argument("--no-training", action="store_true", help="the extraction table only")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    torch.set_num_threads(args.threads)
    path = args.model or resolve_builtin(BUILTINS["smollm2-135m-instruct"]).path
    model, tokenizer = load_model(path), load_tokenizer(path)
    n, steps = (16, 2) if args.quick else (256, args.steps)
    print(
        f"load average {os.getloadavg()[0]:.1f} | {path} | {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        texts = demo_texts(Path(tmp) / "data")
    if not args.no_extraction:
        rounds = 1 if args.quick else args.rounds
        extraction(model, tokenizer, long_texts(tokenizer, texts, n), rounds)
    if not args.no_training:
        training(model, tokenizer, texts, steps, args.sweep)


if __name__ == "__main__":
    main()
