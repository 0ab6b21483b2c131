"""`valuetrace demo --model` and `valuetrace models`: the demo config rewritten for a real model,
and the models subcommand's output."""

from __future__ import annotations

from valuetrace.cli import demo_config_path, main
from valuetrace.config import config_from_dict, load_config
from valuetrace.corpora.demo_model import STAGE_LIMIT, demo_on_model


def test_the_demo_on_a_model_keeps_its_data_and_trains_lora_stages():
    demo = load_config(demo_config_path(study=True))
    config = config_from_dict(demo_on_model(demo, "smollm2-135m-instruct"))
    assert config.model.name_or_path == "smollm2-135m-instruct" and config.model.chat_template
    assert config.model.scratch is None and config.demo_data
    assert config.run_dir.endswith("-smollm2-135m-instruct")
    base, *trained = config.stages
    assert base.data is None and base.parent is None  # the model as it is
    assert [s.name for s in trained] == [s.name for s in demo.stages[1:]]
    for stage, original in zip(trained, demo.stages[1:], strict=True):
        assert stage.method == "lora" and stage.lora is not None
        assert stage.data is not None and stage.data.source == original.data.source
        assert stage.data.limit == STAGE_LIMIT
    assert config.probes == demo.probes


def test_models_fetch_prints_the_local_checkpoint_and_list_shows_the_cache(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("VALUETRACE_CACHE", str(tmp_path / "cache"))
    assert main(["models", "fetch", str(tiny_checkpoint)]) == 0
    assert capsys.readouterr().out.strip() == str(tiny_checkpoint)
    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "smollm2-135m-instruct" in listed and str(tmp_path / "cache") in listed
    assert main(["models", "fetch"]) == 2
    assert "needs a NAME" in capsys.readouterr().err
