"""The neutral arm as a floor for every study: a verdict the neutral fine-tune matches at its
layer is not value-specific, and a neutral arm from another parent is no floor at all.

Constructed activations: from `mid`, fine-tuning as such weakens the concept at layer GENERIC
(both `sft` and `neutral` do it) and only `sft` weakens it at layer VALUE."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from valuetrace.activations.store import Activations
from valuetrace.analysis.findings import Findings
from valuetrace.analysis.localize import compare_stages
from valuetrace.analysis.neutral_floor import Dose, dose_gap, neutral_floors, value_specific
from valuetrace.analysis.report_evidence import floor_sentence
from valuetrace.analysis.stage_comparison import StageComparison
from valuetrace.analysis.study import StageData, StudyInputs, compare_concept, neutral_floor
from valuetrace.analysis.verdict import Verdict
from valuetrace.config import ProbingConfig, RunConfig, load_config
from valuetrace.probing import probe_layers
from valuetrace.records import load_record, save_record
from valuetrace.stats import Interval

N_LAYERS, N_PAIRS, D = 4, 60, 12
GENERIC, VALUE = 1, 2


def _config(tmp_path: Path, compare: list[list[str]], neutral_parent: str = "mid") -> RunConfig:
    stage = {"checkpoint": str(tmp_path / "ckpt")}
    data = {
        "run_dir": str(tmp_path / "run"),
        "model": {"name_or_path": str(tmp_path / "model")},
        "stages": [
            {"name": "base"},
            {"name": "mid", "parent": "base", **stage},
            {"name": "sft", "parent": "mid", **stage},
            {"name": "sft~seed1", "parent": "mid", **stage},
            {"name": "neutral", "parent": neutral_parent, **stage},
            {"name": "neutral~seed1", "parent": neutral_parent, **stage},
        ],
        "probes": [{"name": "c", "source": "c.jsonl", "concept": "compassion"}],
        "behaviour": {"compassion_eval": "e.jsonl", "helpfulness_eval": {"source": "h.jsonl"}},
        "probing": {"n_folds": 3, "n_bootstrap": 300},
        "analysis": {"compare": compare, "neutral_arm": "neutral"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


@pytest.fixture(scope="module")
def loaded() -> dict[str, StageData]:
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], N_PAIRS)
    groups = [str(g) for g in np.repeat(np.arange(N_PAIRS), 2)]
    parent = rng.normal(size=(N_LAYERS, 2 * N_PAIRS, D))
    parent[:, :, 0] += 1.5 * labels

    def child(seed: int, weakened: list[int]) -> np.ndarray:
        x = parent + 0.05 * np.random.default_rng(seed).normal(size=parent.shape)
        for layer in weakened:
            x[layer, :, 0] -= 0.7 * 1.5 * labels
        return x

    acts = {
        "base": parent + 0.05 * rng.normal(size=parent.shape),
        "mid": parent,
        "sft": child(1, [GENERIC, VALUE]),
        "sft~seed1": child(2, [GENERIC, VALUE]),
        "neutral": child(3, [GENERIC]),
        "neutral~seed1": child(4, [GENERIC]),
    }
    probes = probe_layers(parent, labels, np.asarray(groups), ProbingConfig(n_folds=3), seed=0)
    ids = [f"x{i}" for i in range(2 * N_PAIRS)]
    return {
        name: StageData(
            Activations(a, list(range(N_LAYERS)), ids, labels, groups, {"dataset": "c"}), probes
        )
        for name, a in acts.items()
    }


def _floors(config: RunConfig, loaded: dict[str, StageData]) -> dict:
    replicate_of = {"sft~seed1": "sft", "neutral~seed1": "neutral"}
    concept, _ = compare_concept(config, "c", "compassion", loaded, replicate_of)
    inputs = StudyInputs(
        concepts={"c": ("compassion", loaded)},
        behaviour={},
        items={},
        stages=list(loaded),
        replicate_of=replicate_of,
    )
    return {f.pair: f for f in neutral_floor(config, inputs, {"c": concept})}, concept


def test_only_the_change_the_neutral_arm_does_not_make_is_value_specific(tmp_path, loaded):
    config = _config(tmp_path, [["base", "mid"], ["mid", "sft"]])
    floors, _ = _floors(config, loaded)
    sft = floors["mid→sft"]
    assert sft.comparable and sft.fired == [GENERIC, VALUE]
    assert sft.value_specific == [VALUE] and sft.within_floor == [GENERIC]
    assert sft.floor_drop[GENERIC] > sft.floor_drop[VALUE]  # the neutral arm's own weakening
    assert "1 of 2" in sft.note
    base = floors["base→mid"]
    assert not base.comparable and base.value_specific == [] and base.floor_drop == []
    assert "branches from 'mid', not 'base'" in base.note
    # the neutral arm as a compared pair is reused, not recomputed, and not judged against itself
    listed = _config(tmp_path, [["mid", "sft"], ["mid", "neutral"]])
    again, concept2 = _floors(listed, loaded)
    assert again["mid→sft"].value_specific == [VALUE]
    assert not again["mid→neutral"].comparable and "itself" in again["mid→neutral"].note
    sft = concept2.comparisons["mid→sft"]
    whole = Verdict(sft.verdicts[VALUE])  # the neutral arm changes nothing at VALUE: all of it
    assert whole.weakened
    assert value_specific(sft, concept2.comparisons["mid→neutral"]) == {VALUE: whole}
    assert again["mid→sft"].value_specific_verdicts == [whole]


def test_only_the_part_of_a_verdict_beyond_the_neutral_arm_is_value_specific(tmp_path, loaded):
    """At GENERIC the neutral arm weakens as much as sft does; if sft also rotated there beyond
    the neutral arm's rotation, that layer is value-specific as a rotation, not a weakening."""
    _, concept = _floors(_config(tmp_path, [["mid", "sft"], ["mid", "neutral"]]), loaded)
    sft, neutral = concept.comparisons["mid→sft"], concept.comparisons["mid→neutral"]
    assert Verdict(sft.verdicts[GENERIC]).weakened
    gap = list(sft.rotation.drop)
    gap[GENERIC] = abs(neutral.rotation.drop[GENERIC]) + 1.0
    verdicts = list(sft.verdicts)
    verdicts[GENERIC] = Verdict.WEAKENING_ROTATION
    turned = dataclasses.replace(
        sft, verdicts=verdicts, rotation=dataclasses.replace(sft.rotation, drop=gap)
    )
    whole = Verdict(sft.verdicts[VALUE])
    assert value_specific(turned, neutral) == {GENERIC: Verdict.ROTATION, VALUE: whole}
    (floor,) = neutral_floors("c", {"mid→sft": turned}, "neutral", "mid", neutral)
    assert floor.value_specific == [GENERIC, VALUE] and floor.within_floor == []
    assert floor_sentence(floor).startswith(
        "c mid→sft: 2 of 2 fired layer verdicts survive the neutral floor (value-specific "
        f"rotation at layer 1, {whole} at layer 2)"
    )


def test_a_layer_where_the_neutral_change_is_undefined_has_no_floor(tmp_path, loaded):
    """A NaN neutral drop must not read as "the neutral arm matched it" (within the floor)."""
    _, concept = _floors(_config(tmp_path, [["mid", "sft"], ["mid", "neutral"]]), loaded)
    sft, neutral = concept.comparisons["mid→sft"], concept.comparisons["mid→neutral"]
    drop = list(neutral.encoded.drop)
    drop[GENERIC] = float("nan")
    encoded = dataclasses.replace(neutral.encoded, drop=drop)
    undefined = dataclasses.replace(neutral, encoded=encoded)
    (floor,) = neutral_floors("c", {"mid→sft": sft}, "neutral", "mid", undefined)
    assert floor.no_floor == [GENERIC] and floor.within_floor == []
    assert floor.value_specific == [VALUE]
    assert "No floor at layer 1: the neutral arm's change is undefined there." in floor_sentence(
        floor
    )


def test_a_neutral_arm_trained_otherwise_says_so_and_a_larger_one_does_not():
    lora = {"r": 16, "alpha": 32}
    config = {"method": "lora", "learning_rate": 2e-4, "lora": lora}
    child = Dose.of(config, {"steps": 20, "tokens_seen": 14000})
    assert Dose.of(config, {}) is None  # a stage not trained here: no dose recorded
    assert dose_gap(child, Dose.of(config, {"steps": 20, "tokens_seen": 19000})) == ""
    smaller = Dose.of({**config, "learning_rate": 1e-4}, {"steps": 10, "tokens_seen": 7000})
    assert dose_gap(child, smaller) == (
        "learning rate 0.0001 vs 0.0002; optimizer steps 10 vs 20; tokens 7000 vs 14000"
    )


def test_the_floor_sentence_names_a_dose_gap(tmp_path, loaded):
    _, concept = _floors(_config(tmp_path, [["mid", "sft"], ["mid", "neutral"]]), loaded)
    sft, neutral = concept.comparisons["mid→sft"], concept.comparisons["mid→neutral"]
    doses = {
        "sft": Dose("lora", 2e-4, "r 16", 20, 14000),
        "neutral": Dose("full", 2e-4, "", 20, 14000),
    }
    (floor,) = neutral_floors("c", {"mid→sft": sft}, "neutral", "mid", neutral, doses)
    assert floor.dose_gap == "method full vs lora; LoRA none vs r 16"
    assert "The neutral arm was trained otherwise than sft (method full vs lora" in floor_sentence(
        floor
    )
    (alike,) = neutral_floors("c", {"mid→sft": sft}, "neutral", "mid", neutral, {})
    assert alike.dose_gap == "" and "trained otherwise" not in floor_sentence(alike)


def test_a_layer_the_parent_does_not_encode_is_neither_fired_nor_value_specific(loaded):
    first = loaded["mid"]
    labels, groups, folds = first.cache.labels, first.cache.groups, first.probes.folds
    read, chance = Interval(0.9, 0.8, 1.0), Interval(0.55, 0.45, 0.65)
    auroc = [chance if i == VALUE else read for i in range(N_LAYERS)]

    def change(child: str) -> StageComparison:
        acts = loaded["mid"].cache.acts, loaded[child].cache.acts
        return compare_stages(
            *acts,
            labels,
            groups,
            folds,
            stage_a="mid",
            stage_b=child,
            n_boot=300,
            parent_auroc=auroc,
        )[0]

    (sft,) = neutral_floors("c", {"mid→sft": change("sft")}, "neutral", "mid", change("neutral"))
    assert sft.fired == [GENERIC] and sft.value_specific == [] and sft.not_encoded == [VALUE]


def test_a_neutral_arm_from_another_parent_is_no_floor(tmp_path, loaded):
    config = _config(tmp_path, [["mid", "sft"]], neutral_parent="base")
    floors, _ = _floors(config, loaded)
    assert not floors["mid→sft"].comparable
    assert "branches from 'base', not 'mid'" in floors["mid→sft"].note


def test_without_a_neutral_arm_there_is_no_floor_and_old_findings_read(tmp_path, loaded):
    config = _config(tmp_path, [["mid", "sft"]])
    config.analysis.neutral_arm = None
    floors, _ = _floors(config, loaded)
    assert floors == {}
    plain = {
        "schema": Findings.SCHEMA,
        "schema_version": 3,
        "stages": [],
        "replicate_of": {},
        "primary_dataset": "c",
        "primary_pair": ["a", "b"],
        "ci": 0.95,
        "behaviour": {},
        "behaviour_changes": {},
        "concepts": {},
        "concentration": [],
        "projection": {},
        "figures": [],
    }
    path = tmp_path / "findings.json"
    path.write_text(json.dumps(plain))
    old = load_record(Findings, path)
    assert old.neutral_floor == []
    save_record(old, path)
    assert load_record(Findings, path) == old
