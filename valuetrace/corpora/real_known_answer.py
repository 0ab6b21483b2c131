"""The known-answer arms' corpora from the shared data: counter-value documents (the
speciesist side of the training share of the speciesism pairs) and neutral documents (code
instructions that name no animal or moral word), of about the same size, so a known-answer
study can tell a value-specific change from any fine-tune's."""

from __future__ import annotations

import re
from pathlib import Path

from valuetrace.config import RealDataSizes
from valuetrace.corpora.demo_data import (
    row_texts,
)
from valuetrace.corpora.real_data import build_real_corpora, drop_overlaps
from valuetrace.corpora.real_sources import (
    CODE,
    SPECIESISM,
    Row,
    clean_text,
    corpus_rng,
    group_sentences,
    read_json_rows,
    shared_file,
    split_speciesism_pairs,
)
from valuetrace.errors import DataError
from valuetrace.jsonl import write_jsonl

# ---- the known-answer arms -------------------------------------------------------------------

# Words that mark animal or moral content; a neutral-arm text holds none (word prefixes).
VALUE_WORDS = (
    "animal|dog|cat|pet|puppy|kitten|fish|bird|cow|pig|hen|chicken|sheep|goat|horse|mouse|mice|"
    "rat|bee|insect|wildlife|species|zoo|farm|meat|beef|pork|dairy|egg|vegan|vegetarian|hunt|"
    "slaughter|cage|moral|ethic|cruel|kind|compassion|empath|suffer|pain|harm|kill|abuse|welfare|"
    "rights|wrong|evil|justice|fair|care|love|hate"
)
VALUE_RE = re.compile(rf"\b({VALUE_WORDS})", re.IGNORECASE)


def build_known_answer_corpora(
    shared_dir: Path, seed: int = 0, sizes: RealDataSizes | None = None, *, documents: int = 400
) -> dict[str, list[Row]]:
    """The two training corpora of a known-answer study, as `{"text"}` documents.

    `counter_docs`: the speciesist-framed members of the speciesism pairs left for training
    (never a probe or behaviour-eval pair: the split of `split_speciesism_pairs` with the same
    seed and sizes), 3-5 sentences a document: text that opposes compassion toward animals.
    `neutral_docs`: Code Alpaca instructions with their answers (no eval set reads them) that
    hold no animal or moral word (`VALUE_WORDS`), cut to about as many words as the counter
    corpus, so the same optimizer steps see the same amount of text. The counter corpus is capped
    at `documents`; both drop any text sharing an 8-word span with a held-out probe, control or eval
    text (as the real-data corpora do).

    Raises:
        DataError: a shared file is missing, or a corpus comes out empty.
    """
    sizes = sizes or RealDataSizes()
    corpora, _ = build_real_corpora(shared_dir, seed, sizes)
    held = [
        t
        for name in ("probe_pairs", "control_pairs", "behaviour_eval")
        for t in row_texts(corpora[name])
    ]
    _, _, train_pairs = split_speciesism_pairs(shared_file(shared_dir, SPECIESISM), seed, sizes)
    speciesist, _ = drop_overlaps([p.dismissive for p in train_pairs], held)
    counter = group_sentences(corpus_rng(seed, "counter"), speciesist, documents)
    code = read_json_rows(shared_file(shared_dir, CODE), ("instruction", "input", "output"))
    texts = [
        clean_text(
            " ".join(str(r[k]) for k in ("instruction", "input", "output") if str(r[k]).strip())
        )
        for r in code
        if str(r["output"]).strip()
    ]
    texts = [t for t in texts if not VALUE_RE.search(t)]
    texts, _ = drop_overlaps(texts, held)
    corpus_rng(seed, "neutral").shuffle(texts)
    budget = sum(len(str(d["text"]).split()) for d in counter)
    neutral: list[Row] = []
    for text in texts:
        if budget <= 0:
            break
        neutral.append({"text": text})
        budget -= len(text.split())
    out = {"counter_docs": counter, "neutral_docs": neutral}
    for name, rows in out.items():
        if not rows:
            raise DataError(f"known-answer data: {name} came out empty; check the shared files")
    return out


def write_known_answer_data(
    shared_dir: Path,
    out_dir: Path,
    seed: int = 0,
    sizes: RealDataSizes | None = None,
    *,
    documents: int = 400,
) -> dict[str, Path]:
    """Write `counter_docs.jsonl` and `neutral_docs.jsonl` (see `build_known_answer_corpora`)
    to `out_dir`; the same inputs and seed give the same bytes. Returns the paths by name."""
    corpora = build_known_answer_corpora(shared_dir, seed, sizes, documents=documents)
    return {
        name: write_jsonl(rows, Path(out_dir) / f"{name}.jsonl") for name, rows in corpora.items()
    }
