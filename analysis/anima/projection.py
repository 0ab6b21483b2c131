"""Does a stage's internal compassion signal predict its judged ANIMA score, answer by answer?

For each main stage, every ANIMA answer's pooled response hidden state (the answers' activation
cache, `anima/<stage>/activations.h5`, pooled as the run's extraction pools) at the headline
pair's localised layer (the layer of its largest weakening, `study.focus_index`, the layer the
detail figures show) is projected on the parent stage's unit compassion direction (the
primary probe set's difference-of-means direction; a first stage, which has no parent, on its
own), and Pearson's r between those projections and the answers' overall judged scores
measures how much of the judge's grade the direction carries. The interval is a percentile
item bootstrap over answers (`stats.pearson_ci`). Beside it, the null: the `ci` quantile of
|r| that random unit directions reach on the same answers
(`analysis.behaviour.random_direction_band`); r is evidence for the compassion direction only
above it. The persona-vector check of Chen et al. (2025), "Persona vectors", with the judged
score in place of the trait expression score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from jaxtyping import Float

from valuetrace.activations.store import read_activations
from valuetrace.analysis.anima.generate import AnswerSet
from valuetrace.analysis.anima.hidden import answer_id
from valuetrace.analysis.anima.judge import JudgedAnswers
from valuetrace.analysis.anima.questions import run_questions
from valuetrace.analysis.anima.scores import answer_overall
from valuetrace.analysis.behaviour import random_direction_band
from valuetrace.analysis.findings import Findings
from valuetrace.analysis.study import focus_index
from valuetrace.config import RunConfig
from valuetrace.errors import DataError, MissingStepError
from valuetrace.records import load_record, save_record
from valuetrace.stats import Interval, pearson_ci

MIN_ANSWERS = 3  # a correlation of fewer is undefined


@dataclass(frozen=True)
class AnswerProjection:
    """One stage's answers projected on a compassion direction against their judged score."""

    stage: str
    direction_of: str  # whose direction: the stage's parent (itself for a first stage)
    n: int  # answers with both a hidden state and a judged score
    r: Interval  # Pearson r, with its item-bootstrap interval
    null_abs_r: float  # the `ci` quantile of |r| random unit directions reach

    @property
    def beats_null(self) -> bool:
        """|r| clears the random-direction null (False when r is undefined)."""
        return bool(abs(self.r.value) > self.null_abs_r)


@dataclass(frozen=True)
class AnimaProjection:
    """Every main stage's `AnswerProjection` at one layer (a record the report reads)."""

    SCHEMA: ClassVar[str] = "valuetrace.anima_projection"
    VERSION: ClassVar[int] = 1

    dataset: str  # the probe set whose direction is used
    layer: int  # the model layer (residual stream convention of `valuetrace.architecture`)
    ci: float
    stages: dict[str, AnswerProjection]

    def save(self, path: Path) -> Path:
        """Write the record as versioned JSON (atomically)."""
        return save_record(self, path)

    @classmethod
    def load(cls, path: Path) -> AnimaProjection:
        """Read a record written by `save` (MissingStepError: run `valuetrace analyze`)."""
        return load_record(cls, path, step="analyze")


def project_answers(
    stage: str,
    direction_of: str,
    hidden: Float[np.ndarray, "n d"],
    scores: Float[np.ndarray, " n"],
    direction: Float[np.ndarray, " d"],
    *,
    n_boot: int,
    seed: int,
    ci: float,
    n_null: int,
) -> AnswerProjection:
    """Pearson r of the answers' projections on the unit `direction` with their judged scores
    (0-1), with its bootstrap interval and the random-direction null (see module doc).

    Undefined (NaN) with fewer than `MIN_ANSWERS` answers, a zero or non-finite direction, or
    constant scores or projections.

    Raises:
        DataError: `hidden` and `scores` disagree on the number of answers, or `direction` on
            the width.
    """
    hidden = np.asarray(hidden, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64)
    if hidden.shape[0] != scores.shape[0] or hidden.shape[1:] != direction.shape:
        raise DataError(
            f"{hidden.shape[0]} answers of width {hidden.shape[1:]} but {scores.shape[0]} "
            f"scores and a direction of width {direction.shape}; rerun `valuetrace evaluate` "
            "(answers, their hidden states and grades) and `valuetrace probe` on this run."
        )
    nan = Interval(np.nan, np.nan, np.nan)
    norm = np.linalg.norm(direction)
    if len(scores) < MIN_ANSWERS or not np.isfinite(norm) or norm == 0:
        return AnswerProjection(stage, direction_of, len(scores), nan, np.nan)
    r = pearson_ci(hidden @ (direction / norm), scores, n_boot, seed, ci)
    null = random_direction_band(hidden, scores, n_directions=n_null, seed=seed, ci=ci)
    return AnswerProjection(stage, direction_of, len(scores), r, null)


def matched(
    ids: list[str], hidden: Float[np.ndarray, "n d"], scores: Mapping[str, float]
) -> tuple[Float[np.ndarray, "m d"], Float[np.ndarray, " m"]]:
    """The hidden states and judged scores of the answers that have both, in cache order.

    Raises:
        DataError: no answer has both (the cache and the grades come from other answers).
    """
    keep = [i for i, a in enumerate(ids) if a in scores and np.isfinite(scores[a])]
    if ids and not keep:
        raise DataError(
            "no ANIMA answer has both a cached hidden state and a judged score; rerun "
            "`valuetrace evaluate` so answers, hidden states and grades agree."
        )
    return hidden[keep], np.array([scores[ids[i]] for i in keep], dtype=np.float64)


def project_run_answers(
    config: RunConfig,
    findings: Findings,
    directions: Mapping[str, Float[np.ndarray, "l d"]],
    parents: Mapping[str, str | None],
) -> AnimaProjection:
    """Each main stage's answers on its parent's compassion direction at the localised layer,
    against their judged scores (`valuetrace.analysis.anima.projection`).

    `directions` are the primary probe set's per-layer directions of each stage, `parents`
    each stage's parent in the lineage.

    Raises:
        MissingStepError: a stage's answers, hidden states or grades are missing.
        DataError: the cached hidden states and grades belong to different answers.
    """
    dims, _ = run_questions(config)
    concept = findings.concepts[findings.primary_dataset]
    index = focus_index(findings.primary)
    layer = concept.layers[index]
    out = {}
    for stage in findings.stages:
        if not config.paths.anima_answers(stage).is_file():
            continue  # answered stages only (a stage added after evaluate ran)
        path = config.paths.anima_activations(stage)
        answered = AnswerSet.load(config.paths.anima_answers(stage)).answers
        if not any(a.answer.strip() for a in answered):  # nothing to project: undefined
            nan = Interval(np.nan, np.nan, np.nan)
            out[stage] = AnswerProjection(stage, stage, 0, nan, np.nan)
            continue
        if not path.is_file():
            raise MissingStepError(
                f"stage '{stage}' has ANIMA answers but no hidden states of them ({path}); "
                "rerun `valuetrace evaluate` (it extracts them from the cached answers)."
            )
        cache = read_activations(path, layers=[layer])
        judged = JudgedAnswers.load(config.paths.anima_judged(stage))
        scores = {answer_id(q, s): v for (q, s), v in answer_overall(judged.verdicts, dims).items()}
        hidden, graded = matched(cache.ids, cache.acts[0], scores)
        owner = parents.get(stage)
        owner = owner if owner in directions else stage
        out[stage] = project_answers(
            stage,
            owner,
            hidden,
            graded,
            directions[owner][index],
            n_boot=config.anima.n_bootstrap,
            seed=config.seed,
            ci=config.probing.ci,
            n_null=config.behaviour.null_directions,
        )
    return AnimaProjection(findings.primary_dataset, layer, config.probing.ci, out)
