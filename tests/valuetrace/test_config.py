"""Config: the shipped configs validate; unknown fields, bad values and bad parents are named,
and an out-of-range value is refused before anything is written."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from valuetrace.cli import demo_config_path, main
from valuetrace.config import config_from_dict, config_to_dict, load_config
from valuetrace.errors import ConfigError, ValuetraceError
from valuetrace.steps.prepare import prepare

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "valuetrace" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_validate(path):
    config = load_config(path)
    assert config.stages and config.probes


def _demo() -> dict:
    return yaml.safe_load(demo_config_path(study=True).read_text())


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
        (lambda d: d["probing"].update(surface={"margin": 0.9}), "probing.surface.margin is 0.9"),
        (lambda d: d["model"].update(chat_date="2024-07-26"), "model.chat_date is '2024-07-26'"),
        (lambda d: d["model"].update(chat_date="1 Jul 2024"), "two-digit day"),
        (lambda d: d.update(train_processes=0), "train_processes is 0; it must be >= 1"),
        (lambda d: d.update(threads=0), "threads is 0; it must be 'auto'"),
        (lambda d: d.update(threads="many"), "threads"),
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


def _local_model(data: dict, request: pytest.FixtureRequest) -> None:
    """Swap the from-scratch model for a saved 2-block model folder (read with no download)."""
    data["model"] = {"name_or_path": str(request.getfixturevalue("tiny_checkpoint"))}


Edit = Callable[[dict, pytest.FixtureRequest], None]
RANGE_CASES: list[tuple[str, Edit]] = [
    ("stages[2].learning_rate", lambda d, _: d["stages"][2].update(learning_rate=-1)),
    ("stages[0].learning_rate", lambda d, _: d["stages"][0].update(learning_rate=0)),
    ("stages[1].epochs", lambda d, _: d["stages"][1].update(epochs=0)),
    ("stages[3].epochs", lambda d, _: d["stages"][3].update(epochs=-2.5)),
    ("stages[0].batch_size", lambda d, _: d["stages"][0].update(batch_size=0)),
    ("stages[1].grad_accum", lambda d, _: d["stages"][1].update(grad_accum=0)),
    ("stages[2].max_length", lambda d, _: d["stages"][2].update(max_length=-128)),
    ("stages[0].warmup_ratio", lambda d, _: d["stages"][0].update(warmup_ratio=1.0)),
    ("stages[0].weight_decay", lambda d, _: d["stages"][0].update(weight_decay=-0.1)),
    ("stages[1].seed", lambda d, _: d["stages"][1].update(seed=-1)),
    ("stages[2].lora.r", lambda d, _: d["stages"][2].update(method="lora", lora={"r": 0})),
    ("stages[2].lora.alpha", lambda d, _: d["stages"][2].update(method="lora", lora={"alpha": -8})),
    (
        "stages[2].lora.dropout",
        lambda d, _: d["stages"][2].update(method="lora", lora={"dropout": 1}),
    ),
    ("stages[1].data.limit", lambda d, _: d["stages"][1]["data"].update(limit=0)),
    ("probing.n_folds", lambda d, _: d["probing"].update(n_folds=1)),
    ("probing.n_bootstrap", lambda d, _: d["probing"].update(n_bootstrap=0)),
    ("probing.ci", lambda d, _: d["probing"].update(ci=95)),
    ("probing.ci", lambda d, _: d["probing"].update(ci=1.0)),
    ("probing.ci", lambda d, _: d["probing"].update(ci=0)),
    ("probing.C[1]", lambda d, _: d["probing"].update(C=[0.1, -1.0])),
    ("probing.n_folds", lambda d, _: d["probing"].update(n_folds=2, C=[0.1, 1.0])),
    ("behaviour.n_bootstrap", lambda d, _: d["behaviour"].update(n_bootstrap=-5)),
    ("behaviour.null_directions", lambda d, _: d["behaviour"].update(null_directions=0)),
    ("behaviour.max_new_tokens", lambda d, _: d["behaviour"].update(max_new_tokens=-1)),
    ("causal.max_items", lambda d, _: d.update(causal={"max_items": 1})),
    ("extract.batch_size", lambda d, _: d["extract"].update(batch_size=0)),
    ("extract.max_length", lambda d, _: d["extract"].update(max_length=0)),
    ("extract.layers[1]", lambda d, _: d["extract"].update(layers=[0, 5])),  # 4 blocks: 0..4
    ("extract.layers[0]", lambda d, _: d["extract"].update(layers=[-1])),
    ("analysis.umap_layer", lambda d, _: d["analysis"].update(umap_layer=9)),
    ("model.scratch.num_layers", lambda d, _: d["model"]["scratch"].update(num_layers=0)),
    ("seed", lambda d, _: d.update(seed=-3)),
    ("extract.layers[2]", lambda d, r: (_local_model(d, r), d["extract"].update(layers=[0, 1, 3]))),
    ("analysis.umap_layer", lambda d, r: (_local_model(d, r), d["analysis"].update(umap_layer=7))),
]


@pytest.mark.parametrize(
    ("field", "edit"), RANGE_CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(RANGE_CASES)]
)
def test_out_of_range_values_fail_before_anything_is_written(
    tmp_path: Path, request: pytest.FixtureRequest, field: str, edit: Edit
) -> None:
    data = _demo()
    edit(data, request)
    run = tmp_path / "run"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**data, "run_dir": str(run)}))
    with pytest.raises(ConfigError, match=rf"^{re.escape(field)} is "):
        prepare(load_config(path))
    assert not run.exists()


def test_the_cli_refuses_a_negative_learning_rate_naming_the_field(tmp_path, capsys):
    data = _demo()
    data["stages"][2]["learning_rate"] = -1
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "stages[2].learning_rate is -1.0; it must be > 0" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_model_not_on_disk_is_left_to_extraction(tmp_path):
    data = _demo()
    data["model"] = {"name_or_path": "nobody/not-downloaded-model"}
    data["extract"]["layers"] = [0, 99]
    data["demo_data"] = False
    config = config_from_dict(data, run_dir=str(tmp_path / "run"))
    prepare(config)  # nothing to read offline: no error here, extraction checks the layers
    assert config.paths.config.is_file()


def test_replicates_expand_into_ordinary_stages_once():
    data = yaml.safe_load(demo_config_path(study=True).read_text())
    data["seed"] = 7
    data["stages"][2]["replicates"] = 2
    config = config_from_dict(data)
    names = [s.name for s in config.stages]
    assert names[3:6] == ["sft_help", "sft_help~seed1", "sft_help~seed2"]
    twin = config.stage("sft_help~seed2")
    original = config.stage("sft_help")
    assert twin.replicate_of == "sft_help" and twin.seed == 9 and twin.replicates == 0
    assert (twin.parent, twin.data, twin.learning_rate) == (
        original.parent,
        original.data,
        original.learning_rate,
    )
    # config.yaml holds the expanded list; reading it back adds nothing.
    again = config_from_dict(config_to_dict(config))
    assert [s.name for s in again.stages] == names
    data["stages"][2]["replicates"] = -1
    with pytest.raises(ValuetraceError, match="replicates"):
        config_from_dict(data)


def test_the_demo_replicates_every_stage_it_compares_to_its_parent():
    config = load_config(demo_config_path(study=True))
    replicated = {s.replicate_of for s in config.stages if s.replicate_of}
    assert replicated == {"midtrain", "sft_help", "sft_code"}


@pytest.mark.parametrize(
    ("section", "edit", "message"),
    [
        ("causal", {"alphas": [0.0, 1.0, 2.0]}, "must hold 0 and at least one negative"),
        ("causal", {"alphas": [-1.0, 1.0]}, "must hold 0"),
        ("causal", {"alphas": [-1.0, 0.0, 1.0, 1.0]}, "repeats a strength"),
    ],
)
def test_a_causal_grid_without_zero_or_both_signs_is_refused(section, edit, message):
    data = _demo()
    data.setdefault(section, {}).update(edit)
    with pytest.raises(ValuetraceError, match=message):
        config_from_dict(data)
    assert config_from_dict(_demo()).causal.alphas == [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0]


def test_the_chat_date_is_pinned_by_default_and_settable():
    assert config_from_dict(_demo()).model.chat_date == "26 Jul 2024"
    data = _demo()
    data["model"]["chat_date"] = "02 Dec 2026"
    assert config_from_dict(data).model.chat_date == "02 Dec 2026"


def test_threads_default_to_auto_and_take_a_number():
    assert config_from_dict(_demo()).threads == "auto"
    assert config_from_dict({**_demo(), "threads": 1}).threads == 1


def test_an_older_config_s_flat_surface_margin_reads_as_probing_surface_margin():
    data = yaml.safe_load(demo_config_path(study=True).read_text())
    data["probing"].pop("surface")
    data["probing"]["surface_margin"] = 0.2
    assert config_from_dict(data).probing.surface.margin == 0.2


def test_a_known_cause_needs_a_counter_arm_and_words():
    data = _demo()
    data["analysis"]["known_cause"] = "its text writes every name as a thing"
    with pytest.raises(ValuetraceError, match=r"known_cause.*counter_arm"):
        config_from_dict(data)
    known = yaml.safe_load(demo_config_path().read_text())
    known["analysis"]["known_cause"] = "  "
    with pytest.raises(ValuetraceError, match="give it text"):
        config_from_dict(known)
