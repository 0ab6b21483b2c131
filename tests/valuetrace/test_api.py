"""The README's "Python API" example runs as written, on tiny real checkpoints at its paths."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.activations.test_resume_kill import write_probe_set

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text()
    marker = text.index("<!-- python-api-example")
    block = re.search(r"```python\n(.*?)```", text[marker:], flags=re.S)
    assert block is not None, "the Python API section has no python block"
    return block.group(1)


@pytest.mark.slow
def test_the_readme_python_api_example_runs_as_written(
    tmp_path, monkeypatch, tiny_model, tiny_tokenizer
):
    runs = tmp_path / "runs" / "demo"
    before, after = runs / "checkpoints" / "midtrain", runs / "checkpoints" / "sft_help"
    tiny_model.save_pretrained(before)
    tiny_tokenizer.save_pretrained(before)
    changed = type(tiny_model)(tiny_model.config)
    changed.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():  # a later stage: the last block's MLP moved
        changed.model.layers[-1].mlp.down_proj.weight.mul_(0.2)
    changed.save_pretrained(after)
    tiny_tokenizer.save_pretrained(after)
    (runs / "data").mkdir(parents=True)
    write_probe_set(runs / "data" / "probe_pairs.jsonl", 80)
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(_example(), str(README), "exec"), scope)
    change = scope["change"]
    assert change.layers == [0, 1, 2] and len(change.verdicts) == 3
    assert np.allclose(change.encoded.drop[:2], 0.0, atol=1e-6)  # blocks before the edit agree
    assert (tmp_path / "degradation.png").stat().st_size > 1000
    assert scope["probes"].auroc.shape == (3,)
