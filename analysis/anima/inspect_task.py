"""Grading a stage's cached ANIMA answers through Inspect (`inspect-ai`), with any grader.

The Inspect `Task` built here has one sample per cached answer (input: the question; target:
its tags and variables, as `inspect_evals.anima` writes them), a solver that returns the cached
answer instead of generating, and the benchmark's own scorer (`inspect_evals.anima.scorer.
anima_scorer`: the grader answers each tagged dimension's guiding question, placeholders
filled, and grades C/I) and metrics (`overall_mean`, `dimension_normalized_avg`,
`avg_by_dimension`). Any Inspect model can grade: `hf/<local folder>` offline, `vllm/...` on a
GPU, or an API provider (`openai/gpt-4o`, `anthropic/...`) whose key is set. The `.eval` log
goes into the run folder (`anima/<stage>/inspect/`), so `inspect view` opens it and
`inspect_ai.log.read_eval_log` reads it.

For parity with published numbers, `inspect_evals`' own task generates and grades in one go
(it loads the questions from the hub, so it needs the network):

    inspect eval inspect_evals/anima --model hf/runs/smollm2-135m/checkpoints/sft_help \\
        --model-role grader=openai/gpt-4o -T languages='["English"]'

(`ahb` before `inspect_evals` 0.2x renamed it `anima`.)
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from valuetrace.analysis.anima.generate import AnswerSet
from valuetrace.analysis.anima.questions import Dimension, Question
from valuetrace.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# Environment variables an API provider needs (Inspect's own names for them).
PROVIDER_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "grok": "XAI_API_KEY",
    "groq": "GROQ_API_KEY",
    "together": "TOGETHER_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "perplexity": "PERPLEXITY_API_KEY",
}


def check_grader(grader: str) -> None:
    """Refuse a grader Inspect cannot use, before anything is generated.

    `hf/<folder>`: the folder must exist when it is given as a path (or be a hub id). An API
    provider: its key variable must be set, and Inspect must be able to build the model (its
    client package installed). Other local providers (`vllm/...`) are not loaded here.

    Raises:
        ConfigError: the provider's key is missing, its package is absent, or the model id
            is malformed; the message says what to set or install.
    """
    provider, sep, name = grader.partition("/")
    if not sep or not name:
        raise ConfigError(
            f"anima.inspect_grader {grader!r} is not an Inspect model id; write "
            "'<provider>/<model>', e.g. hf/path/to/checkpoint or openai/gpt-4o."
        )
    key = PROVIDER_KEYS.get(provider)
    if key is not None and not os.environ.get(key):
        raise ConfigError(
            f"anima.inspect_grader {grader} needs the {key} environment variable, which is not "
            f"set; export {key}=... or choose another grader (e.g. hf/<local folder>)."
        )
    if provider == "hf":
        looks_local = name.startswith((".", "/", "~")) or name.count("/") != 1
        if looks_local and not Path(name).expanduser().is_dir():
            raise ConfigError(
                f"anima.inspect_grader {grader}: the folder {name} does not exist; give a "
                "checkpoint folder (hf/<folder>) or a hub id (hf/<org>/<model>)."
            )
    if key is None:
        return  # a local provider (hf, vllm, ...): built, and loaded, only when grading starts
    from inspect_ai._util.error import PrerequisiteError
    from inspect_ai.model import get_model

    try:
        get_model(grader)
    except PrerequisiteError as err:
        raise ConfigError(f"anima.inspect_grader {grader} cannot be used: {err}") from err


def _solver():
    """A solver that answers with the sample's cached answer (no generation)."""
    from inspect_ai.model import ModelOutput
    from inspect_ai.solver import solver

    @solver
    def cached_answer():
        async def solve(state, generate):
            state.output = ModelOutput.from_content(
                model="valuetrace/cached", content=state.metadata["answer"]
            )
            state.messages.append(state.output.message)
            return state

        return solve

    return cached_answer()


def anima_task(
    answers: AnswerSet,
    questions: Sequence[Question],
    dimensions: dict[str, Dimension],
    grader: object,
):
    """The Inspect `Task` that grades one stage's cached answers with `grader`.

    `grader` is an Inspect model id or an `inspect_ai.model.Model`.

    Raises:
        DataError: an answer's question is not among `questions`.
    """
    from inspect_ai import Task
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_evals.anima.metrics import (
        avg_by_dimension,
        dimension_normalized_avg,
        overall_mean,
    )
    from inspect_evals.anima.scorer import anima_scorer
    from inspect_evals.anima.types import AnimaDimension

    by_id = {q.id: q for q in questions}
    missing = sorted({a.question_id for a in answers.answers} - by_id.keys())
    if missing:
        raise DataError(
            f"cached answers to questions {missing[:5]} have no ANIMA question; regenerate them."
        )
    dims = {
        name: AnimaDimension(
            name=d.name,
            weight=d.weight,
            scoring_description=d.scoring,
            guiding_question=d.guiding_question,
            indicators=d.indicators,
        )
        for name, d in dimensions.items()
    }
    samples = [
        Sample(
            id=f"{a.question_id}-{a.sample}",
            input=by_id[a.question_id].question,
            target=json.dumps(
                {"tags": by_id[a.question_id].tags, "variables": by_id[a.question_id].variables}
            ),
            metadata={
                "answer": a.answer,
                "question_id": a.question_id,
                "sample": a.sample,
                "language": by_id[a.question_id].language,
            },
        )
        for a in answers.answers
    ]
    return Task(
        name=f"valuetrace_anima_{answers.stage}",
        dataset=MemoryDataset(samples, name=f"anima-{answers.stage}"),
        solver=_solver(),
        scorer=anima_scorer(dimensions=dims, grader_models=[grader]),
        metrics=[overall_mean(), dimension_normalized_avg(dims), avg_by_dimension()],
        metadata={"stage": answers.stage, **answers.settings},
    )


def grade_with_inspect(
    answers: AnswerSet,
    questions: Sequence[Question],
    dimensions: dict[str, Dimension],
    grader: object,
    log_dir: Path,
) -> Path:
    """Run the grading task with Inspect; returns the `.eval` log's path (in `log_dir`).

    A grader that cannot follow the benchmark's grading format leaves answers ungraded (score
    NaN, `grader_parse_failure`); their number is logged as a warning, since the metrics then
    average fewer answers than were cached (all of them NaN when none parsed).

    Raises:
        DataError: Inspect's run did not succeed (its error is in the message and the log).
    """
    from inspect_ai import eval as inspect_eval

    log_dir.mkdir(parents=True, exist_ok=True)
    (result,) = inspect_eval(
        anima_task(answers, questions, dimensions, grader),
        model="none",
        log_dir=str(log_dir),
        display="none",
        log_format="eval",
    )
    if result.status != "success":
        raise DataError(
            f"Inspect grading of stage '{answers.stage}' ended '{result.status}': "
            f"{result.error}; see {result.location}."
        )
    samples = result.samples or []
    ungraded = sum(
        1
        for sample in samples
        for score in (sample.scores or {}).values()
        if not isinstance(score.value, int | float) or math.isnan(score.value)
    )
    if ungraded:
        log.warning(
            "Inspect grader %s produced no parseable grade for %d of %d answers of stage '%s' "
            "(see %s); a small model rarely follows the benchmark's grading format: use a "
            "capable grader, or the built-in offline judge (anima.judge)",
            getattr(grader, "name", grader),
            ungraded,
            len(samples),
            answers.stage,
            result.location,
        )
    return Path(result.location)
