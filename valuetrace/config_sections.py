"""The sections of a run config: the model, probe sets, extraction, probing (with its surface
baselines), behaviour, causal checks, ANIMA, analysis, the real-data sizes and the multi-source
concept. Each setting is defined once, with its range (`checked`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from valuetrace.config_ranges import MAX_SEED, check_ranges, checked
from valuetrace.config_stages import DataSource
from valuetrace.errors import ConfigError
from valuetrace.records import short_repr

Pooling = Literal["last", "mean", "response"]
Dtype = Literal["float32", "bfloat16", "float16"]

# The date a chat template renders (Llama 3.1/3.2 templates write "Today Date: ..."), pinned so
# token ids do not change from day to day. The format is the templates' own (`strftime_now("%d
# %b %Y")`) and the default is the date those templates fall back to when no clock is available.
CHAT_DATE_FORMAT = "%d %b %Y"
DEFAULT_CHAT_DATE = "26 Jul 2024"


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
class ProbeSet:
    """A labelled prompt/response set to extract and probe (label 1 = the concept present)."""

    name: str
    source: str
    concept: str = "compassion"


@dataclass
class ExtractConfig:
    """How activations are pooled, stored and batched.

    `share_prefixes` runs the tokens every row of a batch shares (a chat template's system
    turn) once and reuses its keys and values; false runs every row whole (the same vectors to
    float rounding, about twice the decoder tokens under SmolLM2's template, yet measured no
    slower end to end on 2 CPU cores, benchmarks/README.md): to check the shared path or to
    time it.
    """

    pooling: Pooling = "response"
    dtype: Literal["float32", "float16"] = "float32"
    batch_size: int = checked(16, ge=1)
    max_length: int = checked(256, ge=1)
    layers: list[int] | None = checked(None, ge=0)  # hidden-state indices: 0 = embeddings
    share_prefixes: bool = True


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
    # what the counter arm was built to do, in a sentence: the summary states it as the known
    # answer's cause (for example "its text writes every invented name as a thing")
    known_cause: str | None = None
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
    sources that `valuetrace.corpora.concept_data` writes into the run's data folder: `empathy_rows`
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
