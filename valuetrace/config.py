"""Typed, validated run configuration: one YAML file describes a whole pipeline.

The config is a tree of dataclasses, and each setting is defined once: training takes a
`StageConfig`, probing a `ProbingConfig`, with no look-alike copies. A numeric field declares its
allowed range where it is defined (`checked`, `valuetrace.config_ranges`); `load_config` reads
YAML, rejects unknown fields, wrong types and out-of-range values with a `ConfigError` that names
the field (`stages[2].learning_rate`), before any step writes anything, and derives every path
of the run folder, so each step reads only what earlier steps wrote (see `RunPaths`).

This module is the config's face: the whole-run `RunConfig`, loading and the checks against a
model. The stages live in `valuetrace.config_stages`, the other sections in
`valuetrace.config_sections`; every config name is importable from here (`__all__`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from valuetrace.config_ranges import MAX_SEED, Bounds, check_ranges, checked
from valuetrace.config_sections import (
    CHAT_DATE_FORMAT,
    DEFAULT_CHAT_DATE,
    AnalysisConfig,
    AnimaConfig,
    BehaviourConfig,
    CausalConfig,
    ConceptSourcesConfig,
    Dtype,
    ExtractConfig,
    ModelConfig,
    Pooling,
    ProbeSet,
    ProbingConfig,
    RealDataSizes,
    ScratchModel,
    SurfaceConfig,
)
from valuetrace.config_stages import (
    DataSource,
    Format,
    GrpoConfig,
    LoraConfig,
    LossHead,
    Method,
    PackingStrategy,
    Schema,
    StageConfig,
    TrajectoryPoint,
    expand_replicates,
    expand_trajectories,
    replicate_name,
    trainer_checkpoints,
    trajectory_name,
)
from valuetrace.errors import ConfigError
from valuetrace.paths import RunPaths, check_name
from valuetrace.records import from_plain, short_repr

__all__ = [
    "CHAT_DATE_FORMAT",
    "DEFAULT_CHAT_DATE",
    "MAX_SEED",
    "AnalysisConfig",
    "AnimaConfig",
    "BehaviourConfig",
    "Bounds",
    "CausalConfig",
    "ConceptSourcesConfig",
    "DataSource",
    "Dtype",
    "ExtractConfig",
    "Format",
    "GrpoConfig",
    "LoraConfig",
    "LossHead",
    "Method",
    "ModelConfig",
    "PackingStrategy",
    "Pooling",
    "ProbeSet",
    "ProbingConfig",
    "RealDataSizes",
    "RunConfig",
    "Schema",
    "ScratchModel",
    "StageConfig",
    "SurfaceConfig",
    "TrajectoryPoint",
    "check_expansion",
    "check_layer_indices",
    "check_max_lengths",
    "check_model_layers",
    "check_ranges",
    "checked",
    "config_from_dict",
    "config_to_dict",
    "expand_replicates",
    "expand_trajectories",
    "load_config",
    "replicate_name",
    "resolve_data_path",
    "trainer_checkpoints",
    "trajectory_name",
]

MAX_CONFIG_BYTES = 1 << 20  # a config file's size
MAX_CONFIG_NODES = 100_000  # values a config may expand to (keys, items and scalars)


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
    causal: CausalConfig = field(default_factory=CausalConfig)
    anima: AnimaConfig = field(default_factory=AnimaConfig)
    seed: int = checked(0, ge=0, le=MAX_SEED)
    demo_data: bool = False
    real_data_dir: str | None = None
    real_data_sizes: RealDataSizes = field(default_factory=RealDataSizes)
    # > 0: also write the known-answer corpora (counter_docs, neutral_docs) of at most this many
    # documents each from real_data_dir (valuetrace.corpora.real_data.build_known_answer_corpora)
    known_answer_documents: int = checked(0, ge=0)
    tokenizer_corpora: list[str] = field(default_factory=list)
    accelerate_config: str | None = None
    # processes per trained stage under torchrun (DDP: gloo on CPU, NCCL on GPUs); batch_size
    # is per process. With accelerate_config, that file's num_processes decides instead.
    train_processes: int = checked(1, ge=1)
    concept_sources: ConceptSourcesConfig | None = None
    # torch's CPU threads: "auto" uses every core (or OMP_NUM_THREADS when it is set); a number
    # fixes it. On a shared machine, fewer threads than cores degrade gracefully when another
    # process competes (benchmarks/bench_load.py); a step warns when the machine is busy.
    threads: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.threads, str) and self.threads < 1:
            raise ConfigError(
                f"threads is {self.threads}; it must be 'auto' (every core) or a number >= 1."
            )
        if self.accelerate_config is not None and self.train_processes != 1:
            raise ConfigError(
                f"train_processes is {self.train_processes} and accelerate_config is set; give "
                "one: set num_processes in the accelerate config, or drop accelerate_config."
            )
        if not self.stages:
            raise ConfigError(
                "stages: the list is empty; list at least one stage (the first may be the "
                "configured model as it is: `- {name: base}`)."
            )
        for i, stage in enumerate(self.stages):
            check_name(stage.name, f"stages[{i}].name")
        for i, probe_set in enumerate(self.probes):
            check_name(probe_set.name, f"probes[{i}].name")
            check_name(probe_set.concept, f"probes[{i}].concept")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"stages: stage names must be unique, got {names}.")
        for i, stage in enumerate(self.stages):
            if stage.parent is not None and stage.parent not in names[:i]:
                raise ConfigError(
                    f"stages[{i}] '{stage.name}': parent '{stage.parent}' is not an earlier stage "
                    f"(earlier stages: {names[:i] or 'none'}). List the parent before its child."
                )
        for arm in (self.analysis.counter_arm, self.analysis.neutral_arm):
            if arm is not None and arm not in names:
                raise ConfigError(f"analysis: arm '{arm}' is not a stage ({names}).")
        cause = self.analysis.known_cause
        arms = (self.analysis.counter_arm, self.analysis.neutral_arm)
        if cause is not None and (not cause.strip() or None in arms):
            raise ConfigError(
                "analysis.known_cause states the cause of a known answer in a sentence, for a "
                "config with a counter-value arm: set analysis.counter_arm and neutral_arm, and "
                f"give it text (got {short_repr(cause)}), or leave it out."
            )
        for pair in self.analysis.compare:
            unknown = [s for s in pair if s not in names]
            if len(pair) != 2 or unknown:
                raise ConfigError(
                    f"analysis.compare: {short_repr(pair)} must name two stages from {names}"
                    + (f" (unknown: {unknown})." if unknown else ".")
                )
        if not self.probes:
            raise ConfigError("probes: list at least one probe set (e.g. compassion pairs).")
        if self.concept_sources is not None:
            _check_concept_sources(self.concept_sources, [p.name for p in self.probes])
        umap_layer, layers = self.analysis.umap_layer, self.extract.layers
        if umap_layer is not None and layers is not None and umap_layer not in layers:
            raise ConfigError(
                f"analysis.umap_layer is {umap_layer}, which extract.layers "
                f"{layers} does not extract; pick one of those or add it to extract.layers."
            )
        if self.model.scratch is not None:
            check_layer_indices(self, self.model.scratch.num_layers, "model.scratch")
            check_max_lengths(self, self.model.scratch.max_position_embeddings, "model.scratch")

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


def _check_concept_sources(concept: ConceptSourcesConfig, probes: list[str]) -> None:
    """Refuse concept sources that are not probe sets, lack the primary, or cannot meet the rule."""
    unknown = [name for name in concept.sources if name not in probes]
    if unknown:
        raise ConfigError(
            f"concept_sources.sources names {unknown}, which are not probe sets ({probes}); list "
            "each source under `probes` too."
        )
    if probes[0] not in concept.sources:
        raise ConfigError(
            f"concept_sources.sources {concept.sources} lacks the primary probe set "
            f"'{probes[0]}' (the first under `probes`); add it."
        )
    if len(set(concept.sources)) - 1 < concept.min_sources:
        raise ConfigError(
            f"concept_sources.min_sources is {concept.min_sources}, but only "
            f"{len(set(concept.sources)) - 1} other source(s) are listed; add sources or lower it."
        )


def config_from_dict(data: dict[str, Any], *, run_dir: str | None = None) -> RunConfig:
    """Validate a plain mapping into a `RunConfig` (optionally overriding `run_dir`).

    Raises:
        ConfigError: a field is unknown, of the wrong type or out of range (it is named).
    """
    if run_dir is not None:
        data = {**data, "run_dir": run_dir}
    probing = data.get("probing")
    if isinstance(probing, dict) and "surface_margin" in probing:  # the flat key of older configs
        probing = dict(probing)
        surface = {"margin": probing.pop("surface_margin"), **(probing.get("surface") or {})}
        data = {**data, "probing": {**probing, "surface": surface}}
    config = from_plain(RunConfig, data, "config", error=ConfigError)
    check_ranges(config, "")  # before the replicates: errors name the stages as listed
    config.stages = expand_replicates(expand_trajectories(config.stages), config.seed)
    return config


def load_config(path: str | Path, *, run_dir: str | None = None) -> RunConfig:
    """Read and validate a YAML config; `${config_dir}` in strings means the file's folder.

    Nothing is written: a config that fails here leaves no run folder behind.

    Raises:
        ConfigError: the file is missing or not YAML, or a field is unknown, of the wrong type
            or out of range (it is named).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist; pass a YAML file "
            "(see valuetrace/configs/ for examples)."
        )
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path} is {path.stat().st_size} bytes; a config is at most "
            f"{MAX_CONFIG_BYTES} bytes. Put data in data files and name them in the config."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {path} is not UTF-8 text ({err.reason} at byte {err.start}); save it "
            "as UTF-8."
        ) from err
    text = text.replace("${config_dir}", str(path.resolve().parent))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level.")
    check_expansion(data, str(path))
    return config_from_dict(data, run_dir=run_dir)


def check_expansion(data: Any, where: str, limit: int = MAX_CONFIG_NODES) -> None:
    """Refuse YAML whose anchors and aliases expand to more than `limit` values in all.

    An alias is a reference, so a 3 KB file of nested anchors ("billion laughs") loads as a
    small graph that expands to billions of values once walked (validated, compared, or quoted
    in an error). The walk counts every value as if expanded and stops at `limit`, so it costs
    at most `limit` steps.

    Raises:
        ConfigError: the data expands past `limit` values; `where` names the file.
    """
    stack, seen = [data], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > limit:
            raise ConfigError(
                f"config file {where} expands to more than {limit} values (YAML anchors and "
                "aliases that nest: each alias copies what it names); write the config without "
                "nested aliases."
            )
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The config as plain data (what `config.yaml` in the run folder holds)."""
    return dataclasses.asdict(config)


def resolve_data_path(source: str, config: RunConfig) -> str:
    """Expand `${data}` (the run's built-in data folder) in a data source string."""
    return source.replace("${data}", str(config.paths.data))


def check_layer_indices(config: RunConfig, n_blocks: int, model: str) -> None:
    """Refuse layer indices the model lacks: hidden states run from 0 (embeddings) to `n_blocks`.

    Checks `extract.layers` and `analysis.umap_layer`; `model` names where `n_blocks` came from.

    Raises:
        ConfigError: an index is outside 0 .. `n_blocks`; the field is named.
    """
    named = [(f"extract.layers[{i}]", layer) for i, layer in enumerate(config.extract.layers or [])]
    if config.analysis.umap_layer is not None:
        named.append(("analysis.umap_layer", config.analysis.umap_layer))
    for name, layer in named:
        if not 0 <= layer <= n_blocks:
            raise ConfigError(
                f"{name} is {layer}, but {model} has {n_blocks} blocks: layers run from 0 "
                f"(the embeddings) to {n_blocks} (the last block's output)."
            )


def check_max_lengths(config: RunConfig, positions: int, model: str) -> None:
    """Refuse a `max_length` (a trained stage's or `extract.max_length`) beyond the model's
    `positions` (its `max_position_embeddings`): positions past it are unembeddable (learned
    position tables) or never trained (rotary), so the numbers would be silently wrong.

    Raises:
        ConfigError: a max_length exceeds `positions`; both numbers and the field are named.
    """
    named = [
        (f"stages[{i}].max_length", stage.max_length)
        for i, stage in enumerate(config.stages)
        if stage.data is not None
    ]
    named.append(("extract.max_length", config.extract.max_length))
    fix = " or raise model.scratch.max_position_embeddings" if "scratch" in model else ""
    for name, length in named:
        if length > positions:
            raise ConfigError(
                f"{name} is {length}, beyond the {positions} positions {model} has "
                f"(max_position_embeddings); lower it to at most {positions}{fix}."
            )


def check_model_layers(config: RunConfig) -> None:
    """Check the layer indices and max lengths against a hub or local model, before a run writes.

    A from-scratch model is checked when the config loads. A hub id or folder has its
    `config.json` read (`num_hidden_layers`, `max_position_embeddings`) from disk or the local
    hub cache only, never downloaded; a model in neither is checked later, when extraction
    loads it.

    Raises:
        ConfigError: `extract.layers` or `analysis.umap_layer` holds an index the model lacks,
            or a max_length exceeds the model's positions (`check_max_lengths`).
    """
    name = config.model.name_or_path
    if name is None:
        return
    from transformers import AutoConfig

    try:
        model_config = AutoConfig.from_pretrained(
            name, revision=config.model.revision, local_files_only=True
        )
    except (OSError, ValueError):
        return  # not on disk: `valuetrace extract` checks the layers when it loads the model
    text_config = model_config.get_text_config()
    n_blocks = getattr(text_config, "num_hidden_layers", None)
    if isinstance(n_blocks, int):
        check_layer_indices(config, n_blocks, f"model {name}")
    positions = getattr(text_config, "max_position_embeddings", None)
    if isinstance(positions, int):
        check_max_lengths(config, positions, f"model {name}")
