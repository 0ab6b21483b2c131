"""Bad input a new user gives (issue 20): names that escape the run folder, run folders that
are not run folders, a missing config.yaml, configs that expand to gigabytes, wrong types,
unwritable folders and lengths beyond the model. Each is a clear error, never a traceback or
a silent write; no test here trains anything."""

from __future__ import annotations

import errno
import os
import re
import time
from pathlib import Path

import pytest
import yaml

from valuetrace.cli import demo_config_path, main
from valuetrace.config import check_model_layers, config_from_dict, load_config
from valuetrace.console import progress_bar, show_bars
from valuetrace.errors import ConfigError, ValuetraceError
from valuetrace.paths import RunPaths, check_run_folder, remove_inside
from valuetrace.training.pipeline import remove_outputs


def _demo(run_dir: Path | str = "runs/x") -> dict:
    data = yaml.safe_load(demo_config_path(study=True).read_text())
    data["run_dir"] = str(run_dir)
    return data


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["stages"][0].update(name="../../victim"), "stages[0].name"),
        (lambda d: d["stages"][1].update(name="a/b"), "stages[1].name"),
        (lambda d: d["probes"][0].update(name="../../escaped"), "probes[0].name"),
        (lambda d: d["probes"][1].update(concept=".."), "probes[1].concept"),
        (lambda d: d["stages"][0].update(name=""), "stages[0].name"),
    ],
)
def test_a_name_that_is_not_one_path_part_is_refused_at_load(edit, field):
    data = _demo()
    edit(data)
    with pytest.raises(ConfigError, match=re.escape(f"{field} is")):
        config_from_dict(data)


def test_replicate_names_are_safe_path_parts():
    config = config_from_dict(_demo())
    assert "midtrain~seed1" in [s.name for s in config.stages]  # "~" is allowed


def test_no_delete_reaches_outside_the_run_folder(tmp_path):
    """A stage name from a hand-edited lineage.json cannot make `--overwrite` delete outside."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("years of work")
    with pytest.raises(ValuetraceError, match="not inside the run folder"):
        remove_outputs(RunPaths(run), "../../victim")
    assert (victim / "thesis.txt").read_text() == "years of work"
    with pytest.raises(ValuetraceError, match="not inside"):
        remove_inside(run, run)  # the folder itself is not "inside"
    (run / "checkpoints" / "link").symlink_to(victim)
    assert remove_inside(run / "checkpoints" / "link", run)  # the link goes, not its target
    assert (victim / "thesis.txt").is_file()


@pytest.mark.parametrize("where", ["root", "home"])
def test_the_filesystem_root_and_home_are_refused_as_run_folders(where, capsys):
    folder = Path("/") if where == "root" else Path.home()
    with pytest.raises(ConfigError, match="filesystem root" if where == "root" else "home"):
        check_run_folder(folder)


def test_a_folder_of_other_files_is_refused_and_left_alone(tmp_path, capsys):
    folder = tmp_path / "mine"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "general.jsonl").write_text("my own data\n")
    config = _write(tmp_path / "c.yaml", _demo(folder))
    assert main(["train", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"run_dir {folder} holds files (data) but no valuetrace run" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in folder.rglob("*")) == ["data", "general.jsonl"]  # no log.txt
    assert (folder / "data" / "general.jsonl").read_text() == "my own data\n"
    check_run_folder(tmp_path / "new")  # a new folder, an empty one, and a run are fine
    (tmp_path / "empty").mkdir()
    check_run_folder(tmp_path / "empty")


def test_a_run_dir_without_its_config_is_an_error_not_the_demo(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "probes").mkdir(parents=True)
    (run / "lineage.json").write_text("{}")
    assert main(["probe", "--run-dir", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--run-dir {run} has no config.yaml" in err and "--config" in err
    assert sorted(p.name for p in run.iterdir()) == ["lineage.json", "probes"]


def test_a_config_of_nested_anchors_is_refused_quickly_and_briefly(tmp_path):
    """A 'billion laughs' YAML: 9 levels of 10 aliases expand to 10^8 strings (a 10 MB error
    message at 7 levels before, and gigabytes at this size)."""
    lines = ["seed:", '  - &a0 ["lol"]']
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 1000
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert time.perf_counter() - start < 5
    assert "expands to more than 100000 values" in str(err.value) and len(str(err.value)) < 400


def test_a_bad_value_is_quoted_as_a_short_prefix(tmp_path):
    data = _demo()
    data["seed"] = ["x" * 10_000] * 1000
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert "seed" in str(err.value) and len(str(err.value)) < 300


def test_a_string_where_a_number_belongs_names_the_field():
    data = _demo()
    data["stages"][0]["learning_rate"] = "fast"
    with pytest.raises(ConfigError, match=r"stages\[0\]\.learning_rate: expected a number, got"):
        config_from_dict(data)
    data["stages"][0]["learning_rate"] = "1e-3"  # YAML 1.1 reads 1e-3 as a string
    assert config_from_dict(data).stages[0].learning_rate == 0.001


def test_an_empty_stage_list_is_refused_at_load(tmp_path):
    data = _demo(tmp_path / "run")
    data["stages"] = []
    with pytest.raises(ConfigError, match="stages: the list is empty"):
        config_from_dict(data)


def test_real_data_sizes_are_all_settable_and_range_checked():
    data = _demo()
    data["real_data_sizes"] = {"empathy_heldout_fraction": 0.3, "probe_pairs": 50}
    sizes = config_from_dict(data).real_data_sizes
    assert (sizes.empathy_heldout_fraction, sizes.probe_pairs, sizes.general) == (0.3, 50, 3000)
    data["real_data_sizes"] = {"empathy_heldout_fraction": 1.5}
    with pytest.raises(ConfigError, match=r"real_data_sizes\.empathy_heldout_fraction is 1\.5"):
        config_from_dict(data)
    data["real_data_sizes"] = {"probe_pair": 5}
    with pytest.raises(ConfigError, match="unknown field"):
        config_from_dict(data)


def test_max_length_beyond_the_models_positions_is_refused(tiny_checkpoint):
    data = _demo()
    data["extract"]["max_length"] = 512
    with pytest.raises(ConfigError, match=r"extract\.max_length is 512, beyond the 256 positions"):
        config_from_dict(data)
    data = _demo()
    data["stages"][1]["max_length"] = 300
    with pytest.raises(ConfigError, match=r"stages\[1\]\.max_length is 300, beyond the 256"):
        config_from_dict(data)
    data = _demo()  # a hub or local model: its config.json's max_position_embeddings (128)
    data["model"] = {"name_or_path": str(tiny_checkpoint)}
    data["stages"] = [{"name": "base"}, {**data["stages"][1], "parent": "base"}]
    data["analysis"]["compare"] = [["base", "midtrain"]]
    config = config_from_dict(data)
    check_model_layers(config)  # 128 tokens fit
    config.extract.max_length = 129
    with pytest.raises(ConfigError, match=r"extract\.max_length is 129, beyond the 128 positions"):
        check_model_layers(config)


def test_an_unwritable_run_folder_is_a_clear_error(tmp_path, capsys):
    """The log cannot be written: a read-only folder (as a user) or a folder in its place."""
    run = tmp_path / "run"
    config = _write(tmp_path / "c.yaml", _demo(run))
    (run / "log.txt").mkdir(parents=True)  # opening log.txt fails as it does when read-only
    assert main(["train", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the run's log {run / 'log.txt'}" in err and "Traceback" not in err
    if os.geteuid() == 0:
        return  # root writes into read-only folders
    (run / "log.txt").rmdir()
    run.chmod(0o555)
    try:
        assert main(["train", "--config", str(config), "--no-progress"]) == 2
        assert "the run folder must be writable" in capsys.readouterr().err
    finally:
        run.chmod(0o755)


def test_progress_bars_only_on_a_terminal_a_line_per_item_in_a_log(capsys):
    """Redirected output (not a TTY): no bar redraws, one line per finished item."""
    assert not show_bars(True)  # pytest's captured stderr is not a terminal
    assert list(progress_bar(["a", "b", "c"], "probe compassion", enabled=True)) == ["a", "b", "c"]
    err = capsys.readouterr().err
    assert err.splitlines() == [f"probe compassion: {i}/3 stages" for i in (1, 2, 3)]
    assert "%|" not in err and "\r" not in err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "q2", "prompt": "p", "compassionate": "c"}', r"line 2: the eval item lacks \["),
        ('{"id": "q2", "prompt": "p",', "line 2 is not valid JSON"),
    ],
)
def test_a_bad_eval_item_names_the_file_and_line(tmp_path, line, message):
    """Issue 20: an eval item missing a field was a KeyError; a broken line a JSONDecodeError."""
    from valuetrace.analysis.eval_items import behaviour_items
    from valuetrace.errors import DataError

    path = tmp_path / "eval.jsonl"
    good = '{"id": "q1", "prompt": "p", "compassionate": "c", "dismissive": "d"}'
    path.write_text(f"{good}\n{line}\n")
    data = _demo(tmp_path / "run")
    data["behaviour"]["compassion_eval"] = str(path)
    with pytest.raises(DataError, match=re.escape(str(path)) + " " + message):
        behaviour_items(config_from_dict(data))


@pytest.mark.parametrize(
    "fault",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        # safetensors (and h5py) wrap the system's message in an error of their own
        RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"),
    ],
)
def test_a_full_disk_is_a_clear_error_that_says_how_to_resume(tmp_path, capsys, monkeypatch, fault):
    from valuetrace.steps import train

    def full_disk(*args: object, **kwargs: object) -> None:
        raise fault

    monkeypatch.setattr(train, "train", full_disk)
    config = _write(tmp_path / "c.yaml", _demo(tmp_path / "run"))
    assert main(["train", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "run the same command again" in err
    assert "Traceback" not in err


def test_other_faults_are_not_called_a_full_disk(tmp_path, monkeypatch):
    from valuetrace.steps import train

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(train, "train", broken)
    config = _write(tmp_path / "c.yaml", _demo(tmp_path / "run"))
    with pytest.raises(RuntimeError, match="boom"):
        main(["train", "--config", str(config), "--no-progress"])


def test_the_demo_runs_its_known_answer_and_study_refuses_a_second_config(tmp_path, capsys):
    known = load_config(demo_config_path())
    assert known.probes[0].name == "status"  # the primary set is the known answer's
    assert known.analysis.counter_arm == "counter" and known.analysis.neutral_arm == "neutral"
    assert known.analysis.known_cause  # the summary states the cause it was built with
    rates = {s.name: s.learning_rate for s in known.stages if s.name in ("counter", "neutral")}
    assert rates["counter"] == rates["neutral"]  # the same dose on both arms
    assert load_config(demo_config_path(study=True)).analysis.counter_arm is None
    args = ["demo", "--study", "--config", str(demo_config_path()), "--no-progress"]
    assert main([*args, "--run-dir", str(tmp_path / "run")]) == 2
    assert "give --study or --config, not both" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_demo_study_and_model_pick_the_study_config_and_the_rest_the_known_answer():
    from valuetrace.cli import _config_path, _parser

    def picked(*argv: str) -> str:
        return _config_path(_parser().parse_args(list(argv))).name

    assert picked("demo", "--study") == picked("demo", "--model", "smollm2") == "demo.yaml"
    assert picked("demo") == picked("report") == "demo-known-answer.yaml"
