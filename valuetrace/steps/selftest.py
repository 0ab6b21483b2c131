"""Step `selftest`: the planted weakening / rotation / drift cases on any Llama-style model.

Without a model, a small randomly initialised Llama with a tokenizer trained on the neutral
texts is used (offline, seconds). With `--model`, a hub id or local folder is loaded as the
pipeline loads checkpoints. The planted layers default to two depths, about a third and two
thirds of the way through the model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.analysis.planted import SelfTestCase, planted_selftest
from valuetrace.architecture import decoder_layers
from valuetrace.config import MAX_SEED
from valuetrace.errors import ConfigError
from valuetrace.models import load_model, load_tokenizer
from valuetrace.training.scratch import build_scratch_model, train_tokenizer

SUBJECTS = ("The clerk", "A neighbour", "The driver", "My cousin", "The teacher")
ACTIONS = ("parked the van", "read the notice", "fixed the gate", "sorted the mail")
PLACES = ("by the station", "after lunch", "near the library")
SCRATCH = "scratch"


def neutral_texts(n: int = 40) -> list[str]:
    """`n` short, value-neutral sentences (distinct) to carry the planted markers."""
    texts = [f"{s} {a} {p}." for s in SUBJECTS for a in ACTIONS for p in PLACES]
    if not 10 <= n <= len(texts):
        raise ConfigError(f"the self-test uses 10 to {len(texts)} texts; asked for {n}.")
    return texts[:n]


def _scratch(texts: Sequence[str], seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tokenizer = train_tokenizer(list(texts), vocab_size=400)
    model = build_scratch_model(
        tokenizer,
        hidden_size=64,
        num_layers=4,
        num_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
        seed=seed,
    )
    return model.eval(), tokenizer


def default_layers(n_blocks: int) -> list[int]:
    """Two planted layers, about a third and two thirds deep (both ≥ 1, distinct)."""
    first = max(1, n_blocks // 3)
    return [first, max(first + 1, (2 * n_blocks) // 3)]


def selftest(
    model_name: str | None = None,
    *,
    layers: Sequence[int] | None = None,
    json_path: Path | None = None,
    n_texts: int = 40,
    n_boot: int = 1000,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> list[SelfTestCase]:
    """Run every planted case at each layer; write `json_path` (a list of case objects).

    Raises:
        ConfigError: a bad text count or seed; CheckpointError: the model cannot be loaded;
        DataError: a layer outside the model or a model that is not Llama-style.
    """
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"the self-test's seed must lie in 0..{MAX_SEED}; got {seed}.")
    texts = neutral_texts(n_texts)
    name = model_name or SCRATCH
    if name == SCRATCH:
        model, tokenizer = _scratch(texts, seed)
    else:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model, tokenizer = load_model(name, device=device), load_tokenizer(name)
    ks = list(layers) if layers else default_layers(len(decoder_layers(model)))
    results = planted_selftest(
        model, tokenizer, texts, ks, model_name=name, n_boot=n_boot, seed=seed, dtype=dtype
    )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return results


def format_results(results: Sequence[SelfTestCase]) -> str:
    """One line per case: PASS/FAIL, case, planted and found layer, and the account."""
    return "\n".join(
        f"{'PASS' if r.passed else 'FAIL'}  {r.case:<9} planted at {r.planted_layer:<3} "
        f"found at {r.found_layer!s:<4} {r.detail}"
        for r in results
    )
