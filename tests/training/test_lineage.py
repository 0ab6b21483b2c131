"""Lineage: parents, weight hashes, changed files and identical stages are caught."""

from __future__ import annotations

import shutil

import pytest
from valuetrace.training.lineage import Lineage, StageRecord

from valuetrace.errors import ValuetraceError
from valuetrace.models import weights_hash


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
