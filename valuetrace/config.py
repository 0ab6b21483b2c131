"""Typed, validated run configuration: one YAML file describes a whole pipeline.

The config is a tree of dataclasses. `load_config` reads YAML, rejects unknown fields and bad
values with a message that names the field, and derives every path of the run folder, so each
step reads only what earlier steps wrote (see `RunPaths`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from valuetrace.errors import ConfigError
from valuetrace.paths import RunPaths
from valuetrace.records import from_plain

Pooling = Literal["last", "mean", "response"]
Method = Literal["full", "lora"]
Format = Literal["documents", "sft", "grpo"]


@dataclass
class ScratchModel:
    """A Llama-architecture model built from a config (no download), for the CPU demo."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 344
    max_position_embeddings: int = 256
    vocab_size: int = 4096


@dataclass
class ModelConfig:
    """Where the stage-0 model comes from: a hub id / local path, or built from scratch."""

    name_or_path: str | None = None
    scratch: ScratchModel | None = None
    revision: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    chat_template: bool = False

    def __post_init__(self) -> None:
        if (self.name_or_path is None) == (self.scratch is None):
            raise ConfigError(
                "model: give exactly one of 'name_or_path' (hub id or local path) or 'scratch' "
                "(a from-scratch Llama config)."
            )


@dataclass
class DataSource:
    """One dataset: a local file or hub id, its schema, and an optional filter and size cap."""

    source: str
    schema: Literal["documents", "dolly", "alpaca", "messages", "auto"] = "auto"
    limit: int | None = None
    where: dict[str, str] | None = None
    split: str = "train"
    drop_empty: bool = False


@dataclass
class LoraConfig:
    """PEFT LoRA settings; `merge` folds the adapter into the weights after training."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    merge: bool = True


@dataclass
class GrpoConfig:
    """GRPO (TRL) settings for a reinforcement-learning stage with a keyword reward."""

    num_generations: int = 8
    max_completion_length: int = 256
    temperature: float = 1.0
    beta: float = 0.0
    reward_words: list[str] | None = None


@dataclass
class StageConfig:
    """One training stage: its parent, data, loss format, method and hyperparameters."""

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
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 1e-3
    batch_size: int = 16
    grad_accum: int = 1
    max_length: int = 128
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    packing: bool = True
    gradient_checkpointing: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
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


@dataclass
class ProbeSet:
    """A labelled prompt/response set to extract and probe (label 1 = the concept present)."""

    name: str
    source: str
    concept: str = "compassion"


@dataclass
class ExtractConfig:
    """How activations are pooled, stored and batched."""

    pooling: Pooling = "response"
    dtype: Literal["float32", "float16"] = "float32"
    batch_size: int = 16
    max_length: int = 256
    layers: list[int] | None = None


@dataclass
class ProbingConfig:
    """Cross-validation and statistics settings for the per-layer probes."""

    n_folds: int = 5
    C: float | list[float] = 1.0
    n_bootstrap: int = 1000
    control: bool = True
    ci: float = 0.95


@dataclass
class BehaviourConfig:
    """The behavioural evaluations run beside the probes."""

    compassion_eval: str
    helpfulness_eval: DataSource
    n_bootstrap: int = 1000


@dataclass
class AnalysisConfig:
    """Which stage pairs to compare and where to look."""

    compare: list[list[str]]
    metric: Literal["separation", "auroc"] = "separation"
    umap_layer: int | None = None
    umap: bool = True


@dataclass
class RunConfig:
    """A whole pipeline: model, stages in order, probe sets and analysis."""

    run_dir: str
    model: ModelConfig
    stages: list[StageConfig]
    probes: list[ProbeSet]
    behaviour: BehaviourConfig
    analysis: AnalysisConfig
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    probing: ProbingConfig = field(default_factory=ProbingConfig)
    seed: int = 0
    demo_data: bool = False
    real_data_dir: str | None = None
    tokenizer_corpora: list[str] = field(default_factory=list)
    accelerate_config: str | None = None

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"stages: stage names must be unique, got {names}.")
        for i, stage in enumerate(self.stages):
            if stage.parent is not None and stage.parent not in names[:i]:
                raise ConfigError(
                    f"stages[{i}] '{stage.name}': parent '{stage.parent}' is not an earlier stage "
                    f"(earlier stages: {names[:i] or 'none'}). List the parent before its child."
                )
        for pair in self.analysis.compare:
            unknown = [s for s in pair if s not in names]
            if len(pair) != 2 or unknown:
                raise ConfigError(
                    f"analysis.compare: {pair} must name two stages from {names}"
                    + (f" (unknown: {unknown})." if unknown else ".")
                )
        if not self.probes:
            raise ConfigError("probes: list at least one probe set (e.g. compassion pairs).")

    @property
    def paths(self) -> RunPaths:
        """The run folder's layout, derived from `run_dir`."""
        return RunPaths(Path(self.run_dir))

    def stage(self, name: str) -> StageConfig:
        """The stage called `name`, or an error listing the stages."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(
            f"no stage '{name}' in the config; stages: {[s.name for s in self.stages]}."
        )


def config_from_dict(data: dict[str, Any], *, run_dir: str | None = None) -> RunConfig:
    """Validate a plain mapping into a `RunConfig` (optionally overriding `run_dir`)."""
    if run_dir is not None:
        data = {**data, "run_dir": run_dir}
    return from_plain(RunConfig, data, "config", error=ConfigError)


def load_config(path: str | Path, *, run_dir: str | None = None) -> RunConfig:
    """Read and validate a YAML config; `${config_dir}` in strings means the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist; pass a YAML file "
            "(see valuetrace/configs/ for examples)."
        )
    text = path.read_text().replace("${config_dir}", str(path.resolve().parent))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level.")
    return config_from_dict(data, run_dir=run_dir)


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The config as plain data (what `config.yaml` in the run folder holds)."""
    return dataclasses.asdict(config)


def resolve_data_path(source: str, config: RunConfig) -> str:
    """Expand `${data}` (the run's built-in data folder) in a data source string."""
    return source.replace("${data}", str(config.paths.data))
