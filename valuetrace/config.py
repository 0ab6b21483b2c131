"""Typed, validated run configuration: one YAML file describes a whole pipeline.

The config is a tree of dataclasses, and each setting is defined once, here: training takes a
`StageConfig`, probing a `ProbingConfig`, with no look-alike copies. A numeric field declares its
allowed range where it is defined (`checked`); `load_config` reads YAML, rejects unknown fields,
wrong types and out-of-range values with a `ConfigError` that names the field
(`stages[2].learning_rate`), before any step writes anything, and derives every path of
the run folder, so each step reads only what earlier steps wrote (see `RunPaths`).
"""

from __future__ import annotations

import dataclasses
import math
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
PackingStrategy = Literal["wrapped", "bfd"]
LossHead = Literal["auto", "fused", "logits"]
Schema = Literal["documents", "dolly", "alpaca", "messages", "auto"]
Dtype = Literal["float32", "bfloat16", "float16"]

MAX_SEED = 2**32 - 1  # numpy's legacy seeding (used by the HF Trainer) takes 0 .. 2**32 - 1


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a numeric config field; each bound is optional, open or closed."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def allows(self, value: float) -> bool:
        """Whether `value` is finite and inside every given bound."""
        return (
            math.isfinite(value)
            and (self.gt is None or value > self.gt)
            and (self.ge is None or value >= self.ge)
            and (self.lt is None or value < self.lt)
            and (self.le is None or value <= self.le)
        )

    def __str__(self) -> str:
        """The range as text, e.g. `> 0` or `>= 0 and < 1`."""
        ops = ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
        return " and ".join(f"{op} {bound!r}" for op, bound in ops if bound is not None)


def checked(
    default: Any,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> Any:
    """A dataclass field with a default and an allowed range, which `check_ranges` enforces.

    For a list-valued field the range applies to every element; `None` (an unset optional
    field) is always allowed.
    """
    return field(default=default, metadata={"bounds": Bounds(gt=gt, ge=ge, lt=lt, le=le)})


def check_ranges(obj: Any, where: str) -> None:
    """Check every `checked` field of the config dataclass `obj` and of the dataclasses in it.

    `where` is the path of `obj` in the run config (`""` for the whole config, `"probing"` for
    its probing section); a field is named by its path, e.g. `stages[2].learning_rate`.

    Raises:
        ConfigError: a value is not finite or outside its field's range; the field is named.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = f"{where}.{f.name}" if where else f.name
        bounds: Bounds | None = f.metadata.get("bounds")
        if bounds is not None and value is not None:
            items = enumerate(value) if isinstance(value, list | tuple) else [(None, value)]
            for i, item in items:
                name = path if i is None else f"{path}[{i}]"
                if not bounds.allows(item):
                    default = "leave it out" if f.default is None else f"default {f.default!r}"
                    raise ConfigError(
                        f"{name} is {item!r}; it must be {bounds}. Change it in the config "
                        f"({default})."
                    )
        if dataclasses.is_dataclass(value):
            check_ranges(value, path)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    check_ranges(item, f"{path}[{i}]")


@dataclass
class ScratchModel:
    """A Llama-architecture model built from a config (no download), for the CPU demo."""

    hidden_size: int = checked(128, ge=1)
    num_layers: int = checked(4, ge=1)
    num_heads: int = checked(4, ge=1)
    intermediate_size: int = checked(344, ge=1)
    max_position_embeddings: int = checked(256, ge=1)
    vocab_size: int = checked(4096, ge=1)


@dataclass
class ModelConfig:
    """Where the stage-0 model comes from: a hub id / local path, or built from scratch."""

    name_or_path: str | None = None
    scratch: ScratchModel | None = None
    revision: str | None = None
    dtype: Dtype = "float32"
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
    batch_size: int = checked(16, ge=1)
    max_length: int = checked(256, ge=1)
    layers: list[int] | None = checked(None, ge=0)  # hidden-state indices: 0 = embeddings


@dataclass
class SurfaceConfig:
    """The surface baselines of each probe set (`valuetrace.probing.surface`): a word n-gram
    and a length-only logistic regression on the raw text, scored on the probes' folds (their
    intervals use `probing.n_bootstrap` and `probing.ci`).

    `ngram_min` / `ngram_max` bound the word n-gram lengths; `C` is the inverse L2 strength of
    both regressions; `top_k` n-grams per class are listed; `margin` flags a probe set whose best
    baseline reaches within this many AUROC points of a stage's best layer.
    """

    ngram_min: int = checked(1, ge=1)
    ngram_max: int = checked(2, ge=1)
    C: float = checked(1.0, gt=0)
    top_k: int = checked(10, ge=0)
    margin: float = checked(0.05, ge=0, le=0.5)

    def __post_init__(self) -> None:
        if self.ngram_min > self.ngram_max:
            raise ConfigError(
                f"probing.surface.ngram_min ({self.ngram_min}) exceeds ngram_max "
                f"({self.ngram_max}); give ngram_min <= ngram_max."
            )

    @property
    def ngram_range(self) -> tuple[int, int]:
        """(min, max) word n-gram length, as scikit-learn takes it."""
        return self.ngram_min, self.ngram_max


@dataclass
class ProbingConfig:
    """Cross-validation, regularisation and interval settings of the per-layer probes.

    `C` is the inverse L2 strength of the logistic probes: one value, or a list of candidates
    chosen per layer by nested grouped CV (which needs `n_folds` >= 3). `ci` is the level of
    every group-bootstrap interval; `tol` / `max_iter` bound the batched solver.
    `surface` holds the settings of the surface baselines on the raw text (`SurfaceConfig`).
    """

    n_folds: int = checked(5, ge=2)
    C: float | list[float] = checked(1.0, gt=0)
    n_bootstrap: int = checked(1000, ge=1)
    control: bool = True
    ci: float = checked(0.95, gt=0, lt=1)
    tol: float = checked(1e-4, gt=0)
    max_iter: int = checked(1000, ge=1)
    surface: SurfaceConfig = field(default_factory=SurfaceConfig)

    def __post_init__(self) -> None:
        if isinstance(self.C, list | tuple) and not self.C:
            raise ConfigError("probing.C is an empty list; give one C or a list of candidates.")
        if len(self.C_grid) > 1 and self.n_folds < 3:
            raise ConfigError(
                f"probing.n_folds is {self.n_folds}, but choosing C from {list(self.C_grid)} by "
                "nested CV needs n_folds >= 3; raise n_folds or give a single C."
            )

    @property
    def C_grid(self) -> tuple[float, ...]:
        """Candidate Cs in ascending order (one value when C is fixed)."""
        values = self.C if isinstance(self.C, list | tuple) else (self.C,)
        return tuple(sorted(float(c) for c in values))


@dataclass
class BehaviourConfig:
    """The behavioural evaluations run beside the probes."""

    compassion_eval: str
    helpfulness_eval: DataSource
    n_bootstrap: int = checked(1000, ge=1)
    max_new_tokens: int = checked(48, ge=0)  # greedy answers to the fixed prompts; 0 skips them
    null_directions: int = checked(1000, ge=1)  # random directions per projection-behaviour null


@dataclass
class CausalConfig:
    """The causal dose-response: steering strengths (in class gaps) and how many items to score.

    alpha = 1 adds one class gap of the parent's direction (mean projection of class 1 minus
    class 0) at the localised layer; the grid must hold 0 and both signs.
    """

    alphas: list[float] = field(default_factory=lambda: [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0])
    max_items: int | None = checked(None, ge=2)  # eval and helpfulness items per strength

    def __post_init__(self) -> None:
        grid = self.alphas
        if 0.0 not in grid or min(grid, default=0) >= 0 or max(grid, default=0) <= 0:
            raise ConfigError(
                f"causal.alphas {grid} must hold 0 and at least one negative and one positive "
                "strength, e.g. [-2, -1, 0, 1, 2]."
            )
        if len(set(grid)) != len(grid):
            raise ConfigError(f"causal.alphas {grid} repeats a strength; list each once.")


@dataclass
class AnalysisConfig:
    """Which stage pairs to compare (parent first) and which layer the UMAP panel shows.

    Weakening, rotation and drift are judged on the cross-fitted class separation (see
    `valuetrace.analysis.localize`) at the run's `probing.ci` level with `alpha` (one-sided,
    Holm across layers); a stage's seed replicates set the noise floor.
    """

    compare: list[list[str]]
    alpha: float = checked(0.05, gt=0, lt=1)
    umap_layer: int | None = checked(None, ge=0)
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
    causal: CausalConfig = field(default_factory=CausalConfig)
    seed: int = checked(0, ge=0, le=MAX_SEED)
    demo_data: bool = False
    real_data_dir: str | None = None
    real_data_sizes: dict[str, int] = field(default_factory=dict)
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
        umap_layer, layers = self.analysis.umap_layer, self.extract.layers
        if umap_layer is not None and layers is not None and umap_layer not in layers:
            raise ConfigError(
                f"analysis.umap_layer is {umap_layer}, which extract.layers "
                f"{layers} does not extract; pick one of those or add it to extract.layers."
            )
        if self.model.scratch is not None:
            check_layer_indices(self, self.model.scratch.num_layers, "model.scratch")

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
    config.stages = expand_replicates(config.stages, config.seed)
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


def check_model_layers(config: RunConfig) -> None:
    """Check the layer indices against a hub or local model's depth, before a run writes.

    A from-scratch model's layers are checked when the config loads. A hub id or folder has its
    `config.json` read (`num_hidden_layers`) from disk or the local hub cache only, never
    downloaded; a model in neither is checked later, when extraction loads it.

    Raises:
        ConfigError: `extract.layers` or `analysis.umap_layer` holds an index the model lacks.
    """
    name = config.model.name_or_path
    if name is None or (config.extract.layers is None and config.analysis.umap_layer is None):
        return
    from transformers import AutoConfig

    try:
        model_config = AutoConfig.from_pretrained(
            name, revision=config.model.revision, local_files_only=True
        )
    except (OSError, ValueError):
        return  # not on disk: `valuetrace extract` checks the layers when it loads the model
    n_blocks = getattr(model_config.get_text_config(), "num_hidden_layers", None)
    if isinstance(n_blocks, int):
        check_layer_indices(config, n_blocks, f"model {name}")
