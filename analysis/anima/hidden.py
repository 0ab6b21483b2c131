"""The pooled hidden states of a stage's ANIMA answers, cached like a probe set's.

Each answer is read by the stage that wrote it, as the question (prompt) and the answer
(response) under the run's chat format, and pooled as the run's extraction pools
(`extract.pooling`, `extract.layers`, `extract.dtype`), whole (an answer is never cut: the
length limit is the model's context, which the question and answer were generated in): the
same representation the probes' directions live in, so `valuetrace.analysis.anima.projection`
can project each answer on the compassion direction. The cache (`anima/<stage>/activations.h5`)
is an ordinary activation cache (`valuetrace.activations.store`) with the answers' ids, grouped
by question.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.examples import LabelledExamples
from valuetrace.activations.extract import cache_provenance, check_layers, extract_to_cache
from valuetrace.activations.store import is_complete
from valuetrace.analysis.anima.generate import Answer
from valuetrace.analysis.anima.questions import Question
from valuetrace.config import RunConfig
from valuetrace.errors import CacheError
from valuetrace.training.lineage import StageRecord

ANSWER_SET = "anima_answers"  # the dataset name of the answers' activation caches


def answer_examples(answers: Sequence[Answer], questions: Sequence[Question]) -> LabelledExamples:
    """The answers as an example set to extract: prompt = the question, response = the answer,
    id `<question id>#<sample>`, grouped by question; empty answers are left out (a response
    with no token has nothing to pool)."""
    text = {q.id: q.question for q in questions}
    kept = [a for a in answers if a.answer.strip()]
    return LabelledExamples(
        ids=[answer_id(a.question_id, a.sample) for a in kept],
        prompts=[text[a.question_id] for a in kept],
        responses=[a.answer for a in kept],
        labels=None,
        groups=[a.question_id for a in kept],
    )


def answer_id(question_id: str, sample: int) -> str:
    """The example id of one answer in its activation cache."""
    return f"{question_id}#{sample}"


def extract_answers(
    config: RunConfig,
    record: StageRecord,
    examples: LabelledExamples,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    """Cache the answers' pooled hidden states (every extracted layer) at
    `anima/<stage>/activations.h5`, as extraction does for a probe set (same pooling, dtype,
    chat format and provenance; never cut); a cache made from other answers or settings is
    replaced (it is derived data), a half-written one resumed.

    Raises:
        DataError: the model produced non-finite hidden states.
    """
    paths, ext = config.paths, config.extract
    path = paths.anima_activations(record.name)
    # whole: a question with its answer always fits the context it was generated in
    max_length = int(getattr(model.config, "max_position_embeddings", ext.max_length))
    provenance = {
        "stage": record.name,
        "stage_fingerprint": record.fingerprint or "",
        **cache_provenance(
            model=paths.stored(record.checkpoint),
            model_hash=record.weights_hash or record.checkpoint,
            tokenizer=tokenizer,
            examples=examples,
            dataset=ANSWER_SET,
            pooling=ext.pooling,
            dtype=ext.dtype,
            max_length=max_length,
            chat=config.model.chat_template,
            chat_date=config.model.chat_date,
        ),
    }
    try:
        if is_complete(
            path,
            provenance=provenance,
            layers=check_layers(model, ext.layers),
            d_model=model.config.hidden_size,
            n_examples=len(examples),
        ):
            return  # these answers' hidden states are cached (left unopened for writing)
        stale = False
    except CacheError:  # made from other answers or settings: derived data, so replaced
        stale = True
    extract_to_cache(
        model,
        tokenizer,
        examples,
        path,
        chat=config.model.chat_template,
        chat_date=config.model.chat_date,
        provenance=provenance,
        pooling=ext.pooling,
        batch_size=ext.batch_size,
        max_length=max_length,
        layers=ext.layers,
        overwrite=stale,
        progress=False,
    )
