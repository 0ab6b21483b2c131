"""Behaviour evaluation vs extraction of the same stage, on the same rows (issue 13's goal).

How to read the output. One model, one set of rows: `--items` eval items (a prompt with a
compassionate and a dismissive continuation) and `--help-items` helpfulness prompt/response
pairs, as one stage's `valuetrace evaluate` scores them. Every method sees exactly these
prompt+continuation rows, so the token counts are equal by construction:

    (a) extraction: `extract_to_cache` of the same rows, response pooling, every layer, HDF5
        write (what `valuetrace extract` does for one stage)
    (b) evaluation: `behaviour_scores` without greedy answers: length-sorted batches, the
        decoder body once per token (a prompt shared by an item's two continuations once),
        the LM head only at the continuation's positions
    (c) the straightforward scoring valuetrace used before: rows in file order, full logits
        and a log-softmax over the whole vocabulary at every position
    (g) greedy answers to the 8 fixed prompts (`--new-tokens` each), the rest of `evaluate`

Each of (a), (b), (c) runs once per round, in turn (each round starting one method later),
for `--rounds` rounds; the table gives each one's fastest and median round and every round.
The ratio line gives (b)/(a) of the fastest and of the median rounds: the goal is <= 1.0
(evaluation costs no more than extraction), and (b)+(g) over (a) for the whole step.
`max |diff|` checks (b) against (c) per item.
Timings on a shared machine vary by 10% or more: run it on a quiet machine and compare the
ratios of one run, not across runs.

    python benchmarks/bench_evaluate.py                          # random GPT-2-small Llama
    python benchmarks/bench_evaluate.py --model /path/to/hf      # a real checkpoint (SmolLM2)
    python benchmarks/bench_evaluate.py --quick                  # a smoke run
    python benchmarks/bench_evaluate.py --model /path/to/hf --config runs/x/config.yaml
                                       # that run's own eval items and helpfulness pairs,
                                       # formatted as its evaluate step formats them

Random-word rows: the eval items' prompts are shared by their two continuations, which
`behaviour_scores` runs once (`analysis.logprob`); extraction runs each row whole. A real eval
set whose items have no prompt (the SmolLM2 config's minimal pairs) shares nothing: `--config`
measures that case.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.examples import LabelledExamples
from valuetrace.activations.extract import extract_to_cache
from valuetrace.activations.pooling import collate, encode
from valuetrace.analysis.behaviour import (
    GENERATION_PROMPTS,
    ScoringSet,
    behaviour_scores,
    greedy_answers,
)
from valuetrace.models import load_model, load_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import BATCH, PROVENANCE, SEED, THREADS, build_model, build_tokenizer


def words(rng: np.random.Generator, n: int) -> str:
    """`n` random words `t<id>` (one token each under the word-level tokenizer)."""
    return "".join(f" t{i}" for i in rng.integers(1, 30000, size=n))


def build_rows(n_items: int, n_help: int) -> dict[str, list[str]]:
    """Eval items (prompt 24-40 words, continuations 12-30) and helpfulness pairs (prompt 16-40,
    response 40-100): lengths vary like real eval sets, so length sorting has work to do."""
    rng = np.random.default_rng(SEED)

    def span(lo: int, hi: int) -> str:
        return words(rng, int(rng.integers(lo, hi)))

    return {
        "eval_prompts": [span(24, 40) for _ in range(n_items)],
        "compassionate": [span(12, 30) for _ in range(n_items)],
        "dismissive": [span(12, 30) for _ in range(n_items)],
        "help_prompts": [span(16, 40) for _ in range(n_help)],
        "help_responses": [span(40, 100) for _ in range(n_help)],
    }


def config_rows(path: str, n_items: int, n_help: int) -> tuple[dict[str, list[str]], bool, int]:
    """A prepared run's first eval items and helpfulness pairs, its chat flag and max length."""
    from valuetrace.analysis.eval_items import behaviour_items, helpfulness_items, scoring_set
    from valuetrace.config import load_config

    config = load_config(path)
    scored = scoring_set(
        config, behaviour_items(config)[:n_items], helpfulness_items(config)[:n_help]
    )
    fields = ("eval_prompts", "compassionate", "dismissive", "help_prompts", "help_responses")
    return {k: list(getattr(scored, k)) for k in fields}, scored.chat, scored.max_length


def all_rows(rows: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """Every (prompt, continuation) row the evaluation scores, in its order."""
    prompts = rows["eval_prompts"] * 2 + rows["help_prompts"]
    conts = rows["compassionate"] + rows["dismissive"] + rows["help_responses"]
    return prompts, conts


def run_extract(model, tokenizer, rows, path: Path, chat: bool, max_length: int) -> None:
    """(a): extraction of the same rows, every layer, response pooling, HDF5 cache."""
    prompts, conts = all_rows(rows)
    n = len(prompts)
    data = LabelledExamples(
        ids=[f"r{i}" for i in range(n)],
        prompts=prompts,
        responses=conts,
        labels=np.arange(n) % 2,
        groups=[f"g{i // 2}" for i in range(n)],
    )
    extract_to_cache(
        model,
        tokenizer,
        data,
        path,
        chat=chat,
        provenance=PROVENANCE,
        pooling="response",
        batch_size=BATCH,
        max_length=max_length,
        overwrite=True,
        progress=False,
    )


def run_evaluate(model, tokenizer, rows, chat: bool, max_length: int) -> np.ndarray:
    """(b): one stage's behaviour scores without greedy answers; the per-row log-probs."""
    n = len(rows["eval_prompts"])
    result = behaviour_scores(
        model,
        tokenizer,
        ScoringSet(**rows, chat=chat, batch_size=BATCH, max_length=max_length),
        stage="bench",
        eval_source="random words",
        eval_ids=[str(i) for i in range(n)],
        n_boot=1000,
    )
    return np.concatenate([result.preference, result.help_losses])


@torch.inference_mode()
def full_logits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts,
    conts,
    chat: bool,
    max_length: int,
) -> np.ndarray:
    """Mean log-prob per continuation token the straightforward way: file order, full logits."""
    encoded = encode(tokenizer, prompts, conts, max_length, chat=chat)
    out = np.empty(len(encoded))
    for start in range(0, len(encoded), BATCH):
        chunk = encoded[start : start + BATCH]
        batch = collate(chunk, tokenizer.pad_token_id, tokenizer.bos_token_id, "response")
        logits = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
        ).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        token_lp = logp.gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
        mask = (batch.weights[:, 1:] > 0).float()
        out[start : start + len(chunk)] = ((token_lp * mask).sum(-1) / mask.sum(-1)).numpy()
    return out


def run_reference(model, tokenizer, rows, chat: bool, max_length: int) -> np.ndarray:
    """(c): the same numbers as (b) from full logits."""
    n = len(rows["eval_prompts"])
    lp = full_logits(model, tokenizer, *all_rows(rows), chat, max_length)
    return np.concatenate([lp[:n] - lp[n : 2 * n], -lp[2 * n :]])


def main() -> None:
    """Time (a), (b), (c) and (g) on one model and one set of rows; print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a local HF checkpoint (default: random)")
    parser.add_argument("--config", default=None, help="a prepared run's config: its eval rows")
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--help-items", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--quick", action="store_true", help="16 + 16 items, one round")
    args = parser.parse_args()
    if args.quick:
        args.items, args.help_items, args.rounds, args.new_tokens = 16, 16, 1, 8
    torch.set_num_threads(THREADS)
    if args.model:
        model, tokenizer = load_model(args.model), load_tokenizer(args.model)
        name = args.model
    else:
        model, tokenizer = build_model(), build_tokenizer()
        name = "random GPT-2-small-sized Llama (vocab 32000)"
    if args.config:
        rows, chat, max_length = config_rows(args.config, args.items, args.help_items)
        name += f", rows of {args.config}"
    else:
        rows, chat, max_length = build_rows(args.items, args.help_items), False, 256
    encoded = encode(tokenizer, *all_rows(rows), max_length, chat=chat)
    n_tokens = sum(len(e.ids) for e in encoded)
    n_scored = sum(sum(e.response) for e in encoded)
    keys = [
        "(a) extraction, all layers + HDF5",
        "(b) evaluation, head at continuation positions",
        "(c) evaluation, full logits (before)",
    ]
    times: dict[str, list[float]] = {k: [] for k in keys}
    outputs: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        calls = [
            lambda: run_extract(model, tokenizer, rows, Path(tmp) / "a.h5", chat, max_length),
            lambda: run_evaluate(model, tokenizer, rows, chat, max_length),
            lambda: run_reference(model, tokenizer, rows, chat, max_length),
        ]
        for r in range(args.rounds):
            for k in range(3):
                i = (k + r) % 3
                start = time.perf_counter()
                out = calls[i]()
                times[keys[i]].append(time.perf_counter() - start)
                if out is not None:
                    outputs[keys[i]] = out
    start = time.perf_counter()
    greedy_answers(
        model,
        tokenizer,
        [p for _, p in GENERATION_PROMPTS],
        max_new_tokens=args.new_tokens,
        chat=chat,
    )
    t_gen = time.perf_counter() - start
    diff = np.abs(outputs[keys[1]] - outputs[keys[2]]).max()
    print(
        f"load average {os.getloadavg()[0]:.1f} | {name} | {THREADS} threads | batch {BATCH} | "
        f"{2 * args.items + args.help_items} rows, {n_tokens} tokens ({n_scored} scored)"
    )
    print(f"{'method':<50}{'best s':>9}{'median s':>9}{'tokens/s':>10}   every round (s)")
    for key in keys:
        best, median = min(times[key]), float(np.median(times[key]))
        every = " ".join(f"{t:.2f}" for t in times[key])
        print(f"{key:<50}{best:>9.2f}{median:>9.2f}{n_tokens / best:>10.0f}   {every}")
    label = f"(g) greedy answers, 8 prompts x {args.new_tokens} tokens"
    print(f"{label:<50}{t_gen:>9.2f}")
    a, b, c = (min(times[k]) for k in keys)
    median_ratio = np.median(times[keys[1]]) / np.median(times[keys[0]])
    print(
        f"(b)/(a) = {b / a:.2f}x best, {median_ratio:.2f}x median (goal <= 1.0x) | "
        f"((b)+(g))/(a) = {(b + t_gen) / a:.2f}x | "
        f"(c)/(b) = {c / b:.2f}x | max |(b) - (c)| = {diff:.1e}"
    )


if __name__ == "__main__":
    main()
