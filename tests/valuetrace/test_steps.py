"""End to end on a tiny real model: every CLI step, reruns, a run folder that is refused, the
same config twice (identical numbers), a copied run folder used from another cwd, a changed
stage (refused, then retrained with --overwrite), messages, and what the console shows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import yaml
from matplotlib.image import imread

from valuetrace.analysis.findings import Findings
from valuetrace.cli import demo_config_path, main
from valuetrace.errors import ConfigError
from valuetrace.paths import RunPaths
from valuetrace.probing.surface import SurfaceRecord
from valuetrace.records import load_record

pytestmark = pytest.mark.slow


def _tiny_config(run_dir: Path, path: Path | None = None) -> Path:
    data = yaml.safe_load(demo_config_path(study=True).read_text())
    data["run_dir"] = str(run_dir)
    data["model"]["scratch"] = {
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 256,  # room for extract.max_length (no learned positions)
        "vocab_size": 600,
    }
    for stage in data["stages"]:
        stage.update(max_steps=4, batch_size=8, max_length=64)
        stage["data"]["limit"] = 64
    data["extract"]["max_length"] = 192  # the demo's eval prompts reach 148 tokens here
    data["probing"].update(n_folds=3, n_bootstrap=100)
    # the 600-token BPE splits the behaviour prompts into up to ~150 tokens: room for them whole
    data["extract"]["max_length"] = 256
    data["behaviour"]["n_bootstrap"] = 100
    data["analysis"]["umap"] = False
    path = path or run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    config = _tiny_config(run_dir)
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    return run_dir, config


@pytest.fixture(scope="module")
def twin_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The same config run again as a user would: the `valuetrace` command in a subprocess,
    from its own cwd, with a run_dir relative to that cwd, and --no-progress."""
    work = tmp_path_factory.mktemp("work")
    config = _tiny_config(Path("runs") / "twin", work / "twin.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "valuetrace.cli", "run", "--config", str(config), "--no-progress"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return work / "runs" / "twin", done


def _stored_numbers(run_dir: Path) -> dict[str, object]:
    """Every result file a step writes for another, as parsed data."""
    files = ["lineage.json", "analysis/findings.json", "analysis/transplant.json"]
    files += [str(p.relative_to(run_dir)) for p in sorted(run_dir.glob("behaviour/*.json"))]
    return {f: json.loads((run_dir / f).read_text()) for f in files}


def test_the_same_config_twice_gives_identical_summary_and_records(finished_run, twin_run):
    """Issue 11 case 8: numbers are reproducible; wall times and machine facts live apart."""
    first, _ = finished_run
    twin, _ = twin_run
    assert (first / "summary.txt").read_text() == (twin / "summary.txt").read_text()
    assert (first / "config.yaml").read_text() == (twin / "config.yaml").read_text()
    assert _stored_numbers(first) == _stored_numbers(twin)
    for csv_name in ("probes.csv", "comparisons.csv", "behaviour.csv"):
        assert (first / "analysis" / csv_name).read_text() == (
            twin / "analysis" / csv_name
        ).read_text()
    timings = json.loads((twin / "timings.json").read_text())
    assert set(timings["steps"]) == {
        "train",
        "extract",
        "evaluate",
        "probe",
        "analyze",
        "causal",
        "report",
    }
    assert timings["stages"]["base"]["train_seconds"] > 0
    # peak memory by the end of each step: a running maximum in step order, a real process size
    peaks = [timings["peak_rss_mb"][step] for step in timings["steps"]]
    assert peaks == sorted(peaks) and peaks[0] > 100
    env = json.loads((twin / "environment.json").read_text())["steps"]["train"]
    assert env["versions"]["torch"] and env["torch_threads"] >= 1 and env["cpu_model"]
    assert "BLAS_INFO" in env["torch_build"] and env["threadpools"]
    assert env["env"]["PYTHONHASHSEED"] == "12345"


def _paths_in(run_dir: Path) -> str:
    """Every path-like string the run folder's records and caches hold, as one text."""
    files = ("lineage.json", "config.yaml", "analysis/findings.json", "analysis/transplant.json")
    texts = [(run_dir / f).read_text() for f in files]
    for cache in run_dir.glob("activations/*/*.h5"):
        with h5py.File(cache) as fh:
            texts.append(json.dumps({k: str(v) for k, v in fh.attrs.items()}))
    return "\n".join(texts)


def test_a_copied_run_folder_runs_every_step_from_another_cwd(twin_run, tmp_path, monkeypatch):
    """Issue 10 item 4: paths in a run folder are relative to it, so a copy runs anywhere."""
    twin, _ = twin_run
    moved = tmp_path / "elsewhere" / "moved"
    shutil.copytree(twin, moved)
    stored = _paths_in(moved)
    assert str(twin) not in stored and "runs/twin" not in stored
    stages = json.loads((moved / "lineage.json").read_text())["stages"]
    assert [s["checkpoint"] for s in stages] == [f"checkpoints/{s['name']}" for s in stages]
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    weights = moved / "checkpoints" / "base" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    for step in ("train", "extract", "evaluate", "probe", "analyze", "causal", "report"):
        assert main([step, "--run-dir", str(moved), "--no-progress"]) == 0, step
    assert weights.stat().st_mtime_ns == before  # nothing retrained
    assert (moved / "summary.txt").read_text() == (twin / "summary.txt").read_text()
    assert "elsewhere" not in (moved / "lineage.json").read_text()


def test_a_changed_stage_is_refused_then_retrained_with_overwrite(finished_run, tmp_path, capsys):
    """Issue 11 case 9: --overwrite retrains a changed stage (and only what depends on it);
    without it the change is refused by name; config, lineage and outputs never disagree."""
    original, config = finished_run
    run = tmp_path / "run"
    shutil.copytree(original, run)
    data = yaml.safe_load(config.read_text())
    data["run_dir"] = str(run)
    new_lr = 5e-4
    next(s for s in data["stages"] if s["name"] == "sft_code")["learning_rate"] = new_lr
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(data))
    kept = {
        s: (run / "checkpoints" / s / "model.safetensors").stat().st_mtime_ns
        for s in ("base", "midtrain", "sft_help")
    }
    capsys.readouterr()
    assert main(["train", "--config", str(changed), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "stages[sft_code].learning_rate: 0.001 -> 0.0005" in err and "--overwrite" in err
    assert json.loads((run / "lineage.json").read_text()) == json.loads(
        (original / "lineage.json").read_text()
    )
    assert main(["train", "--config", str(changed), "--no-progress", "--overwrite"]) == 0
    lineage = {s["name"]: s for s in json.loads((run / "lineage.json").read_text())["stages"]}
    on_disk = yaml.safe_load((run / "config.yaml").read_text())
    assert lineage["sft_code"]["config"]["learning_rate"] == new_lr
    assert next(s for s in on_disk["stages"] if s["name"] == "sft_code")["learning_rate"] == new_lr
    old = {s["name"]: s for s in json.loads((original / "lineage.json").read_text())["stages"]}
    assert lineage["sft_code"]["weights_hash"] != old["sft_code"]["weights_hash"]
    for stage, mtime in kept.items():
        assert (run / "checkpoints" / stage / "model.safetensors").stat().st_mtime_ns == mtime
        assert lineage[stage]["fingerprint"] == old[stage]["fingerprint"]
        assert (run / "activations" / "compassion" / f"{stage}.h5").is_file()
    assert not list(run.glob("*/*/sft_code.h5")) and not (run / "behaviour/sft_code.json").exists()
    assert not (run / "analysis").exists() and not (run / "summary.txt").exists()
    capsys.readouterr()
    assert main(["analyze", "--run-dir", str(run)]) == 2
    assert "run `valuetrace evaluate` first" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(run), "--no-progress"]) == 0  # now up to date


def test_the_console_shows_bars_and_the_summary_and_keeps_the_rest_in_the_log(twin_run):
    """Issue 11 case 11 (--no-progress): no bars at all, no library logs, loss dicts or
    FutureWarnings on the console; the summary and report path; the full log in log.txt."""
    twin, done = twin_run
    console = done.stdout + done.stderr
    for noise in ("Tokenizing", "it/s", "%|", "train_runtime", "'loss'", "FutureWarning"):
        assert noise not in console, noise
    assert "valuetrace summary" in done.stdout and str(twin.name) in done.stdout
    assert "report:" in done.stdout
    summary = (twin / "summary.txt").read_text()
    assert max(len(line) for line in summary.splitlines()) <= 100
    assert summary in done.stdout
    log = (twin / "log.txt").read_text()
    assert "train_runtime" in log and "train done" in log


def test_progress_bars_are_one_per_stage_and_verbose_shows_library_logs(tmp_path, capfd):
    """Issue 11 case 11 (default and --verbose): one bar per trained stage, no datasets bars;
    --verbose adds the per-step loss dicts."""
    config = _tiny_config(tmp_path / "bars")
    data = yaml.safe_load(config.read_text())
    data["stages"] = data["stages"][:2]
    data["analysis"]["compare"] = [["base", "midtrain"]]
    config.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(config)]) == 0
    out = capfd.readouterr()
    console = out.out + out.err
    assert "train base" in console and "train midtrain" in console
    for noise in ("Tokenizing", "Packing", "train_runtime", "FutureWarning"):
        assert noise not in console, noise
    shutil.rmtree(tmp_path / "bars" / "checkpoints" / "midtrain")
    assert main(["train", "--config", str(config), "--verbose", "--no-progress"]) == 0
    out = capfd.readouterr()
    assert "train_runtime" in out.err and "train midtrain" not in out.out + out.err


def test_run_writes_every_artifact(finished_run):
    run_dir, _ = finished_run
    lineage = json.loads((run_dir / "lineage.json").read_text())["stages"]
    names = ["base", "midtrain", "midtrain~seed1", "sft_help", "sft_help~seed1", "sft_code"]
    assert [s["name"] for s in lineage] == [*names, "sft_code~seed1"]
    assert lineage[2]["parent"] == "base" and {s["parent"] for s in lineage[3:]} == {"midtrain"}
    assert len({s["weights_hash"] for s in lineage}) == 7  # a replicate differs by its seed
    for stage in ("base", "sft_code"):
        with h5py.File(run_dir / "activations" / "compassion" / f"{stage}.h5") as fh:
            assert fh.attrs["complete"] and fh["hidden"].shape[0] == 3
        assert (run_dir / "probes" / "compassion" / f"{stage}.h5").is_file()
        assert (run_dir / "behaviour" / f"{stage}.json").is_file()
    findings = load_record(Findings, run_dir / "analysis" / "findings.json")
    assert set(findings.concepts) == {"compassion", "grammar"}
    assert findings.replicate_of == {
        "midtrain~seed1": "midtrain",
        "sft_help~seed1": "sft_help",
        "sft_code~seed1": "sft_code",
    }
    help_arm = findings.concepts["compassion"].comparisons["midtrain→sft_help"]
    assert help_arm.replicates == ["sft_help~seed1"] and help_arm.encoded.floor is not None
    first = findings.concepts["compassion"].comparisons["base→midtrain"]
    assert first.replicates == ["midtrain~seed1"] and first.encoded.floor is not None
    assert {c.kind for c in findings.concentration} == {"concept", "arm"}
    for rel in (f.path for f in findings.figures):
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
        "compassion (compassion)",
        "Weakening, rotation and drift per stage pair",
        "Concentration",
        "Provenance",
        "data:image/png;base64",
    ):
        assert section in html
    summary = (run_dir / "summary.txt").read_text()
    assert "midtrain → sft_help:" in summary and "compassion preference" in summary
    assert max(len(line) for line in summary.splitlines()) <= 100


def test_probe_step_saves_surface_baselines_on_the_probes_folds(finished_run):
    run_dir, _ = finished_run
    rec = load_record(SurfaceRecord, RunPaths(run_dir).surface("compassion"))
    assert [s.stage for s in rec.stages] == ["base", "midtrain", "sft_help", "sft_code"]
    assert {b.name for b in rec.baselines} == {"ngram", "length"} and rec.features
    with h5py.File(run_dir / "probes" / "compassion" / "base.h5") as fh:
        assert rec.n_examples == len(fh["folds"]) and rec.stages[0].layers == list(fh["layers"])
    assert "Surface baselines" in (run_dir / "summary.txt").read_text()
    assert "Surface baselines (confounds)" in (run_dir / "report.html").read_text()


def test_behaviour_reaches_the_report_and_no_dose_response_runs_without_an_encoded_concept(
    finished_run,
):
    """The tiny model's midtrain reads the compassion set at chance at every layer, so no layer
    is localised: the causal step writes no dose-response (and says so in the log), only the
    transplant record with the primary pair skipped; the summary says why."""
    run_dir, _ = finished_run
    from valuetrace.analysis.behaviour import GENERATION_PROMPTS, BehaviourResult
    from valuetrace.analysis.localize import Verdict
    from valuetrace.analysis.transplant import TransplantRecord

    records = {
        s: BehaviourResult.load(run_dir / "behaviour" / f"{s}.json") for s in ("base", "sft_help")
    }
    for stage, rec in records.items():
        assert rec.stage == stage and len(rec.preference) == len(rec.item_ids) > 0
        assert [g.prompt for g in rec.generations] == [p for _, p in GENERATION_PROMPTS]
    findings = load_record(Findings, run_dir / "analysis" / "findings.json")
    assert set(findings.primary.verdicts) == {Verdict.NOT_ENCODED}
    assert findings.primary.localised() == []
    assert not (run_dir / "analysis" / "causal.json").exists()
    assert (
        "no dose-response: midtrain encodes compassion at no layer"
        in (run_dir / "log.txt").read_text()
    )
    transplant = TransplantRecord.load(run_dir / "analysis" / "transplant.json")
    assert transplant.results == [] and [s.child for s in transplant.skipped] == ["sft_help"]
    assert "midtrain encodes the concept at no layer" in transplant.skipped[0].reason
    change = findings.behaviour_changes["midtrain→sft_help"]
    assert (change.a, change.b) == ("midtrain", "sft_help") and change.n_items > 0
    assert all(0 <= p.null_abs_r <= 1 for p in findings.projection.values())
    html = (run_dir / "report.html").read_text()
    for section in ("Greedy answers per stage", "null |r|"):
        assert section in html
    assert "Causal dose-response" not in html
    summary = (run_dir / "summary.txt").read_text()
    words = " ".join(summary.split())
    assert "not the study's LLM-judge" in words and "margin slope" not in words
    assert "layers 0–2: not encoded in midtrain" in words
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


def test_config_faults_are_config_errors_that_name_the_field(tmp_path, capsys):
    """Issue 11 case 10: a config fault is a ConfigError naming its field and the fix, raised
    before anything is trained (not a DataError, not a traceback)."""
    config = _tiny_config(tmp_path / "nocorpora")
    data = yaml.safe_load(config.read_text())
    data["tokenizer_corpora"] = []
    config.write_text(yaml.safe_dump(data))
    from valuetrace.config import load_config
    from valuetrace.steps.prepare import prepare
    from valuetrace.steps.train import train

    loaded = load_config(config)
    prepare(loaded)
    with pytest.raises(ConfigError, match="tokenizer_corpora"):
        train(loaded)
    data["seed"] = 3
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"seed: 0 -> 3.*--overwrite"):
        prepare(load_config(config))
    assert main(["train", "--config", str(config)]) == 2
    assert "Traceback" not in capsys.readouterr().err


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
