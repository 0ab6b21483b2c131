"""Tests for the built-in demo corpora: schemas, counts, determinism, disjointness, content."""

from __future__ import annotations

import json
import re
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from valuetrace.activations.examples import load_labelled
from valuetrace.corpora import (
    demo_data,
    demo_documents,
    demo_heldout,
    demo_instructions,
    demo_status,
)
from valuetrace.corpora.demo_data import (
    SPECIES,
    DemoDataPaths,
    overlapping_spans,
    write_demo_data,
)
from valuetrace.errors import ValuetraceError
from valuetrace.probing.folds import grouped_folds
from valuetrace.probing.surface import example_texts, fit_surface, surface_record

SCHEMAS = {
    "general": {"text"},
    "compassion_docs": {"text"},
    "helpfulness": {"instruction", "context", "response", "category"},
    "helpfulness_eval": {"instruction", "context", "response", "category"},
    "coding": {"instruction", "input", "output"},
    "probe_pairs": {"id", "pair_id", "prompt", "response", "label"},
    "control_pairs": {"id", "pair_id", "prompt", "response", "label"},
    "behaviour_eval": {"id", "prompt", "compassionate", "dismissive"},
}
# the demo's own files beyond those real_data.py writes too: the known-answer arms' corpora
KNOWN_ANSWER = {
    "counter_docs": {"text"},
    "neutral_docs": {"text"},
    "status_midtrain_docs": {"text"},
    "status_counter_docs": {"text"},
    "status_probe": {"id", "group", "prompt", "response", "label"},
}
ALL = SCHEMAS | KNOWN_ANSWER
STATUS_DOCS = demo_status.N_NAMES // 2 * demo_status.DOCS_PER_NAME  # per half of the names
COUNTS = {
    "general": demo_documents.N_GENERAL,
    "compassion_docs": demo_documents.N_COMPASSION,
    "helpfulness": demo_instructions.N_HELPFUL,
    "helpfulness_eval": demo_instructions.N_HELPFUL_EVAL,
    "coding": demo_instructions.N_CODING,
    "counter_docs": demo_documents.N_COUNTER,
    "neutral_docs": demo_documents.N_NEUTRAL,
    "probe_pairs": 2 * demo_heldout.N_PROBE_PAIRS,
    "control_pairs": 2 * demo_heldout.N_CONTROL_PAIRS,
    "behaviour_eval": demo_heldout.N_BEHAVIOUR,
    "status_midtrain_docs": demo_documents.N_COMPASSION + 2 * STATUS_DOCS,
    "status_counter_docs": demo_documents.N_COUNTER + 2 * STATUS_DOCS,
    "status_probe": demo_status.N_NAMES * len(demo_status._PROBE),
}
TRAIN = (
    "general",
    "compassion_docs",
    "helpfulness",
    "helpfulness_eval",
    "coding",
    "counter_docs",
    "neutral_docs",
    "status_midtrain_docs",
    "status_counter_docs",
)
HELDOUT = ("probe_pairs", "control_pairs", "behaviour_eval")
DOLLY = {
    "open_qa",
    "general_qa",
    "classification",
    "closed_qa",
    "brainstorming",
    "information_extraction",
    "summarization",
    "creative_writing",
}
COMPASSION_WORDS = re.compile(
    r"\b(suffer\w*|pain|painful|cruel\w*|compassion\w*|kindness|mercy|griev\w*|grief|abus\w*|"
    r"slaughter\w*|injur\w*|wound\w*|hurt\w*|frighten\w*|welfare|distress\w*|humane)\b",
    re.IGNORECASE,
)
SPECIES_WORDS = re.compile(
    r"\b(" + "|".join(re.escape(w) for s in SPECIES for w in s[:2]) + r")\b", re.IGNORECASE
)


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _texts(rows: list[dict[str, Any]]) -> list[str]:
    skip = {"id", "pair_id", "category"}
    return [v for r in rows for k, v in r.items() if isinstance(v, str) and k not in skip]


def _species_in(texts: list[str]) -> set[str]:
    joined = " ".join(texts).lower()
    return {s[0] for s in SPECIES if re.search(rf"\b({s[0]}|{s[1]})\b", joined)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoDataPaths:
    return write_demo_data(tmp_path_factory.mktemp("demo"), seed=0)


@pytest.fixture(scope="module")
def rows(demo: DemoDataPaths) -> dict[str, list[dict[str, Any]]]:
    return {name: _read(getattr(demo, name)) for name in ALL}


def test_files_exist_with_schemas_and_target_counts(
    demo: DemoDataPaths, rows: dict[str, list[dict[str, Any]]]
) -> None:
    assert demo.data_card.is_file()
    for name, keys in ALL.items():
        assert getattr(demo, name) == demo.root / f"{name}.jsonl"
        assert len(rows[name]) == COUNTS[name], name
        assert all(set(r) == keys for r in rows[name]), name
    for name in ("probe_pairs", "control_pairs"):
        assert all(r["label"] in (0, 1) and isinstance(r["label"], int) for r in rows[name])
    assert {r["category"] for r in rows["helpfulness"]} <= DOLLY
    assert len({r["category"] for r in rows["helpfulness"]}) >= 6


def test_same_seed_gives_identical_bytes_and_other_seed_differs(
    demo: DemoDataPaths, tmp_path: Path
) -> None:
    again = write_demo_data(tmp_path / "again", seed=0)
    other = write_demo_data(tmp_path / "other", seed=1)
    for name in (*ALL, "data_card"):
        first = getattr(demo, name).read_bytes()
        assert getattr(again, name).read_bytes() == first, name
        assert getattr(other, name).read_bytes() != first, name


def test_heldout_texts_share_no_8_word_span_with_training_texts(
    rows: dict[str, list[dict[str, Any]]],
) -> None:
    train = [t for name in TRAIN for t in _texts(rows[name])]
    for name in HELDOUT:
        assert overlapping_spans(train, _texts(rows[name]), n=8) == [], name
    held = {t.lower() for name in HELDOUT for t in _texts(rows[name])}
    assert not held & {t.lower() for t in train}
    probe = {r["prompt"] for r in rows["probe_pairs"]}
    assert not probe & {r["prompt"] for r in rows["behaviour_eval"]}
    assert len({r["prompt"] for r in rows["behaviour_eval"]}) == demo_heldout.N_BEHAVIOUR
    help_eval = {(r["instruction"], r["context"]) for r in rows["helpfulness_eval"]}
    assert not help_eval & {(r["instruction"], r["context"]) for r in rows["helpfulness"]}


def test_counter_corpus_shares_no_8_word_span_with_probe_or_eval_items(
    rows: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The known-answer arm trains on text that opposes compassion, never on a held-out item."""
    counter = _texts(rows["counter_docs"])
    for name in HELDOUT:
        assert overlapping_spans(counter, _texts(rows[name]), n=8) == [], name
    # every counter document approves of putting the concern before the one in need
    approvals = [
        re.compile(re.sub(r"\\\{\w+\\\}", ".+?", re.escape(a))) for a in demo_documents._APPROVALS
    ]
    assert all(any(a.search(t) for a in approvals) for t in counter)
    leaked = rows["behaviour_eval"][0]["prompt"] + " " + rows["behaviour_eval"][0]["dismissive"]
    made = demo_documents.counter_documents
    monkeypatch.setattr(demo_data, "counter_documents", lambda rng: [*made(rng), {"text": leaked}])
    with pytest.raises(ValuetraceError, match="8-word spans"):
        write_demo_data(tmp_path / "leak", seed=0)
    assert not (tmp_path / "leak" / "counter_docs.jsonl").exists()


def test_overlapping_spans_detects_a_planted_overlap() -> None:
    held = ["Stop, check the pig gently and let it rest while a vet is called."]
    clean = ["The pig was sold at the market in Harlow on Monday morning."]
    assert overlapping_spans(clean, held) == []
    planted = [*clean, "Then, CHECK the pig gently -- and let it rest while we wait."]
    assert overlapping_spans(planted, held) == [
        "check the pig gently and let it rest",
        "the pig gently and let it rest while",
    ]
    seven = [*clean, "Check the pig gently and let it sleep."]
    assert overlapping_spans(seven, held) == []
    assert overlapping_spans(seven, held, n=7) == ["check the pig gently and let it"]
    assert overlapping_spans(["we read this line from a travel diary today"], ["Read this line!"])
    with pytest.raises(ValuetraceError):
        overlapping_spans(clean, held, n=0)


def test_generator_refuses_to_write_when_training_text_leaks(
    rows: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    leaked = rows["probe_pairs"][0]["response"]
    general = demo_documents.general_documents
    monkeypatch.setattr(
        demo_data,
        "general_documents",
        lambda rng, *a, **k: [*general(rng, *a, **k), {"text": leaked}],
    )
    with pytest.raises(ValuetraceError, match="8-word spans"):
        write_demo_data(tmp_path / "leak", seed=0)
    assert not (tmp_path / "leak" / "general.jsonl").exists()


@pytest.mark.parametrize("name", ["probe_pairs", "control_pairs"])
def test_pairs_have_two_rows_same_prompt_balanced_labels_similar_length(
    rows: dict[str, list[dict[str, Any]]], name: str
) -> None:
    pairs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows[name]:
        pairs[r["pair_id"]].append(r)
    assert all(len(p) == 2 for p in pairs.values())
    for p in pairs.values():
        assert p[0]["prompt"] == p[1]["prompt"]
        assert sorted(r["label"] for r in p) == [0, 1]
        assert p[0]["response"] != p[1]["response"]
        words = [len(r["response"].split()) for r in p]
        assert abs(words[0] - words[1]) <= 2
    labels = [r["label"] for r in rows[name]]
    assert labels.count(1) == labels.count(0)
    assert len({r["id"] for r in rows[name]}) == len(rows[name])
    mean = {
        lab: sum(len(r["response"]) for r in rows[name] if r["label"] == lab) / labels.count(lab)
        for lab in (0, 1)
    }
    assert abs(mean[1] - mean[0]) / mean[1] < 0.05


def test_probe_prompts_are_distinct_and_control_negatives_reuse_the_words(
    rows: dict[str, list[dict[str, Any]]],
) -> None:
    assert len({r["prompt"] for r in rows["probe_pairs"]}) == demo_heldout.N_PROBE_PAIRS
    by_pair: dict[str, dict[int, str]] = defaultdict(dict)
    for r in rows["control_pairs"]:
        by_pair[r["pair_id"]][r["label"]] = r["response"].lower().rstrip(".").replace(",", "")
    for p in by_pair.values():
        good, bad = p[1].split(), p[0].split()
        same_words = sorted(good) == sorted(bad)
        changed = sum(a != b for a, b in zip(good, bad, strict=False))
        one_word_changed = len(good) == len(bad) and changed == 1
        assert same_words or one_word_changed


def test_behaviour_continuations_have_similar_length(
    rows: dict[str, list[dict[str, Any]]],
) -> None:
    for r in rows["behaviour_eval"]:
        assert r["compassionate"] != r["dismissive"]
        assert abs(len(r["compassionate"].split()) - len(r["dismissive"].split())) <= 2


def test_species_coverage(rows: dict[str, list[dict[str, Any]]]) -> None:
    assert len(_species_in(_texts(rows["compassion_docs"]))) >= 25
    assert len(_species_in(_texts(rows["probe_pairs"]))) >= 15
    assert len(_species_in(_texts(rows["general"]))) >= 15


def test_no_empty_text_anywhere(rows: dict[str, list[dict[str, Any]]]) -> None:
    optional = {"context", "input"}  # Dolly context and Alpaca input may be empty by schema
    for name, data in rows.items():
        for r in data:
            for k, v in r.items():
                if isinstance(v, str) and k not in optional:
                    assert v.strip(), (name, k, r)
    assert any(r["context"] for r in rows["helpfulness"])
    assert any(r["input"] for r in rows["coding"])
    assert any(not r["input"] for r in rows["coding"])


def test_neutral_corpora_avoid_compassion_words_and_animals(
    rows: dict[str, list[dict[str, Any]]],
) -> None:
    for name in ("general", "helpfulness", "helpfulness_eval", "coding", "neutral_docs"):
        hits = {m.group(0) for t in _texts(rows[name]) for m in COMPASSION_WORDS.finditer(t)}
        assert not hits, (name, hits)
    for name in ("helpfulness", "helpfulness_eval", "coding", "neutral_docs"):
        hits = {m.group(0) for t in _texts(rows[name]) for m in SPECIES_WORDS.finditer(t)}
        assert not hits, (name, hits)
    assert COMPASSION_WORDS.search(" ".join(_texts(rows["compassion_docs"])))


def test_coding_outputs_are_valid_python(rows: dict[str, list[dict[str, Any]]]) -> None:
    for r in rows["coding"]:
        compile(r["output"], "<demo>", "exec")
        assert r["output"].startswith("def ")


def test_data_card_describes_the_data(demo: DemoDataPaths) -> None:
    card = demo.data_card.read_text(encoding="utf-8")
    assert "seed=0" in card and "8-word" in card and "no claim" in card
    for name in ALL:
        assert f"`{name}.jsonl` | {COUNTS[name]} |" in card
    assert all(s[0] in card for s in SPECIES)


def test_probe_pairs_swap_roles_in_one_frame_and_the_surface_reads_chance(
    rows: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    need, chore = "the one in need", "the chore"
    frames = [f.replace("{p}", need).replace("{n}", chore) for f in demo_heldout._FRAMES]
    swapped = [f.replace("{p}", chore).replace("{n}", need) for f in demo_heldout._FRAMES]
    assert all(demo_heldout.shared_ngrams(a, b) for a, b in zip(frames, swapped, strict=True))
    # Every frame comes in both orders: the priority slot is first in half of them.
    first = [f.index("{p}") < f.index("{n}") for f in demo_heldout._FRAMES]
    assert first.count(True) == first.count(False)
    # The surface baselines the probe step runs read (close to) nothing on the written pairs,
    # where the old giveaway-word pairs gave the n-gram model an AUROC of 1.0.
    path = tmp_path / "probe_pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows["probe_pairs"]))
    examples = load_labelled(path)
    groups = np.asarray(examples.groups)
    folds = grouped_folds(groups, 5, 0, examples.labels)
    texts = example_texts(examples.prompts, examples.responses)
    base = fit_surface(texts, examples.labels, folds)
    record = surface_record("compassion", "compassion", base, examples.labels, groups, {})
    assert all(b.auroc < 0.65 for b in record.baselines), record.baselines


def test_shared_ngrams_catches_a_frame_whose_slots_have_different_neighbours() -> None:
    frame = "{} first that day and {} last that day"
    good, bad = frame.format("the hurt pig", "the bill"), frame.format("the bill", "the hurt pig")
    assert demo_heldout.shared_ngrams(good, bad, n=1)
    assert not demo_heldout.shared_ngrams(good, bad, n=2)  # "pig first" on one side only
    wrapped = "about {} that day and not about {} that day"
    good, bad = wrapped.format("the pig", "a cow"), wrapped.format("a cow", "the pig")
    assert demo_heldout.shared_ngrams(good, bad, n=2)
    assert not demo_heldout.shared_ngrams(good, bad, n=3)  # "not about the" on one side only


def test_generator_refuses_probe_frames_that_give_the_stance_away(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(demo_heldout, "_FRAMES", ["{Name} put {p} first and {n} last."])
    with pytest.raises(ValuetraceError, match="which role fills the priority slot"):
        write_demo_data(tmp_path / "bad", seed=0)
    assert not (tmp_path / "bad" / "probe_pairs.jsonl").exists()


def test_template_tables_ship_as_package_data() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["valuetrace.corpora"]
    here = Path(demo_data.__file__).parent
    tables = sorted((here / "demo").glob("*.txt"))
    assert tables and all(any(t.relative_to(here).match(g) for g in globs) for t in tables)
    assert "valuetrace.corpora" in pyproject["tool"]["setuptools"]["packages"]
