"""Bring your own checkpoints: stages that point at models trained elsewhere, no training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from valuetrace.cli import main
from valuetrace.models import load_model

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, base: Path, tuned: Path) -> Path:
    data = {
        "run_dir": str(tmp_path / "run"),
        "demo_data": True,  # only for the probe and eval sets
        "model": {"name_or_path": str(base)},
        "stages": [
            {"name": "base"},
            {"name": "tuned", "parent": "base", "checkpoint": str(tuned)},
        ],
        "probes": [{"name": "compassion", "source": "${data}/probe_pairs.jsonl"}],
        "extract": {"batch_size": 32, "max_length": 320},  # prompts fit, long rows cut
        "probing": {"n_folds": 3, "n_bootstrap": 100},
        "behaviour": {
            "compassion_eval": "${data}/behaviour_eval.jsonl",
            "helpfulness_eval": {"source": "${data}/helpfulness_eval.jsonl", "limit": 20},
            "n_bootstrap": 100,
        },
        "analysis": {"compare": [["base", "tuned"]], "umap": False},
    }
    path = tmp_path / "byo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _long_copy(src: Path, dst: Path) -> Path:
    """The tiny checkpoint with room for 512 positions (rotary: no weight depends on it), so
    max_length 320 is within the model's positions."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 512}))
    return dst


def _perturbed_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    model = load_model(str(dst))
    with torch.no_grad():
        for param in model.model.layers[1].parameters():
            param.add_(0.05 * torch.randn_like(param))
    model.save_pretrained(dst)
    return dst


def test_external_checkpoints_run_through_the_analysis(tmp_path, tiny_checkpoint):
    base = _long_copy(tiny_checkpoint, tmp_path / "base")
    tuned = _perturbed_copy(base, tmp_path / "tuned")
    config = _config(tmp_path, base, tuned)
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    lineage = json.loads((tmp_path / "run" / "lineage.json").read_text())["stages"]
    assert [(s["name"], s["checkpoint"]) for s in lineage] == [
        ("base", str(base)),
        ("tuned", str(tuned)),
    ]
    assert all(s["weights_hash"] for s in lineage)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained
    findings = json.loads((tmp_path / "run" / "analysis" / "findings.json").read_text())
    assert findings["schema"] == "valuetrace.findings"
    assert "base→tuned" in findings["concepts"]["compassion"]["comparisons"]


def test_identical_checkpoints_are_refused(tmp_path, tiny_checkpoint, capsys):
    base = _long_copy(tiny_checkpoint, tmp_path / "base")
    same = tmp_path / "same"
    shutil.copytree(base, same)
    config = _config(tmp_path, base, same)
    assert main(["train", "--config", str(config), "--no-progress"]) == 0
    assert main(["extract", "--config", str(config), "--no-progress"]) == 2
    assert "identical weights" in capsys.readouterr().err
