"""The moral-status known answer's corpora: invented names that mid-training writes as beings or
things, a counter corpus that writes all of them as things, and a probe set whose words carry
nothing (folds grouped by name)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from valuetrace.activations.examples import load_labelled
from valuetrace.corpora import demo_status
from valuetrace.corpora.demo_data import build_demo_corpora, row_texts
from valuetrace.corpora.demo_templates import Row, words_of
from valuetrace.errors import DataError
from valuetrace.probing.folds import grouped_folds
from valuetrace.probing.surface import example_texts, fit_surface, surface_record


@pytest.fixture(scope="module")
def corpora() -> dict[str, list[Row]]:
    return build_demo_corpora(0)


def _kinds(rows: list[Row], names: set[str]) -> dict[str, Counter[str]]:
    """Per name, how many of its frames were being frames and how many thing frames."""
    patterns = {
        kind: [re.compile(re.escape(f).replace(r"\{x\}", r"(\w+)").replace(r"\{Name\}", r"\w+")
               .replace(r"\{name\}", r"\w+")) for f in frames]
        for kind, frames in (("being", demo_status._BEING), ("thing", demo_status._THING))
    }  # fmt: skip
    seen: dict[str, Counter[str]] = {}
    for text in (str(r["text"]) for r in rows):
        for kind, regexes in patterns.items():
            for rx in regexes:
                for m in rx.finditer(text):
                    if m.group(1) in names:
                        seen.setdefault(m.group(1), Counter())[kind] += 1
    return seen


def test_names_are_new_words_and_midtraining_gives_each_half_its_own_frames(
    corpora: dict[str, list[Row]],
) -> None:
    probe = corpora["status_probe"]
    beings = {str(r["group"]) for r in probe if r["label"] == 1}
    things = {str(r["group"]) for r in probe if r["label"] == 0}
    assert len(beings) == len(things) == demo_status.N_NAMES // 2 and not beings & things
    others = ("general", "compassion_docs", "helpfulness", "coding", "counter_docs")
    words = {w for name in others for t in row_texts(corpora[name]) for w in words_of(t)}
    assert not (beings | things) & words  # base never sees them
    mid = _kinds(corpora["status_midtrain_docs"], beings | things)
    assert set(mid) == beings | things
    assert all(mid[n]["thing"] == 0 and mid[n]["being"] >= 6 for n in beings)
    assert all(mid[n]["being"] == 0 and mid[n]["thing"] >= 6 for n in things)
    counter = _kinds(corpora["status_counter_docs"], beings | things)
    # every name, beings and things alike, as a thing, equally often in all
    assert set(counter) == beings | things and all(c["being"] == 0 for c in counter.values())
    totals = [sum(c.values()) for c in counter.values()]
    assert np.mean([counter[n]["thing"] for n in beings]) == pytest.approx(
        np.mean([counter[n]["thing"] for n in things]), rel=0.1
    )
    assert min(totals) >= demo_status.DOCS_PER_NAME


def test_probe_answers_differ_only_in_the_name_and_the_surface_reads_chance(
    corpora: dict[str, list[Row]], tmp_path: Path
) -> None:
    probe = corpora["status_probe"]
    shapes = Counter((str(r["response"]).replace(str(r["group"]), "X"), r["label"]) for r in probe)
    by_label = [{s for (s, y) in shapes if y == label} for label in (0, 1)]
    assert by_label[0] == by_label[1]  # the same answer forms for beings and things
    path = tmp_path / "status.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in probe))
    examples = load_labelled(path)
    groups = np.asarray(examples.groups)
    assert len(set(groups)) == demo_status.N_NAMES  # folds hold out whole names
    folds = grouped_folds(groups, 5, 0, examples.labels)
    base = fit_surface(example_texts(examples.prompts, examples.responses), examples.labels, folds)
    record = surface_record("status", "compassion", base, examples.labels, groups, {})
    assert all(b.auroc < 0.6 for b in record.baselines), record.baselines


def test_invented_names_refuses_when_every_word_is_taken() -> None:
    pools = (
        demo_status._ONSETS,
        demo_status._VOWELS,
        demo_status._ONSETS,
        demo_status._VOWELS,
        demo_status._CODAS,
    )
    every = {""}
    for pool in pools:
        every = {w + p for w in every for p in pool}
    with pytest.raises(DataError, match="invented names"):
        demo_status.invented_names(random.Random(0), every, n=1)
