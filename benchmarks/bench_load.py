"""Speed under load: a short LoRA stage alone and beside one competing CPU-bound process.

How to read the output. Users run valuetrace on shared nodes. This script times a short
valuetrace LoRA stage (`training.stages.train_stage`: SmolLM2-135M-Instruct, or with `--tiny`
the 2-block test model; r 16 on all linear layers, packed documents) in a fresh process per
setting, once alone and once beside one competing CPU-bound process (a Python busy loop the
script starts before the stage and kills after it; `--nice` runs it at nice 19), under:

    auto      valuetrace's default: torch's threads = every core (`threads: auto`)
    N         `threads: N` in the config, for cores-1 and 1 (`runtime.set_threads`)
    passive   every core, with OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep at barriers
              instead of spinning; set before torch starts; the CLI's default)
    spin N    every core, with GOMP_SPINCOUNT=N and no wait policy: libgomp's threads spin N
              iterations at a barrier, then sleep (its default is 300,000; PASSIVE is 0), for
              each N in `--spin`

Columns: tokens/s of `trainer.train()` alone and loaded, and loaded/alone (1.0 = unaffected;
with one competitor on 2 cores, a fair share would be ~0.5). The header gives the load average
before the first run: other processes on the machine count as load too.

    python benchmarks/bench_load.py --steps 2              # SmolLM2, ~4 minutes on 2 cores
    python benchmarks/bench_load.py --tiny --steps 20      # the test model, ~1 minute
    python benchmarks/bench_load.py --spin 1000,10000      # add two spin counts
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SEQ_LEN, BATCH, SEED = 64, 4, 0
BUSY_LOOP = "while True: pass"
SPIN_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # only a setting's own env sets these


def child(args: argparse.Namespace) -> None:
    """Run one short LoRA stage under `--threads`; print its tokens/s as one JSON line."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from valuetrace.config import LoraConfig, StageConfig
    from valuetrace.runtime import set_threads
    from valuetrace.training.datasets import Document
    from valuetrace.training.stages import StageRun, train_stage

    threads = set_threads("auto" if args.threads == "auto" else int(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, texts = _model_and_texts(args.tiny, Path(tmp))
        stage = StageConfig(
            name="load",
            method="lora",
            lora=LoraConfig(
                r=16,
                alpha=32,
                dropout=0.05,
                target_modules=[
                    "q_proj",
                    "k_proj",
                    "v_proj",
                    "o_proj",
                    "gate_proj",
                    "up_proj",
                    "down_proj",
                ],
            ),
            max_steps=args.steps,
            learning_rate=2e-4,
            batch_size=BATCH,
            max_length=SEQ_LEN,
            warmup_ratio=0.0,
        )
        result = train_stage(
            model,
            tokenizer,
            [Document(t) for t in texts],
            stage,
            StageRun(seed=SEED, save_steps=10**6, logging_steps=10**6),
            Path(tmp) / "stage",
            use_cpu=True,
            progress=False,
        )
    print(json.dumps({"tokens_per_s": result.tokens_per_second, "threads": threads}))


def _model_and_texts(tiny: bool, tmp: Path) -> tuple[Any, Any, list[str]]:
    """The model, its tokenizer and the demo's documents."""
    from valuetrace.corpora.demo_data import write_demo_data

    paths = write_demo_data(tmp / "data", seed=SEED)
    texts = [json.loads(line)["text"] for line in paths.compassion_docs.open()]
    if tiny:
        from valuetrace.training.scratch import build_scratch_model, train_tokenizer

        tokenizer = train_tokenizer(texts, vocab_size=400)
        model = build_scratch_model(
            tokenizer,
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            seed=SEED,
        )
        return model, tokenizer, texts
    from valuetrace.model_sources import BUILTINS, resolve_builtin
    from valuetrace.models import load_model, load_tokenizer

    path = resolve_builtin(BUILTINS["smollm2-135m-instruct"]).path
    return load_model(path), load_tokenizer(path), texts


def run_setting(args: argparse.Namespace, threads: str, env: dict[str, str], loaded: bool) -> str:
    """tokens/s of one stage in a fresh process (formatted), beside a busy loop if `loaded`."""
    competitor = None
    if loaded:
        prefix = ["nice", "-n", "19"] if args.nice else []
        competitor = subprocess.Popen([*prefix, sys.executable, "-c", BUSY_LOOP])
    command = [
        sys.executable,
        __file__,
        "--child",
        "--threads",
        threads,
        "--steps",
        str(args.steps),
    ]
    try:
        done = subprocess.run(
            command + (["--tiny"] if args.tiny else []),
            capture_output=True,
            text=True,
            env={**{k: v for k, v in os.environ.items() if k not in SPIN_VARS}, **env},
            timeout=args.timeout,
            check=True,
        )
        return f"{json.loads(done.stdout.strip().splitlines()[-1])['tokens_per_s']:.0f}"
    except subprocess.TimeoutExpired:
        return f">{args.timeout}s"
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()


def main() -> None:
    """Every setting alone and loaded, one fresh process each; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the 2-block test model")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps of 4 x 64 tokens")
    parser.add_argument("--nice", action="store_true", help="run the competitor at nice 19")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per stage at most")
    parser.add_argument(
        "--spin", default="", help="comma-separated GOMP_SPINCOUNT values to add as settings"
    )
    parser.add_argument("--threads", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    cores = os.cpu_count() or 1
    settings: dict[str, tuple[str, dict[str, str]]] = {"auto": ("auto", {})}
    for n in sorted({max(1, cores - 1), 1}, reverse=True):
        settings[str(n)] = (str(n), {})
    settings["passive"] = ("auto", {"OMP_WAIT_POLICY": "PASSIVE"})
    for count in filter(None, args.spin.split(",")):
        settings[f"spin {count}"] = ("auto", {"GOMP_SPINCOUNT": count})
    print(
        f"load average {os.getloadavg()[0]:.1f} on {cores} cores | "
        f"{'tiny model' if args.tiny else 'SmolLM2-135M-Instruct'} LoRA stage, {args.steps} "
        f"steps of {BATCH} x {SEQ_LEN} | competitor: one busy loop"
        + (" at nice 19" if args.nice else "")
    )
    print(f"{'setting':<10}{'alone tok/s':>13}{'loaded tok/s':>14}{'loaded/alone':>14}")
    start = time.perf_counter()
    for name, (threads, env) in settings.items():
        alone = run_setting(args, threads, env, loaded=False)
        loaded = run_setting(args, threads, env, loaded=True)
        ratio = (
            f"{float(loaded) / float(alone):.2f}" if alone.isdigit() and loaded.isdigit() else "-"
        )
        print(f"{name:<10}{alone:>13}{loaded:>14}{ratio:>14}", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
