"""Trajectories from one run: `save_at` checkpoints, their lineage records, and a user's
Trainer `checkpoint-N` folders read as a trajectory."""

from __future__ import annotations

import copy
import gc
from pathlib import Path

import pytest
import yaml
from transformers import PreTrainedModel

from tests.conftest import CORPUS
from tests.training.helpers import RUN, tiny_stage
from tests.valuetrace.test_steps import _tiny_config
from valuetrace.cli import main
from valuetrace.config import load_config, trajectory_name
from valuetrace.errors import ConfigError
from valuetrace.models import load_model, weights_hash
from valuetrace.training.callbacks import save_steps
from valuetrace.training.datasets import Document
from valuetrace.training.lineage import Lineage
from valuetrace.training.stages import train_stage


def test_save_steps_resolves_fractions_and_drops_the_final_step():
    assert save_steps([0.25, 0.5, 3, 12], 12) == [3, 6]
    with pytest.raises(ConfigError, match="runs 12 optimizer steps"):
        save_steps([13], 12)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_save_at_saves_checkpoints_along_one_run(tmp_path, tiny_model, tiny_tokenizer, method):
    stage = tiny_stage(method=method, save_at=[4, 0.5])
    out = tmp_path / "arm"
    result = train_stage(
        copy.deepcopy(tiny_model).train(),
        tiny_tokenizer,
        [Document(t) for t in CORPUS],
        stage,
        RUN,
        out,
        use_cpu=True,
        progress=False,
    )
    assert result.steps == 12
    assert [s for s, _ in result.saved] == [4, 6]
    hashes = {weights_hash(out)}
    for step, folder in result.saved:
        assert Path(folder).name == trajectory_name("arm", step)
        load_model(folder)  # a complete, loadable (merged) checkpoint
        hashes.add(weights_hash(folder))
    assert len(hashes) == 3  # three distinct points of the same run


def test_a_saved_point_leaves_no_model_copy_behind(tmp_path, tiny_model, tiny_tokenizer):
    """A LoRA save merges a deep copy of the model; the copy lives in reference cycles, so the
    callback collects it rather than keep one model per save until the cyclic collector runs.
    With automatic collection off (only the callback's own collection can free a copy), a run
    with two saves leaves as many models alive as the same run without saves."""

    def models_left(save_at: list[float] | None, out: Path) -> int:
        gc.collect()
        before = sum(isinstance(o, PreTrainedModel) for o in gc.get_objects())
        gc.disable()
        try:
            train_stage(
                copy.deepcopy(tiny_model).train(),
                tiny_tokenizer,
                [Document(t) for t in CORPUS],
                tiny_stage(method="lora", save_at=save_at),
                RUN,
                out,
                use_cpu=True,
                progress=False,
            )
            return sum(isinstance(o, PreTrainedModel) for o in gc.get_objects()) - before
        finally:
            gc.enable()
            gc.collect()

    assert models_left([4, 0.5], tmp_path / "saved") == models_left(None, tmp_path / "plain")


def test_save_at_is_refused_where_it_cannot_apply():
    with pytest.raises(ConfigError, match="save_at"):
        tiny_stage(save_at=[0.5, 1.5])
    with pytest.raises(ConfigError, match="trained elsewhere"):
        tiny_stage(name="x", checkpoint="/m", parent="a", save_at=[2])


@pytest.mark.slow
def test_train_step_records_save_at_points_in_the_lineage(tmp_path):
    run_dir = tmp_path / "run"
    path = _tiny_config(run_dir)
    data = yaml.safe_load(path.read_text())
    data["stages"] = data["stages"][:3]  # base, midtrain, sft_help
    # step 1 of a warmed-up schedule runs at learning rate 0 (its weights are the parent's)
    data["stages"][2].update(save_at=[2, 0.75], replicates=0)
    data["stages"][1]["replicates"] = 0
    data["analysis"]["compare"] = [["midtrain", "sft_help"]]
    path.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(path), "--no-progress"]) == 0
    lineage = Lineage.load(run_dir / "lineage.json")
    points = [r for r in lineage.records if r.trajectory_of == "sft_help"]
    assert [(r.name, r.step, r.parent) for r in points] == [
        ("sft_help-step2", 2, "midtrain"),
        ("sft_help-step3", 3, "midtrain"),
    ]
    assert len({r.weights_hash for r in lineage.records}) == len(lineage.records)
    lineage.verify()
    # a rerun keeps them; a changed save_at retrains the stage and replaces them
    assert main(["train", "--config", str(path), "--no-progress"]) == 0
    assert Lineage.load(run_dir / "lineage.json").names() == lineage.names()
    data["stages"][2]["save_at"] = [0.5]
    path.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(path), "--no-progress", "--overwrite"]) == 0
    again = Lineage.load(run_dir / "lineage.json")
    assert [r.name for r in again.records if r.trajectory_of] == ["sft_help-step2"]
    assert not (run_dir / "checkpoints" / "sft_help-step3").exists()


def test_trainer_checkpoint_folders_load_as_a_trajectory(tmp_path, tiny_model, tiny_tokenizer):
    out = tmp_path / "trainer_out"
    for step in (10, 20):
        tiny_model.save_pretrained(out / f"checkpoint-{step}")
    (out / "checkpoint-x").mkdir()  # not a step: ignored
    config_path = _tiny_config(tmp_path / "run")
    data = yaml.safe_load(config_path.read_text())
    data["stages"].append(
        {"name": "theirs", "parent": "midtrain", "checkpoint": str(out), "trajectory": str(out)}
    )
    config_path.write_text(yaml.safe_dump(data))
    config = load_config(config_path)
    points = [s for s in config.stages if s.trajectory_of == "theirs"]
    assert [(s.name, s.trajectory_step, s.checkpoint, s.parent) for s in points] == [
        ("theirs-step10", 10, str(out / "checkpoint-10"), "midtrain"),
        ("theirs-step20", 20, str(out / "checkpoint-20"), "midtrain"),
    ]
    names = [s.name for s in config.stages]
    assert names.index("theirs-step20") < names.index("theirs")
    data["stages"][-1]["trajectory"] = [{"step": 5, "checkpoint": str(out / "checkpoint-10")}]
    config_path.write_text(yaml.safe_dump(data))
    assert [s.name for s in load_config(config_path).stages if s.trajectory_of] == ["theirs-step5"]
    data["stages"][-1]["trajectory"] = str(tmp_path / "empty")
    config_path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="checkpoint-N"):
        load_config(config_path)


def test_train_records_a_user_trajectory_without_training(tmp_path, tiny_model, tiny_tokenizer):
    out = tmp_path / "trainer_out"
    for i, step in enumerate((10, 20, 30)):  # three distinct points; the final one at out
        model = copy.deepcopy(tiny_model)
        for p in model.parameters():
            p.data.add_(0.01 * (i + 1))
        model.save_pretrained(out / f"checkpoint-{step}" if step < 30 else out)
    tiny_model.save_pretrained(tmp_path / "base")
    tiny_tokenizer.save_pretrained(tmp_path / "base")
    config_path = _tiny_config(tmp_path / "run")
    data = yaml.safe_load(config_path.read_text())
    data.update(demo_data=False, tokenizer_corpora=[])
    data["model"] = {"name_or_path": str(tmp_path / "base")}
    data["extract"]["max_length"] = 128  # the tiny model's positions
    data["stages"] = [
        {"name": "base"},
        {"name": "theirs", "parent": "base", "checkpoint": str(out), "trajectory": str(out)},
    ]
    data["analysis"]["compare"] = [["base", "theirs"]]
    config_path.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(config_path), "--no-progress"]) == 0
    lineage = Lineage.load(tmp_path / "run" / "lineage.json")
    assert [(r.name, r.trajectory_of, r.step) for r in lineage.records] == [
        ("base", None, None),
        ("theirs-step10", "theirs", 10),
        ("theirs-step20", "theirs", 20),
        ("theirs", None, None),
    ]
    lineage.verify()  # four distinct weights hashes, recorded without training
    assert not (tmp_path / "run" / "checkpoints").exists()
