"""Cross-source agreement of the compassion concept on one model: the transfer matrix per layer.

Builds the four sources (`valuetrace.corpora.concept_data`: speciesism pairs, entity-swap minimal
pairs, empathy essays of held-out respondents, and the model's own answers to ANIMA questions under
a compassionate / dismissive system prompt), extracts every layer with response pooling under the
chat template, and prints `valuetrace.analysis.concept_sources.format_matrix`: per layer, probe of
each source (rows) scored on each source (columns), the diagonal out of fold, with group-bootstrap
intervals, the direction cosines and the surface baselines.

    OMP_NUM_THREADS=1 python benchmarks/concept_sources.py --model smollm2-135m-instruct \\
        --out /tmp/matrix.txt
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from valuetrace.activations.examples import load_labelled
from valuetrace.activations.extract import cache_provenance, extract_to_cache
from valuetrace.activations.store import read_activations
from valuetrace.analysis.concept_sources import SourceData, format_matrix, source_agreement
from valuetrace.config import ConceptSourcesConfig, ProbingConfig
from valuetrace.corpora.concept_data import (
    anima_questions,
    empathy_rows,
    minimal_pair_rows,
    persona_rows,
)
from valuetrace.corpora.real_data import RealDataSizes, build_real_corpora
from valuetrace.jsonl import write_jsonl
from valuetrace.models import load_model, load_tokenizer
from valuetrace.probing.surface import example_texts

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--pairs", type=int, default=100, help="speciesism pairs (2 rows each)")
    parser.add_argument("--empathy-rows", type=int, default=200)
    parser.add_argument("--anima-questions", type=int, default=20, help="0: no persona source")
    parser.add_argument("--anima-new-tokens", type=int, default=32)
    parser.add_argument("--anima-max-words", type=int, default=40, help="skip longer questions")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-chat", action="store_true", help="plain text, no chat template")
    parser.add_argument("--out", type=Path, help="also write the matrix to this file")
    args = parser.parse_args()
    chat = not args.no_chat
    start = time.perf_counter()
    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    corpora, _ = build_real_corpora(args.shared, 0, RealDataSizes(probe_pairs=args.pairs))
    rows = {
        "speciesism": corpora["probe_pairs"],
        "minimal_pairs": minimal_pair_rows(args.shared),
        "empathy": empathy_rows(args.shared, args.empathy_rows, seed=0),
    }
    if args.anima_questions:
        questions = anima_questions(args.shared, args.anima_questions, args.anima_max_words)
        rows["anima_persona"] = persona_rows(
            model, tokenizer, questions, max_new_tokens=args.anima_new_tokens, chat=chat
        )
    generated = time.perf_counter()
    sources: dict[str, SourceData] = {}
    layers: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, source_rows in rows.items():
            examples = load_labelled(write_jsonl(source_rows, Path(tmp) / f"{name}.jsonl"))
            cache = extract_to_cache(
                model,
                tokenizer,
                examples,
                Path(tmp) / f"{name}.h5",
                chat=chat,
                provenance=cache_provenance(
                    model=args.model,
                    model_hash=args.model,
                    tokenizer=tokenizer,
                    examples=examples,
                    dataset=name,
                    pooling="response",
                    dtype="float32",
                    max_length=args.max_length,
                    chat=chat,
                ),
                pooling="response",
                batch_size=args.batch_size,
                max_length=args.max_length,
                progress=False,
            )
            acts = read_activations(cache)
            layers = list(acts.layers)
            texts = example_texts(examples.prompts, examples.responses)
            sources[name] = SourceData(acts.acts, acts.labels, np.asarray(acts.groups), texts)
    extracted = time.perf_counter()
    config = ConceptSourcesConfig(sources=list(sources))
    agreement = source_agreement(
        sources, "speciesism", config, ProbingConfig(), layers=layers, stage=args.model
    )
    text = format_matrix(agreement)
    done = time.perf_counter()
    timing = (
        f"\nwall: {done - start:.0f} s (load + build + generate {generated - start:.0f} s, "
        f"extract {extracted - generated:.0f} s, probe + transfer + surface "
        f"{done - extracted:.0f} s)"
    )
    print(text + timing)
    if args.out:
        args.out.write_text(text + timing + "\n")


if __name__ == "__main__":
    main()
