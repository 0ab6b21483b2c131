"""End to end on a tiny real model: every CLI step, reruns, and a run folder that is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import pytest
import yaml
from matplotlib.image import imread
from valuetrace.probing.surface import SurfaceRecord

from valuetrace.cli import demo_config_path, main
from valuetrace.paths import RunPaths
from valuetrace.records import load_record

pytestmark = pytest.mark.slow


def _tiny_config(run_dir: Path) -> Path:
    data = yaml.safe_load(demo_config_path().read_text())
    data["run_dir"] = str(run_dir)
    data["model"]["scratch"] = {
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
        "vocab_size": 600,
    }
    for stage in data["stages"]:
        stage.update(max_steps=4, batch_size=8, max_length=64)
        stage["data"]["limit"] = 64
    data["probing"].update(n_folds=3, n_bootstrap=100)
    # the 600-token BPE splits the behaviour prompts into up to ~150 tokens: room for them whole
    data["extract"]["max_length"] = 256
    data["behaviour"]["n_bootstrap"] = 100
    data["analysis"]["umap"] = False
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    config = _tiny_config(run_dir)
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    return run_dir, config


def test_run_writes_every_artifact(finished_run):
    run_dir, _ = finished_run
    lineage = json.loads((run_dir / "lineage.json").read_text())["stages"]
    assert [s["name"] for s in lineage] == ["base", "midtrain", "sft_help", "sft_code"]
    assert lineage[2]["parent"] == "midtrain" and lineage[3]["parent"] == "midtrain"
    assert len({s["weights_hash"] for s in lineage}) == 4
    for stage in ("base", "sft_code"):
        with h5py.File(run_dir / "activations" / "compassion" / f"{stage}.h5") as fh:
            assert fh.attrs["complete"] and fh["hidden"].shape[0] == 3
        assert (run_dir / "probes" / "compassion" / f"{stage}.h5").is_file()
        assert (run_dir / "behaviour" / f"{stage}.json").is_file()
    metrics = json.loads((run_dir / "analysis" / "metrics.json").read_text())
    assert set(metrics["concepts"]) == {"compassion", "grammar"}
    assert "midtrain→sft_help" in metrics["concepts"]["compassion"]["localization"]
    for rel in metrics["figures"].values():
        assert (run_dir / rel).stat().st_size > 1000
    assert {p.name for p in (run_dir / "analysis").glob("*.csv")} == {
        "probes.csv",
        "comparisons.csv",
        "behaviour.csv",
    }


def test_report_and_summary_name_stages_and_layers(finished_run):
    run_dir, _ = finished_run
    html = (run_dir / "report.html").read_text()
    for section in (
        "Behaviour per stage",
        "Probes: compassion",
        "Localisation",
        "Direction similarity",
        "Provenance",
        "data:image/png;base64",
    ):
        assert section in html
    summary = (run_dir / "summary.txt").read_text()
    assert "From midtrain to sft_help" in summary and "compassion preference" in summary


def test_probe_step_saves_surface_baselines_on_the_probes_folds(finished_run):
    run_dir, _ = finished_run
    rec = load_record(SurfaceRecord, RunPaths(run_dir).surface("compassion"))
    assert [s.stage for s in rec.stages] == ["base", "midtrain", "sft_help", "sft_code"]
    assert {b.name for b in rec.baselines} == {"ngram", "length"} and rec.features
    with h5py.File(run_dir / "probes" / "compassion" / "base.h5") as fh:
        assert rec.n_examples == len(fh["folds"]) and rec.stages[0].layers == list(fh["layers"])
    assert "Surface baselines" in (run_dir / "summary.txt").read_text()
    assert "Surface baselines (confounds)" in (run_dir / "report.html").read_text()


def test_behaviour_and_causal_records_reach_the_report(finished_run):
    run_dir, _ = finished_run
    from valuetrace.analysis.behaviour import GENERATION_PROMPTS, BehaviourResult
    from valuetrace.analysis.causal import CausalRecord

    records = {
        s: BehaviourResult.load(run_dir / "behaviour" / f"{s}.json") for s in ("base", "sft_help")
    }
    for stage, rec in records.items():
        assert rec.stage == stage and len(rec.preference) == len(rec.item_ids) > 0
        assert [g.prompt for g in rec.generations] == [p for _, p in GENERATION_PROMPTS]
    causal = CausalRecord.load(run_dir / "analysis" / "causal.json")
    assert causal.stage == "sft_help" and causal.parent == "midtrain"
    assert 0.0 in [p.alpha for p in causal.points] and causal.ablate_layers
    metrics = json.loads((run_dir / "analysis" / "metrics.json").read_text())
    changes = {(c["a"], c["b"]) for c in metrics["behaviour_changes"]}
    assert ("midtrain", "sft_help") in changes
    assert all("null_abs_r" in v for v in metrics["behaviour_vs_projection"].values())
    html = (run_dir / "report.html").read_text()
    for section in ("Greedy answers per stage", "Causal dose-response", "null |r| band"):
        assert section in html
    summary = (run_dir / "summary.txt").read_text()
    words = " ".join(summary.split())
    assert "not the study's LLM-judge" in words and "margin slope" in words
    mine = [line for line in summary.splitlines() if "margin" in line or "judge" in line]
    assert mine and max(len(line) for line in mine) <= 100


def test_rerun_reuses_finished_work(finished_run, capsys):
    run_dir, config = finished_run
    before = (run_dir / "checkpoints" / "base" / "model.safetensors").stat().st_mtime_ns
    assert main(["train", "--config", str(config), "--no-progress"]) == 0
    assert (run_dir / "checkpoints" / "base" / "model.safetensors").stat().st_mtime_ns == before


def test_a_different_run_in_the_same_folder_is_refused(finished_run, capsys):
    _, config = finished_run
    data = yaml.safe_load(config.read_text())
    data["seed"] = 1
    other = config.with_name("other.yaml")
    other.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(other), "--no-progress"]) == 2
    assert "already holds a run with a different config" in capsys.readouterr().err


def test_analyze_before_probe_says_which_command_to_run(tmp_path, capsys):
    config = _tiny_config(tmp_path / "empty")
    assert main(["analyze", "--config", str(config)]) == 2
    assert "valuetrace train" in capsys.readouterr().err


def test_report_renders_in_headless_chromium(finished_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    run_dir, _ = finished_run
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            (run_dir / "report.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = imread(shot)
    assert image.shape[0] == 2400 and image.shape[1] == 1200
    assert image[..., :3].std() > 0.05  # text and figures, not a blank page


def test_sft_with_a_chat_template_the_tokenizer_lacks_is_refused(tmp_path, capsys):
    config = _tiny_config(tmp_path / "chat")
    data = yaml.safe_load(config.read_text())
    data["model"]["chat_template"] = True
    data["stages"] = [data["stages"][0], {**data["stages"][2], "parent": "base"}]
    data["analysis"]["compare"] = [["base", "sft_help"]]
    config.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(config), "--no-progress"]) == 2
    assert "wants a chat template but the tokenizer has none" in capsys.readouterr().err
    assert not (tmp_path / "chat" / "checkpoints" / "sft_help").exists()
