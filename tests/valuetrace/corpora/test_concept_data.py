"""Tests for valuetrace.corpora.concept_data: the concept's sources as probe sets, and config."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from valuetrace.activations.examples import load_labelled
from valuetrace.analysis.behaviour import greedy_answers
from valuetrace.config import (
    ConceptSourcesConfig,
    config_from_dict,
    load_config,
    resolve_data_path,
)
from valuetrace.corpora.concept_data import (
    COMPASSIONATE,
    DISMISSIVE,
    PERSONA_FILE,
    anima_questions,
    empathy_rows,
    minimal_pair_rows,
    persona_rows,
    write_persona_data,
)
from valuetrace.corpora.real_data import build_real_corpora
from valuetrace.errors import ConfigError
from valuetrace.jsonl import write_jsonl
from valuetrace.steps.prepare import prepare

CONFIGS = Path(__file__).resolve().parents[3] / "valuetrace" / "configs"


def test_minimal_pairs_swap_only_the_entity(shared_data: Path, tmp_path: Path) -> None:
    rows = minimal_pair_rows(shared_data)
    assert len(rows) == 60
    examples = load_labelled(write_jsonl(rows, tmp_path / "mp.jsonl"))
    high, low = rows[0], rows[1]
    assert (high["label"], low["label"]) == (1, 0) and high["pair_id"] == low["pair_id"]
    assert " dog " in high["response"] and " chicken " in low["response"]
    assert high["response"].replace("dog", "chicken") == low["response"]
    assert len(set(examples.groups)) == 30


def test_empathy_essays_are_balanced_and_never_mid_training_text(shared_data: Path) -> None:
    rows = empathy_rows(shared_data, 120, seed=0)
    assert len(rows) == 120 and sum(r["label"] for r in rows) == 60
    assert rows == empathy_rows(shared_data, 120, seed=0)
    corpora, _ = build_real_corpora(shared_data, seed=0)
    training = " ".join(d["text"] for d in corpora["compassion_docs"])
    assert not [r for r in rows if r["response"] in training]
    # the other seed holds out other respondents
    other = {r["pair_id"] for r in empathy_rows(shared_data, 120, seed=1)}
    assert other != {r["pair_id"] for r in rows}


def test_anima_questions_are_english_and_distinct(shared_data: Path) -> None:
    questions = anima_questions(shared_data, 200)
    texts = [t for _, t in questions]
    assert 26 < len(questions) <= 115 and len(set(texts)) == len(texts)
    assert questions[0] == ("anima-0", "Do fish feel pain?")
    assert not any(t.endswith("Answer:") for t in texts)
    assert len(anima_questions(shared_data, 5)) == 5
    short = anima_questions(shared_data, 200, max_words=12)
    assert 0 < len(short) < len(questions)
    assert all(len(t.split()) <= 12 for _, t in short)
    assert max(len(t.split()) for t in texts) > 100  # the long scenarios that are skipped


def test_persona_rows_are_the_model_own_answers_under_each_system_prompt(
    tiny_model, tiny_tokenizer, shared_data: Path, tmp_path: Path
) -> None:
    # The random tiny model's argmax is a newline; generation may not pick blank tokens here.
    model = copy.deepcopy(tiny_model)
    vocab = range(len(tiny_tokenizer))
    model.generation_config.suppress_tokens = [
        i for i in vocab if not tiny_tokenizer.decode([i]).strip()
    ]
    tiny_model = model
    questions = [("q1", "The cat rested near the barn."), ("q2", "The dog slept.")]
    rows = persona_rows(tiny_model, tiny_tokenizer, questions, max_new_tokens=4, chat=False)
    kind = greedy_answers(
        tiny_model, tiny_tokenizer, ["The dog slept."], max_new_tokens=4, system=COMPASSIONATE
    )
    cold = greedy_answers(
        tiny_model, tiny_tokenizer, ["The dog slept."], max_new_tokens=4, system=DISMISSIVE
    )
    by_id = {r["id"]: r for r in rows}
    assert by_id["q2/1"]["response"] == kind[0] and by_id["q2/0"]["response"] == cold[0]
    assert by_id["q2/1"]["prompt"] == "The dog slept."  # the system prompt is not kept
    assert {r["pair_id"] for r in rows} == {"q1", "q2"}
    config = ConceptSourcesConfig(sources=["a", "b"], anima_questions=2, anima_new_tokens=3)
    path = write_persona_data(tiny_model, tiny_tokenizer, shared_data, tmp_path, config, chat=False)
    assert path is not None and len(load_labelled(path)) == 4
    path.write_text(path.read_text().replace("anima-0", "kept"))
    write_persona_data(tiny_model, tiny_tokenizer, shared_data, tmp_path, config, chat=False)
    assert "kept" in path.read_text()  # generated once, never overwritten
    none = ConceptSourcesConfig(sources=["a", "b"], anima_questions=0)
    assert (
        write_persona_data(tiny_model, tiny_tokenizer, shared_data, tmp_path, none, chat=False)
        is None
    )


@pytest.mark.parametrize("name", ["smollm2-135m.yaml", "smollm2-known-answer.yaml"])
def test_the_real_model_configs_use_the_multi_source_concept(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert config.concept_sources is not None
    assert config.concept_sources.sources[0] == config.probes[0].name
    assert len(config.concept_sources.sources) == 4


@pytest.mark.parametrize(
    ("concept", "match"),
    [
        ({"sources": ["compassion", "nope"]}, "not probe sets"),
        ({"sources": ["ethics_cm", "minimal"]}, "lacks the primary"),
        ({"sources": ["compassion", "minimal"], "min_sources": 2}, "other source"),
        ({"sources": ["compassion", "minimal"], "min_sources": 1, "min_auroc": 0.4}, "min_auroc"),
    ],
)
def test_bad_concept_sources_are_config_errors(
    concept: dict[str, object], match: str, tmp_path: Path
) -> None:
    text = (CONFIGS / "smollm2-135m.yaml").read_text()
    data = yaml.safe_load(text.replace("${config_dir}", str(CONFIGS)))
    data["probes"] = [
        {"name": "compassion", "source": "a.jsonl"},
        {"name": "ethics_cm", "source": "b.jsonl", "concept": "other"},
        {"name": "minimal", "source": "c.jsonl"},
    ]
    data["concept_sources"] = concept
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_prepare_writes_every_data_made_source_the_real_model_config_probes(
    shared_data: Path, tmp_path: Path
) -> None:
    config = load_config(CONFIGS / "smollm2-135m.yaml", run_dir=str(tmp_path / "run"))
    config.real_data_dir = str(shared_data)
    prepare(config)
    sizes = {}
    for probe_set in config.probes:
        path = Path(resolve_data_path(probe_set.source, config))
        if path.name == PERSONA_FILE:
            assert not path.exists()  # generated by the first stage at `extract`
            continue
        sizes[probe_set.name] = len(load_labelled(path))
    assert sizes["minimal_pairs"] == 60 and sizes["empathy"] == 120
