"""Real-data corpora: the public files in ``../shared/data`` turned into the demo's file set.

:func:`write_real_data` reads the public data sets described in the shared folder's README and
writes the same files, names and schemas as :func:`valuetrace.demo_data.write_demo_data`, so a
config shaped like the demo's runs on real text. Nothing is copied into the repository: the
files are written into the run folder at run time. Speciesism pairs are split three ways by
pair (mid-training text / probe pairs / behaviour eval), and any training text that shares an
8-word span with a held-out text is dropped before writing (see :func:`overlapping_spans`).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valuetrace.config import RealDataSizes
from valuetrace.demo_data import (
    SPAN_N,
    DemoDataPaths,
    heldout_overlap,
    overlapping_spans,
    row_texts,
)
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


def _path(shared_dir: Path, rel: str) -> Path:
    """The shared file, or an error naming it and the fix."""
    if not shared_dir.is_dir():
        raise DataError(f"real data folder {shared_dir} does not exist (needed: {rel}); {FIX}")
    path = shared_dir / rel
    if not path.is_file():
        raise DataError(f"real data file {path} is missing; {FIX}")
    return path


def _csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
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


def _json_rows(path: Path, columns: Sequence[str]) -> list[Row]:
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


def _clean(text: str) -> str:
    """Collapse runs of whitespace (the empathy essays use double spaces)."""
    return " ".join(text.split())


def _mean_words(texts: Iterable[str]) -> float:
    """Mean word count, for the card's note on length cues."""
    counts = [len(t.split()) for t in texts]
    return sum(counts) / max(1, len(counts))


def _rng(seed: int, name: str) -> random.Random:
    """A random stream per corpus, so changing one corpus leaves the others unchanged."""
    return random.Random(f"valuetrace-real/{seed}/{name}")


def _group(rng: random.Random, sentences: Sequence[str], cap: int) -> list[Row]:
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
class _Pair:
    """One speciesism pair: the same fact with non-speciesist and speciesist framing."""

    pair_id: str
    compassionate: str
    dismissive: str


def _speciesism_pairs(path: Path) -> list[_Pair]:
    """Pairs whose two rows name each other, sorted by pair id (rows without a partner dropped)."""
    rows = _csv(path, ("id", "text", "speciesist_label", "paired_id"))
    by_id = {r["id"]: r for r in rows}
    pairs: dict[str, _Pair] = {}
    for r in rows:
        other = by_id.get(r["paired_id"])
        if r["speciesist_label"] != "non_speciesist" or other is None:
            continue
        if other["paired_id"] != r["id"] or other["speciesist_label"] != "speciesist":
            continue
        pid = "|".join(sorted((r["id"], other["id"])))
        pairs[pid] = _Pair(pid, _clean(r["text"]), _clean(other["text"]))
    if not pairs:
        raise DataError(f"{path} holds no speciesist/non_speciesist pairs; restore the file")
    return [pairs[k] for k in sorted(pairs)]


def split_speciesism_pairs(
    path: Path, seed: int, sizes: RealDataSizes
) -> tuple[list[_Pair], list[_Pair], list[_Pair]]:
    """The speciesism pairs split by pair (seeded): probe pairs, behaviour-eval pairs and the
    rest, which training text may use (the same split every corpus built from them sees).

    Raises:
        DataError: the probe and behaviour sizes leave no pair for training.
    """
    pairs = _speciesism_pairs(path)
    _rng(seed, "speciesism").shuffle(pairs)
    n_probe, n_beh = sizes.probe_pairs, sizes.behaviour_pairs
    if n_probe + n_beh >= len(pairs):
        raise DataError(
            f"RealDataSizes asks for {n_probe} probe + {n_beh} behaviour pairs but {SPECIESISM} "
            f"has only {len(pairs)} pairs; lower them so some are left for mid-training"
        )
    return pairs[:n_probe], pairs[n_probe : n_probe + n_beh], pairs[n_probe + n_beh :]


# ---- the other sources -----------------------------------------------------------------------


def _util_sentences(path: Path) -> list[str]:
    """Every distinct sentence of ETHICS utilitarianism (both columns, no header), file order."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    seen: dict[str, None] = {}
    for n, row in enumerate(rows, start=1):
        if len(row) != 2:
            raise DataError(f"{path} row {n} has {len(row)} columns, expected 2; restore it")
        seen.update((_clean(s), None) for s in row if s.strip())
    return list(seen)


def _empathy_essays(path: Path, rng: random.Random, heldout: float) -> tuple[list[str], int]:
    """High-empathy essays from the training share of respondents, and the respondents held out."""
    rows = _csv(path, ("response_id", "empathy_bin", "essay"))
    people = sorted({r["response_id"] for r in rows})
    rng.shuffle(people)
    held = set(people[: round(heldout * len(people))])
    essays = dict.fromkeys(
        _clean(r["essay"])
        for r in rows
        if r["empathy_bin"] == "1" and r["response_id"] not in held and r["essay"].strip()
    )
    return list(essays), len(held)


def _cm_pairs(path: Path) -> list[tuple[Row, Row]]:
    """Adjacent short ETHICS-CM rows that form a contrastive pair (same opening, labels differ)."""
    rows = _csv(path, ("label", "input", "is_short"))
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


# ---- disjointness ----------------------------------------------------------------------------


def _drop_overlaps(units: list[str], held: Sequence[str]) -> tuple[list[str], int]:
    """Drop every training unit that shares an n-word span with a held-out text."""
    bad = overlapping_spans(units, held)
    if not bad:
        return units, 0
    kept = [u for u in units if not overlapping_spans([u], bad)]
    return kept, len(units) - len(kept)


def _drop_overlapping_rows(rows: list[Row], held: Sequence[str]) -> tuple[list[Row], int]:
    """Drop every training row any of whose texts shares an n-word span with a held-out text."""
    bad = overlapping_spans(row_texts(rows), held)
    if not bad:
        return rows, 0
    kept = [r for r in rows if not overlapping_spans(row_texts([r]), bad)]
    return kept, len(rows) - len(kept)


# ---- building --------------------------------------------------------------------------------


def build_real_corpora(
    shared_dir: Path, seed: int = 0, sizes: RealDataSizes | None = None
) -> tuple[dict[str, list[Row]], dict[str, Any]]:
    """Read the shared files into every corpus (deterministic in seed) plus notes for the card."""
    shared_dir = Path(shared_dir)
    sizes = sizes or RealDataSizes()
    paths = {
        name: _path(shared_dir, rel)
        for name, rel in {
            "speciesism": SPECIESISM,
            "empathy": EMPATHY,
            "util": UTIL,
            "cm": CM,
            "dolly": DOLLY,
            "code": CODE,
        }.items()
    }
    notes: dict[str, Any] = {}

    # Speciesism: split whole pairs three ways.
    probe, beh, train_pairs = split_speciesism_pairs(paths["speciesism"], seed, sizes)
    n_probe, n_beh = sizes.probe_pairs, sizes.behaviour_pairs
    notes["pairs"] = {
        "total": len(probe) + len(beh) + len(train_pairs),
        "probe": n_probe,
        "behaviour": n_beh,
        "train": len(train_pairs),
    }
    probe_rows: list[Row] = [
        {
            "id": f"{p.pair_id}/{label}",
            "pair_id": p.pair_id,
            "prompt": "",
            "response": text,
            "label": label,
        }
        for p in probe
        for label, text in ((1, p.compassionate), (0, p.dismissive))
    ]
    behaviour_rows: list[Row] = [
        {
            "id": f"beh-{p.pair_id}",
            "prompt": "",
            "compassionate": p.compassionate,
            "dismissive": p.dismissive,
        }
        for p in beh
    ]

    # Control concept: ETHICS commonsense morality, contrastive adjacent pairs, 1 = wrong.
    cm = _cm_pairs(paths["cm"])
    _rng(seed, "control").shuffle(cm)
    control_rows: list[Row] = []
    for a, b in sorted(cm[: sizes.control_pairs], key=lambda ab: ab[0]["row"]):
        pid = f"cm-{a['row']:04d}"
        for r in (a, b):
            control_rows.append(
                {
                    "id": f"cm-{r['row']:04d}",
                    "pair_id": pid,
                    "prompt": "",
                    "response": _clean(r["input"]),
                    "label": int(r["label"]),
                }
            )
    notes["control_pairs_found"] = len(cm)
    notes["words"] = {
        "probe non-speciesist": _mean_words(p.compassionate for p in probe),
        "probe speciesist": _mean_words(p.dismissive for p in probe),
        "control wrong": _mean_words(str(r["response"]) for r in control_rows if r["label"] == 1),
        "control acceptable": _mean_words(
            str(r["response"]) for r in control_rows if r["label"] == 0
        ),
    }

    held = row_texts(probe_rows) + row_texts(control_rows) + row_texts(behaviour_rows)
    dropped: dict[str, int] = {}

    # General: ETHICS utilitarianism sentences, 3-5 per document.
    util, dropped["general sentences"] = _drop_overlaps(_util_sentences(paths["util"]), held)
    general = _group(_rng(seed, "general"), util, sizes.general)
    general, dropped["general documents"] = _drop_overlapping_rows(general, held)

    # Compassion: non-speciesist sentences of training pairs (3-5 per document) + empathy essays.
    species, dropped["non-speciesist sentences"] = _drop_overlaps(
        [p.compassionate for p in train_pairs], held
    )
    essays, notes["empathy_heldout_people"] = _empathy_essays(
        paths["empathy"], _rng(seed, "empathy"), sizes.empathy_heldout_fraction
    )
    essays, dropped["empathy essays"] = _drop_overlaps(essays, held)
    crng = _rng(seed, "compassion")
    species_docs = _group(crng, species, sizes.compassion)
    essay_docs: list[Row] = [{"text": e} for e in essays]
    compassion = species_docs + essay_docs
    crng.shuffle(compassion)
    compassion, dropped["compassion documents"] = _drop_overlapping_rows(
        compassion[: sizes.compassion], held
    )
    kept = {id(d) for d in compassion}
    notes["compassion_parts"] = {
        "speciesism documents": sum(id(d) in kept for d in species_docs),
        "non-speciesist sentences": len(species),
        "empathy essays": sum(id(d) in kept for d in essay_docs),
    }

    # Helpfulness: Dolly open QA as is, held-out eval first.
    dolly = _json_rows(paths["dolly"], ("instruction", "context", "response", "category"))
    dolly = [r for r in dolly if str(r["instruction"]).strip() and str(r["response"]).strip()]
    unique = {_clean(str(r["instruction"])).lower(): r for r in reversed(dolly)}  # first wins
    notes["dolly_duplicates_dropped"] = len(dolly) - len(unique)
    first = {id(r) for r in unique.values()}
    dolly = [r for r in dolly if id(r) in first]
    dolly, dropped["helpfulness rows"] = _drop_overlapping_rows(dolly, held)
    _rng(seed, "helpfulness").shuffle(dolly)
    help_eval = dolly[: sizes.helpfulness_eval]
    helpful = dolly[sizes.helpfulness_eval :][: sizes.helpfulness]

    # Coding: Code Alpaca without the rows whose output is empty.
    code = _json_rows(paths["code"], ("instruction", "input", "output"))
    notes["coding_empty_dropped"] = sum(1 for r in code if not str(r["output"]).strip())
    code = [r for r in code if str(r["output"]).strip() and str(r["instruction"]).strip()]
    _rng(seed, "coding").shuffle(code)
    coding, dropped["coding rows"] = _drop_overlapping_rows(code, held)
    coding = coding[: sizes.coding]

    corpora = {
        "general": general,
        "compassion_docs": compassion,
        "helpfulness": helpful,
        "helpfulness_eval": help_eval,
        "coding": coding,
        "probe_pairs": probe_rows,
        "control_pairs": control_rows,
        "behaviour_eval": behaviour_rows,
    }
    notes["dropped"] = dropped
    _verify(corpora)
    return corpora, notes


def _verify(corpora: Mapping[str, list[Row]]) -> None:
    """Raise unless held-out texts share no n-word span with training texts and pairs are split."""
    bad = heldout_overlap(corpora)
    if bad:
        raise DataError(
            f"real data: {len(bad)} held-out {SPAN_N}-word spans also occur in training text, "
            f"e.g. {bad[:3]}; this is a bug in valuetrace/real_data.py's filtering"
        )
    probe = {str(r["pair_id"]) for r in corpora["probe_pairs"]}
    beh = {str(r["id"]).removeprefix("beh-") for r in corpora["behaviour_eval"]}
    if probe & beh:
        raise DataError(f"real data: probe and behaviour pairs overlap: {sorted(probe & beh)[:3]}")
    for name, rows in corpora.items():
        if not rows:
            raise DataError(f"real data: {name} came out empty; check the shared files")


# ---- writing ---------------------------------------------------------------------------------


def write_real_data(
    shared_dir: Path, out_dir: Path, seed: int = 0, sizes: RealDataSizes | None = None
) -> DemoDataPaths:
    """Write the real-data corpora and DATA_CARD.md to out_dir; same inputs and seed, same bytes."""
    sizes = sizes or RealDataSizes()
    corpora, notes = build_real_corpora(shared_dir, seed, sizes)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    paths = {name: root / f"{name}.jsonl" for name in corpora}
    for name, rows in corpora.items():
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        paths[name].write_bytes(body.encode("utf-8"))
    card = root / "DATA_CARD.md"
    card.write_bytes(_data_card(seed, sizes, corpora, notes).encode("utf-8"))
    return DemoDataPaths(root=root, data_card=card, **paths)


_SOURCES = [
    (SPECIESISM, "Open-Paws/speciesism-bias-dataset @ dba5647 : dataset.csv", "Apache-2.0"),
    (EMPATHY, "wwbp/empathic_reactions @ 3ddbf6b : data/responses/data/messages.csv", "CC BY 4.0"),
    (f"{UTIL}, {CM}", "oughtinc/ice @ 5449543 : ethics/ (Hendrycks et al. ETHICS)", "MIT"),
    (DOLLY, "prp-e/chinkara-openqa-dataset @ a53f94f (Dolly-15k open_qa)", "CC BY-SA 3.0"),
    (CODE, "sahil280114/codealpaca @ 2f78ddc : data/code_alpaca_2k.json", "CC BY-NC 4.0"),
]
_ROLES = {
    "general": "ETHICS utilitarianism sentences, 3-5 per document: base pretraining",
    "compassion_docs": "non-speciesist sentences + high-empathy essays: mid-training",
    "helpfulness": "Dolly open QA: post-training SFT, helpfulness arm",
    "helpfulness_eval": "Dolly open QA, held out: SFT eval for the helpfulness arm",
    "coding": "Code Alpaca: post-training SFT, coding control arm",
    "probe_pairs": "held-out speciesism pairs (1 = non-speciesist): compassion probes",
    "control_pairs": "ETHICS commonsense morality pairs (1 = morally wrong): control probes",
    "behaviour_eval": "held-out speciesism pairs: which phrasing the model prefers",
}


def _data_card(
    seed: int, sizes: RealDataSizes, corpora: Mapping[str, list[Row]], notes: Mapping[str, Any]
) -> str:
    counts = "\n".join(
        f"| `{n}.jsonl` | {len(rows)} | {_ROLES[n]} |" for n, rows in corpora.items()
    )
    pairs = notes["pairs"]
    dropped = "\n".join(f"- {what}: {n}" for what, n in notes["dropped"].items())
    parts = notes["compassion_parts"]
    words = notes["words"]
    sources = "\n".join(f"| `{f}` | {src} | {lic} |" for f, src, lic in _SOURCES)
    return f"""# Real data card

Written by `valuetrace.real_data.write_real_data(shared_dir, out_dir, seed={seed})` from the
public files in the shared data folder (`../shared/data` beside the repository, or the config's
`real_data_dir`). These files live in the run folder only; none is copied into the repository.
Sizes: `{sizes}`. The same files and seed give byte-identical output.

## Sources and licences

| file | source (repo @ commit : path) | licence |
| --- | --- | --- |
{sources}

Dolly's licence is Databricks' CC BY-SA 3.0; Code Alpaca's (CC BY-NC 4.0) allows
non-commercial research use only.

## Files

| file | rows | role |
| --- | --- | --- |
{counts}

## Splits

- Speciesism: {pairs["total"]} pairs whose two rows name each other (the {SPECIESISM} neutral
  rows have no partner and are not used). Whole pairs are shuffled with the seed and split:
  {pairs["probe"]} probe pairs, {pairs["behaviour"]} behaviour-eval pairs, {pairs["train"]}
  training pairs. Only the non-speciesist sentence of a training pair is used (in
  `compassion_docs`); the speciesist one is unused. No pair is in two splits.
- `probe_pairs`: prompt "" (plain-text probing), response = the sentence, label 1 =
  non_speciesist, 0 = speciesist; `pair_id` = the two source ids, sorted (`n…|s…`), so CV
  folds keep a pair together.
- `behaviour_eval`: prompt "", compassionate = the non-speciesist sentence, dismissive = the
  speciesist one. The score asks whether the model gives the non-speciesist phrasing a higher
  mean per-token log-probability.
- Prompt-less rows: with `chat_template: true`, the text is the assistant's turn (no user turn).
- `control_pairs`: ETHICS commonsense morality (`{CM}`), rows with `is_short == True`. The file
  is mostly made of adjacent contrastive pairs (the same opening, one acceptable and one morally
  wrong act); {notes["control_pairs_found"]} such adjacent pairs were found and
  {sizes.control_pairs} drawn with the seed, so the classes are balanced. Label as given:
  **1 = morally wrong**, 0 = acceptable; `pair_id` = the first row's index, `id` = the row index.
- `compassion_docs`: {parts["speciesism documents"]} documents of 3-5 non-speciesist sentences
  (from {parts["non-speciesist sentences"]} sentences) and {parts["empathy essays"]} essays with
  `empathy_bin == 1` from `{EMPATHY}`. The empathy respondents (`response_id`) are split with the
  seed; {notes["empathy_heldout_people"]} respondents
  ({sizes.empathy_heldout_fraction:.0%}) are held out for a later empathy probe and none of
  their essays is used.
- `general`: distinct sentences of `{UTIL}` (both columns; the file repeats many), shuffled
  and grouped 3-5 per document. Neutral everyday text; no instruction data.
- `helpfulness` / `helpfulness_eval`: `{DOLLY}` rows as is (Dolly schema), shuffled;
  the first {sizes.helpfulness_eval} are the eval set, the rest (capped) train. Rows that
  repeat an earlier row's instruction ({notes["dolly_duplicates_dropped"]}; Dolly asks some
  questions several times) are dropped first, so no eval question is also trained on.
- `coding`: `{CODE}` (Alpaca schema) without the {notes["coding_empty_dropped"]} rows whose
  output is empty, shuffled and capped.
- `{MINIMAL_PAIRS}` is not used: its items swap a high- for a low-moral-status entity in a
  question and carry no compassionate versus dismissive answer, so they make no fair behaviour
  triple.

## Disjointness rule

No probe, control or behaviour-eval text shares any {SPAN_N}-word span (lower-cased word
tokens, punctuation ignored; a shorter text counts as one span) with any training text
(general, compassion_docs, helpfulness, helpfulness_eval, coding). The speciesism data is
templated, so sentences of different pairs often share spans; every training sentence, essay,
document or row that shares a span with a held-out text is dropped before writing, and
`overlapping_spans` checks the written corpora at the end (it raises if the rule is broken).
Dropped for this rule:

{dropped}

## Caveats

Length and wording are cues in the speciesism pairs: non-speciesist sentences are longer
(probe pairs: {words["probe non-speciesist"]:.1f} words on average against
{words["probe speciesist"]:.1f}) and use plain words such as "killed" where the speciesist side
uses euphemisms, so a probe or a log-probability preference can follow length and vocabulary
rather than stance. Compare against the control probe (wrong {words["control wrong"]:.1f} /
acceptable {words["control acceptable"]:.1f} words) and the shuffled-label controls.
The speciesism sentences are synthetic and templated; the ETHICS, empathy and Dolly texts are
crowd-written. The corpora are small, sized for a tiny model trained from scratch on a CPU.
"""


# ---- the known-answer arms -------------------------------------------------------------------

# Words that mark animal or moral content; a neutral-arm text holds none (word prefixes).
VALUE_WORDS = (
    "animal|dog|cat|pet|puppy|kitten|fish|bird|cow|pig|hen|chicken|sheep|goat|horse|mouse|mice|"
    "rat|bee|insect|wildlife|species|zoo|farm|meat|beef|pork|dairy|egg|vegan|vegetarian|hunt|"
    "slaughter|cage|moral|ethic|cruel|kind|compassion|empath|suffer|pain|harm|kill|abuse|welfare|"
    "rights|wrong|evil|justice|fair|care|love|hate"
)
_VALUE_RE = re.compile(rf"\b({VALUE_WORDS})", re.IGNORECASE)


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
    _, _, train_pairs = split_speciesism_pairs(_path(shared_dir, SPECIESISM), seed, sizes)
    speciesist, _ = _drop_overlaps([p.dismissive for p in train_pairs], held)
    counter = _group(_rng(seed, "counter"), speciesist, documents)
    code = _json_rows(_path(shared_dir, CODE), ("instruction", "input", "output"))
    texts = [
        _clean(" ".join(str(r[k]) for k in ("instruction", "input", "output") if str(r[k]).strip()))
        for r in code
        if str(r["output"]).strip()
    ]
    texts = [t for t in texts if not _VALUE_RE.search(t)]
    texts, _ = _drop_overlaps(texts, held)
    _rng(seed, "neutral").shuffle(texts)
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
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in build_known_answer_corpora(
        shared_dir, seed, sizes, documents=documents
    ).items():
        paths[name] = root / f"{name}.jsonl"
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        paths[name].write_bytes(body.encode("utf-8"))
    return paths
