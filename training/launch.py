"""Run one training stage in its own process(es): the way to spread a stage over several devices.

`launch_stage` writes a JSON `StageSpec` and runs `python -m valuetrace.training.launch SPEC`
alone, under `torchrun` (N processes, DDP; gloo on CPU) or under
`accelerate launch --config_file` (FSDP or DeepSpeed ZeRO-3, see valuetrace/configs/accelerate/).
Every process trains its shard of each global batch; the main process saves the model and
`train_result.json` in the stage's folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import yaml
from accelerate import PartialState

from valuetrace.config import Dtype, StageConfig
from valuetrace.errors import ConfigError, DataError
from valuetrace.models import load_model, load_tokenizer
from valuetrace.paths import stage_spec
from valuetrace.records import load_record, save_record
from valuetrace.training.datasets import load_records
from valuetrace.training.stages import StageResult, StageRun, train_stage

RESULT_NAME = "train_result.json"


@dataclass(frozen=True)
class StageSpec:
    """What a launched stage needs: model, tokenizer, data, the stage's config, output folder.

    Written as a versioned JSON record (`valuetrace.records`) and read back typed by every
    launched process: `stage` is the stage's own `StageConfig`, `run` the run-level values,
    `data_options` the `load_records` keyword arguments (schema, limit …).
    """

    SCHEMA: ClassVar[str] = "stage_spec"
    VERSION: ClassVar[int] = 1

    model: str
    tokenizer: str
    data: str
    out_dir: str
    stage: StageConfig
    run: StageRun
    data_options: dict[str, Any] = field(default_factory=dict)
    dtype: Dtype = "float32"

    def save(self, path: Path) -> None:
        """Write the spec as versioned JSON."""
        save_record(self, path)

    @classmethod
    def load(cls, path: Path) -> StageSpec:
        """Read a spec written by `save`.

        Raises:
            MissingStepError: no file at `path`.
            CacheError: the file is not a spec of a version read here.
        """
        return load_record(cls, path)


def launch_command(
    spec_path: Path,
    *,
    num_processes: int = 1,
    accelerate_config: Path | None = None,
    progress: bool = True,
) -> list[str]:
    """The command that trains `spec_path`: plain, under torchrun, or under accelerate launch."""
    target = [
        "-m",
        "valuetrace.training.launch",
        str(spec_path),
        *([] if progress else ["--no-progress"]),
    ]
    if accelerate_config is not None:
        launcher = ["-m", "accelerate.commands.launch", "--config_file", str(accelerate_config)]
        return [sys.executable, *launcher, *target]
    if num_processes > 1:
        launcher = ["-m", "torch.distributed.run", "--standalone"]
        return [sys.executable, *launcher, f"--nproc_per_node={num_processes}", *target]
    return [sys.executable, *target]


def check_accelerate_config(path: Path) -> None:
    """Refuse an accelerate launch config under which a stage's trained weights are never saved.

    The Trainer's `save_model` writes weights under FSDP only with a full state dict
    (transformers 5 `Trainer.save_model`), and under DeepSpeed ZeRO-3 only when the 16-bit
    weights are gathered on save; otherwise it writes none. `fsdp_config.fsdp_state_dict_type`
    left out means the `FSDP_STATE_DICT_TYPE` environment variable, else accelerate 1.15's
    default: FULL_STATE_DICT for `fsdp_version: 1`, SHARDED_STATE_DICT for `fsdp_version: 2`.
    Called before any stage trains, so a long run never trains for nothing.

    Raises:
        ConfigError: the file is unreadable or not a mapping, or it would save no weights; the
            field to change is named.
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(
            f"accelerate_config {path} cannot be read as YAML ({err}); point accelerate_config "
            "at an `accelerate config` file (see valuetrace/configs/accelerate/)."
        ) from err
    if not isinstance(data, dict):
        raise ConfigError(f"accelerate_config {path} must hold a mapping at the top level.")
    kind = str(data.get("distributed_type", "NO")).upper()
    if kind == "FSDP":
        fsdp = data.get("fsdp_config") or {}
        version = str(fsdp.get("fsdp_version", 1))
        default = "FULL_STATE_DICT" if version == "1" else "SHARDED_STATE_DICT"
        state = fsdp.get("fsdp_state_dict_type") or os.environ.get("FSDP_STATE_DICT_TYPE", default)
        if str(state).upper() not in ("FULL_STATE_DICT", "1"):  # 1: StateDictType.FULL_STATE_DICT
            raise ConfigError(
                f"accelerate_config {path}: FSDP with state dict type {state} (fsdp_version "
                f"{version}) saves no model weights at the end of a stage, so the trained model "
                "would be lost. Set `fsdp_config.fsdp_state_dict_type: FULL_STATE_DICT` in that "
                "file (as valuetrace/configs/accelerate/fsdp_8gpu.yaml does)."
            )
    if kind == "DEEPSPEED":
        deepspeed = data.get("deepspeed_config") or {}
        if str(deepspeed.get("zero_stage")) == "3" and not deepspeed.get("zero3_save_16bit_model"):
            raise ConfigError(
                f"accelerate_config {path}: DeepSpeed ZeRO-3 without gathered 16-bit weights "
                "saves no model weights at the end of a stage, so the trained model would be "
                "lost. Set `deepspeed_config.zero3_save_16bit_model: true` in that file (as "
                "valuetrace/configs/accelerate/deepspeed_zero3_8gpu.yaml does)."
            )


def launch_stage(
    spec: StageSpec,
    *,
    num_processes: int = 1,
    accelerate_config: Path | None = None,
    progress: bool = True,
) -> StageResult:
    """Train a stage in child process(es) and return what its main process measured.

    Raises:
        ConfigError: `accelerate_config` would save no weights (`check_accelerate_config`).
        DataError: the launched stage failed (its log is above).
    """
    if accelerate_config is not None:
        check_accelerate_config(accelerate_config)
    out_dir = Path(spec.out_dir)
    spec_path = stage_spec(out_dir)
    spec.save(spec_path)
    command = launch_command(
        spec_path,
        num_processes=num_processes,
        accelerate_config=accelerate_config,
        progress=progress,
    )
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise DataError(
            f"training stage {out_dir.name} failed (exit code {done.returncode}); its log is "
            f"above. Rerun `{' '.join(command)}` to retry: it resumes from the last checkpoint."
        )
    spec_path.unlink()
    return read_result(out_dir)


def read_result(out_dir: Path) -> StageResult:
    """The StageResult a launched stage wrote beside its weights."""
    raw = json.loads((out_dir / RESULT_NAME).read_text())
    raw["losses"] = tuple((int(step), float(loss)) for step, loss in raw["losses"])
    raw["saved"] = tuple((int(step), str(folder)) for step, folder in raw.get("saved", ()))
    return StageResult(**raw)


def run_spec(spec: StageSpec, *, progress: bool = True) -> StageResult:
    """Train one spec in this process (one rank of a launched group)."""
    tokenizer = load_tokenizer(spec.tokenizer)
    model = load_model(spec.model, dtype=spec.dtype)
    records = load_records(spec.data, **spec.data_options)
    out_dir = Path(spec.out_dir)
    result = train_stage(
        model,
        tokenizer,
        records,
        spec.stage,
        spec.run,
        out_dir,
        use_cpu=not torch.cuda.is_available(),
        progress=progress,
    )
    if PartialState().is_main_process:
        (out_dir / RESULT_NAME).write_text(json.dumps(asdict(result), indent=2))
    return result


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m valuetrace.training.launch SPEC.json [--no-progress]`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", type=Path, help="a StageSpec JSON file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    run_spec(StageSpec.load(args.spec), progress=not args.no_progress)


if __name__ == "__main__":
    main()
