"""The study's domain rules: headline pair, control arm, floor replicates, verdicts as a type."""

from __future__ import annotations

import json

import pytest

from valuetrace.analysis.findings import Figure, Findings
from valuetrace.analysis.localize import Verdict
from valuetrace.analysis.study import control_arm, floor_twins, primary_pair
from valuetrace.errors import CacheError
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
