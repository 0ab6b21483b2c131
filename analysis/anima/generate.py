"""Each stage's answers to the ANIMA questions, generated once and cached with their settings.

Generation runs the prompts as SFT saw them (`valuetrace.prompts.format_prompt`: the stage's
chat template when the run uses one), sorted by token length and cut into batches, left-padded
so every answer starts right after its prompt, with the model's key/value cache
(`model.generate(use_cache=True)`). At temperature 0 decoding is greedy (one sample per
question); above it, samples are drawn with `torch.manual_seed(seed + batch index)` before each
batch, so the same settings give the same answers on one machine.

With `vllm` importable and a GPU (`backend: auto` or `vllm`), vLLM generates instead
(`vllm.LLM.generate`, `SamplingParams(n=samples, seed=seed)`); the answers have the same format.

The answers of a stage are stored as an `AnswerSet` record beside the settings that made them
(backend, sampling, `max_new_tokens`, batch size, the questions' hash, the stage's checkpoint
and fingerprint); `cached_answers` reuses them only when every setting is unchanged, so judging
can be rerun without generating, and a changed setting regenerates them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from jaxtyping import Int
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.analysis.anima.questions import Question
from valuetrace.config import DEFAULT_CHAT_DATE
from valuetrace.errors import ConfigError
from valuetrace.prompts import format_prompt
from valuetrace.records import load_record, save_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """One generated answer: the question's id, the sample index (0-based) and the text."""

    question_id: str
    sample: int
    answer: str


@dataclass(frozen=True)
class AnswerSet:
    """A stage's answers to the ANIMA questions and the settings that made them.

    `settings` are plain strings (see `generation_settings`), compared as a whole to decide
    whether a cache is still valid. Answers are ordered by question (file order), then sample.
    """

    SCHEMA: ClassVar[str] = "valuetrace.anima_answers"
    VERSION: ClassVar[int] = 1

    stage: str
    settings: dict[str, str]
    answers: list[Answer]

    def save(self, path: Path) -> Path:
        """Write the record as versioned JSON (atomically)."""
        return save_record(self, path)

    @classmethod
    def load(cls, path: Path) -> AnswerSet:
        """Read a record written by `save`.

        Raises:
            MissingStepError: no file (run `valuetrace evaluate` with `anima.enabled`).
            CacheError: the file is not an answer record of a version read here.
        """
        return load_record(cls, path, step="evaluate")


def questions_hash(questions: Sequence[Question]) -> str:
    """sha256 of the questions' ids and texts, in order: what a cached answer set answered."""
    body = json.dumps([[q.id, q.question] for q in questions], ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def generation_settings(
    questions: Sequence[Question],
    *,
    backend: str,
    samples: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    chat: bool,
    chat_date: str,
    batch_size: int,
    checkpoint: str,
    fingerprint: str | None,
) -> dict[str, str]:
    """Everything that decides a stage's answers, as the strings an `AnswerSet` stores (the
    chat date only where a template renders it)."""
    return {
        "backend": backend,
        "samples_per_question": str(samples),
        "temperature": repr(float(temperature)),
        "max_new_tokens": str(max_new_tokens),
        "seed": str(seed),
        "chat_template": str(chat),
        "chat_date": chat_date if chat else "",
        "batch_size": str(batch_size),
        "questions_sha256": questions_hash(questions),
        "checkpoint": checkpoint,
        "fingerprint": fingerprint or "",
    }


def cached_answers(
    path: Path, stage: str, settings: dict[str, str], produce: Callable[[], list[Answer]]
) -> AnswerSet:
    """The stage's answers from `path` when made with `settings`, else `produce()`d and saved.

    A cache made with other settings is replaced (the log names the changed settings); a file
    that is not an answer record is refused rather than overwritten.

    Raises:
        CacheError: `path` holds something other than an answer record of a version read here.
    """
    if path.is_file():
        old = AnswerSet.load(path)
        if old.settings == settings and old.stage == stage:
            log.info("ANIMA answers of %s reused from %s", stage, path)
            return old
        changed = sorted(
            k
            for k in settings.keys() | old.settings.keys()
            if settings.get(k) != old.settings.get(k)
        )
        log.info("ANIMA answers of %s regenerated: settings changed %s", stage, changed)
    answers = AnswerSet(stage, settings, produce())
    answers.save(path)
    return answers


def pick_backend(backend: str) -> str:
    """`transformers` or `vllm`: vLLM when asked for, or on `auto` with vllm and a GPU.

    Raises:
        ConfigError: `vllm` is asked for without vllm installed or without a CUDA GPU.
    """
    has_vllm = importlib.util.find_spec("vllm") is not None
    if backend == "vllm" and not (has_vllm and torch.cuda.is_available()):
        raise ConfigError(
            "anima.backend is vllm, but vllm is not installed or no CUDA GPU is visible; "
            "install the `vllm` extra on a GPU machine, or use backend: transformers."
        )
    if backend == "auto":
        return "vllm" if has_vllm and torch.cuda.is_available() else "transformers"
    return backend


def pad_token(tokenizer: PreTrainedTokenizerBase) -> int:
    """The tokenizer's pad id, else its EOS id (padding is masked: its value never counts)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int
) -> tuple[Int[torch.Tensor, "b t"], Int[torch.Tensor, "b t"]]:
    """Token rows left-padded to the longest: (input ids, attention mask of 1 on real tokens)."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return input_ids, mask


def _rows(questions: Sequence[Question], samples: int) -> list[tuple[Question, int]]:
    return [(q, s) for q in questions for s in range(samples)]


@torch.inference_mode()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[Question],
    *,
    samples: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    chat: bool,
    batch_size: int,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> list[Answer]:
    """Each question answered `samples` times (greedy at temperature 0), decoded without
    special tokens, in question order then sample order.

    Rows are sorted by prompt length (longest first) and cut into batches of `batch_size`, so
    little padding is computed; left padding keeps each answer right after its prompt.

    Raises:
        ConfigError: `samples` > 1 with temperature 0 (every sample would be the same).
        DataError: `chat` with a tokenizer that has no chat template.
    """
    if samples > 1 and temperature == 0:
        raise ConfigError("samples > 1 needs temperature > 0; greedy answers are all the same.")
    rows = _rows(questions, samples)
    texts = [format_prompt(q.question, tokenizer, chat=chat, chat_date=chat_date) for q, _ in rows]
    ids = tokenizer(texts, add_special_tokens=not chat)["input_ids"]
    order = sorted(range(len(rows)), key=lambda i: -len(ids[i]))
    pad_id = pad_token(tokenizer)
    device = next(model.parameters()).device
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        if temperature > 0
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    out: dict[int, str] = {}
    for number, start in enumerate(range(0, len(order), batch_size)):
        batch = order[start : start + batch_size]
        input_ids, mask = left_pad([ids[i] for i in batch], pad_id)
        width = input_ids.shape[1]
        if temperature > 0:
            torch.manual_seed(seed + number)
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            pad_token_id=pad_id,
            use_cache=True,
            **sampling,
        )
        decoded = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
        out.update({i: text.strip() for i, text in zip(batch, decoded, strict=True)})
    return [Answer(q.id, s, out[i]) for i, (q, s) in enumerate(rows)]


def generate_answers_vllm(
    checkpoint: str,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[Question],
    *,
    samples: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    chat: bool,
    dtype: str,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> list[Answer]:
    """The same answers as `generate_answers`, generated by vLLM on a GPU (same format).

    Prompts are formatted by valuetrace (the stage's chat template) and passed as text; vLLM's
    own sampling is seeded (`SamplingParams.seed`). Not exercised by the CPU tests.
    """
    from vllm import LLM, SamplingParams

    texts = [
        format_prompt(q.question, tokenizer, chat=chat, chat_date=chat_date) for q in questions
    ]
    llm = LLM(model=checkpoint, dtype=dtype, seed=seed)
    params = SamplingParams(
        n=samples, temperature=temperature, max_tokens=max_new_tokens, seed=seed
    )
    results = llm.generate(texts, params)
    return [
        Answer(q.id, s, completion.text.strip())
        for q, result in zip(questions, results, strict=True)
        for s, completion in enumerate(result.outputs)
    ]
