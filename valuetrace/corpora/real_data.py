"""Real-data corpora: the public files in ``../shared/data`` turned into the demo's file set.

:func:`write_real_data` reads the public data sets described in the shared folder's README and
writes the same files, names and schemas as :func:`demo_data.write_demo_data`, so a config shaped
like the demo's runs on real text. Nothing is copied into the repository: the files are written
into the run folder at run time. Speciesism pairs are split three ways by pair (mid-training text /
probe pairs / behaviour eval), and any training text that shares an 8-word span with a held-out
text is dropped before writing (see :func:`overlapping_spans`). The shared files are read through
`real_sources`; the known-answer arms' corpora are built in `real_known_answer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from valuetrace.config import RealDataSizes
from valuetrace.corpora.demo_data import (
    SPAN_N,
    DemoDataPaths,
    heldout_overlap,
    overlapping_spans,
    row_texts,
)
from valuetrace.corpora.real_sources import (
    CM,
    CODE,
    DOLLY,
    EMPATHY,
    MINIMAL_PAIRS,
    SPECIESISM,
    UTIL,
    Row,
    clean_text,
    cm_pairs,
    corpus_rng,
    empathy_essays,
    group_sentences,
    mean_words,
    read_json_rows,
    shared_file,
    split_speciesism_pairs,
    util_sentences,
)
from valuetrace.errors import DataError
from valuetrace.jsonl import write_jsonl

# ---- disjointness ----------------------------------------------------------------------------


def drop_overlaps(units: list[str], held: Sequence[str]) -> tuple[list[str], int]:
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
        name: shared_file(shared_dir, rel)
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
    cm = cm_pairs(paths["cm"])
    corpus_rng(seed, "control").shuffle(cm)
    control_rows: list[Row] = []
    for a, b in sorted(cm[: sizes.control_pairs], key=lambda ab: ab[0]["row"]):
        pid = f"cm-{a['row']:04d}"
        for r in (a, b):
            control_rows.append(
                {
                    "id": f"cm-{r['row']:04d}",
                    "pair_id": pid,
                    "prompt": "",
                    "response": clean_text(r["input"]),
                    "label": int(r["label"]),
                }
            )
    notes["control_pairs_found"] = len(cm)
    notes["words"] = {
        "probe non-speciesist": mean_words(p.compassionate for p in probe),
        "probe speciesist": mean_words(p.dismissive for p in probe),
        "control wrong": mean_words(str(r["response"]) for r in control_rows if r["label"] == 1),
        "control acceptable": mean_words(
            str(r["response"]) for r in control_rows if r["label"] == 0
        ),
    }

    held = row_texts(probe_rows) + row_texts(control_rows) + row_texts(behaviour_rows)
    dropped: dict[str, int] = {}

    # General: ETHICS utilitarianism sentences, 3-5 per document.
    util, dropped["general sentences"] = drop_overlaps(util_sentences(paths["util"]), held)
    general = group_sentences(corpus_rng(seed, "general"), util, sizes.general)
    general, dropped["general documents"] = _drop_overlapping_rows(general, held)

    # Compassion: non-speciesist sentences of training pairs (3-5 per document) + empathy essays.
    species, dropped["non-speciesist sentences"] = drop_overlaps(
        [p.compassionate for p in train_pairs], held
    )
    essays, notes["empathy_heldout_people"] = empathy_essays(
        paths["empathy"], corpus_rng(seed, "empathy"), sizes.empathy_heldout_fraction
    )
    essays, dropped["empathy essays"] = drop_overlaps(essays, held)
    crng = corpus_rng(seed, "compassion")
    species_docs = group_sentences(crng, species, sizes.compassion)
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
    dolly = read_json_rows(paths["dolly"], ("instruction", "context", "response", "category"))
    dolly = [r for r in dolly if str(r["instruction"]).strip() and str(r["response"]).strip()]
    unique = {clean_text(str(r["instruction"])).lower(): r for r in reversed(dolly)}  # first wins
    notes["dolly_duplicates_dropped"] = len(dolly) - len(unique)
    first = {id(r) for r in unique.values()}
    dolly = [r for r in dolly if id(r) in first]
    dolly, dropped["helpfulness rows"] = _drop_overlapping_rows(dolly, held)
    corpus_rng(seed, "helpfulness").shuffle(dolly)
    help_eval = dolly[: sizes.helpfulness_eval]
    helpful = dolly[sizes.helpfulness_eval :][: sizes.helpfulness]

    # Coding: Code Alpaca without the rows whose output is empty.
    code = read_json_rows(paths["code"], ("instruction", "input", "output"))
    notes["coding_empty_dropped"] = sum(1 for r in code if not str(r["output"]).strip())
    code = [r for r in code if str(r["output"]).strip() and str(r["instruction"]).strip()]
    corpus_rng(seed, "coding").shuffle(code)
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
            f"e.g. {bad[:3]}; this is a bug in valuetrace/corpora/real_data.py's filtering"
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
    paths = {name: write_jsonl(rows, root / f"{name}.jsonl") for name, rows in corpora.items()}
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

Written by `valuetrace.corpora.real_data.write_real_data(shared_dir, out_dir, seed={seed})` from the
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
