"""`valuetrace export`: the run's tables as Parquet that `datasets` loads, pushed to a folder."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from valuetrace.analysis.anima.generate import Answer, AnswerSet
from valuetrace.analysis.anima.judge import JudgedAnswer, JudgedAnswers
from valuetrace.analysis.anima.projection import AnimaProjection, AnswerProjection
from valuetrace.analysis.behaviour import BehaviourResult
from valuetrace.cli import main
from valuetrace.config import config_from_dict
from valuetrace.stats import Interval
from valuetrace.steps.prepare import stored_config
from valuetrace.training.lineage import Lineage, StageRecord


def fake_run(tmp_path: Path):
    config = config_from_dict(
        {
            "run_dir": str(tmp_path / "run"),
            "model": {"name_or_path": "unused"},
            "stages": [{"name": "base"}],
            "probes": [{"name": "compassion", "source": "unused.jsonl"}],
            "behaviour": {"compassion_eval": "unused.jsonl", "helpfulness_eval": {"source": "x"}},
            "analysis": {"compare": []},
        }
    )
    paths = config.paths
    paths.root.mkdir(parents=True)
    paths.config.write_text(yaml.safe_dump(stored_config(config), sort_keys=False))
    Lineage([StageRecord("base", "unused")]).save(paths.lineage)
    paths.analysis.mkdir(parents=True)
    with paths.table("comparisons").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "stages", "layer", "measure", "value", "lo", "hi", "floor"])
        writer.writerow(["compassion", "a->b", 3, "cosine", 0.5, 0.4, 0.6, ""])
        writer.writerow(["compassion", "a->b", 3, "verdict", "weakening", "", "", ""])
    i = Interval(0.5, 0.4, 0.6)
    BehaviourResult(
        "base", i, i, i, 0.95, 10, "eval.jsonl", ["e1", "e2"], [0.25, -0.5], [2.0], False, []
    ).save(paths.behaviour("base"))
    AnswerSet("base", {}, [Answer("0", 0, "Be kind.")]).save(paths.anima_answers("base"))
    JudgedAnswers("base", {}, [JudgedAnswer("0", 0, "Moral Consideration", 0.75)]).save(
        paths.anima_judged("base")
    )
    projection = AnswerProjection("base", "base", 12, Interval(0.3, -0.1, 0.6), 0.45)
    AnimaProjection("compassion", 5, 0.95, {"base": projection}).save(paths.anima_projection)
    return config


def test_tables_load_with_datasets_and_push_to_a_folder(tmp_path: Path, capsys) -> None:
    import datasets

    config = fake_run(tmp_path)
    hub = tmp_path / "hub_clone"
    hub.mkdir()
    assert main(["export", "--run-dir", config.run_dir, "--to-hub", str(hub)]) == 0
    folder = config.paths.exports / "dataset"
    assert str(hub) in capsys.readouterr().out
    comparisons = datasets.load_dataset(
        "parquet", data_files=str(folder / "comparisons.parquet"), split="train"
    )
    assert comparisons["layer"] == [3, 3]
    assert comparisons["value"] == [pytest.approx(0.5), None]
    assert comparisons["value_text"] == [None, "weakening"]
    assert comparisons["floor"] == [None, None]
    items = datasets.load_dataset(str(hub), "behaviour_items", split="train")
    assert items.to_list() == [
        {"stage": "base", "item_id": "e1", "margin": 0.25},
        {"stage": "base", "item_id": "e2", "margin": -0.5},
    ]
    verdicts = datasets.load_dataset(str(hub), "anima_verdicts", split="train")
    assert verdicts[0]["score"] == 0.75 and verdicts[0]["dimension"] == "Moral Consideration"
    assert (
        datasets.load_dataset(str(hub), "anima_answers", split="train")[0]["answer"] == "Be kind."
    )
    projection = datasets.load_dataset(str(hub), "anima_projection", split="train").to_list()
    assert projection == [
        {
            "stage": "base",
            "dataset": "compassion",
            "layer": 5,
            "direction_of": "base",
            "n": 12,
            "r": pytest.approx(0.3),
            "lo": pytest.approx(-0.1),
            "hi": pytest.approx(0.6),
            "null_abs_r": pytest.approx(0.45),
        }
    ]


def test_control_vector_of_a_stage_equals_its_stored_direction(tmp_path: Path, capsys) -> None:
    from tests.probing.synthetic import planted
    from valuetrace.config import ProbingConfig
    from valuetrace.probing.control_vector import read_control_vector
    from valuetrace.probing.probe import probe_layers
    from valuetrace.probing.store import load_results, save_results

    config = fake_run(tmp_path)
    acts, labels, groups = planted(20, (0.0, 1.0, 2.0, 3.0), d=8)
    results = probe_layers(
        acts, labels, groups, ProbingConfig(n_folds=2, n_bootstrap=10), layers=[0, 1, 2, 3]
    )
    path = config.paths.probes("compassion", "base")
    path.parent.mkdir(parents=True)
    save_results(results, path)
    assert main(["export", "--run-dir", config.run_dir, "--control-vector", "base"]) == 0
    out = config.paths.exports / "control_vectors" / "compassion_base_mean_diff.gguf"
    assert str(out) in capsys.readouterr().out
    stored = load_results(path).mean_direction
    rows = read_control_vector(out)
    assert sorted(rows) == [1, 2]  # hidden states 2 and 3
    for il, row in rows.items():
        np.testing.assert_array_equal(row, stored.vectors[stored.layers.index(il + 1)])
