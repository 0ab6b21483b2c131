"""On the real SmolLM2-135M-Instruct: the built-in name resolves to the cached checkpoint and a
base stage records where it came from (the GGUF's sha256, or the hub id) in the lineage."""

from __future__ import annotations

import pytest

from valuetrace.config import config_from_dict
from valuetrace.steps.train import train

pytestmark = pytest.mark.real_model


def test_a_builtin_base_stage_records_its_source_in_the_lineage(tmp_path, smollm2_checkpoint):
    config = config_from_dict(
        {
            "run_dir": str(tmp_path / "run"),
            "model": {"name_or_path": "smollm2-135m-instruct", "chat_template": True},
            "stages": [{"name": "base"}],
            "probes": [{"name": "p", "source": "unused.jsonl"}],
            "behaviour": {"compassion_eval": "unused.jsonl", "helpfulness_eval": {"source": "x"}},
            "analysis": {"compare": [["base", "base"]]},
        }
    )
    record = train(config).get("base")
    assert record.checkpoint == str(smollm2_checkpoint)
    assert record.weights_hash is not None
    if record.source["kind"] == "gguf":
        assert len(record.source["gguf_sha256"]) == 64
        assert record.source["wheel_sha256"].startswith("bcc81830")
    else:
        assert record.source["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
