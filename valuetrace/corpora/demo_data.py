"""Built-in demo corpora: seeded, templated, offline text for the tiny-model demo pipeline.

Everything here is generated from the template tables in `valuetrace/corpora/demo/*.txt` (package
data; their line format is described at the top of each file) and slot fillers, with
``random.Random`` seeded from the user's seed; nothing is copied from an external data set. The
template machinery is in `demo_templates`, the corpora in `demo_documents` (plain documents),
`demo_instructions` (helpfulness and coding rows) and `demo_heldout` (probe, control and behaviour
sets); this module builds them all, checks they are disjoint and writes them with a data card.
Held-out texts (probe pairs, control pairs, behaviour eval) come from template pools that the
training corpora never use, and :func:`write_demo_data` refuses to write if any training text
shares an 8-word span with a held-out text (see :func:`overlapping_spans`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from valuetrace.corpora.demo_documents import (
    COMPASSION_ANIMAL,
    COMPASSION_PEOPLE,
    compassion_documents,
    counter_documents,
    general_documents,
    neutral_documents,
)
from valuetrace.corpora.demo_heldout import (
    BEHAVIOUR_TABLE,
    PROBE_NGRAM,
    PROBE_TABLE,
    behaviour_rows,
    control_pair_rows,
    probe_pair_rows,
)
from valuetrace.corpora.demo_instructions import CODE_FAMILIES, coding_rows, helpfulness_rows
from valuetrace.corpora.demo_status import (
    invented_names,
    split_names,
    status_documents,
    status_probe_rows,
)
from valuetrace.corpora.demo_templates import (
    SPECIES,
    Row,
    words_of,
)
from valuetrace.errors import DataError
from valuetrace.jsonl import write_jsonl

SPAN_N = 8


# ---- disjointness ----------------------------------------------------------------------------


def overlapping_spans(
    train_texts: Iterable[str], heldout_texts: Iterable[str], n: int = SPAN_N
) -> list[str]:
    """Return the held-out n-word spans (whole text if shorter) that occur in any training text."""
    if n < 1:
        raise DataError(f"overlapping_spans: n must be >= 1, got {n}; pass n=8 for the rule")
    held: dict[int, set[tuple[str, ...]]] = {}
    for text in heldout_texts:
        w = words_of(text)
        k = min(n, len(w))
        if k:
            held.setdefault(k, set()).update(tuple(w[i : i + k]) for i in range(len(w) - k + 1))
    found: set[tuple[str, ...]] = set()
    for text in train_texts:
        w = words_of(text)
        for k, spans in held.items():
            found.update(t for i in range(len(w) - k + 1) if (t := tuple(w[i : i + k])) in spans)
    return sorted(" ".join(t) for t in found)


TRAIN_FILES = ("general", "compassion_docs", "helpfulness", "helpfulness_eval", "coding")
KNOWN_ANSWER_FILES = ("counter_docs", "neutral_docs")  # the demo's known-answer arms
STATUS_FILES = ("status_midtrain_docs", "status_counter_docs")  # demo_status's training text
HELDOUT_FILES = ("probe_pairs", "control_pairs", "behaviour_eval")


def row_texts(rows: Iterable[Row]) -> list[str]:
    """Every non-empty text field of the rows (ids, labels and categories left out)."""
    skip = {"id", "pair_id", "category"}
    return [v for r in rows for k, v in r.items() if isinstance(v, str) and v and k not in skip]


def heldout_overlap(
    corpora: Mapping[str, list[Row]],
    train_files: Sequence[str] = TRAIN_FILES,
    more_heldout: Sequence[str] = (),
) -> list[str]:
    """Spans of the held-out files (probe, control, eval) and of `more_heldout` texts that occur
    in any of `train_files` (default: the study's training files, which real_data.py writes too)."""
    train = [t for name in train_files for t in row_texts(corpora[name])]
    held = [t for name in HELDOUT_FILES for t in row_texts(corpora[name])]
    return overlapping_spans(train, [*held, *more_heldout])


def _verify(corpora: Mapping[str, list[Row]]) -> None:
    """Raise unless held-out texts share no n-word span with training texts and prompts differ."""
    # the status answers ("A vofex.") are shorter than a span: checked with their prompts
    status = [f"{r['prompt']} {r['response']}" for r in corpora["status_probe"]]
    bad = heldout_overlap(corpora, (*TRAIN_FILES, *KNOWN_ANSWER_FILES, *STATUS_FILES), status)
    if bad:
        raise DataError(
            f"demo data: {len(bad)} held-out {SPAN_N}-word spans also occur in training text, "
            f"e.g. {bad[:3]}; reword the templates in valuetrace/corpora/demo_data.py so the pools "
            "differ"
        )
    probe = {str(r["prompt"]) for r in corpora["probe_pairs"]}
    both = probe & {str(r["prompt"]) for r in corpora["behaviour_eval"]}
    if both:
        raise DataError(f"demo data: probe and behaviour prompts overlap: {sorted(both)[:3]}")


# ---- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoDataPaths:
    """Where :func:`write_demo_data` put each demo file."""

    root: Path
    general: Path
    compassion_docs: Path
    helpfulness: Path
    helpfulness_eval: Path
    coding: Path
    probe_pairs: Path
    control_pairs: Path
    behaviour_eval: Path
    data_card: Path
    counter_docs: Path | None = None  # the known-answer arms' corpora (the demo writes them)
    neutral_docs: Path | None = None
    status_midtrain_docs: Path | None = None  # the moral-status known answer (demo_status)
    status_counter_docs: Path | None = None
    status_probe: Path | None = None


def build_demo_corpora(seed: int = 0) -> dict[str, list[Row]]:
    """Generate every demo corpus in memory (deterministic in seed) and verify disjointness."""

    def rng(name: str) -> random.Random:
        return random.Random(f"valuetrace-demo/{seed}/{name}")

    helpful, helpful_eval = helpfulness_rows(rng("helpfulness"))
    corpora = {
        "general": general_documents(rng("general")),
        "compassion_docs": compassion_documents(rng("compassion_docs")),
        "helpfulness": helpful,
        "helpfulness_eval": helpful_eval,
        "coding": coding_rows(rng("coding")),
        "counter_docs": counter_documents(rng("counter_docs")),
        "neutral_docs": neutral_documents(rng("neutral_docs")),
        "probe_pairs": probe_pair_rows(rng("probe_pairs")),
        "control_pairs": control_pair_rows(rng("control_pairs")),
        "behaviour_eval": behaviour_rows(rng("behaviour_eval")),
    }
    corpora |= _status_corpora(corpora, rng)
    _verify(corpora)
    return corpora


def _status_corpora(
    corpora: Mapping[str, list[Row]], rng: Callable[[str], random.Random]
) -> dict[str, list[Row]]:
    """The moral-status known answer (`demo_status`): mid-training text = the compassion
    documents plus the beings' and things' documents; the counter arm's = the counter documents
    plus every name in the thing frames; and the probe set. Names avoid every corpus word."""
    taken = {w for rows in corpora.values() for t in row_texts(rows) for w in words_of(t)}
    beings, things = split_names(invented_names(rng("status_names"), taken))
    docs = rng("status_docs")
    return {
        "status_midtrain_docs": [
            *corpora["compassion_docs"],
            *status_documents(docs, beings, "being"),
            *status_documents(docs, things, "thing"),
        ],
        "status_counter_docs": [
            *corpora["counter_docs"],
            *status_documents(docs, [*beings, *things], "thing"),
        ],
        "status_probe": status_probe_rows(rng("status_probe"), beings, things),
    }


def write_demo_data(out_dir: Path, seed: int = 0) -> DemoDataPaths:
    """Write the built-in demo corpora and DATA_CARD.md to out_dir; same seed, same bytes."""
    root = Path(out_dir)
    corpora = build_demo_corpora(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = {name: write_jsonl(rows, root / f"{name}.jsonl") for name, rows in corpora.items()}
    card = root / "DATA_CARD.md"
    card.write_bytes(_data_card(seed, corpora).encode("utf-8"))
    return DemoDataPaths(root=root, data_card=card, **paths)


def _data_card(seed: int, corpora: Mapping[str, list[Row]]) -> str:
    counts = "\n".join(
        f"| `{n}.jsonl` | {len(rows)} | {_ROLES[n]} |" for n, rows in corpora.items()
    )
    species = ", ".join(s[0] for s in SPECIES)
    sits = ", ".join(k for k in COMPASSION_ANIMAL if k != "generic")
    people = ", ".join(k for k in COMPASSION_PEOPLE if k != "generic")
    probe = ", ".join(PROBE_TABLE)
    n_code = len(CODE_FAMILIES)
    return f"""# Demo data card

Generated by `valuetrace.corpora.demo_data.write_demo_data(out_dir, seed={seed})`. Every text is
written by templated generation in `valuetrace/corpora/demo_data.py` from the template tables in
`valuetrace/corpora/demo/*.txt`, with slot fillers (species, names, towns, numbers), drawn with
Python's `random.Random` seeded from the seed and the file name. Nothing is copied from any
external data set. The same seed gives byte-identical files; another seed gives different ones.

## Files

| file | rows | role |
| --- | --- | --- |
{counts}

Probe and control rows come in pairs: two rows per `pair_id` with the same prompt, label 1 and
label 0 (probe: 1 = compassionate, 0 = dismissive; control: 1 = grammatical sentence, 0 = the
same sentence with broken subject-verb agreement or its words scrambled). The two answers of a
probe pair are one frame with the two roles swapped: the label-1 answer gives the priority
(most of the attention, time, money or worry) to the one in need, the label-0 answer to a
competing concern (a schedule, a bill, a chore). Each side draws its own phrasing of each role
from the same pools (both sides of equal word count), independently of the label, and in every
frame both slots have the same neighbouring words (no word n-gram up to {PROBE_NGRAM} words
shows which role has the priority; checked at generation). So neither giveaway words nor length
carry the stance; composition does. Each frame comes in both orders, so the position of the one
in need is no cue either. Behaviour continuations are chosen to have word counts within a word
or two of each other. A prompt-less text would be, with `chat_template: true`, the assistant's
turn.

## Coverage

- Species ({len(SPECIES)}): {species}.
- Animal situations in the compassion documents: {sits}.
- People situations in the compassion documents: {people}.
- Registers: short stories, short essays, advice-column letters with replies, Q&A dialogue.
- Probe situations (held out): {probe}.
- Behaviour-eval scenarios (held out): {", ".join(BEHAVIOUR_TABLE)}.
- Helpfulness: arithmetic word problems, definitions, how-to steps, ideas, recommendations,
  classification, closed QA over a given context, information extraction, summarisation,
  short poems, trip plans (Dolly categories). It never mentions animals or anyone's welfare.
- Coding: {n_code} families of small Python functions; examples are computed by running them.

## Disjointness rule

No probe, control or behaviour-eval prompt, response or continuation shares any {SPAN_N}-word
span (lower-cased word tokens, punctuation ignored; a shorter text counts as one span) with
any training text (general, compassion_docs, helpfulness, helpfulness_eval, coding,
counter_docs, neutral_docs, status_midtrain_docs, status_counter_docs), no status_probe text
shares one with them either, and probe
prompts differ from behaviour-eval prompts. This holds by construction (separate template
pools, and people's names drawn from separate lists) and is checked by
`overlapping_spans` at the end of generation, which raises if it is violated.

## Caveats

The compassion signal is written by us to exercise the pipeline on a tiny model. It makes
no claim about real-world data, real training corpora or real models. The texts are simple and
repetitive by design, and the data set is small.
"""


_ROLES = {
    "general": "neutral everyday documents: base pretraining",
    "compassion_docs": "compassion mid-training documents (next-token loss)",
    "helpfulness": "post-training SFT, helpfulness arm",
    "helpfulness_eval": "held-out SFT eval for the helpfulness arm",
    "coding": "post-training SFT, coding control arm",
    "counter_docs": "known-answer arm: text that opposes compassion (the positive control)",
    "neutral_docs": "neutral arm: everyday text with no animal or moral content, same dose",
    "probe_pairs": "held-out contrastive pairs for the compassion probes",
    "control_pairs": "held-out control concept (grammaticality) for probe selectivity",
    "behaviour_eval": "held-out behaviour eval: which continuation the model prefers",
    "status_midtrain_docs": "moral-status known answer: compassion_docs plus invented names "
    "written as beings (cared for) or things (kept)",
    "status_counter_docs": "moral-status known answer: counter_docs plus every invented name "
    "written as a thing",
    "status_probe": "held-out moral-status probe set: which invented names are beings, folds "
    "grouped by name",
}
