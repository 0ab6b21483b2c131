"""Prompt formatting and tokenisation shared by training, extraction and evaluation.

Two formats: the plain `### Instruction / ### Response` template, or the tokenizer's own chat
template (`chat=True`). `token_spans` gives the token ids an example is fed to the model as, and
the response's span in token space, built the way TRL's `SFTTrainer` (1.16) tokenises
prompt/completion data, so extraction and behaviour scoring see exactly the tokens SFT trained on:

- chat: the conversation is rendered by the chat template and tokenised with
  `add_special_tokens=False` (what `apply_chat_template(tokenize=True)` does), so a template that
  writes its own BOS never gets a second one. The prompt is the user turn with the generation
  prompt (`add_generation_prompt=True`); the full text adds the assistant turn.
- plain: `tokenizer(prompt + response)` with the tokenizer's own special tokens (its BOS, if it
  adds one), as TRL does for non-conversational data.

Rules, stated once:

- **Response span.** It starts at the first token where the tokenised prompt and the tokenised
  prompt + response differ (TRL's `common_prefix_length`, whose completion mask is where SFT
  puts its loss) and ends with the last token holding a character of the response text.
- **A token that straddles the boundary** (prompt characters merged with the response's first
  characters, or the response's last characters merged with the template's text after it) is a
  response token: at the start because SFT trains it as completion, at the end because it holds
  response text.
- **What comes after the response** (the template's end-of-turn tokens, or the EOS TRL appends in
  the plain format) is not fed: in a causal model no hidden state or log-probability at or before
  the response's last token depends on it, so the fed ids are SFT's ids up to the response's end
  and every pooled vector and score equals the one inside the SFT sequence; `last` pooling then
  reads the response's last token, not a template token.
- **A text without a prompt** (probe statements, speciesism pairs, `behaviour_eval`): with the
  chat template on, it is the assistant's turn of a conversation with no user turn (the template
  adds what it always adds, e.g. a default system prompt) and the whole text is the response;
  with it off, it is the raw text with the tokenizer's own special tokens, as mid-training
  documents are trained.
- **Truncation** keeps the prompt and template and cuts the response's end (TRL's `keep_start`);
  a prompt that leaves no room for one response token is an error (`activations.pooling`).
- **The date.** Templates that write today's date (Llama 3.1/3.2: `strftime_now`, unless
  `date_string` is given) are rendered with the run's pinned `model.chat_date` as `date_string`,
  here and in TRL's SFT formatting (`chat_template_kwargs`), so ids do not change from day to
  day; `chat_render_hash` (what the template renders) goes into every cache's and stage's
  provenance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from valuetrace.config import DEFAULT_CHAT_DATE
from valuetrace.errors import DataError

# rendered by `chat_render_hash`: a system, user and assistant turn, a generation prompt, and an
# assistant turn alone (what a text without a prompt becomes)
PROBE_CONVERSATION = (
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "What does a hen need?"},
    {"role": "assistant", "content": "Space, shelter and care."},
)


@dataclass(frozen=True)
class TokenSpan:
    """One example as the model is fed it: `ids`, and the response's tokens `ids[start:end]`.

    `end == len(ids)` right after `token_spans`; `truncated` cuts `ids` and `end` together.
    """

    ids: list[int]
    start: int
    end: int

    def truncated(self, max_length: int) -> TokenSpan:
        """Keep the first `max_length` tokens: the prompt and template, and the response's start.

        A prompt of `max_length` tokens or more leaves an empty response span; callers refuse it.
        """
        if len(self.ids) <= max_length:
            return self
        return TokenSpan(self.ids[:max_length], min(self.start, max_length), max_length)


def chat_template_kwargs(chat_date: str) -> dict[str, str]:
    """The extra variables every chat template is rendered with: the pinned `date_string`.

    Passed to `apply_chat_template` here and given to TRL's SFT formatting as each row's
    `chat_template_kwargs`, so training and extraction render the same text.
    """
    return {"date_string": chat_date}


def render_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[dict[str, str]],
    *,
    chat_date: str,
    add_generation_prompt: bool = False,
) -> str:
    """A conversation as the chat template writes it, with the date pinned to `chat_date`."""
    return str(
        tokenizer.apply_chat_template(
            list(messages),
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            **chat_template_kwargs(chat_date),
        )
    )


def chat_render_hash(tokenizer: PreTrainedTokenizerBase, chat_date: str) -> str:
    """sha256 of a fixed probe conversation as the template renders it on `chat_date`.

    Recorded in cache provenance and stage lineage beside the tokenizer hash: the template text
    alone does not say what it renders (the date, or any other variable), its output does. A
    template that reads the clock even with `date_string` given (calls `strftime_now`
    unguarded) renders another hash on another day, so its caches and stages are then refused
    as made for a different request rather than silently mixed.

    Raises:
        DataError: the tokenizer has no chat template.
    """
    check_chat_template(tokenizer)
    rendered = [
        render_chat(tokenizer, list(PROBE_CONVERSATION), chat_date=chat_date),
        render_chat(
            tokenizer, list(PROBE_CONVERSATION[:2]), chat_date=chat_date, add_generation_prompt=True
        ),
        render_chat(tokenizer, list(PROBE_CONVERSATION[2:]), chat_date=chat_date),
    ]
    return hashlib.sha256(json.dumps(rendered).encode()).hexdigest()


def format_prompt(
    prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    chat: bool,
    system: str | None = None,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> str:
    """The exact text an SFT model saw before its response, for generation (GRPO prompts).

    For feeding the model, use `token_spans`: it tokenises without adding special tokens twice.
    `chat_date` is the date the template renders (`model.chat_date`).
    Raises DataError when `chat` is set and the tokenizer has no chat template.
    """
    if not chat:
        return plain_prompt(prompt, system)
    check_chat_template(tokenizer)
    return render_chat(
        tokenizer, chat_messages(prompt, system), chat_date=chat_date, add_generation_prompt=True
    )


def plain_prompt(prompt: str, system: str | None) -> str:
    """The template-free prompt: optional system block, instruction, then the response header."""
    header = f"### System:\n{system}\n\n" if system else ""
    return f"{header}### Instruction:\n{prompt}\n\n### Response:\n"


def chat_messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    """The chat-format prompt: optional system message, then the user turn."""
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": prompt}]


def common_prefix_length(ids: Sequence[object], other: Sequence[object]) -> int:
    """How many leading items (token ids, or characters) two sequences share.

    On token ids it is TRL's rule for where a completion starts (`trl.data_utils`).
    """
    length = 0
    for a, b in zip(ids, other, strict=False):
        if a != b:
            break
        length += 1
    return length


def token_spans(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    chat: bool,
    chat_date: str = DEFAULT_CHAT_DATE,
) -> list[TokenSpan]:
    """Token ids and response spans of prompt/response examples, as SFT tokenises them.

    `prompts` are the raw user prompts ("" for a text without a prompt), not formatted text;
    `chat_date` is the date the template renders (`model.chat_date`). See the module docstring
    for the rules. Raises DataError when `chat` is set and the tokenizer has no chat template,
    or when the template does not render a response verbatim.
    """
    if chat:
        check_chat_template(tokenizer)
    rendered = [
        _render(tokenizer, p, r, chat, chat_date) for p, r in zip(prompts, responses, strict=True)
    ]
    special = not chat  # a chat template writes its own special tokens
    full = tokenizer(
        [text for _, text, _ in rendered],
        add_special_tokens=special,
        return_offsets_mapping=True,
    )
    head = tokenizer([prompt for prompt, _, _ in rendered], add_special_tokens=special)
    spans = []
    for (_, _, content_end), ids, offsets, prompt_ids in zip(
        rendered, full["input_ids"], full["offset_mapping"], head["input_ids"], strict=True
    ):
        start = common_prefix_length(prompt_ids, ids)
        last = max((i for i, (a, b) in enumerate(offsets) if b > a and a < content_end), default=-1)
        end = max(start, last + 1)  # an empty response leaves an empty span, never a cut prompt
        spans.append(TokenSpan(list(ids[:end]), start, end))
    return spans


def _render(
    tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, chat: bool, chat_date: str
) -> tuple[str, str, int]:
    """(prompt text, prompt + response text, character where the response ends in the latter)."""
    if not chat:
        head = plain_prompt(prompt, None) if prompt else ""
        return head, head + response, len(head) + len(response)
    messages = chat_messages(prompt, None) if prompt else []
    head = (
        render_chat(tokenizer, messages, chat_date=chat_date, add_generation_prompt=True)
        if prompt
        else ""
    )
    reply = {"role": "assistant", "content": response}
    text = render_chat(tokenizer, [*messages, reply], chat_date=chat_date)
    shared = common_prefix_length(head, text)  # characters here
    if not response.strip():
        return head, text, shared
    for content in (response, response.strip()):
        begin = text.rfind(content, shared)
        if begin >= 0:
            # a text without a prompt: its prompt is whatever the template writes before it
            return (head if prompt else text[:begin]), text, begin + len(content)
    raise DataError(
        "the chat template does not render the response text verbatim, so its tokens cannot be "
        f"found (response starts {response[:40]!r}); use a template that writes message content "
        "as is, or chat_template: false."
    )


def check_chat_template(tokenizer: PreTrainedTokenizerBase) -> None:
    """Refuse chat formatting with a tokenizer that has no chat template (DataError)."""
    if not tokenizer.chat_template:
        raise DataError(
            "chat=True but the tokenizer has no chat template; use chat=False (the plain "
            "### Instruction/### Response format) or a tokenizer with a chat template"
        )
