"""Trainer callbacks of a stage: its progress bar and log lines (`StageProgress`), and the
checkpoints it saves along its run (`SaveAt`, with `save_steps` and `save_trained`)."""

from __future__ import annotations

import copy
import gc
import logging
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from valuetrace.config import LoraConfig, StageConfig, trajectory_name
from valuetrace.errors import ConfigError
from valuetrace.models import merge_in_float32
from valuetrace.paths import remove_inside

log = logging.getLogger(__name__)


class StageProgress(TrainerCallback):
    """One bar per stage (labelled with the stage) instead of the Trainer's, and its per-step
    loss dicts to the log (the console shows them only with --verbose) instead of stdout.

    With `line` (progress wanted, but stderr is not a terminal) there is no bar: the stage
    prints one line when it ends, so a log file gets a line per stage, not one per step.
    """

    def __init__(self, label: str, enabled: bool, *, line: bool = False) -> None:
        self.label = label
        self.enabled = enabled
        self.line = line  # no bar (not a terminal): one line when the stage ends
        self.bar: Any = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.enabled and state.is_world_process_zero:
            self.bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                desc=f"train {self.label}",
                unit="step",
                dynamic_ncols=True,
            )

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if state.is_world_process_zero and logs:
            log.info("stage %s, step %d: %s", self.label, state.global_step, logs)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.line and state.is_world_process_zero:
            print(f"train {self.label}: {state.global_step} steps", file=sys.stderr, flush=True)


def save_trained(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path, stage: StageConfig
) -> None:
    """Write a trained (unsharded) model as the stage's checkpoint: a LoRA model merged in
    float32 (then cast back) when its `lora.merge` says so, else as it is (an adapter alone)."""
    if stage.method == "lora" and (stage.lora or LoraConfig()).merge:
        model = merge_in_float32(model, model.get_base_model().dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def save_steps(save_at: list[float], max_steps: int) -> list[int]:
    """The optimizer steps of a `save_at` list in a run of `max_steps` steps, sorted.

    A fraction f becomes round(f x max_steps) (at least 1); a step equal to `max_steps` is
    dropped, as the stage's own checkpoint is that point.

    Raises:
        ConfigError: a step lies beyond the run.
    """
    steps = set()
    for value in save_at:
        step = max(1, round(value * max_steps)) if value < 1 else int(value)
        if step > max_steps:
            raise ConfigError(
                f"save_at asks for step {step}, but the stage runs {max_steps} optimizer steps; "
                "lower it, or give a fraction of the run (0 < f < 1)."
            )
        steps.add(step)
    steps.discard(max_steps)
    return sorted(steps)


class SaveAt(TrainerCallback):
    """Saves the model being trained at chosen optimizer steps, as a checkpoint of its own,
    beside the stage's folder (`trajectory_name(stage, step)`): a trajectory from one run.

    The saved weights are what `fit_and_save` would save had training stopped there (a LoRA
    model is merged on a copy, so training goes on unchanged). A point already saved (a
    resumed run) is kept as it is.
    """

    def __init__(
        self,
        save_at: list[float],
        out_dir: Path,
        tokenizer: PreTrainedTokenizerBase,
        stage: StageConfig,
    ) -> None:
        self.save_at = save_at
        self.out_dir = out_dir
        self.tokenizer = tokenizer
        self.stage = stage
        self.steps: list[int] = []
        self.saved: list[tuple[int, str]] = []

    def folder(self, step: int) -> Path:
        """Where the point at `step` is saved."""
        return self.out_dir.parent / trajectory_name(self.out_dir.name, step)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.steps = save_steps(self.save_at, state.max_steps)
        self.saved = [
            (s, str(self.folder(s)))
            for s in self.steps
            if (self.folder(s) / "config.json").is_file()
            or (self.folder(s) / "adapter_config.json").is_file()
        ]

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: PreTrainedModel | None = None,
        **kwargs: Any,
    ) -> None:
        step = state.global_step
        if step not in self.steps or any(s == step for s, _ in self.saved):
            return
        if state.is_world_process_zero:
            assert model is not None
            folder = self.folder(step)
            tmp = folder.parent / f".{folder.name}.tmp"
            remove_inside(tmp, self.out_dir.parent)
            trained = copy.deepcopy(model) if self.stage.method == "lora" else model
            save_trained(trained, self.tokenizer, tmp, self.stage)
            remove_inside(folder, self.out_dir.parent)
            tmp.rename(folder)  # a kill never leaves a half-written point
            log.info("stage %s: saved step %d to %s", self.out_dir.name, step, folder)
            # The merged copy sits in reference cycles (PEFT's wrappers): only the cyclic
            # collector frees it, and that may not run for the rest of the stage, so each save
            # would keep a whole model (measured on SmolLM2's known-answer arm: 4.14 GB peak
            # with two saves, 3.69 GB with this collection).
            del trained
            gc.collect()
        self.saved.append((step, str(self.folder(step))))
