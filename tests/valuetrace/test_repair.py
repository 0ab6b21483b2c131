"""A run folder whose trained weights were deleted or changed (issue 20): `train` notices and
retrains the stage (and, when its new weights differ from those recorded, the stages
downstream); the console of a redirected run holds a line per stage, no bar redraws."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.valuetrace.test_steps import _tiny_config
from valuetrace.cli import main
from valuetrace.models import weights_hash

pytestmark = pytest.mark.slow


def _lineage(run: Path) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads((run / "lineage.json").read_text())["stages"]}


def _weights(run: Path, stage: str) -> Path:
    return run / "checkpoints" / stage / "model.safetensors"


def test_deleted_or_changed_weights_are_retrained_and_logs_get_no_bars(tmp_path, capfd):
    run = tmp_path / "run"
    config = _tiny_config(run)
    data = yaml.safe_load(config.read_text())
    data["stages"] = data["stages"][:2]
    data["stages"][1].pop("replicates")
    data["analysis"]["compare"] = [["base", "midtrain"]]
    config.write_text(yaml.safe_dump(data))
    args = ["train", "--config", str(config)]

    assert main(args) == 0  # progress on, but stderr is not a terminal (as under nohup or CI)
    out = capfd.readouterr()
    console = out.out + out.err
    assert "train base: 4 steps" in console and "train midtrain: 4 steps" in console
    for redraw in ("%|", "it/s", "\r"):
        assert redraw not in console, redraw
    recorded = _lineage(run)

    _weights(run, "midtrain").unlink()  # deleted: retrained without --overwrite
    assert main([*args, "--no-progress"]) == 0
    assert weights_hash(run / "checkpoints" / "midtrain") == recorded["midtrain"]["weights_hash"]
    assert (
        "midtrain: its checkpoint weight files are missing; retraining it"
        in (run / "log.txt").read_text()
    )

    weights = _weights(run, "base")  # changed bytes: refused, then retrained with --overwrite
    blob = bytearray(weights.read_bytes())
    blob[-8:] = b"\x00" * 8
    weights.write_bytes(bytes(blob))
    assert main([*args, "--no-progress"]) == 2
    err = capfd.readouterr().err
    assert "stage 'base'" in err and "weight files changed" in err and "--overwrite" in err
    midtrain_mtime = _weights(run, "midtrain").stat().st_mtime_ns
    assert main([*args, "--no-progress", "--overwrite"]) == 0
    assert _lineage(run)["base"]["weights_hash"] == recorded["base"]["weights_hash"]
    assert _weights(run, "midtrain").stat().st_mtime_ns == midtrain_mtime  # same parent weights

    lineage = json.loads((run / "lineage.json").read_text())  # recorded weights that retraining
    lineage["stages"][0]["weights_hash"] = "0" * 64  # cannot reproduce: the child is stale too
    (run / "lineage.json").write_text(json.dumps(lineage))
    assert main([*args, "--no-progress", "--overwrite"]) == 0
    assert _weights(run, "midtrain").stat().st_mtime_ns != midtrain_mtime
    assert (
        "stage midtrain changed (parent 'base' (changed upstream))" in (run / "log.txt").read_text()
    )
