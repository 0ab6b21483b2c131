"""The multi-source concept section (`analysis.concept_record`) as the analyze step runs it:
caches and saved probes in, the record out (tiny real model, real extraction and probes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import CORPUS
from valuetrace.activations.examples import load_labelled
from valuetrace.activations.extract import cache_provenance, extract_to_cache
from valuetrace.activations.store import read_activations
from valuetrace.analysis.concept_record import concept_section
from valuetrace.analysis.concept_sources import CROSS, SPECIFIC, ConceptSourcesRecord
from valuetrace.config import config_from_dict, resolve_data_path
from valuetrace.jsonl import write_jsonl
from valuetrace.probing import probe_layers, save_results
from valuetrace.records import load_record

KIND = ("cat", "dog", "goat", "hen")


def _rows(offset: int) -> list[dict[str, object]]:
    """Sentences of the tiny corpus, label 1 for some animals; a different slice per source."""
    picked = CORPUS[offset::5][:48]
    return [
        {
            "id": f"s{offset}-{i}",
            "pair_id": f"g{offset}-{i // 2}",
            "prompt": "",
            "response": text,
            "label": int(text.split()[1] in KIND),
        }
        for i, text in enumerate(picked)
    ]


def test_concept_section_reads_every_source_and_saves_the_record(
    tmp_path: Path, tiny_checkpoint: Path, tiny_model, tiny_tokenizer
) -> None:
    names = ["first", "second", "third"]
    config = config_from_dict(
        {
            "run_dir": str(tmp_path / "run"),
            "model": {"name_or_path": str(tiny_checkpoint)},
            "stages": [{"name": "base"}],
            "probes": [{"name": n, "source": f"${{data}}/{n}.jsonl"} for n in names],
            "probing": {"n_folds": 3, "n_bootstrap": 50},
            "behaviour": {"compassion_eval": "unused", "helpfulness_eval": {"source": "unused"}},
            "analysis": {"compare": []},
            "concept_sources": {"sources": names, "min_sources": 1},
        }
    )
    for offset, probe_set in enumerate(config.probes):
        path = Path(resolve_data_path(probe_set.source, config))
        examples = load_labelled(write_jsonl(_rows(offset), path))
        cache = config.paths.activations(probe_set.name, "base")
        provenance = cache_provenance(
            model="tiny",
            model_hash="tiny",
            tokenizer=tiny_tokenizer,
            examples=examples,
            dataset=probe_set.name,
            pooling="mean",
            dtype="float32",
            max_length=32,
            chat=False,
        )
        extract_to_cache(
            tiny_model,
            tiny_tokenizer,
            examples,
            cache,
            provenance=provenance,
            pooling="mean",
            batch_size=16,
            max_length=32,
            progress=False,
        )
        labels, groups = examples.labels, np.asarray(examples.groups)
        acts = read_activations(cache)
        out = config.paths.probes(probe_set.name, "base")
        out.parent.mkdir(parents=True, exist_ok=True)
        save_results(
            probe_layers(acts.acts, labels, groups, config.probing, layers=acts.layers), out
        )

    record = concept_section(config, ["base"], [], [])
    assert record is not None and record.notes == []
    (agreement,) = record.stages
    assert agreement.stage == "base" and agreement.sources == names
    assert agreement.layers == [0, 1, 2]
    assert set(agreement.verdict) <= {CROSS, SPECIFIC}
    assert np.asarray(agreement.auroc).shape == (3, 3, 3)
    # the animal word decides the label in every source: the embedding layer transfers
    assert agreement.verdict[0] == CROSS
    saved = load_record(ConceptSourcesRecord, config.paths.concept_sources)
    assert saved.stages[0].auroc == agreement.auroc
