"""Lineage: parents, weight hashes, changed files and identical stages are caught; paths are
stored relative to the run folder; fingerprints name what changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from valuetrace.errors import ValuetraceError
from valuetrace.models import weights_hash
from valuetrace.training.lineage import (
    Lineage,
    StageRecord,
    changed_inputs,
    stage_fingerprint,
    stage_hash,
)


def test_round_trip_and_order(tmp_path, tiny_checkpoint):
    lineage = Lineage([StageRecord("base", str(tiny_checkpoint))])
    lineage.put(StageRecord("mid", str(tiny_checkpoint), parent="base"))
    lineage.save(tmp_path / "lineage.json")
    loaded = Lineage.load(tmp_path / "lineage.json")
    assert loaded.names() == ["base", "mid"] and loaded.get("mid").parent == "base"


def test_unknown_parent_and_missing_file(tmp_path):
    (tmp_path / "l.json").write_text(
        '{"stages": [{"name": "sft", "checkpoint": "x", "parent": "mid"}]}'
    )
    with pytest.raises(ValuetraceError, match="parent 'mid'"):
        Lineage.load(tmp_path / "l.json")
    with pytest.raises(ValuetraceError, match="valuetrace train"):
        Lineage.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValuetraceError, match="not a valid lineage file"):
        Lineage.load(tmp_path / "bad.json")


def test_changed_weights_are_detected(tmp_path, tiny_checkpoint):
    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, copy)
    lineage = Lineage([StageRecord("base", str(copy), weights_hash=weights_hash(copy))])
    lineage.verify()
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ValuetraceError, match="changed since they were recorded"):
        lineage.verify()


def test_identical_stages_are_refused(tmp_path, tiny_checkpoint):
    copy = tmp_path / "same"
    shutil.copytree(tiny_checkpoint, copy)
    lineage = Lineage([StageRecord("a", str(tiny_checkpoint)), StageRecord("b", str(copy))])
    with pytest.raises(ValuetraceError, match="identical weights"):
        lineage.verify()


def test_paths_inside_the_folder_are_stored_relative_and_read_from_any_cwd(
    tmp_path, tiny_checkpoint, monkeypatch
):
    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint, run / "checkpoints" / "base")
    monkeypatch.chdir(tmp_path)
    lineage = Lineage(
        [
            StageRecord("base", "run/checkpoints/base"),  # relative to the cwd, inside the run
            StageRecord("mid", "org/model-on-the-hub", parent="base"),
            StageRecord("sft", str(tiny_checkpoint), parent="mid"),  # absolute, outside
        ]
    )
    lineage.save(run / "lineage.json")
    stored = json.loads((run / "lineage.json").read_text())["stages"]
    assert [s["checkpoint"] for s in stored] == [
        "checkpoints/base",
        "org/model-on-the-hub",
        str(tiny_checkpoint),
    ]
    moved = tmp_path / "elsewhere" / "moved"
    shutil.copytree(run, moved)
    shutil.rmtree(run)
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = Lineage.load(moved / "lineage.json")
    assert Path(loaded.get("base").checkpoint) == moved / "checkpoints" / "base"
    assert loaded.get("mid").checkpoint == "org/model-on-the-hub"
    assert loaded.get("sft").checkpoint == str(tiny_checkpoint)
    assert stage_hash(loaded.get("base")) == weights_hash(tiny_checkpoint)


def test_a_fingerprint_changes_with_settings_data_and_parent_and_names_the_change():
    settings = {"learning_rate": 1e-3, "epochs": 1.0}
    context = {"seed": 0}
    base = stage_fingerprint(settings, context, "data-a", None)
    assert base == stage_fingerprint(dict(settings), dict(context), "data-a", None)
    variants = [
        stage_fingerprint({**settings, "learning_rate": 5e-4}, context, "data-a", None),
        stage_fingerprint(settings, {"seed": 1}, "data-a", None),
        stage_fingerprint(settings, context, "data-b", None),
        stage_fingerprint(settings, context, "data-a", "parent-fp"),
    ]
    assert len({base, *variants}) == 5
    old = StageRecord("sft", "x", parent="mid", data_hash="a", config=settings, fingerprint=base)
    new = StageRecord(
        "sft", "x", parent="mid", data_hash="b", config={**settings, "learning_rate": 5e-4}
    )
    changes = changed_inputs(old, new, parent_changed=True)
    assert changes == [
        "learning_rate: 0.001 -> 0.0005",
        "data (its content hash changed)",
        "parent 'mid' (changed upstream)",
    ]


def test_the_lineage_file_states_its_format_version_and_refuses_a_newer_one(tmp_path):
    import json

    from valuetrace.errors import LineageError
    from valuetrace.training.lineage import LINEAGE_VERSION, Lineage

    path = tmp_path / "lineage.json"
    Lineage().save(path)
    assert json.loads(path.read_text())["format_version"] == LINEAGE_VERSION
    path.write_text(json.dumps({"stages": []}))  # hand-written, no version: version 1
    assert Lineage.load(path).records == []
    path.write_text(json.dumps({"format_version": LINEAGE_VERSION + 1, "stages": []}))
    with pytest.raises(LineageError, match="newer than this valuetrace reads"):
        Lineage.load(path)
