"""The training stages of a run config: each stage's data source, method (full or LoRA), loss
format and hyperparameters (`StageConfig`), and the stages a config adds to its list: seed
replicates (`expand_replicates`) and the checkpoints of a training trajectory
(`expand_trajectories`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from valuetrace.config_ranges import MAX_SEED, checked
from valuetrace.errors import ConfigError

Method = Literal["full", "lora"]
Format = Literal["documents", "sft", "grpo"]
PackingStrategy = Literal["wrapped", "bfd"]
LossHead = Literal["auto", "fused", "logits"]
Schema = Literal["documents", "dolly", "alpaca", "messages", "auto"]


@dataclass
class DataSource:
    """One dataset: a local file or hub id, its schema, and an optional filter and size cap."""

    source: str
    schema: Schema = "auto"
    limit: int | None = checked(None, ge=1)
    where: dict[str, str] | None = None
    split: str = "train"
    drop_empty: bool = False


@dataclass
class LoraConfig:
    """PEFT LoRA settings; `merge` folds the adapter into the weights after training."""

    r: int = checked(16, ge=1)
    alpha: int = checked(32, ge=1)
    dropout: float = checked(0.05, ge=0, lt=1)
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    merge: bool = True


@dataclass
class GrpoConfig:
    """GRPO (TRL) settings for a reinforcement-learning stage with a keyword reward."""

    num_generations: int = checked(8, ge=2)
    max_completion_length: int = checked(256, ge=1)
    temperature: float = checked(1.0, gt=0)
    beta: float = checked(0.0, ge=0)
    reward_words: list[str] | None = None


@dataclass
class TrajectoryPoint:
    """One checkpoint along a stage's training run, trained elsewhere: its optimizer step and
    its folder (or hub id). A point that is a LoRA adapter gives `adapter` (its base is then the
    stage's own `checkpoint`)."""

    step: int = checked(1, ge=1)
    checkpoint: str | None = None
    adapter: str | None = None


@dataclass
class StageConfig:
    """One training stage: its parent, data, loss format, method and hyperparameters.

    Trajectory: a trained stage's `save_at` lists where along its one training run a
    checkpoint is also saved (integers >= 1: optimizer steps; values in (0, 1): fractions of the
    run's steps); a stage trained elsewhere lists its `trajectory` (the points, or a Trainer
    `output_dir` whose `checkpoint-N` folders are the points). Each point becomes a stage of its
    own, named `trajectory_name(stage, step)`, with the stage's parent.
    """

    name: str
    data: DataSource | None = None
    parent: str | None = None
    checkpoint: str | None = None
    adapter: str | None = None
    revision: str | None = None
    format: Format = "documents"
    method: Method = "full"
    lora: LoraConfig | None = None
    grpo: GrpoConfig | None = None
    epochs: float = checked(1.0, gt=0)
    max_steps: int = checked(-1, ge=-1)  # -1: train for `epochs`; > 0: stop after this many
    learning_rate: float = checked(1e-3, gt=0)
    batch_size: int = checked(16, ge=1)
    grad_accum: int = checked(1, ge=1)
    max_length: int = checked(128, ge=1)
    warmup_ratio: float = checked(0.05, ge=0, lt=1)
    weight_decay: float = checked(0.0, ge=0)
    # documents: "wrapped" cuts the concatenated stream into [batch, max_length] rows (classic LM
    # pretraining); "bfd" keeps each document whole in one [1, batch x max_length] row, which is
    # only cheap with flash-attention's varlen kernels (sdpa / CPU attend over the whole row)
    packing: bool = True
    packing_strategy: PackingStrategy = "wrapped"
    # "fused": TRL's chunked LM head (never holds the full logits); "logits": the model's own
    # loss from full logits; "auto": logits on CPU when a batch's logits fit 256 MB, else fused
    loss_head: LossHead = "auto"
    # sft: batches drawn from length-sorted megabatches (transformers' LengthGroupedSampler), so
    # rows are padded less (demo: 96% real tokens instead of 68%)
    group_by_length: bool = True
    gradient_checkpointing: bool = False
    seed: int | None = checked(None, ge=0, le=MAX_SEED)  # None: the run's seed
    replicates: int = checked(0, ge=0)  # reseeded twins of this stage (the noise floor)
    replicate_of: str | None = None  # set on the stages that `replicates` adds
    save_at: list[float] | None = checked(None, gt=0)
    trajectory: str | list[TrajectoryPoint] | None = None
    trajectory_of: str | None = None  # set on the stages a `trajectory` adds
    trajectory_step: int | None = None

    def __post_init__(self) -> None:
        if self.save_at is not None:
            check_save_at(self.name, self.save_at, trained=self.checkpoint is None)
        if self.trajectory is not None and (self.data is not None or self.checkpoint is None):
            raise ConfigError(
                f"stage '{self.name}': a 'trajectory' lists checkpoints trained elsewhere; give "
                "the stage the run's final 'checkpoint' and no 'data' (a stage trained here "
                "lists 'save_at' instead)."
            )
        if self.method == "lora" and self.lora is None:
            self.lora = LoraConfig()
        if self.format == "grpo" and self.grpo is None:
            self.grpo = GrpoConfig()
        if self.data is None and self.parent is not None and self.checkpoint is None:
            raise ConfigError(
                f"stage '{self.name}': give it a 'data' source to train it, or a 'checkpoint' "
                "(hub id or path) trained elsewhere; only a first stage may have neither (it is "
                "then the model named in 'model' as it is)."
            )
        if self.data is not None and self.checkpoint is not None:
            raise ConfigError(
                f"stage '{self.name}': give 'data' (train it here) or 'checkpoint' (use one "
                "trained elsewhere), not both."
            )


def check_save_at(stage: str, save_at: list[float], *, trained: bool) -> None:
    """Refuse a `save_at` list that is not a set of steps or fractions of a trained stage.

    Raises:
        ConfigError: the stage is trained elsewhere, or a value is neither an integer step >= 1
            nor a fraction in (0, 1), or a value repeats.
    """
    if not trained:
        raise ConfigError(
            f"stage '{stage}': save_at saves checkpoints along this stage's training run, but "
            "it is trained elsewhere (it names a checkpoint); list that run's checkpoints "
            "under 'trajectory' instead."
        )
    for value in save_at:
        if not (0 < value < 1 or (value >= 1 and float(value).is_integer())):
            raise ConfigError(
                f"stage '{stage}': save_at holds {value!r}; give optimizer steps (integers >= 1) "
                "or fractions of the run (0 < f < 1), e.g. [10, 20] or [0.25, 0.5]."
            )
    if len(set(save_at)) != len(save_at):
        raise ConfigError(f"stage '{stage}': save_at {save_at} repeats a value; list each once.")


def trajectory_name(stage: str, step: int) -> str:
    """The name of the checkpoint of `stage` at optimizer step `step` (a safe path component)."""
    return f"{stage}-step{step}"


def trainer_checkpoints(output_dir: str) -> list[TrajectoryPoint]:
    """The points of a Trainer `output_dir`: its `checkpoint-N` folders, by step.

    A folder holding `adapter_config.json` and no `config.json` is a LoRA adapter.

    Raises:
        ConfigError: the folder does not exist or holds no `checkpoint-N` folder.
    """
    root = Path(output_dir)
    found = sorted(
        (int(p.name.split("-", 1)[1]), p)
        for p in root.glob("checkpoint-*")
        if p.is_dir() and p.name.split("-", 1)[1].isdigit()
    )
    if not found:
        raise ConfigError(
            f"trajectory {output_dir} holds no Trainer 'checkpoint-N' folder; point it at a "
            "Trainer output_dir, or list the points as [{step: N, checkpoint: PATH}, ...]."
        )
    return [
        TrajectoryPoint(step=step, adapter=str(p))
        if (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()
        else TrajectoryPoint(step=step, checkpoint=str(p))
        for step, p in found
    ]


def expand_trajectories(stages: list[StageConfig]) -> list[StageConfig]:
    """The stage list with each stage's `trajectory` points added right before it, as stages
    trained elsewhere (`checkpoint`) with the stage's parent; idempotent like the replicates.

    Raises:
        ConfigError: an adapter point whose stage names no base `checkpoint`, two points at one
            step, or a point's name taken by another stage.
    """
    listed = {s.name for s in stages}
    out: list[StageConfig] = []
    for stage in stages:
        traj = stage.trajectory
        points = trainer_checkpoints(traj) if isinstance(traj, str) else list(traj or [])
        steps = [p.step for p in points]
        if len(set(steps)) != len(steps):
            raise ConfigError(f"stage '{stage.name}': trajectory repeats a step ({steps}).")
        for point in points:
            name = trajectory_name(stage.name, point.step)
            if name in listed:
                continue
            if point.checkpoint is None and point.adapter is None:
                raise ConfigError(
                    f"stage '{stage.name}': trajectory step {point.step} names no checkpoint; "
                    "give it 'checkpoint' (a folder or hub id) or 'adapter'."
                )
            base = point.checkpoint or stage.checkpoint
            out.append(
                StageConfig(
                    name=name,
                    parent=stage.parent,
                    checkpoint=base,
                    adapter=point.adapter,
                    revision=stage.revision if point.checkpoint is None else None,
                    trajectory_of=stage.name,
                    trajectory_step=point.step,
                )
            )
        out.append(stage)
    return out


def replicate_name(stage: str, index: int) -> str:
    """The name of a stage's `index`-th seed replicate (1-based)."""
    return f"{stage}~seed{index}"


def expand_replicates(stages: list[StageConfig], seed: int) -> list[StageConfig]:
    """The stage list with each stage's `replicates` added right after it, as ordinary stages.

    A replicate has the same parent, data and settings, its own seed (the stage's seed + i) and
    `replicate_of` naming the original, so train, extract and probe treat it like any stage.
    Idempotent: replicates already listed (e.g. in a run folder's config.yaml) are kept as
    they are, not added twice.

    Raises:
        ConfigError: `replicates` is negative, or set on a stage that is itself a replicate.
    """
    listed = {s.name for s in stages}
    out: list[StageConfig] = []
    for stage in stages:
        out.append(stage)
        if stage.replicates < 0:
            raise ConfigError(
                f"stage '{stage.name}': replicates is {stage.replicates}; use 0 or more."
            )
        if stage.replicates and stage.replicate_of is not None:
            raise ConfigError(
                f"stage '{stage.name}' is a replicate of '{stage.replicate_of}'; set "
                "replicates on the original stage only."
            )
        base_seed = seed if stage.seed is None else stage.seed
        for i in range(1, stage.replicates + 1):
            name = replicate_name(stage.name, i)
            if name not in listed:
                out.append(
                    dataclasses.replace(
                        stage, name=name, seed=base_seed + i, replicates=0, replicate_of=stage.name
                    )
                )
    return out
