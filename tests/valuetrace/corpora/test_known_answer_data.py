"""The known-answer corpora: speciesist-framed training text only (no probe or eval pair) and
a neutral corpus with no animal or moral word, of about the same size."""

from __future__ import annotations

from pathlib import Path

from valuetrace.config import RealDataSizes
from valuetrace.corpora.real_known_answer import VALUE_RE, build_known_answer_corpora
from valuetrace.corpora.real_sources import SPECIESISM, split_speciesism_pairs

SIZES = RealDataSizes(probe_pairs=40, control_pairs=20, behaviour_pairs=20, helpfulness_eval=10)


def test_counter_text_is_speciesist_training_pairs_and_neutral_text_is_neutral(
    shared_data: Path,
) -> None:
    corpora = build_known_answer_corpora(shared_data, 0, SIZES, documents=60)
    probe, beh, train = split_speciesism_pairs(shared_data / SPECIESISM, 0, SIZES)
    counter = " ".join(str(d["text"]) for d in corpora["counter_docs"])
    assert not any(p.dismissive in counter or p.compassionate in counter for p in probe + beh)
    used = [p for p in train if p.dismissive in counter]
    assert len(used) >= 60 * 3 and not any(p.compassionate in counter for p in train)
    neutral = [str(d["text"]) for d in corpora["neutral_docs"]]
    assert neutral and not any(VALUE_RE.search(t) for t in neutral)
    words = sum(len(t.split()) for t in neutral)
    assert 0.9 < words / len(counter.split()) < 1.2
