"""ANIMA in the evaluate step: answers per stage, the offline judge, Inspect grading, scores.

Everything that can be wrong with the inputs (the question and dimension files, the reference
file, the Inspect grader's provider and key) is checked before the first answer is generated.
Answers and verdicts are cached per stage in the run folder (`anima/<stage>/`) with the
settings that made them; the scores of every stage go to `anima/scores.json`, and the wall
seconds of generation and judging to `timings.json` (`anima_generate`, `anima_judge`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from valuetrace.analysis.anima.agreement import load_reference, reference_answers
from valuetrace.analysis.anima.generate import (
    AnswerSet,
    cached_answers,
    generate_answers,
    generate_answers_vllm,
    generation_settings,
    pick_backend,
)
from valuetrace.analysis.anima.inspect_task import check_grader, grade_with_inspect
from valuetrace.analysis.anima.judge import (
    JUDGE_PROMPT,
    JudgedAnswers,
    judge_answers,
    yes_no_tokens,
)
from valuetrace.analysis.anima.questions import Dimension, Question, load_anima
from valuetrace.analysis.anima.scores import (
    Agreement,
    AnimaScores,
    answer_overall,
    replicate_floor,
    score_change,
    stage_score,
)
from valuetrace.config import RunConfig, resolve_data_path
from valuetrace.console import progress_bar
from valuetrace.errors import ConfigError
from valuetrace.models import load_model, load_tokenizer
from valuetrace.runtime import record_timing
from valuetrace.stats import spearman_ci
from valuetrace.steps.common import stage_model, stage_tokenizer
from valuetrace.training.lineage import Lineage

log = logging.getLogger(__name__)


def anima_folder(config: RunConfig) -> Path:
    """The folder of the ANIMA questions: `anima.source`, else `<real_data_dir>/anima`.

    Raises:
        ConfigError: neither is set.
    """
    if config.anima.source is not None:
        return Path(resolve_data_path(config.anima.source, config))
    if config.real_data_dir is not None:
        return Path(config.real_data_dir) / "anima"
    raise ConfigError(
        "anima.enabled needs the ANIMA questions: set anima.source to a folder holding "
        "questions.jsonl and dimensions.jsonl (e.g. ../shared/data/anima) or real_data_dir."
    )


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
    """The stage's verdicts from cache when judge and answers are unchanged, else judged now."""
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
    verdicts = judge_answers(
        *_judge_model(cfg.judge, judge),
        answers.answers,
        questions,
        dims,
        batch_size=cfg.judge_batch_size,
        max_length=cfg.judge_max_length,
    )
    judged = JudgedAnswers(stage, settings, verdicts)
    judged.save(path)
    return judged


def run_anima(config: RunConfig, *, progress: bool = True) -> AnimaScores:
    """Answer, judge and score every recorded stage on the ANIMA questions (see module doc).

    Raises:
        ConfigError: no question folder, an unusable Inspect grader or vLLM backend.
        DataError: a bad question, dimension or reference file (before any generation).
        CheckpointError: the judge cannot be loaded (before any generation).
    """
    cfg = config.anima
    dims, questions = load_anima(anima_folder(config), languages=cfg.languages, limit=cfg.limit)
    reference = (
        load_reference(resolve_data_path(cfg.reference, config), questions)
        if cfg.reference
        else None
    )
    if cfg.inspect_grader:
        check_grader(cfg.inspect_grader)
    yes_no_tokens(load_tokenizer(cfg.judge))  # a judge that cannot be loaded stops us here
    backend = pick_backend(cfg.backend)
    seed = config.seed if cfg.seed is None else cfg.seed
    lineage = Lineage.load(config.paths.lineage)
    paths = config.paths

    answer_sets: dict[str, AnswerSet] = {}
    start = time.perf_counter()
    for record in progress_bar(lineage.records, "ANIMA answers", enabled=progress):
        settings = generation_settings(
            questions,
            backend=backend,
            samples=cfg.samples_per_question,
            temperature=cfg.temperature,
            max_new_tokens=cfg.max_new_tokens,
            seed=seed,
            chat=config.model.chat_template,
            chat_date=config.model.chat_date,
            batch_size=cfg.batch_size,
            checkpoint=record.checkpoint,
            fingerprint=record.fingerprint,
        )
        options = {
            "samples": cfg.samples_per_question,
            "temperature": cfg.temperature,
            "max_new_tokens": cfg.max_new_tokens,
            "seed": seed,
            "chat": config.model.chat_template,
            "chat_date": config.model.chat_date,
        }

        def produce(record=record, options=options):
            tokenizer = stage_tokenizer(record)
            if backend == "vllm":
                return generate_answers_vllm(
                    record.checkpoint, tokenizer, questions, dtype=config.model.dtype, **options
                )
            model = stage_model(config, record)
            return generate_answers(
                model, tokenizer, questions, batch_size=cfg.batch_size, **options
            )

        answer_sets[record.name] = cached_answers(
            paths.anima_answers(record.name), record.name, settings, produce
        )
    record_timing(paths.timings, step="anima_generate", seconds=time.perf_counter() - start)

    start = time.perf_counter()
    judge: dict[str, Any] = {}
    ci, n_boot = config.probing.ci, cfg.n_bootstrap
    scores = {}
    for name, answers in answer_sets.items():
        judged = _judged(config, name, answers, questions, dims, judge)
        scores[name] = stage_score(
            name, judged.verdicts, dims, n_boot=n_boot, seed=config.seed, ci=ci
        )
    agreement = None
    if reference is not None:
        verdicts = judge_answers(
            *_judge_model(cfg.judge, judge),
            reference_answers(reference),
            questions,
            dims,
            batch_size=cfg.judge_batch_size,
            max_length=cfg.judge_max_length,
        )
        overall = answer_overall(verdicts, dims)
        judged_scores = [overall[(item.question_id, i)] for i, item in enumerate(reference)]
        agreement = Agreement(
            reference=cfg.reference or "",
            n=len(reference),
            spearman=spearman_ci(
                judged_scores, [r.score for r in reference], n_boot, config.seed, ci
            ),
        )
    record_timing(paths.timings, step="anima_judge", seconds=time.perf_counter() - start)

    twins = {
        s.name: [t.name for t in config.stages if t.replicate_of == s.name] for s in config.stages
    }
    changes = []
    for a, b in config.analysis.compare:
        if a in scores and b in scores:
            floor = replicate_floor(scores[b], [scores[t] for t in twins.get(b, []) if t in scores])
            if floor is None:
                floor = replicate_floor(
                    scores[a], [scores[t] for t in twins.get(a, []) if t in scores]
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
