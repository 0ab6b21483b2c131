"""Step `calibrate`: the known-answer arms on any model, as a one-screen sensitivity table.

`valuetrace calibrate [--model NAME_OR_PATH]` runs a known-answer config (default: the shipped
`smollm2-known-answer.yaml`) with its model replaced: a counter-value LoRA arm (the positive
control) and a neutral arm of the same dose, each with a seed replicate, saved along their runs;
then extraction, behaviour, probes and the trajectory step, on the primary probe set only (the
one the table reads; `valuetrace run` on the same folder adds the others and keeps these). The
table (per arm and dose: behaviour moved?, first layer, verdict, value-specific layers, false
positives against those allowed) is printed and, with `--json`, written as one object per arm
and dose, as `selftest` does for planted edits.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from valuetrace.analysis.calibration import (
    KnownAnswer,
    format_table,
    headline,
    save_rows,
)
from valuetrace.analysis.trajectory import TrajectoryRecord
from valuetrace.config import RunConfig, config_from_dict, config_to_dict, load_config
from valuetrace.errors import ConfigError
from valuetrace.records import load_record
from valuetrace.steps.common import known_answer

STEPS = ("train", "extract", "evaluate", "probe", "trajectory")


def known_answer_config_path() -> Path:
    """The shipped known-answer config (SmolLM2-135M-Instruct)."""
    return Path(str(resources.files("valuetrace") / "configs" / "smollm2-known-answer.yaml"))


def calibration_config(
    config_path: Path | None = None, *, model: str | None = None, run_dir: str | None = None
) -> RunConfig:
    """The known-answer config to calibrate with, its model replaced by `model` (a built-in
    name, hub id, folder or GGUF) and its run folder by `run_dir` (default: the config's, with
    the model's name appended when the model differs from the config's, so two models never
    share one and the config's own model reuses the stages a `valuetrace run` of it cached).

    Raises:
        ConfigError: the config is invalid or names no counter and neutral arm.
    """
    config = load_config(config_path or known_answer_config_path())
    if config.analysis.counter_arm is None or config.analysis.neutral_arm is None:
        raise ConfigError(
            "calibrate needs a known-answer config: set analysis.counter_arm and "
            "analysis.neutral_arm to its two arms (see valuetrace/configs/"
            "smollm2-known-answer.yaml)."
        )
    data = config_to_dict(config)
    if model is not None and model != config.model.name_or_path:
        data["model"] = {**data["model"], "name_or_path": model, "scratch": None}
        if run_dir is None:
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name or model).strip("_")
            run_dir = f"{config.run_dir}-{slug}"
    return config_from_dict(data, run_dir=run_dir)


def calibration_result(config: RunConfig, json_path: Path | None = None) -> KnownAnswer:
    """The known answer from a run folder whose trajectory step has run; its table is written
    to `json_path` (a list of one object per arm and dose) when given.

    Raises:
        MissingStepError: the trajectory step has not run.
    """
    record = load_record(TrajectoryRecord, config.paths.trajectories, step="trajectory")
    known = known_answer(config, record)
    assert known is not None  # calibration_config checked both arms
    if json_path is not None:
        save_rows(known.rows, json_path)
    return known


def format_calibration(config: RunConfig, known: KnownAnswer) -> str:
    """The table with a heading naming the model and test level, and the known answer."""
    head = (
        f"calibration of {config.model.name_or_path or 'the from-scratch model (model.scratch)'}"
        f" (alpha {config.analysis.alpha}, probe set '{known.dataset}')"
    )
    return "\n".join([head, *headline(known), "", format_table(known.rows)])
