"""A shared chat prefix run once: the SmolLM2 config's extract step on one stage, before/after.

How to read the output. The SmolLM2 config (`valuetrace/configs/smollm2-135m.yaml`: chat
template on, `response` pooling, batch 8, max_length 128) extracts its probe sets and its
behaviour items under every stage. This script builds that config's real data (from the
shared data folder, as `valuetrace run` does) into a temporary folder and extracts the same
sets, with the config's settings, from the base model (SmolLM2-135M-Instruct), two ways in turn:

    whole   every row runs whole (what extraction did before shared prefixes: the prefix
            length threshold set out of reach)
    shared  the tokens every row of a batch starts with (the template's default system turn)
            run once per batch, the rest on top of their cached keys and values

Each round runs both, order swapped every other round; the table gives each one's every
round, the median and the ratio of the medians, the padded tokens each way feeds through the
body, and the largest difference between the two caches' pooled vectors (goal <= 1e-5 scaled
by the layer's magnitude; SmolLM2's residual stream reaches |x| ~ 600). The extract step of the
config runs this for seven checkpoints, so its time scales by the same ratio.

    python benchmarks/bench_prefix.py --rounds 2      # every row: ~25 minutes on 2 busy cores
    python benchmarks/bench_prefix.py --rounds 2 --limit 64   # 64 rows of each set
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from valuetrace.activations import extract
from valuetrace.activations.examples import LabelledExamples, load_labelled
from valuetrace.activations.pooling import collate, encode
from valuetrace.activations.store import read_activations
from valuetrace.analysis.eval_items import behaviour_examples
from valuetrace.config import load_config, resolve_data_path
from valuetrace.corpora.real_data import RealDataSizes, write_real_data
from valuetrace.model_sources import BUILTINS, resolve_builtin
from valuetrace.models import load_model, load_tokenizer

CONFIG = Path(__file__).resolve().parents[1] / "valuetrace" / "configs" / "smollm2-135m.yaml"


def first_rows(examples: LabelledExamples, n: int) -> LabelledExamples:
    """The first `n` rows of a set (a shorter run; the rows and their order are the set's)."""
    return LabelledExamples(
        examples.ids[:n],
        examples.prompts[:n],
        examples.responses[:n],
        None if examples.labels is None else examples.labels[:n],
        examples.groups[:n],
        None if examples.scores is None else examples.scores[:n],
    )


def fed_tokens(sets: dict, tokenizer, config, threshold: int) -> int:
    """Padded tokens the body runs for every set's batches with a given sharing threshold."""
    ext, total = config.extract, 0
    old, extract.MIN_SHARED_TOKENS = extract.MIN_SHARED_TOKENS, threshold
    try:
        for examples in sets.values():
            encoded = encode(
                tokenizer, examples.prompts, examples.responses, ext.max_length, chat=True
            )
            for idx in extract.length_batches([len(e.ids) for e in encoded], ext.batch_size):
                batch = collate([encoded[i] for i in idx], tokenizer.pad_token_id, None, "last")
                shared = extract.shared_length(batch)
                total += shared + batch.input_ids[:, shared:].numel()
    finally:
        extract.MIN_SHARED_TOKENS = old
    return total


def main() -> None:
    """Time the config's extraction of one stage with and without shared prefixes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None, help="checkpoint folder (default: built-in)")
    parser.add_argument("--limit", type=int, default=None, help="first N rows of each set")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(args.threads)
    path = args.model or resolve_builtin(BUILTINS["smollm2-135m-instruct"]).path
    model, tokenizer = load_model(path), load_tokenizer(path)
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(CONFIG, run_dir=str(Path(tmp) / "run"))
        sizes = RealDataSizes(**config.real_data_sizes)
        write_real_data(
            Path(config.real_data_dir), config.paths.data, seed=config.seed, sizes=sizes
        )
        sets = {p.name: load_labelled(resolve_data_path(p.source, config)) for p in config.probes}
        sets[config.paths.behaviour_set] = behaviour_examples(config)
        if args.limit is not None:
            sets = {name: first_rows(examples, args.limit) for name, examples in sets.items()}
        ext = config.extract
        thresholds = {"whole": 10**9, "shared": extract.MIN_SHARED_TOKENS}
        times: dict[str, list[float]] = {k: [] for k in thresholds}
        for r in range(args.rounds):
            for how in ("whole", "shared") if r % 2 == 0 else ("shared", "whole"):
                extract.MIN_SHARED_TOKENS = thresholds[how]
                start = time.perf_counter()
                for name, examples in sets.items():
                    extract.extract_to_cache(
                        model,
                        tokenizer,
                        examples,
                        Path(tmp) / f"{how}-{name}.h5",
                        chat=True,
                        provenance={"set": name, "dtype": ext.dtype},
                        pooling=ext.pooling,
                        batch_size=ext.batch_size,
                        max_length=ext.max_length,
                        layers=ext.layers,
                        overwrite=True,
                        progress=False,
                    )
                times[how].append(time.perf_counter() - start)
                print(f"round {r + 1} {how}: {times[how][-1]:.1f} s", flush=True)
        extract.MIN_SHARED_TOKENS = thresholds["shared"]
        worst = 0.0
        for name in sets:
            whole = read_activations(Path(tmp) / f"whole-{name}.h5").acts
            shared = read_activations(Path(tmp) / f"shared-{name}.h5").acts
            scale = np.maximum(1.0, np.abs(whole).max(axis=(1, 2)))[:, None, None]
            worst = max(worst, float((np.abs(shared - whole) / scale).max()))
        tokens = {k: fed_tokens(sets, tokenizer, config, v) for k, v in thresholds.items()}
    rows = sum(len(s) for s in sets.values())
    print(
        f"load average {os.getloadavg()[0]:.1f} | {path} | {torch.get_num_threads()} threads | "
        f"SmolLM2 config's sets {', '.join(f'{k} {len(v)}' for k, v in sets.items())} "
        f"({rows} rows), chat template, {ext.pooling} pooling, batch {ext.batch_size}, "
        f"max_length {ext.max_length}"
    )
    print(f"{'way':<8}{'median s':>10}{'body tokens':>13}   every round (s)")
    for how in thresholds:
        every = " ".join(f"{t:.1f}" for t in times[how])
        print(f"{how:<8}{statistics.median(times[how]):>10.2f}{tokens[how]:>13}   {every}")
    ratio = statistics.median(times["shared"]) / statistics.median(times["whole"])
    print(
        f"shared/whole: time {ratio:.3f}, body tokens {tokens['shared'] / tokens['whole']:.3f}; "
        f"max |diff| / layer scale {worst:.1e} (goal <= 1e-5)"
    )


if __name__ == "__main__":
    main()
