"""The study's domain rules: headline pair, control arm, floor replicates, verdicts as a type."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from valuetrace.activations.store import Activations
from valuetrace.analysis.findings import Figure, Findings
from valuetrace.analysis.localize import Verdict, compare_stages
from valuetrace.analysis.report_words import verdict_sentence
from valuetrace.analysis.study import (
    StageData,
    compare_concept,
    control_arm,
    floor_twins,
    primary_pair,
)
from valuetrace.config import ProbingConfig, load_config
from valuetrace.errors import CacheError
from valuetrace.probing import probe_layers
from valuetrace.records import check_version, load_record

COMPARE = [("base", "mid"), ("mid", "sft_help"), ("mid", "sft_code")]


def test_the_headline_is_the_first_pair_that_continues_another():
    assert primary_pair(COMPARE) == ("mid", "sft_help")
    assert primary_pair([("a", "b"), ("a", "c")]) == ("a", "b")  # no chain: the first pair
    assert control_arm(COMPARE, ("mid", "sft_help")) == ("mid", "sft_code")
    assert control_arm(COMPARE, ("base", "mid")) is None


def test_the_floor_comes_from_b_s_replicates_else_a_s():
    reps = {"mid~1": "mid", "sft~1": "sft", "sft~2": "sft"}
    assert floor_twins("mid", "sft", reps, set(reps)) == ("sft", ["sft~1", "sft~2"])
    assert floor_twins("mid", "sft", reps, {"mid~1"}) == ("mid", ["mid~1"])
    assert floor_twins("base", "x", reps, set(reps)) is None


def test_a_verdict_is_built_from_flags_not_strings():
    assert Verdict.of(True, False, True) is Verdict.WEAKENING_ROTATION
    assert Verdict.of(False, True, False) is Verdict.STRENGTHENING
    assert Verdict.of(False, False, True) is Verdict.ROTATION
    assert Verdict.of(False, False, False) is Verdict.NONE
    assert Verdict.WEAKENING_ROTATION.weakened and not Verdict.DRIFT.weakened


def test_every_on_disk_format_follows_one_version_rule():
    assert check_version("x", "f", 2, current=3) == 2
    with pytest.raises(CacheError, match="newer than this valuetrace reads"):
        check_version("x", "f", 4, current=3)
    with pytest.raises(CacheError, match="older than this valuetrace reads"):
        check_version("x", "f", 1, current=3, oldest=2, fix="rerun it")
    with pytest.raises(CacheError, match="not a version"):
        check_version("x", "f", None, current=3)


def test_a_version_2_findings_file_reads_with_its_figures_as_records(tmp_path):
    """Findings 2 stored figures as {name: path}; version 3 reads them as `Figure` records."""
    plain = {
        "schema": Findings.SCHEMA,
        "schema_version": 2,
        "stages": [],
        "replicate_of": {},
        "primary_dataset": "compassion",
        "primary_pair": ["a", "b"],
        "ci": 0.95,
        "behaviour": {},
        "behaviour_changes": {},
        "concepts": {"compassion": None, "compassion_ctl": None},
        "concentration": [],
        "projection": {},
        "figures": {
            "compassion_ctl_encoded": "analysis/figures/compassion_ctl_encoded.png",
            "compassion_cka": "analysis/figures/compassion_cka.png",
            "umap": "analysis/figures/umap.png",
        },
    }
    path = tmp_path / "findings.json"
    path.write_text(json.dumps(plain))
    with pytest.raises(CacheError, match="concepts"):
        load_record(Findings, path)  # the upgrade runs, then the (empty) concepts are checked
    upgraded = Findings.upgrade(plain, 2)["figures"]
    assert [Figure(**f) for f in upgraded] == [
        Figure(
            "compassion_ctl_encoded",
            "encoded",
            "compassion_ctl",
            plain["figures"]["compassion_ctl_encoded"],
        ),
        Figure("compassion_cka", "cka", "compassion", plain["figures"]["compassion_cka"]),
        Figure("umap", "umap", None, "analysis/figures/umap.png"),
    ]


N_LAYERS, N_PAIRS, D = 5, 60, 16
WEAK = [0, 1]  # the parent's class signal is faint here: its probe reads chance
STRENGTH = np.array([0.2, 0.2, 1.5, 1.5, 1.5])


def test_a_drop_where_the_parent_does_not_encode_the_concept_is_no_weakening(tmp_path):
    """The parent's signal is faint at WEAK (its probe's held-out AUROC interval reaches below
    0.5) and strong elsewhere; the child keeps 30% of it everywhere. The paired test finds the
    drop at WEAK significant (the old verdict: weakening), but nothing was encoded there to
    weaken: "not encoded in the parent". Elsewhere the verdicts are those of the plain test."""
    rng = np.random.default_rng(2)
    labels = np.tile([0, 1], N_PAIRS)
    groups = [str(g) for g in np.repeat(np.arange(N_PAIRS), 2)]
    mid = rng.normal(size=(N_LAYERS, 2 * N_PAIRS, D))
    mid[:, :, 0] += STRENGTH[:, None] * labels
    sft = mid + 0.02 * rng.normal(size=mid.shape)
    sft[:, :, 0] -= 0.7 * STRENGTH[:, None] * labels
    ids = [f"x{i}" for i in range(2 * N_PAIRS)]
    probing = ProbingConfig(n_folds=3, n_bootstrap=300)
    loaded = {
        name: StageData(
            Activations(x, list(range(N_LAYERS)), ids, labels, groups, {"dataset": "c"}),
            probe_layers(x, labels, np.asarray(groups), probing, seed=0),
        )
        for name, x in (("mid", mid), ("sft", sft))
    }
    data = {
        "run_dir": str(tmp_path / "run"),
        "model": {"name_or_path": str(tmp_path / "model")},
        "stages": [{"name": "mid"}, {"name": "sft", "parent": "mid", "checkpoint": "ckpt"}],
        "probes": [{"name": "c", "source": "c.jsonl", "concept": "compassion"}],
        "behaviour": {"compassion_eval": "e.jsonl", "helpfulness_eval": {"source": "h.jsonl"}},
        "probing": {"n_folds": 3, "n_bootstrap": 300},
        "analysis": {"compare": [["mid", "sft"]]},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    config = load_config(tmp_path / "config.yaml")
    found, _ = compare_concept(config, "c", "compassion", loaded, {})
    cmp = found.comparisons["mid→sft"]
    parent = loaded["mid"].probes.auroc_ci
    assert all(parent[i, 0] <= 0.5 for i in WEAK) and all(parent[2:, 0] > 0.5)
    for i in WEAK:  # what the paired test alone would call a weakening
        assert cmp.encoded.drop[i] > 0 and cmp.encoded.p_drop[i] <= cmp.alpha
    assert not any(cmp.verdicts[i].weakened or cmp.verdicts[i].fired for i in WEAK)
    assert [cmp.verdicts[i] for i in WEAK] == [Verdict.NOT_ENCODED] * len(WEAK)
    assert not any(cmp.encoded.drop_found[i] for i in WEAK) and cmp.not_encoded() == WEAK
    plain, _ = compare_stages(
        mid, sft, labels, groups, loaded["mid"].probes.folds, n_boot=300, seed=config.seed
    )
    assert cmp.verdicts[2:] == plain.verdicts[2:] and Verdict.WEAKENING in cmp.verdicts[2:]
    assert cmp.encoded.p_drop == plain.encoded.p_drop
    assert cmp.encoded.first_drop.layer == 2 and min(cmp.localised()) >= 2
    words = " ".join(verdict_sentence(cmp).split())
    assert (
        "layers 0–1: not encoded in mid (its probe's held-out AUROC interval does not lie above "
        "0.5), so no change can be judged" in words
    )
