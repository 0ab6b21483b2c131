"""Config: the shipped configs validate; unknown fields, bad values and bad parents are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from valuetrace.cli import demo_config_path
from valuetrace.config import config_from_dict, load_config
from valuetrace.errors import ValuetraceError

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "valuetrace" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_validate(path):
    config = load_config(path)
    assert config.stages and config.probes


def _demo() -> dict:
    return yaml.safe_load(demo_config_path().read_text())


def test_paths_are_derived_from_the_run_dir():
    config = config_from_dict(_demo(), run_dir="/tmp/x")
    assert config.paths.activations("compassion", "base") == Path(
        "/tmp/x/activations/compassion/base.h5"
    )
    assert config.paths.checkpoint("sft_help") == Path("/tmp/x/checkpoints/sft_help")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["stages"][0].update(colour="red"), "unknown field\\(s\\) \\['colour'\\]"),
        (lambda d: d["stages"][2].update(parent="nowhere"), "parent 'nowhere' is not an earlier"),
        (lambda d: d["stages"][0].update(method="qlora"), "'qlora' is not one of"),
        (lambda d: d["stages"][0].update(batch_size="big"), "expected int"),
        (lambda d: d["analysis"].update(compare=[["base", "x"]]), "unknown: \\['x'\\]"),
        (lambda d: d.update(probes=[]), "at least one probe set"),
        (lambda d: d["model"].update(name_or_path="meta-llama/Llama-3.1-8B"), "exactly one of"),
    ],
)
def test_bad_configs_name_the_problem(edit, message):
    data = _demo()
    edit(data)
    with pytest.raises(ValuetraceError, match=message):
        config_from_dict(data)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ValuetraceError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("stages: [unclosed")
    with pytest.raises(ValuetraceError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
