"""The prepared GPU check runs end to end on a tiny shape on the CPU, so it cannot rot."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "device_check.py"


@pytest.mark.slow
def test_device_check_writes_its_json_and_table_on_a_tiny_shape(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "device_check", module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    out = tmp_path / "check.json"
    module.main(["--shape", "tiny", "--device", "cpu", "--out", str(out), "--rows", "40"])
    result = json.loads(out.read_text())
    assert result["padding"]["nan_rows_left"] == 0
    assert result["padding"]["max_diff_left_vs_right_per_layer_scale"] < 1e-5
    assert result["extract"]["rows"] == result["sizes"]["rows"] == 40
    assert result["extract"]["layers"] == 3 and result["extract"]["throughput_ratio"] > 0
    for method in ("lora", "full"):
        assert result[method]["plain_tokens_per_s"] > 0
        assert result[method]["valuetrace_tokens_per_s"] > 0  # trl is installed here
    assert result["generate"]["tokens_per_s"] > 0
    table = capsys.readouterr().out
    assert "extract + HDF5 (tok/s)" in table and "left padding: 0 NaN rows" in table
