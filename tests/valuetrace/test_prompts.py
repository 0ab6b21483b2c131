"""Prompt formatting and token spans: the ids extraction and scoring feed are the ids SFT trains on.

The reference is TRL's own `SFTTrainer` dataset preparation, fed by valuetrace's SFT formatting
(`training.stages.to_dataset`), on the tiny test tokenizer with a chat template given here and on
the real SmolLM2-135M-Instruct tokenizer when it is cached (`valuetrace models fetch`).
"""

from __future__ import annotations

import copy
import datetime
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from valuetrace.config import DEFAULT_CHAT_DATE
from valuetrace.errors import DataError
from valuetrace.models import tokenizer_hash
from valuetrace.prompts import TokenSpan, chat_render_hash, token_spans
from valuetrace.training.datasets import PromptResponse
from valuetrace.training.scratch import build_scratch_model
from valuetrace.training.stages import to_dataset

# writes its own BOS, like Llama 3's template; the tiny tokenizer also adds BOS when asked to
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
RECORDS = [
    PromptResponse("Is the cat resting near the barn?", "The vet listened while the cat slept."),
    PromptResponse("A dog limped near the road.", " The farmer watched."),
    # starts with newlines: its first token merges with the prompt's last one (straddles)
    PromptResponse("The hen waited.", "\n\nThe child helped the hen."),
]


@pytest.fixture(scope="module")
def chat_tokenizer(tiny_tokenizer):
    """The tiny tokenizer with the BOS-writing chat template (a copy: the fixture is shared)."""
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_checkpoint):
    """The real SmolLM2-135M-Instruct tokenizer (cached built-in; skips with the fix if absent)."""
    return AutoTokenizer.from_pretrained(smollm2_checkpoint)


def sft_rows(tokenizer: PreTrainedTokenizerBase, chat: bool, tmp_path: Path) -> list[dict]:
    """The tokenised rows TRL's SFTTrainer trains on, from valuetrace's SFT formatting."""
    from trl import SFTConfig, SFTTrainer

    model = build_scratch_model(
        tokenizer,
        hidden_size=8,
        num_layers=1,
        num_heads=1,
        intermediate_size=8,
        max_position_embeddings=512,
        seed=0,
    )
    args = SFTConfig(
        output_dir=str(tmp_path), use_cpu=True, report_to=[], max_length=512, packing=False
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=to_dataset(RECORDS, "sft", chat=chat),
        processing_class=tokenizer,
    )
    return list(trainer.train_dataset)


def assert_same_tokens_as_sft(
    tokenizer: PreTrainedTokenizerBase, chat: bool, tmp_path: Path
) -> list[TokenSpan]:
    """Fed ids are SFT's ids up to the response's end; the response starts where SFT's loss does."""
    spans = token_spans(
        tokenizer, [r.prompt for r in RECORDS], [r.response for r in RECORDS], chat=chat
    )
    for record, span, row in zip(RECORDS, spans, sft_rows(tokenizer, chat, tmp_path), strict=True):
        ids, labels = row["input_ids"], row["labels"]
        assert span.ids == ids[: span.end]
        assert span.start == next(i for i, label in enumerate(labels) if label != -100)
        assert labels[span.start : span.end] == ids[span.start : span.end]
        text = tokenizer.decode(span.ids[span.start : span.end])
        assert text.endswith(record.response.strip())
        # what SFT has after the response is only the end of the turn, never response text
        tail = tokenizer.decode(ids[span.end :])
        assert tail.strip() == tokenizer.eos_token
    return spans


def test_chat_tokens_match_trl_sft_on_the_tiny_tokenizer(chat_tokenizer, tmp_path):
    bos = chat_tokenizer.bos_token_id
    for span in assert_same_tokens_as_sft(chat_tokenizer, chat=True, tmp_path=tmp_path):
        assert span.ids[0] == bos and span.ids.count(bos) == 1  # the template's BOS only


def test_plain_tokens_match_trl_sft_on_the_tiny_tokenizer(tiny_tokenizer, tmp_path):
    bos = tiny_tokenizer.bos_token_id
    for span in assert_same_tokens_as_sft(tiny_tokenizer, chat=False, tmp_path=tmp_path):
        assert span.ids[0] == bos and span.ids.count(bos) == 1


def test_chat_tokens_match_trl_sft_on_smollm2(smollm2_tokenizer, tmp_path):
    assert_same_tokens_as_sft(smollm2_tokenizer, chat=True, tmp_path=tmp_path)


def test_a_straddling_first_token_belongs_to_the_response(chat_tokenizer):
    joining = copy.deepcopy(chat_tokenizer)
    joining.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    # "The ca" + "t slept.": the word " cat" is one token holding prompt and response characters
    span = token_spans(joining, ["The ca"], ["t slept."], chat=True)[0]
    assert joining.decode(span.ids[: span.start]) == "The"
    assert joining.decode(span.ids[span.start : span.end]) == " cat slept."


def test_a_text_without_a_prompt_is_the_assistant_turn_with_the_chat_template(chat_tokenizer):
    text = "The fox rested near the river."
    span = token_spans(chat_tokenizer, [""], [text], chat=True)[0]
    rendered = chat_tokenizer.apply_chat_template(
        [{"role": "assistant", "content": text}], tokenize=True, return_dict=True
    )["input_ids"]
    assert span.ids == rendered[: span.end]
    assert chat_tokenizer.decode(span.ids[span.start : span.end]) == text
    assert chat_tokenizer.decode(span.ids[: span.start]).endswith("<|assistant|>\n")


def test_a_text_without_a_prompt_is_the_raw_text_without_the_chat_template(tiny_tokenizer):
    text = "The fox rested near the river."
    span = token_spans(tiny_tokenizer, [""], [text], chat=False)[0]
    assert span.ids == tiny_tokenizer(text)["input_ids"]
    assert span.start == 1 and span.end == len(span.ids)  # everything after the tokenizer's BOS


def test_smollm2_text_without_a_prompt_gets_its_default_system_prompt(smollm2_tokenizer):
    span = token_spans(smollm2_tokenizer, [""], ["Animals feel pain."], chat=True)[0]
    prompt = smollm2_tokenizer.decode(span.ids[: span.start])
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert smollm2_tokenizer.decode(span.ids[span.start :]) == "Animals feel pain."


def test_truncation_keeps_the_prompt_and_cuts_the_response_end(chat_tokenizer):
    long = " ".join(["The cow rested near the barn."] * 20)
    span = token_spans(chat_tokenizer, ["Is the cow resting?"], [long], chat=True)[0]
    cut = span.truncated(span.start + 3)
    assert cut.ids == span.ids[: span.start + 3]
    assert (cut.start, cut.end) == (span.start, span.start + 3)
    assert span.truncated(len(span.ids)) is span


def test_chat_without_a_template_and_an_altering_template_are_clear_errors(
    tiny_tokenizer, chat_tokenizer
):
    with pytest.raises(DataError, match="no chat template"):
        token_spans(tiny_tokenizer, ["Q"], ["A"], chat=True)
    hiding = copy.deepcopy(chat_tokenizer)
    hiding.chat_template = "{% for m in messages %}<|{{ m.role }}|>{% endfor %}"
    with pytest.raises(DataError, match="does not render the response text verbatim"):
        token_spans(hiding, ["Q"], ["The cat slept."], chat=True)


def test_a_trimming_template_still_finds_the_response(chat_tokenizer):
    trimming = copy.deepcopy(chat_tokenizer)
    trimming.chat_template = TEMPLATE.replace("m.content", "m.content | trim")
    span = token_spans(trimming, ["Q"], ["  The cat slept.  "], chat=True)[0]
    assert trimming.decode(span.ids[span.start : span.end]) == "The cat slept."


def test_tokenizer_hash_covers_the_chat_template_and_special_tokens(chat_tokenizer):
    same = copy.deepcopy(chat_tokenizer)
    assert tokenizer_hash(same) == tokenizer_hash(chat_tokenizer)
    other_template = copy.deepcopy(chat_tokenizer)
    other_template.chat_template = TEMPLATE.replace("\n", " ")
    other_pad = copy.deepcopy(chat_tokenizer)
    other_pad.pad_token = other_pad.bos_token
    hashes = {tokenizer_hash(t) for t in (chat_tokenizer, other_template, other_pad)}
    assert len(hashes) == 3


# Llama 3.1 / 3.2's date logic: today's date from `strftime_now` unless `date_string` is given
DATED_TEMPLATE = (
    "{{ bos_token }}{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    '{%- set date_string = strftime_now("%d %b %Y") %}{%- else %}'
    '{%- set date_string = "26 Jul 2024" %}{%- endif %}{%- endif %}'
    "<|system|>\nToday Date: {{ date_string }}{{ eos_token }}\n" + TEMPLATE.split("}}", 1)[1]
)


def set_today(monkeypatch, year: int, month: int, day: int) -> None:
    """Move the clock transformers' `strftime_now` reads (the date source, not the model)."""
    import transformers.utils.chat_template_utils as chat_utils

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(year, month, day, 12, 0)

    monkeypatch.setattr(chat_utils, "datetime", Frozen)


@pytest.fixture(scope="module")
def dated_tokenizer(tiny_tokenizer):
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = DATED_TEMPLATE
    return tokenizer


def test_a_template_that_renders_today_gives_the_same_ids_on_any_day(
    dated_tokenizer, monkeypatch, tmp_path
):
    prompts, responses = [r.prompt for r in RECORDS], [r.response for r in RECORDS]
    seen, unpinned = [], []
    for day in (1, 2):
        set_today(monkeypatch, 2026, 12, day)
        unpinned.append(dated_tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}]))
        spans = token_spans(dated_tokenizer, prompts, responses, chat=True)
        rows = sft_rows(dated_tokenizer, True, tmp_path / str(day))
        assert [s.ids for s in spans] == [
            row["input_ids"][: s.end] for s, row in zip(spans, rows, strict=True)
        ]
        seen.append(([s.ids for s in spans], [row["input_ids"] for row in rows]))
    assert unpinned[0] != unpinned[1]  # the clock moved: the template alone renders each day
    assert seen[0] == seen[1]  # extraction and SFT ids do not
    text = dated_tokenizer.decode(seen[0][0][0])
    assert f"Today Date: {DEFAULT_CHAT_DATE}" in text


def test_the_render_hash_follows_the_pinned_date_not_the_clock(dated_tokenizer, monkeypatch):
    set_today(monkeypatch, 2026, 12, 1)
    pinned = chat_render_hash(dated_tokenizer, "26 Jul 2024")
    set_today(monkeypatch, 2027, 3, 5)
    assert chat_render_hash(dated_tokenizer, "26 Jul 2024") == pinned
    assert chat_render_hash(dated_tokenizer, "01 Dec 2026") != pinned
    # the tokenizer hash (template text, vocabulary) cannot tell the two dates apart
    spans = [
        token_spans(dated_tokenizer, ["Q"], ["A cat."], chat=True, chat_date=d)[0].ids
        for d in ("26 Jul 2024", "01 Dec 2026")
    ]
    assert spans[0] != spans[1]


def test_a_template_that_reads_the_clock_regardless_changes_its_render_hash(
    dated_tokenizer, monkeypatch
):
    clocked = copy.deepcopy(dated_tokenizer)
    clocked.chat_template = DATED_TEMPLATE.replace("{{ date_string }}", '{{ strftime_now("%d") }}')
    hashes = []
    for day in (1, 2):
        set_today(monkeypatch, 2026, 12, day)
        hashes.append(chat_render_hash(clocked, DEFAULT_CHAT_DATE))
    assert hashes[0] != hashes[1]  # so its caches and stages are refused on another day
