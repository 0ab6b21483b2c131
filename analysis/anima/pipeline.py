"""ANIMA over a run's stages: answers, their pooled hidden states, the offline judge, Inspect
grading and the scores, in the order the evaluate step runs them.

Everything that can be wrong with the inputs (the question and dimension files, the reference
file, the Inspect grader's provider and key, the judge) is checked before the first answer is
generated. Per stage, in the run folder (`anima/<stage>/`): the answers and the judge's grades,
each cached with the settings that made them, and the answers' pooled hidden states
(`activations.h5`, an activation cache like a probe set's, read by the analysis to project
each answer on the compassion direction, `valuetrace.analysis.anima.projection`). The scores of
every stage go to `anima/scores.json`, the wall seconds of generation (with the answers'
hidden states) and of judging to `timings.json` (`anima_generate`, `anima_judge`).

Models are loaded by the caller (`StageLoader`), so this module never decides where a
checkpoint lives or on which device it runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.analysis.anima.agreement import ReferenceItem, load_reference, reference_answers
from valuetrace.analysis.anima.generate import (
    Answer,
    AnswerSet,
    cached_answers,
    generate_answers,
    generate_answers_vllm,
    generation_settings,
    pick_backend,
)
from valuetrace.analysis.anima.hidden import answer_examples, extract_answers
from valuetrace.analysis.anima.inspect_task import check_grader, grade_with_inspect
from valuetrace.analysis.anima.judge import (
    JUDGE_PROMPT,
    JudgedAnswers,
    judge_answers,
    yes_no_tokens,
)
from valuetrace.analysis.anima.questions import Dimension, Question, run_questions
from valuetrace.analysis.anima.scores import (
    Agreement,
    AnimaScores,
    answer_overall,
    replicate_floor,
    score_change,
    stage_score,
)
from valuetrace.analysis.study import floor_twins
from valuetrace.config import RunConfig, resolve_data_path
from valuetrace.console import progress_bar
from valuetrace.models import load_model, load_tokenizer
from valuetrace.runtime import record_timing
from valuetrace.stats import spearman_ci
from valuetrace.training.lineage import StageRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageLoader:
    """How the caller loads a stage's model and tokenizer (its device, dtype and adapter)."""

    model: Callable[[StageRecord], PreTrainedModel]
    tokenizer: Callable[[StageRecord], PreTrainedTokenizerBase]


def _judge_model(name: str, loaded: dict[str, Any]) -> tuple[Any, Any]:
    """The judge's model and tokenizer, loaded on first use only (kept in `loaded`)."""
    if not loaded:
        loaded["model"] = load_model(name)
        loaded["tokenizer"] = load_tokenizer(name)
    return loaded["model"], loaded["tokenizer"]


def _judged(
    config: RunConfig,
    stage: str,
    answers: AnswerSet,
    questions: list[Question],
    dims: dict[str, Dimension],
    judge: dict[str, Any],
) -> JudgedAnswers:
    """The stage's grades from cache when judge and answers are unchanged, else judged now."""
    cfg = config.anima
    body = json.dumps([answers.settings, [vars(a) for a in answers.answers]], sort_keys=True)
    settings = {
        "judge": cfg.judge,
        "prompt_sha256": hashlib.sha256(JUDGE_PROMPT.encode()).hexdigest(),
        "answers_sha256": hashlib.sha256(body.encode()).hexdigest(),
        "batch_size": str(cfg.judge_batch_size),
        "max_length": str(cfg.judge_max_length),
    }
    path = config.paths.anima_judged(stage)
    if path.is_file():
        old = JudgedAnswers.load(path)
        if old.settings == settings:
            return old
    grades = judge_answers(
        *_judge_model(cfg.judge, judge),
        answers.answers,
        questions,
        dims,
        batch_size=cfg.judge_batch_size,
        max_length=cfg.judge_max_length,
    )
    judged = JudgedAnswers(stage, settings, grades)
    judged.save(path)
    return judged


def _answers(
    config: RunConfig,
    records: Sequence[StageRecord],
    questions: list[Question],
    load: StageLoader,
    progress: bool,
) -> dict[str, AnswerSet]:
    """Each stage's answers (cached or generated) and their pooled hidden states."""
    cfg = config.anima
    backend = pick_backend(cfg.backend)
    seed = config.seed if cfg.seed is None else cfg.seed
    options = {
        "samples": cfg.samples_per_question,
        "temperature": cfg.temperature,
        "max_new_tokens": cfg.max_new_tokens,
        "seed": seed,
        "chat": config.model.chat_template,
        "chat_date": config.model.chat_date,
    }
    out: dict[str, AnswerSet] = {}
    for record in progress_bar(records, "ANIMA answers", enabled=progress):
        settings = generation_settings(
            questions,
            backend=backend,
            batch_size=cfg.batch_size,
            checkpoint=record.checkpoint,
            fingerprint=record.fingerprint,
            **options,
        )
        tokenizer = load.tokenizer(record)
        loaded: list[PreTrainedModel] = []

        def model(record: StageRecord = record, loaded: list = loaded) -> PreTrainedModel:
            if not loaded:
                loaded.append(load.model(record))
            return loaded[0]

        def produce(record: StageRecord = record, tokenizer=tokenizer) -> list[Answer]:
            if backend == "vllm":
                return generate_answers_vllm(
                    record.checkpoint, tokenizer, questions, dtype=config.model.dtype, **options
                )
            return generate_answers(
                model(), tokenizer, questions, batch_size=cfg.batch_size, **options
            )

        answers = cached_answers(
            config.paths.anima_answers(record.name), record.name, settings, produce
        )
        examples = answer_examples(answers.answers, questions)
        if len(examples):
            extract_answers(config, record, examples, model(), tokenizer)
        else:  # nothing to pool: no hidden states of earlier answers may stay beside these
            config.paths.anima_activations(record.name).unlink(missing_ok=True)
        out[record.name] = answers
    return out


def _agreement(
    config: RunConfig,
    reference: list[ReferenceItem] | None,
    questions: list[Question],
    dims: dict[str, Dimension],
    judge: dict[str, Any],
) -> Agreement | None:
    """The judge's Spearman agreement with the reference file's grades (None without one)."""
    cfg = config.anima
    if reference is None:
        return None
    grades = judge_answers(
        *_judge_model(cfg.judge, judge),
        reference_answers(reference),
        questions,
        dims,
        batch_size=cfg.judge_batch_size,
        max_length=cfg.judge_max_length,
    )
    overall = answer_overall(grades, dims)
    judged_scores = [overall[(item.question_id, i)] for i, item in enumerate(reference)]
    return Agreement(
        reference=cfg.reference or "",
        n=len(reference),
        spearman=spearman_ci(
            judged_scores,
            [r.score for r in reference],
            cfg.n_bootstrap,
            config.seed,
            config.probing.ci,
        ),
    )


def run_anima(
    config: RunConfig,
    records: Sequence[StageRecord],
    load: StageLoader,
    *,
    progress: bool = True,
) -> AnimaScores:
    """Answer, extract, judge and score every stage in `records` (see module doc).

    Raises:
        ConfigError: no question folder, an unusable Inspect grader or vLLM backend.
        DataError: a bad question, dimension or reference file (before any generation).
        CheckpointError: the judge cannot be loaded (before any generation).
    """
    cfg, paths = config.anima, config.paths
    dims, questions = run_questions(config)
    reference = (
        load_reference(resolve_data_path(cfg.reference, config), questions)
        if cfg.reference
        else None
    )
    if cfg.inspect_grader:
        check_grader(cfg.inspect_grader)
    yes_no_tokens(load_tokenizer(cfg.judge))  # a judge that cannot be loaded stops us here

    start = time.perf_counter()
    answer_sets = _answers(config, records, questions, load, progress)
    record_timing(paths.timings, step="anima_generate", seconds=time.perf_counter() - start)

    start = time.perf_counter()
    judge: dict[str, Any] = {}
    ci, n_boot = config.probing.ci, cfg.n_bootstrap
    scores = {
        name: stage_score(
            name,
            _judged(config, name, answers, questions, dims, judge).verdicts,
            dims,
            n_boot=n_boot,
            seed=config.seed,
            ci=ci,
        )
        for name, answers in answer_sets.items()
    }
    agreement = _agreement(config, reference, questions, dims, judge)
    record_timing(paths.timings, step="anima_judge", seconds=time.perf_counter() - start)

    replicate_of = {s.name: s.replicate_of for s in config.stages if s.replicate_of}
    changes = []
    for a, b in config.analysis.compare:
        if a in scores and b in scores:
            twins = floor_twins(a, b, replicate_of, scores)
            floor = (
                None
                if twins is None
                else replicate_floor(scores[twins[0]], [scores[t] for t in twins[1]])
            )
            changes.append(
                score_change(
                    scores[a], scores[b], n_boot=n_boot, seed=config.seed, ci=ci, floor=floor
                )
            )
    logs = {}
    if cfg.inspect_grader:
        for name, answers in answer_sets.items():
            location = grade_with_inspect(
                answers, questions, dims, cfg.inspect_grader, paths.anima_inspect(name)
            )
            logs[name] = paths.stored(location)
    result = AnimaScores(
        judge=cfg.judge,
        ci=ci,
        n_boot=n_boot,
        stages=scores,
        changes=changes,
        agreement=agreement,
        inspect_logs=logs,
    )
    result.save(paths.anima_scores)
    return result
