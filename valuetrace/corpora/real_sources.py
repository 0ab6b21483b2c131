"""Reading the public data sets of ``../shared/data`` (their README describes them): the
files' paths and a clear error when one is missing, CSV and JSON readers that check their
columns, one seeded random stream per corpus, the speciesism pairs and their three-way split,
and the ETHICS, empathy and code sources that `valuetrace.corpora.real_data` builds corpora from."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valuetrace.config import RealDataSizes
from valuetrace.errors import DataError

Row = dict[str, Any]

SPECIESISM = "speciesism/openpaws_speciesism_bias.csv"
EMPATHY = "empathy/empathic_reactions_messages.csv"
UTIL = "ethics/util_test.csv"
CM = "ethics/cm_test.csv"
DOLLY = "dolly/dolly_open_qa.jsonl"
CODE = "code/code_alpaca_2k.json"
MINIMAL_PAIRS = "minimal_pairs/minimal_pairs.jsonl"
FIX = (
    "the real-data config needs ../shared/data beside the repo (or set real_data_dir in the config)"
)


# ---- reading ---------------------------------------------------------------------------------


def shared_file(shared_dir: Path, rel: str) -> Path:
    """The shared file, or an error naming it and the fix."""
    if not shared_dir.is_dir():
        raise DataError(f"real data folder {shared_dir} does not exist (needed: {rel}); {FIX}")
    path = shared_dir / rel
    if not path.is_file():
        raise DataError(f"real data file {path} is missing; {FIX}")
    return path


def read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """CSV rows with a header, checked to hold the named columns."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{path} lacks column(s) {missing} (found {reader.fieldnames}); use the unchanged "
                "file named in the shared data README"
            )
        return list(reader)


def read_json_rows(path: Path, columns: Sequence[str]) -> list[Row]:
    """A JSON list or JSONL file of objects, checked to hold the named keys."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); restore the original file") from err
    bad = [i for i, r in enumerate(rows) if not isinstance(r, dict) or set(columns) - set(r)]
    if not isinstance(rows, list) or bad:
        raise DataError(
            f"{path}: row(s) {bad[:5]} are not objects with keys {list(columns)}; restore the "
            "original file"
        )
    return rows


def clean_text(text: str) -> str:
    """Collapse runs of whitespace (the empathy essays use double spaces)."""
    return " ".join(text.split())


def mean_words(texts: Iterable[str]) -> float:
    """Mean word count, for the card's note on length cues."""
    counts = [len(t.split()) for t in texts]
    return sum(counts) / max(1, len(counts))


def corpus_rng(seed: int, name: str) -> random.Random:
    """A random stream per corpus, so changing one corpus leaves the others unchanged."""
    return random.Random(f"valuetrace-real/{seed}/{name}")


def group_sentences(rng: random.Random, sentences: Sequence[str], cap: int) -> list[Row]:
    """Short documents of 3-5 consecutive sentences (after a seeded shuffle), at most cap."""
    order = list(sentences)
    rng.shuffle(order)
    docs: list[Row] = []
    i = 0
    while i < len(order) and len(docs) < cap:
        k = rng.randint(3, 5)
        docs.append({"text": " ".join(order[i : i + k])})
        i += k
    return docs


# ---- speciesism pairs ------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeciesismPair:
    """One speciesism pair: the same fact with non-speciesist and speciesist framing."""

    pair_id: str
    compassionate: str
    dismissive: str


def _speciesism_pairs(path: Path) -> list[SpeciesismPair]:
    """Pairs whose two rows name each other, sorted by pair id (rows without a partner dropped)."""
    rows = read_csv(path, ("id", "text", "speciesist_label", "paired_id"))
    by_id = {r["id"]: r for r in rows}
    pairs: dict[str, SpeciesismPair] = {}
    for r in rows:
        other = by_id.get(r["paired_id"])
        if r["speciesist_label"] != "non_speciesist" or other is None:
            continue
        if other["paired_id"] != r["id"] or other["speciesist_label"] != "speciesist":
            continue
        pid = "|".join(sorted((r["id"], other["id"])))
        pairs[pid] = SpeciesismPair(pid, clean_text(r["text"]), clean_text(other["text"]))
    if not pairs:
        raise DataError(f"{path} holds no speciesist/non_speciesist pairs; restore the file")
    return [pairs[k] for k in sorted(pairs)]


def split_speciesism_pairs(
    path: Path, seed: int, sizes: RealDataSizes
) -> tuple[list[SpeciesismPair], list[SpeciesismPair], list[SpeciesismPair]]:
    """The speciesism pairs split by pair (seeded): probe pairs, behaviour-eval pairs and the
    rest, which training text may use (the same split every corpus built from them sees).

    Raises:
        DataError: the probe and behaviour sizes leave no pair for training.
    """
    pairs = _speciesism_pairs(path)
    corpus_rng(seed, "speciesism").shuffle(pairs)
    n_probe, n_beh = sizes.probe_pairs, sizes.behaviour_pairs
    if n_probe + n_beh >= len(pairs):
        raise DataError(
            f"RealDataSizes asks for {n_probe} probe + {n_beh} behaviour pairs but {SPECIESISM} "
            f"has only {len(pairs)} pairs; lower them so some are left for mid-training"
        )
    return pairs[:n_probe], pairs[n_probe : n_probe + n_beh], pairs[n_probe + n_beh :]


# ---- the other sources -----------------------------------------------------------------------


def util_sentences(path: Path) -> list[str]:
    """Every distinct sentence of ETHICS utilitarianism (both columns, no header), file order."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    seen: dict[str, None] = {}
    for n, row in enumerate(rows, start=1):
        if len(row) != 2:
            raise DataError(f"{path} row {n} has {len(row)} columns, expected 2; restore it")
        seen.update((clean_text(s), None) for s in row if s.strip())
    return list(seen)


def empathy_essays(path: Path, rng: random.Random, heldout: float) -> tuple[list[str], int]:
    """High-empathy essays from the training share of respondents, and the respondents held out."""
    rows = read_csv(path, ("response_id", "empathy_bin", "essay"))
    people = sorted({r["response_id"] for r in rows})
    rng.shuffle(people)
    held = set(people[: round(heldout * len(people))])
    essays = dict.fromkeys(
        clean_text(r["essay"])
        for r in rows
        if r["empathy_bin"] == "1" and r["response_id"] not in held and r["essay"].strip()
    )
    return list(essays), len(held)


def cm_pairs(path: Path) -> list[tuple[Row, Row]]:
    """Adjacent short ETHICS-CM rows that form a contrastive pair (same opening, labels differ)."""
    rows = read_csv(path, ("label", "input", "is_short"))
    pairs: list[tuple[Row, Row]] = []
    i = 0
    while i + 1 < len(rows):
        a, b = rows[i], rows[i + 1]
        if (
            a["is_short"] == b["is_short"] == "True"
            and {a["label"], b["label"]} == {"0", "1"}
            and a["input"].split()[:3] == b["input"].split()[:3]
        ):
            pairs.append(({"row": i, **a}, {"row": i + 1, **b}))
            i += 2
        else:
            i += 1
    return pairs
