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
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from valuetrace.errors import ConfigError
from valuetrace.paths import RunPaths, check_name
from valuetrace.records import from_plain, short_repr

Pooling = Literal["last", "mean", "response"]
Method = Literal["full", "lora"]
Format = Literal["documents", "sft", "grpo"]
PackingStrategy = Literal["wrapped", "bfd"]
LossHead = Literal["auto", "fused", "logits"]
Schema = Literal["documents", "dolly", "alpaca", "messages", "auto"]
Dtype = Literal["float32", "bfloat16", "float16"]

MAX_CONFIG_BYTES = 1 << 20  # a config file's size
MAX_CONFIG_NODES = 100_000  # values a config may expand to (keys, items and scalars)
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (used by the HF Trainer) takes 0 .. 2**32 - 1
# The date a chat template renders (Llama 3.1/3.2 templates write "Today Date: ..."), pinned so
# token ids do not change from day to day. The format is the templates' own (`strftime_now("%d
# %b %Y")`) and the default is the date those templates fall back to when no clock is available.
CHAT_DATE_FORMAT = "%d %b %Y"
DEFAULT_CHAT_DATE = "26 Jul 2024"


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
                        f"{name} is {short_repr(item)}; it must be {bounds}. Change it in the "
                        f"config ({default})."
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
    chat_date: str = DEFAULT_CHAT_DATE  # passed to the template as `date_string`

    def __post_init__(self) -> None:
        if (self.name_or_path is None) == (self.scratch is None):
            raise ConfigError(
                "model: give exactly one of 'name_or_path' (hub id or local path) or 'scratch' "
                "(a from-scratch Llama config)."
            )
        try:
            canonical = dt.datetime.strptime(self.chat_date, CHAT_DATE_FORMAT)
        except ValueError:
            canonical = None
        if canonical is None or canonical.strftime(CHAT_DATE_FORMAT) != self.chat_date:
            raise ConfigError(
                f"model.chat_date is {self.chat_date[:40]!r}; give a date as chat templates write "
                f"it, two-digit day, English month abbreviation, year (default "
                f"{DEFAULT_CHAT_DATE!r})."
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
    """The causal dose-response: steering strengths (in class gaps) and how many items to score;
    and the causal transplant's number of random control directions (`analysis.transplant`).

    alpha = 1 adds one class gap of the parent's direction (mean projection of class 1 minus
    class 0) at the localised layer; the grid must hold 0 and both signs.
    """

    alphas: list[float] = field(default_factory=lambda: [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0])
    max_items: int | None = checked(None, ge=2)  # eval and helpfulness items per strength
    # random unit directions per layer the causal transplant patches as its control
    transplant_controls: int = checked(3, ge=1)

    def __post_init__(self) -> None:
        grid = self.alphas
        if 0.0 not in grid or min(grid, default=0) >= 0 or max(grid, default=0) <= 0:
            raise ConfigError(
                f"causal.alphas {short_repr(grid)} must hold 0 and at least one negative and "
                "one positive strength, e.g. [-2, -1, 0, 1, 2]."
            )
        if len(set(grid)) != len(grid):
            raise ConfigError(
                f"causal.alphas {short_repr(grid)} repeats a strength; list each once."
            )


@dataclass
class AnimaConfig:
    """ANIMA (Animal Harm Benchmark 2.x) answers per stage, judged per dimension.

    `source` is a folder holding `questions.jsonl` and `dimensions.jsonl` (default: `anima/`
    of `real_data_dir`); `languages` keeps questions in those languages (the original English
    questions, `language: null`, count as "English"; leave it out for all languages); `limit`
    keeps the first questions after that filter. Each stage answers each question
    `samples_per_question` times under its chat template (greedy at `temperature` 0, which
    allows one sample only; seeded sampling above it). `judge` is the offline judge's model
    (built-in name, hub id, folder or GGUF); `inspect_grader` an Inspect model id (`hf/<folder>`,
    `openai/gpt-4o`, ...) that grades the same cached answers through Inspect, and `reference`
    a JSONL file of graded answers to measure the judge's agreement against.
    """

    enabled: bool = False
    source: str | None = None
    languages: list[str] | None = field(default_factory=lambda: ["English"])
    limit: int | None = checked(None, ge=1)
    samples_per_question: int = checked(1, ge=1)
    temperature: float = checked(0.0, ge=0)
    max_new_tokens: int = checked(128, ge=1)
    batch_size: int = checked(8, ge=1)
    seed: int | None = checked(None, ge=0, le=MAX_SEED)  # None: the run's seed
    backend: Literal["auto", "transformers", "vllm"] = "auto"
    judge: str = "smollm2-135m-instruct"
    judge_batch_size: int = checked(8, ge=1)
    judge_max_length: int = checked(1024, ge=16)
    inspect_grader: str | None = None
    reference: str | None = None
    n_bootstrap: int = checked(1000, ge=1)

    def __post_init__(self) -> None:
        if self.samples_per_question > 1 and self.temperature == 0:
            raise ConfigError(
                f"anima.samples_per_question is {self.samples_per_question} but temperature is "
                "0 (greedy): every sample would be the same answer. Set temperature > 0 "
                "(e.g. 0.7) or samples_per_question: 1."
            )
        if self.languages is not None and not self.languages:
            raise ConfigError(
                "anima.languages is an empty list; name languages (e.g. [English]) or leave it "
                "out (null) for all languages."
            )


@dataclass
class AnalysisConfig:
    """Which stage pairs to compare (parent first) and which layer the UMAP panel shows.

    Weakening, rotation and drift are judged on the cross-fitted class separation (see
    `valuetrace.analysis.localize`) at the run's `probing.ci` level with `alpha` (one-sided,
    Holm across layers); a stage's seed replicates set the noise floor.
    """

    compare: list[list[str]]
    alpha: float = checked(0.05, gt=0, lt=1)
    # a known-answer study: the stage trained on counter-value text (the positive control) and
    # one trained the same way, at the same dose, on text with no value content (the floor a
    # change must exceed to count as value-specific; see valuetrace.analysis.trajectory)
    counter_arm: str | None = None
    neutral_arm: str | None = None
    umap_layer: int | None = checked(None, ge=0)
    umap: bool = True


@dataclass
class RealDataSizes:
    """Caps on each file `real_data_dir` writes (examples, pairs or items), and the share of the
    empathy texts held out of training; sized so the demo-sized model trains in ~10 min on 2
    CPU cores. Set any of them under `real_data_sizes` in the config."""

    general: int = checked(3000, ge=1)
    compassion: int = checked(1500, ge=1)
    helpfulness: int = checked(1500, ge=1)
    helpfulness_eval: int = checked(150, ge=1)
    coding: int = checked(1500, ge=1)
    probe_pairs: int = checked(300, ge=1)
    behaviour_pairs: int = checked(150, ge=1)
    control_pairs: int = checked(300, ge=1)
    empathy_heldout_fraction: float = checked(0.2, ge=0, lt=1)

    def __post_init__(self) -> None:
        check_ranges(self, "real_data_sizes")  # also when built in code, not from a config


@dataclass
class ConceptSourcesConfig:
    """A concept measured by several independent probe sets, and the rule naming where they agree.

    `sources` names the probe sets (from `probes`) that each measure the concept from another
    source; the first probe set of the run (the primary, which localisation reads) must be one
    of them. A layer is *cross-source* when the primary's probe reaches AUROC >= `min_auroc`
    (its interval above chance) on at least `min_sources` of the other sources, else
    *source-specific* (`valuetrace.analysis.concept_sources`). The other fields size the
    sources that `valuetrace.concept_data` writes into the run's data folder: `empathy_rows`
    essays of held-out respondents, and the model's own greedy answers (`anima_new_tokens`
    tokens) to the first `anima_questions` ANIMA questions of at most `anima_max_words` words
    (so they fit `extract.max_length`) under a compassionate and a dismissive system prompt
    (0: no persona source).
    """

    sources: list[str]
    min_auroc: float = checked(0.75, gt=0.5, le=1)
    min_sources: int = checked(2, ge=1)
    empathy_rows: int = checked(200, ge=4)
    anima_questions: int = checked(20, ge=0)
    anima_new_tokens: int = checked(32, ge=1)
    anima_max_words: int = checked(40, ge=1)


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
    # documents each from real_data_dir (valuetrace.real_data.build_known_answer_corpora)
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
